"""clustering study (paper 001): simulator physics, crops, autoencoder, clustering, CLI, real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import real_file, run_cli
from speckleml.clustering.cluster import (LATENTS, agreement_scores, elbow_point, nearest_neighbours,
                                          neighbour_precision, order_by_relaxation)
from speckleml.clustering.crops import (CROPS, bin_crops, diagonal_profiles, fit_crops_kww, minmax_normalise, sector_c2,
                                        sector_labels)
from speckleml.clustering.model import AutoencoderConfig, C2Autoencoder, save_model
from speckleml.clustering.simulate import CLASS_INDEX, Detector, evolve_field, rate_map
from speckleml.stores import write_store

REAL_DIR = ("horwath_rheo_xpcs",)
WEIGHTS = "full_dataset_augmented_training_normbest_model_0051.pth"


def test_reference_architecture_has_the_published_parameter_count():
    # PROVENANCE.md: the authors' autoencoder has 379,665 parameters (256 px crops, latent 64).
    model = C2Autoencoder(AutoencoderConfig(crop=256, latent=64))
    assert sum(p.numel() for p in model.parameters()) == 379_665
    small = C2Autoencoder(AutoencoderConfig(crop=64, latent=8)).eval()
    with torch.no_grad():
        out = small(torch.rand(3, 1, 64, 64))
        z = small.encode(torch.rand(3, 1, 64, 64))
    assert out.shape == (3, 1, 64, 64) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert z.shape == (3, 8) and float(z.min()) >= 0
    with pytest.raises(ValueError, match="divisible"):
        AutoencoderConfig(crop=96)


def test_per_stage_pools_keep_the_reference_bottleneck_on_small_crops():
    # The reference pools 4x4x4: its 256 px crops reach the bottleneck as a 4 x 4 map (1024
    # features). The laptop scale's 64 px crops pooled 4x2x2 reach it as the same 4 x 4 map, so
    # every parameter has the reference's name and shape; pooled 4x4x4 they would be one pixel.
    reference = C2Autoencoder(AutoencoderConfig(crop=256, latent=64)).state_dict()
    small = C2Autoencoder(AutoencoderConfig(crop=64, latent=64, pools=(4, 2, 2)))
    assert small.config.bottom == 4 and small.config.flat == 1024
    assert {k: v.shape for k, v in small.state_dict().items()} == {k: v.shape for k, v in reference.items()}
    small.load_state_dict(reference, strict=True)
    assert AutoencoderConfig(crop=64, pools=(4, 4, 4)).bottom == 1
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert small.eval()(x).shape == x.shape
        assert small.encoder(x).shape == (2, 64, 4, 4)
    # checkpoints written before per-stage pools stored one factor for all three stages
    old = {**AutoencoderConfig(crop=64, latent=8).to_dict()}
    old.pop("pools")
    assert AutoencoderConfig.from_dict({**old, "pool": 4}).pools == (4, 4, 4)
    with pytest.raises(ValueError, match="product of the pools"):
        AutoencoderConfig(crop=64, pools=(4, 4, 8))


def test_simulated_diffusion_c2_matches_the_analytic_decay():
    # Noise-free OU field, constant rate: per pixel C2 = exp(-2 lag Gamma (q/q0)^2), so the
    # pixel_mean map of a sector is that decay averaged over the sector's pixels (contrast 1).
    detector = Detector(48)
    rng = np.random.default_rng(3)
    tau = 8.0
    frames = evolve_field(np.full(400, 1.0 / tau), rate_map(detector), rng)
    axis = detector.axis
    labels, _ = sector_labels(axis, axis, detector.q_edges, 18)
    c2 = sector_c2(frames.astype(np.float32), labels, "pixel_mean")
    lags, measured = diagonal_profiles(c2, 12)
    spatial = rate_map(detector)
    for sector in (0, 9):
        pixels = spatial[labels == sector + 1]
        expected = np.exp(-2.0 * lags[:, None] * pixels[None, :] / tau).mean(axis=1)
        np.testing.assert_allclose(measured[sector], expected, atol=0.08)


def test_sector_c2_noise_falls_as_one_over_sqrt_of_the_sector_pixels():
    # Frozen speckle with Poisson counts: C2 is flat off the diagonal, so its scatter there is the
    # estimator noise, ~ 1/sqrt(pixels per sector). The default 128 px detector has 4x the
    # pixels of a 64 px one in the same ring, so about half the noise (README: what separated
    # the simulated classes).
    from speckleml.clustering.simulate import simulate_class_series
    from speckleml.schema import schema_default

    off_diagonal = ~np.eye(64, dtype=bool)
    noise, pixels = {}, {}
    for size in (64, schema_default("clustering.simulate.size")):
        detector = Detector(size)
        frames, _ = simulate_class_series("frozen", 64, 64, detector, np.random.default_rng(1), mean_counts=20.0)
        labels, _ = sector_labels(detector.axis, detector.axis, detector.q_edges, 18)
        c2 = sector_c2(frames, labels, "classical")
        noise[size] = np.median([c2[s][off_diagonal].std() for s in range(18)])
        pixels[size] = np.bincount(labels.ravel())[1:].mean()
    assert pixels[128] / pixels[64] == pytest.approx(4.0, rel=0.02)
    assert 1.6 < noise[64] / noise[128] < 2.4, noise


# Class time scales (simulate.py): each class's signature must show inside ONE crop window
# W = crop x crop_bin frames at the reference autoencoder's resolution, whose first MaxPool-4
# resolves nothing finer than 8 crop pixels = W/8 frames (README, issue 19).
WINDOW = 128   # default crop 64 x crop_bin 2


def test_heterodyne_undershoot_lies_beyond_the_first_pooling_scale():
    # The sector's q spread dephases the Doppler fringes after about one period: the sector C2
    # is a bright band with one dark undershoot. Measured on the sector along the flow (the
    # finest fringes), its lag (~0.43 period) must exceed W/8 frames (2 pixels after
    # MaxPool-4); with the former periods (W/10-W/3) it lay at 6-18 frames.
    from speckleml.clustering.simulate import simulate_class_series

    detector = Detector(64)
    q, phi = detector.q_phi()
    lo, hi = detector.q_edges
    for seed in range(3):
        frames, params = simulate_class_series("heterodyne_flow", 2 * WINDOW, WINDOW, detector,
                                               np.random.default_rng(seed))
        along = np.abs(np.angle(np.exp(1j * (phi - params["flow_angle"])))) < np.pi / 18
        pixels = frames[:, (q >= lo) & (q < hi) & along]          # (T, p) noise-free intensity
        lags = np.arange(1, WINDOW // 2)
        c2 = np.array([np.mean(pixels[:-lag] * pixels[lag:]) for lag in lags]) / np.mean(pixels) ** 2
        assert lags[np.argmin(c2)] > WINDOW / 8, (seed, params["period"], lags[np.argmin(c2)])


def test_ageing_band_outgrows_fast_diffusion_within_the_first_window():
    # The C2 band of ageing widens along the diagonal; 3/4 into a window that starts at the
    # series' first frame its width (lag where 2 int Gamma dt = 1) must exceed the widest
    # fast-diffusion band (tau <= W/16: width <= W/32 frames), else the two classes look alike
    # (with the former t_age up to W/2 it stayed at 2-4 frames there).
    from speckleml.clustering.simulate import class_rate

    t = 3 * WINDOW // 4
    for seed in range(40):
        rate, _ = class_rate("ageing", 3 * WINDOW // 2, WINDOW, np.random.default_rng(seed))
        width = np.searchsorted(2.0 * np.cumsum(rate[t:]), 1.0)
        assert width > WINDOW / 32, (seed, width)
        fast, params = class_rate("fast_diffusion", 8, WINDOW, np.random.default_rng(seed))
        assert params["tau"] / 2 <= WINDOW / 32


def test_avalanche_windows_hold_several_bursts():
    # Square blocks are the avalanche signature: a window with 0-2 bursts looks frozen. With the
    # mean gap W/10-W/6 a window holds 6-10 bursts on average and rarely fewer than 3
    # (the former W/5-W/2.5: 2.5-5 on average, a third of the windows with fewer than 3).
    from speckleml.clustering.simulate import class_rate

    counts = []
    for seed in range(60):
        rate, params = class_rate("avalanches", 3 * WINDOW // 2, WINDOW, np.random.default_rng(seed))
        bursts = rate > 0.5
        counts += [int(bursts[s:s + WINDOW].sum()) for s in range(0, WINDOW // 2 + 1, 16)]
    counts = np.array(counts)
    assert 5.5 < counts.mean() < 11, counts.mean()
    assert np.mean(counts < 3) < 0.1, np.mean(counts < 3)


def test_shared_ou_field_has_the_analytic_correlation_for_varying_per_pixel_rates():
    # <E(0) E*(t)> = prod_{s <= t} a_s for every pixel, with unit power at every step
    from speckleml.synthetic import ou_field

    rng = np.random.default_rng(5)
    n = 40_000
    slow = np.arange(n) < n // 2                      # two pixel populations, two rates
    decay = [np.where(slow, 0.95, 0.6), np.where(slow, 0.9, 0.3), np.where(slow, 0.99, 0.8)]
    fields = np.stack(list(ou_field(iter(decay), (n,), rng)))
    assert fields.shape == (4, n)
    np.testing.assert_allclose((np.abs(fields) ** 2).mean(axis=1), 1.0, atol=0.03)
    for t in range(1, 4):
        for part in (slow, ~slow):
            measured = np.mean(fields[0, part] * fields[t, part].conj())
            expected = np.prod([d[part][0] for d in decay[:t]])
            assert abs(measured - expected) < 0.03, (t, measured, expected)


def test_shared_poisson_sampler_scales_to_the_mean_and_has_poisson_variance():
    from speckleml.synthetic import poisson_counts

    rng = np.random.default_rng(2)
    intensity = np.full((200, 100), 7.0)
    counts = poisson_counts(intensity, 4.0, rng)
    assert counts.dtype == np.float32 and np.array_equal(counts, np.round(counts))
    assert abs(counts.mean() - 4.0) < 0.05 and abs(counts.var() - 4.0) < 0.15
    clean = poisson_counts(np.array([1.0, 3.0]), None, rng)
    np.testing.assert_array_equal(clean, np.array([0.5, 1.5], np.float32))
    with pytest.raises(ValueError, match="mean_counts"):
        poisson_counts(intensity, -1.0, rng)


def test_binned_crop_of_an_exponential_map_is_the_block_mean_and_keeps_its_diagonal():
    # C2 = exp(-|t1 - t2| / 5): a 2x2 block on the diagonal averages lags 0, 1, 1, 0
    t = np.arange(8.0)
    c2 = np.exp(-np.abs(t[:, None] - t[None, :]) / 5.0)
    binned = bin_crops(c2[None], 2)[0]
    assert binned.shape == (4, 4)
    np.testing.assert_allclose(np.diagonal(binned), 0.5 * (1.0 + np.exp(-0.2)))
    # one block off: lags 1, 2, 2, 3 -> the same for every off-diagonal block of a stationary map
    np.testing.assert_allclose(np.diagonal(binned, 1), 0.25 * (np.exp(-0.2) + 2 * np.exp(-0.4) + np.exp(-0.6)))
    np.testing.assert_allclose(binned, binned.T)
    assert bin_crops(c2, 1) is c2
    with pytest.raises(ValueError, match="divide"):
        bin_crops(c2, 3)


def test_kww_fit_recovers_the_relaxation_time_of_an_analytic_crop():
    t = np.arange(64.0)
    lag = np.abs(t[:, None] - t[None, :])
    taus = np.array([3.0, 10.0, 30.0])
    crops = np.stack([0.2 + 0.5 * np.exp(-2.0 * (lag / tau) ** 0.8) for tau in taus])
    scaled, low, high = minmax_normalise(crops)
    assert np.allclose(scaled.min(axis=(1, 2)), 0) and np.allclose(scaled.max(axis=(1, 2)), 1)
    np.testing.assert_allclose(low, 0.2 + 0.5 * np.exp(-2.0 * (63 / taus) ** 0.8), rtol=1e-5)
    for baseline in (0.2, None):          # the decorrelated level known, or fitted
        fitted_tau, fitted_gamma, bound = fit_crops_kww(crops, baseline)
        np.testing.assert_allclose(fitted_tau, taus, rtol=0.02)
        np.testing.assert_allclose(fitted_gamma, 0.8, rtol=0.02)
        assert bound.tolist() == [0, 0, 0]


def test_kww_fit_flags_maps_outside_the_crops_lag_range():
    # classical C2 (decorrelated level 1): frozen = flat above 1, fully decorrelated = flat
    # at 1 after lag 0, a 500-frame decay in a 32-frame crop; noise as in a real sector
    rng = np.random.default_rng(4)
    t = np.arange(32.0)
    lag = np.abs(t[:, None] - t[None, :])
    spike = 0.3 * (lag == 0)                   # shot noise on the diagonal
    maps = np.stack([1.4 + spike, 1.0 + spike, 1.0 + 0.4 * np.exp(-2.0 * lag / 500.0) + spike,
                     1.0 + 0.4 * np.exp(-2.0 * lag / 6.0) + spike])
    maps += 0.003 * rng.standard_normal(maps.shape)
    tau, gamma, bound = fit_crops_kww(maps, baseline=1.0)
    assert bound.tolist() == [1, -1, 1, 0]
    assert tau[0] == tau[2] == 31.0 and tau[1] == 1.0           # the limits: the crop's lag range
    assert abs(tau[3] - 6.0) < 0.3


def test_elbow_point_finds_the_knee_of_a_piecewise_linear_curve():
    ks = np.arange(2, 13)
    distortion = np.where(ks <= 5, 100 - 25 * (ks - 2), 25 - 1.0 * (ks - 5))
    assert elbow_point(ks, distortion) == 5
    assert elbow_point([2, 3], [5.0, 1.0]) == 2


def test_clusters_are_renumbered_slowest_first_and_scores_detect_agreement():
    labels = np.array([0, 0, 1, 1, 2, 2])
    tau = np.array([1.0, 2.0, 100.0, 200.0, 10.0, 20.0])
    mapping = order_by_relaxation(labels, tau, 3)
    assert mapping.tolist() == [2, 0, 1]
    truth = np.array([5, 5, 7, 7, 9, 9])
    assert agreement_scores(truth, mapping[labels]) == {"ari": 1.0, "nmi": 1.0}
    index, distance = nearest_neighbours(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]]), 2,
                                         exclude=np.array([2]))
    assert index.tolist() == [[1, 0]] and np.allclose(distance, [[1.0, 5.0]])


def test_bound_hits_are_left_out_of_the_cluster_order():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    tau = np.array([5.0, 6.0, 63.0, 63.0, 4.0, 63.0, 1.0, 1.0])
    bound = np.array([0, 0, 1, 1, 0, 1, -1, -1])
    # times alone: cluster 1 (63), 2 (median of 4 and 63: 15.9), 0 (5.5), 3 (1)
    assert order_by_relaxation(labels, tau, 4).tolist() == [2, 0, 1, 3]
    # flags: cluster 1 only above the range -> slowest; cluster 2 by its one measured time (4)
    # after cluster 0; cluster 3 only below the range -> after every measured cluster
    assert order_by_relaxation(labels, tau, 4, bound).tolist() == [1, 0, 2, 3]
    bound[4] = 1                       # cluster 2 now only above the range too: beside cluster 1
    assert order_by_relaxation(labels, tau, 4, bound).tolist() == [2, 0, 1, 3]


def test_neighbour_precision_excludes_the_query_series_when_asked():
    # two classes on a line; series 0 and 2 are class 0, series 1 and 3 class 1
    latents = np.array([[0.0], [0.1], [1.0], [1.1], [0.5], [0.52], [2.0], [2.1]])
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    series = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    mask = series[None, :] == series[[0], None]
    index, _ = nearest_neighbours(latents[[0]], latents, 2, mask=mask)
    assert index.tolist() == [[4, 5]]
    with_series = neighbour_precision(latents, labels, series, 1, exclude_series=False)
    assert with_series == {0: (4, 1.0), 1: (4, 1.0)}        # each item's twin is its neighbour
    # without its own series: class 0 items find the other class-0 series (4, 5 <-> 0, 1),
    # class 1: item 2 -> 5 (0.48), 3 -> 5 (0.58) wrong; 6, 7 -> 3 (0.9, 1.0) right
    without = neighbour_precision(latents, labels, series, 1, exclude_series=True)
    assert without == {0: (4, 1.0), 1: (4, 0.5)}
    with pytest.raises(ValueError, match="fewer than 7"):
        neighbour_precision(latents, labels, series, 7, exclude_series=True)


@pytest.mark.slow
def test_latent_clusters_beat_chance_on_a_tiny_synthetic_set():
    """Simulate -> C2 crops -> train briefly -> k-means: ARI against the true classes > 0."""
    from sklearn.cluster import KMeans

    from speckleml.clustering.crops import diagonal_crops, random_starts
    from speckleml.clustering.simulate import simulate_library
    from speckleml.clustering.train import TrainConfig, encode_crops, train_autoencoder

    torch.set_num_threads(2)
    detector = Detector(32)
    frames, classes, _ = simulate_library(3, 64, 64, detector, seed=1, mean_counts=20.0)
    labels, _ = sector_labels(detector.axis, detector.axis, detector.q_edges, 18)
    rng = np.random.default_rng(0)
    crops, truth, series = [], [], []
    for s in range(frames.shape[0]):
        c2 = sector_c2(frames[s], labels, "classical")
        for sector in range(18):
            crops.append(diagonal_crops(c2[sector], random_starts(64, 64, 1, rng), 64)[0])
            truth.append(classes[s])
            series.append(s)
    crops = minmax_normalise(np.stack(crops))[0]
    model, history = train_autoencoder(crops, np.array(series), AutoencoderConfig(crop=64, latent=16),
                                       TrainConfig(epochs=2, batch_size=16, lr=3e-3, cycle_epochs=1,
                                                                   val_fraction=0.2),
                                       seed=0, device=torch.device("cpu"))
    assert history[-1]["train_l1"] < history[0]["train_l1"]
    latents, errors = encode_crops(model, crops, "cpu")
    assert np.isfinite(latents).all() and latents.min() >= 0
    found = KMeans(6, n_init=10, random_state=0).fit_predict(latents)
    truth = np.array(truth)
    ari = agreement_scores(truth, found)["ari"]
    # chance: the same clusters against shuffled classes (ARI ~0 +- 0.01 for 324 items)
    null = [agreement_scores(np.random.default_rng(i).permutation(truth), found)["ari"] for i in range(20)]
    assert max(null) < 0.03, null
    assert ari > 0.08 and ari > max(null) + 0.05, (ari, max(null))   # measured here: 0.19


def _toy_library(tmp_path, crop=64, n=12, latent=8, labels=None, series=None):
    """A saved untrained model, and a crops store and a latents store of ``n`` random crops
    encoded with it (one class and one series per crop unless ``labels``/``series`` given)."""
    from speckleml.clustering.train import encode_crops
    from speckleml.provenance import checksum

    torch.manual_seed(0)
    model = C2Autoencoder(AutoencoderConfig(crop=crop, latent=latent)).eval()
    save_model(tmp_path / "model.pt", model)
    rng = np.random.default_rng(0)
    t = np.arange(crop)
    lag = np.abs(t[:, None] - t[None, :])
    crops = np.stack([np.exp(-2.0 * lag / tau) + 0.05 * rng.random((crop, crop)) for tau in np.geomspace(1, 60, n)])
    crops = minmax_normalise(crops)[0]
    latents, errors = encode_crops(model, crops, "cpu")
    zeros = np.zeros(n, np.int64)
    labels = zeros if labels is None else np.asarray(labels, np.int64)
    series = np.arange(n) if series is None else np.asarray(series, np.int64)
    classes = [f"toy{i}" for i in range(int(labels.max()) + 1)]
    common = {"label": labels, "series": series, "sector": zeros, "start": zeros, "kww_tau": np.ones(n),
              "kww_bound": np.zeros(n, np.int8)}
    write_store(tmp_path / "crops.zarr", CROPS, {"crops": crops, "c2_min": np.zeros(n, np.float32),
                                                 "c2_max": np.ones(n, np.float32), "kww_gamma": np.ones(n), **common},
                attrs={"classes": classes, "dt": 1.0, "crop": crop})
    made_from = {"model": "model.pt", "source": "crops.zarr", "model_checksum": checksum(tmp_path / "model.pt"),
                 "source_checksum": checksum(tmp_path / "crops.zarr")}   # as encode records them
    write_store(tmp_path / "latents.zarr", LATENTS, {"latent": latents, "recon_l1": errors, **common},
                attrs={"classes": classes, "dt": 1.0, "crop": crop, **made_from})
    return crops, latents


def test_similar_cli_finds_the_query_itself_first(tmp_path):
    crops, _ = _toy_library(tmp_path)
    big = np.zeros((80, 80), np.float32)
    big[5:69, 5:69] = crops[7] * 3.0 + 1.0          # an affine copy of crop 7 inside a larger map
    np.save(tmp_path / "query.npy", big)
    proc = run_cli("-q", "clustering", "similar", tmp_path / "model.pt", tmp_path / "latents.zarr",
                   tmp_path / "query.npy", "--query-start", "5", "-k", "3", "--out", tmp_path / "nn.csv",
                   "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "nn.csv")
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["item"].iloc[0] == 7 and table["distance"].iloc[0] < 1e-4
    assert (np.diff(table["distance"]) >= 0).all()


def test_similar_cli_leaves_out_the_query_series_and_reports_class_precision(tmp_path):
    import pandas as pd

    labels = np.repeat([0, 1], 6)                 # slow decays vs fast ones, 3 series of 2 each
    series = np.repeat(np.arange(6), 2)
    _, latents = _toy_library(tmp_path, labels=labels, series=series)
    out = {name: tmp_path / f"{name}.csv" for name in ("nn", "precision", "nn_all")}
    common = ("-q", "clustering", "similar", tmp_path / "model.pt", tmp_path / "latents.zarr", "--crops",
              tmp_path / "crops.zarr", "--query-class", "toy1", "--n-queries", "3", "-k", "2", "--device", "cpu")
    proc = run_cli(*common, "--exclude-series", "--out", out["nn"], "--precision", out["precision"])
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out["nn"])
    assert (table["query_label"] == 1).all() and len(table) == 6
    assert (table["series"] != table["query_series"]).all()
    assert (table["same_class"] == (table["label"] == 1)).all()
    # independent brute force: every crop a query, k = 2 outside its own series
    distance = np.linalg.norm(latents[:, None].astype(float) - latents[None].astype(float), axis=-1)
    distance[series[:, None] == series[None, :]] = np.inf
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :2]
    hits = (labels[nearest] == labels[:, None]).mean(axis=1)
    precision = pd.read_csv(out["precision"])
    library = precision[precision["scope"] == "library"].set_index("class")["precision"]
    np.testing.assert_allclose(library[["toy0", "toy1"]], [hits[:6].mean(), hits[6:].mean()])
    queries = precision[precision["scope"] == "queries"]
    assert queries["class"].tolist() == ["toy1"] and queries["precision"].iloc[0] == table["same_class"].mean()
    # without the option the query's twin (same series) is the nearest crop when it is nearest overall
    proc = run_cli(*common, "--no-exclude-series", "--out", out["nn_all"])
    assert proc.returncode == 0, proc.stderr
    assert (pd.read_csv(out["nn_all"])["series"] == pd.read_csv(out["nn_all"])["query_series"]).any()


def test_similar_cli_rejects_a_bad_query_in_one_line(tmp_path):
    _toy_library(tmp_path)
    np.save(tmp_path / "bad.npy", np.zeros((10, 20)))
    proc = run_cli("clustering", "similar", tmp_path / "model.pt", tmp_path / "latents.zarr", tmp_path / "bad.npy",
                   "--out", tmp_path / "nn.csv")
    assert proc.returncode == 2
    assert "bad.npy: query must be a square 2-D C2 map" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nn.csv").exists()


def test_published_weights_load_strictly_and_encode_the_real_crop():
    from speckleml.clustering.model import load_published
    from speckleml.clustering.real import load_crop, reconstruct

    weights = real_file(*REAL_DIR, WEIGHTS)
    crop = load_crop(real_file(*REAL_DIR, "AccuracyEvaluation_TargetImage.npy"))
    model = load_published(weights)          # load_state_dict(strict=True) inside
    latent, recon = reconstruct(model, crop)
    assert latent.shape == (64,) and np.isfinite(latent).all() and latent.min() >= 0 and latent.max() > 0
    # With their ReLU output the published weights reconstruct it (L1 0.037; its mean: 0.094).
    assert abs(np.abs(recon - crop).mean() - 0.0368) < 0.002
    assert abs(np.abs(crop - crop.mean()).mean() - 0.0939) < 0.001


@pytest.mark.slow
def test_real_stage_reproduces_fig3_inputs(tmp_path):
    data = real_file(*REAL_DIR)
    real_file(*REAL_DIR, WEIGHTS)
    _toy_library(tmp_path)
    proc = run_cli("-q", "clustering", "real", data, "--model", tmp_path / "model.pt", "--out-dir", tmp_path / "real",
                   "--embedding", "pca")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "real" / "real_summary.json").read_text())
    assert abs(summary["l1_published"] - 0.0368) < 0.002
    # the paper found 4-6 classes by the elbow on these latents
    assert 3 <= summary["k_elbow"] <= 7 and sum(summary["cluster_sizes"]) == 900
    for name in ("real_recon", "real_fig3", "real_umap"):
        assert (tmp_path / "real" / f"{name}.png").stat().st_size > 10_000
    import pandas as pd

    table = pd.read_csv(tmp_path / "real" / "real_clusters.csv")
    assert table.groupby("start").size().eq(18).all()       # 18 sectors per start time
    # clusters numbered slowest first by the decoded crops' relaxation times (measured: None
    # for an all-above-range cluster 0, then 188, 124, 48, 12.7 frames)
    measured = [tau for tau in summary["cluster_decoded_tau_frames"] if tau is not None]
    assert measured == sorted(measured, reverse=True)
    # the three stress drops of the published run (Fig. 3 lines)
    assert summary["stress_minima_s"] == [590.0, 850.0, 1510.0]


def test_stress_minima_are_the_drops_of_a_sawtooth():
    from speckleml.clustering.real import stress_minima

    t = np.arange(-50.0, 1000.0, 10.0)
    stress = 100.0 + 0.01 * t                               # slow build-up ...
    for drop in (300.0, 700.0):                              # ... released by two 5 Pa drops
        stress = stress - 5.0 * ((t >= drop) & (t < drop + 60)) * np.clip((t - drop + 10) / 30, 0, 1)
    stress = stress + 0.1 * np.random.default_rng(0).standard_normal(t.size)
    minima = stress_minima(t, stress)
    assert minima.size == 2 and np.all(np.abs(minima - [330.0, 730.0]) <= 30.0), minima


def test_truth_labels_follow_the_simulator(tmp_path):
    proc = run_cli("-q", "clustering", "simulate", tmp_path / "lib.zarr", tmp_path / "drive.zarr", "--per-class", "1",
                   "--frames", "64", "--drive-frames", "128", "--segment", "64", "--crop", "64", "--crop-bin", "1",
                   "--size", "32")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("-q", "clustering", "crops", tmp_path / "drive.zarr", tmp_path / "crops.zarr", "--crop", "64",
                   "--crop-bin", "1", "--stride", "32")
    assert proc.returncode == 0, proc.stderr
    from speckleml.clustering.crops import CROPS
    from speckleml.stores import read_store

    store = read_store(tmp_path / "crops.zarr", CROPS)
    # the driven run starts with two fast-relaxation segments: every crop is labelled so
    assert (store["label"] == CLASS_INDEX["fast_diffusion"]).all()
    assert store["crops"].shape == (18 * 3, 64, 64) and sorted(set(store["start"].tolist())) == [0, 32, 64]
    assert np.allclose(store["crops"].max(axis=(1, 2)), 1) and np.allclose(store["crops"].min(axis=(1, 2)), 0)


def _latents_store(path, latents, labels, checksum="m"):
    n = len(latents)
    zeros = np.zeros(n, np.int64)
    write_store(path, LATENTS, {"latent": latents.astype(np.float32), "recon_l1": np.zeros(n, np.float32),
                                "label": np.asarray(labels, np.int64), "series": np.arange(n), "sector": zeros,
                                "start": zeros, "kww_tau": np.ones(n), "kww_bound": np.zeros(n, np.int8)},
                attrs={"classes": ["a", "b", "c"], "dt": 1.0, "model_checksum": checksum})


def test_log1p_latents_give_kmeans_the_clusters_that_are_gaussian_in_log_space(tmp_path):
    # ReLU latents with a long upper tail: three classes that are compact Gaussians of log(1 + z)
    # (independent check: k-means on the log-space points themselves finds them all).
    from sklearn.cluster import KMeans

    from speckleml.clustering.cluster import cluster_store, transform_latents

    rng = np.random.default_rng(0)
    centres = np.array([[0.1, 0.1, 0.1, 0.1], [1.2, 0.2, 0.9, 0.1], [2.4, 1.6, 0.2, 1.4]])
    labels = np.repeat(np.arange(3), 120)
    log_space = centres[labels] + 0.3 * rng.standard_normal((360, 4))
    latents = np.expm1(np.clip(log_space, 0.0, None))          # ReLU: non-negative
    np.testing.assert_allclose(transform_latents(latents, "log1p"), np.log1p(latents))
    assert np.array_equal(transform_latents(latents, "none"), latents)
    assert agreement_scores(labels, KMeans(3, n_init=10, random_state=0).fit_predict(np.log1p(latents)))["ari"] > 0.9
    _latents_store(tmp_path / "lat.zarr", latents, labels)
    _latents_store(tmp_path / "other.zarr", latents[::-1], labels[::-1])
    scores = {}
    for transform in ("none", "log1p"):
        out = {name: tmp_path / f"{name}_{transform}.csv" for name in ("a", "e", "s", "o")}
        scores[transform] = cluster_store(tmp_path / "lat.zarr", k_min=2, k_max=8, k=3, embedding="pca", n_neighbors=5,
                                          min_dist=0.25, seed=0, assignments_path=out["a"], elbow_path=out["e"],
                                          scores_path=out["s"], apply_path=tmp_path / "other.zarr",
                                          apply_out_path=out["o"], latent_transform=transform)
        import pandas as pd
        mine, applied = pd.read_csv(out["a"]), pd.read_csv(out["o"])
        # --apply assigns in the same space: the reversed store gets the reversed clusters
        assert np.array_equal(applied["cluster"].to_numpy(), mine["cluster"].to_numpy()[::-1])
    assert scores["log1p"]["ari"] > 0.9 > 0.6 > scores["none"]["ari"], scores   # the far class's tail splits it
    with pytest.raises(ValueError, match="non-negative"):
        transform_latents(-latents - 1.0, "log1p")
