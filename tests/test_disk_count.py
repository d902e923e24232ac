"""disk_count (paper 002): analytic disk speckle vs raster FFT and Airy, preprocessing, splits,
metrics, interpretation maps, a tiny classifier that must beat chance, and the CLI errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import j1

from speckleml.disk_count import data, evaluate, kgrid, moments, simulate
from speckleml.errors import InputError

torch = pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402


@pytest.mark.parametrize("grid,origin", [("quadrant", (0, 0)), ("centred", (32, 32))])
def test_single_disk_is_airy_pattern(grid, origin):
    """One disk: I(k) = (pi r^2 2 J1(kr)/(kr))^2, written out with scipy's J1; k = 0 where the grid puts it."""
    r = 90.0
    system = simulate.DiskSystem(centres=np.array([[700.0, 1200.0]]), radii=np.array([r]))
    pattern = simulate.disk_speckle([system], 65, grid=grid)[0]
    k = simulate.k_axis(65, grid=grid)
    kr = np.hypot(*np.meshgrid(k, k, indexing="ij")) * r
    safe = np.where(kr == 0, 1.0, kr)
    airy = (math.pi * r**2 * np.where(kr == 0, 1.0, 2 * j1(safe) / safe)) ** 2
    np.testing.assert_allclose(pattern, airy, rtol=1e-9, atol=1e-12 * airy.max())
    assert pattern[origin] == pytest.approx((math.pi * r**2) ** 2)


@pytest.mark.parametrize("grid", ["quadrant", "centred"])
def test_analytic_speckle_matches_raster_fft_within_raster_error(grid):
    """Analytic amplitude sum == zero-padded FFT of the rasterised disks, error shrinking with the raster."""
    rng = np.random.default_rng(3)
    system = simulate.random_system(4, "poly", rng)
    analytic = simulate.disk_speckle([system], 41, grid=grid)[0]
    errors = []
    for pixels in (250, 500, 1000):
        raster = simulate.raster_speckle(system, 41, pixels, grid=grid)
        errors.append(np.abs(raster - analytic).max() / analytic.max())
    assert errors[-1] < 2e-3
    assert errors[2] < errors[0]  # a finer raster converges on the analytic pattern


def test_quadrant_pattern_of_swapped_axes_is_the_transpose():
    """The one mirror that keeps k >= 0: swapping x and y of the disks transposes the quadrant
    pattern (what the quadrant-grid augmentation uses); an x -> -x mirror does not."""
    rng = np.random.default_rng(8)
    system = simulate.random_system(5, "poly", rng)
    swapped = simulate.DiskSystem(centres=system.centres[:, ::-1].copy(), radii=system.radii)
    mirrored = simulate.DiskSystem(centres=np.column_stack([2000 - system.centres[:, 0], system.centres[:, 1]]),
                                   radii=system.radii)
    p, q, m = simulate.disk_speckle([system, ], 33), simulate.disk_speckle([swapped], 33), \
        simulate.disk_speckle([mirrored], 33)
    np.testing.assert_allclose(q[0], p[0].T, rtol=1e-9, atol=1e-12 * p.max())
    assert not np.allclose(m[0], p[0][:, ::-1], rtol=1e-3)
    x = torch.as_tensor(p[:, None].repeat(4, 0))
    out = __import__("speckleml.disk_count.train", fromlist=["x"]).symmetry_augment(
        x, torch.Generator().manual_seed(0), "quadrant")
    for sample in out[:, 0].numpy():
        assert np.array_equal(sample, p[0]) or np.array_equal(sample, p[0].T)


def test_float32_simulation_matches_float64():
    rng = np.random.default_rng(5)
    systems = [simulate.random_system(20, "mono", rng) for _ in range(2)]
    p64 = simulate.disk_speckle(systems, 65, dtype=torch.float64)
    p32 = simulate.disk_speckle(systems, 65, dtype=torch.float32)
    np.testing.assert_allclose(p32, p64, rtol=0, atol=1e-4 * p64.max())


@pytest.mark.parametrize("dispersity", ["mono", "poly"])
def test_systems_keep_total_area_and_do_not_overlap(dispersity):
    rng = np.random.default_rng(11)
    for n in (2, 7, 20):
        system = simulate.random_system(n, dispersity, rng)
        assert system.n == n
        assert math.pi * np.sum(system.radii**2) == pytest.approx(2 * math.pi * 90**2)
        assert ((system.centres - system.radii[:, None] >= 0) & (system.centres + system.radii[:, None] <= 2000)).all()
        d = np.hypot(*(system.centres[:, None] - system.centres[None]).transpose(2, 0, 1))
        gap = d - (system.radii[:, None] + system.radii[None])
        assert (gap[~np.eye(n, dtype=bool)] >= 0).all()
    if dispersity == "mono":
        assert np.allclose(system.radii, math.sqrt(16200 / 20))


def test_poly_radii_spread_is_one_third_of_mean():
    rng = np.random.default_rng(0)
    radii = np.concatenate([simulate.disk_radii(20, "poly", rng) for _ in range(300)])
    assert radii.std() / radii.mean() == pytest.approx(1 / 3, abs=0.03)


@pytest.mark.parametrize("n_max", [256, 512])
def test_k_grid_is_the_papers(n_max):
    """Paper 002 §2: k = n pi/L, n = 0..n_max (257 and 513 patterns): first pixel k = 0, spacing pi/L,
    last n_max pi/L; the simulated store's kx/ky are that axis."""
    box = 2000.0
    k = simulate.k_axis(n_max + 1, box)
    assert k.size == n_max + 1 and k[0] == 0.0
    np.testing.assert_allclose(np.diff(k), math.pi / box, rtol=1e-12)
    assert k[-1] == pytest.approx(n_max * math.pi / box, rel=1e-12)


def test_centred_k_grid_option_and_bad_sizes():
    k = simulate.k_axis(257, grid="centred")
    assert k[128] == 0 and k[-1] == pytest.approx(128 * math.pi / 2000)  # half the quadrant's k range
    with pytest.raises(InputError):
        simulate.k_axis(256, grid="centred")
    with pytest.raises(InputError):
        simulate.k_axis(33, grid="polar")


def test_block_sits_at_k0_on_both_grids():
    """The 11x11 beamstop covers |n_x|, |n_y| <= 5: the 6x6 corner of a quadrant pattern, the centre
    11x11 of a centred one (not the image centre n = 123..133 of a 0..k_max grid)."""
    quadrant = kgrid.block_mask((257, 257), 11, "quadrant")
    assert quadrant.sum() == 36 and quadrant[:6, :6].all() and not quadrant[6, 0] and not quadrant[128, 128]
    centred = kgrid.block_mask((257, 257), 11, "centred")
    assert centred.sum() == 121 and centred[123:134, 123:134].all()
    with pytest.raises(InputError):
        kgrid.block_mask((9, 9), 17, "quadrant")


def test_standardise_blocks_centre_bins_and_normalises():
    rng = np.random.default_rng(1)
    patterns = rng.exponential(size=(3, 15, 15)) + 100 * (np.arange(3)[:, None, None] + 1)
    patterns[:, 7, 7] = 1e6
    z = data.standardise(patterns, block=3, grid="centred")
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1, atol=1e-5)
    assert np.ptp(z[:, 6:9, 6:9], axis=(1, 2)).max() == pytest.approx(0, abs=1e-6)  # blocked = one value
    binned = data.bin_patterns(np.ones((1, 17, 17)), 3, "centred")
    assert binned.shape == (1, 5, 5) and np.all(binned == 9)  # 17 -> 15 -> 5 bins of 3x3
    ramp = np.arange(17.0)[None, None, :].repeat(17, 1)
    quadrant = data.bin_patterns(ramp, 3, "quadrant")  # bins from the k = 0 corner, far edge cropped
    assert quadrant.shape == (1, 5, 5) and quadrant[0, 0, 0] == 3 * (0 + 1 + 2) and quadrant[0, 0, 4] == 3 * 39
    zq = data.standardise(patterns, block=3, grid="quadrant")
    assert np.ptp(zq[:, :2, :2], axis=(1, 2)).max() == pytest.approx(0, abs=1e-6)  # the corner is blocked
    with pytest.raises(InputError):
        data.standardise(patterns, block=4)
    with pytest.raises(InputError):
        data.bin_patterns(patterns, 2)


def test_log_scale_standardises_log_intensity():
    """log scale = standardised log I with blocked pixels at the floor 1e-6 * max (independent formula)."""
    rng = np.random.default_rng(2)
    speckle = rng.exponential(size=(2, 21, 21))
    z = data.standardise(speckle, block=3, grid="quadrant", scale="log")
    raw = speckle.copy()
    raw[:, :2, :2] = 0.0
    expected = np.log(np.maximum(raw, 1e-6 * raw.max(axis=(1, 2), keepdims=True)))
    expected = (expected - expected.mean(axis=(1, 2), keepdims=True)) / expected.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)
    assert (z[:, :2, :2] < z[:, 2:, 2:].min(axis=(1, 2))[:, None, None]).all()  # the floor is the minimum
    with pytest.raises(InputError):
        data.standardise(speckle, block=3, scale="sqrt")


def test_log_k3_scale_makes_a_disk_pattern_stationary_in_k():
    """log_k3 = log I + 3 log|k| at the bin centres (independent formula), and it removes the 2D
    Porod decay of one disk: the ring maxima at kr ~ 40 and ~ 80 stand at the same height
    (within 5 %; in log I they differ by 3 log 2 = 2.1), while log I's fall."""
    radius = 200.0
    system = simulate.DiskSystem(centres=np.array([[1000.0, 1000.0]]), radii=np.array([radius]))
    pattern = simulate.disk_speckle([system], 257)  # kr up to 80 along the axes
    for bin_factor in (1, 5):
        z = data.standardise(pattern, 11, bin_factor, "quadrant", "log_k3")
        z_log = data.standardise(pattern, 11, bin_factor, "quadrant", "log")
        n = data.bin_k_index(pattern.shape[-1], bin_factor)
        assert n[0] == (bin_factor - 1) / 2 and n[1] - n[0] == bin_factor
        blocked = pattern[0].copy()
        blocked[:6, :6] = 0
        binned = data.bin_patterns(blocked, bin_factor)
        logi = np.log(np.maximum(binned, 1e-6 * binned.max()))
        expected = logi + 3 * np.log(np.maximum(np.hypot(n[:, None], n[None, :]), 1))
        expected = (expected - expected.mean()) / expected.std()
        np.testing.assert_allclose(z[0], expected, atol=2e-5)
        kr = np.hypot(n[:, None], n[None, :]) * np.pi / 2000.0 * radius
        peak = [z[0][(kr > lo) & (kr < lo + 8)].max() for lo in (36.0, 76.0)]
        peak_log = [z_log[0][(kr > lo) & (kr < lo + 8)].max() for lo in (36.0, 76.0)]
        spread = np.ptp(z[0][kr > 4])
        assert abs(peak[1] - peak[0]) < 0.05 * spread
        assert peak_log[0] - peak_log[1] > 0.2 * np.ptp(z_log[0][kr > 4])


@pytest.mark.parametrize("scale,bin_factor", [("linear", 1), ("log_k3", 3)])
def test_stats_window_gives_the_smaller_patterns_values_on_the_shared_k_range(scale, bin_factor):
    """A pattern of twice the k range standardised over the window n < 27 equals, on n < 27, the
    27 x 27 pattern of the same system standardised as a whole; over the whole pattern it does not."""
    rng = np.random.default_rng(4)
    large = simulate.disk_speckle([simulate.random_system(6, "mono", rng)], 54)
    small = data.standardise(large[:, :27, :27], 5, bin_factor, scale=scale)
    windowed = data.standardise(large, 5, bin_factor, scale=scale, stats_size=27)
    side = 27 // bin_factor
    np.testing.assert_allclose(windowed[:, :side, :side], small, atol=1e-5)
    whole = data.standardise(large, 5, bin_factor, scale=scale)
    assert np.abs(whole[:, :side, :side] - small).max() > 0.1
    centred = simulate.disk_speckle([simulate.random_system(6, "mono", rng)], 41, grid="centred")
    z = data.standardise(centred, 5, grid="centred", stats_size=21)
    assert z[0, 10:31, 10:31].mean() == pytest.approx(0, abs=1e-5)
    assert z[0, 10:31, 10:31].std() == pytest.approx(1, abs=1e-5)
    with pytest.raises(InputError):
        data.standardise(large, 5, 3, stats_size=5)


def test_k_range_crop_equals_preprocessing_the_smaller_pattern():
    """A corner crop of a standardised input, re-standardised, is the input of the smaller pattern
    (same block, same k pixel), for both scales."""
    from speckleml.disk_count.train import k_range_crop

    rng = np.random.default_rng(3)
    patterns = simulate.disk_speckle([simulate.random_system(6, "mono", rng) for _ in range(2)], 41)
    for scale in data.SCALES:
        full = torch.as_tensor(data.standardise(patterns, 5, scale=scale))[:, None]
        small = data.standardise(patterns[:, :23, :23], 5, scale=scale)
        np.testing.assert_allclose(k_range_crop(full, 23)[:, 0].numpy(), small, atol=2e-4)
    centred = torch.arange(49.0).reshape(1, 1, 7, 7)
    assert k_range_crop(centred, 3, "centred")[0, 0, 1, 1] == pytest.approx(0.0, abs=1e-6)  # centre stays centre


def test_stratified_split_has_equal_test_counts():
    labels = np.repeat(np.arange(2, 21), 50)
    split = data.stratified_split(labels, (0.8, 0.1, 0.1), np.random.default_rng(0))
    test_counts = np.bincount(labels[split == data.SPLITS["test"]])[2:]
    assert (test_counts == 5).all()
    assert (split == data.SPLITS["val"]).sum() == round(0.1 / 0.9 * (labels.size - 95))
    again = data.stratified_split(labels, (0.8, 0.1, 0.1), np.random.default_rng(0))
    np.testing.assert_array_equal(split, again)


def test_first_moments_follow_the_definitions():
    k = np.hypot(*np.indices((5, 5)) - 2.0)
    pattern = np.zeros((1, 5, 5))
    pattern[0, 0, 2] = 4.0  # one bright pixel at |k| = 2 outside a 1x1 block
    values = moments.first_moments(pattern, 1, k, "centred")
    assert values["raw"][0] == pytest.approx(2.0)  # all intensity at |k| = 2
    z = data.standardise(pattern, 1, grid="centred")[0].astype(float)
    keep = np.ones((5, 5), bool)
    keep[2, 2] = False
    assert values["absolute"][0] == pytest.approx(np.mean(np.abs(z[keep]) * k[keep]), rel=1e-6)
    assert values["normalized"][0] == pytest.approx(2.0, rel=1e-6)


def test_metrics_match_hand_counts():
    true = np.array([2, 2, 3, 3, 4, 4])
    pred = np.array([2, 3, 3, 3, 4, 2])
    table = evaluate.classification_table(true, pred, [2, 3, 4]).set_index("class")
    assert table.loc["Disks_02", "precision"] == pytest.approx(0.5)
    assert table.loc["Disks_03", "recall"] == pytest.approx(1.0)
    assert table.loc["Disks_03", "precision"] == pytest.approx(2 / 3)
    assert table.loc["accuracy", "f1"] == pytest.approx(4 / 6)
    assert evaluate.error_bands(true, pred) == {"n": 6, "correct": 4, "off_by_1": 1, "off_by_2": 1, "off_by_more": 0}
    matrix = evaluate.confusion_table(true, pred, [2, 3, 4]).to_numpy()
    assert matrix.trace() == 4 and matrix[2, 0] == 1


def test_confusion_colour_code_counts_disks_not_classes():
    """Paper Fig. 5 code in disks: with classes 2, 4, 6, 8 a neighbouring class (2 disks off) is red,
    the next (4 off) orange; 3 disks off is orange; the +/-1 band holds only the diagonal; a legend."""
    from matplotlib.patches import Circle, Rectangle

    from speckleml.disk_count.figures import error_colour, plot_confusion

    assert [error_colour(d) for d in (0, 1, -1, 2, -2, 3, 4)] == [None, None, None, "tab:red", "tab:red",
                                                                  "tab:orange", "tab:orange"]
    matrix = np.diag([5, 5, 5, 5])
    matrix[0, 1] = 1  # true 2, predicted 4: 2 disks off
    matrix[3, 1] = 1  # true 8, predicted 4: 4 disks off
    fig = plot_confusion(matrix, [2, 4, 6, 8], "t", bands=True)
    ax = fig.axes[0]
    circles = {tuple(np.round(p.center).astype(int)): p.get_edgecolor() for p in ax.patches if isinstance(p, Circle)}
    from matplotlib.colors import to_rgba
    assert circles == {(1, 0): to_rgba("tab:red"), (1, 3): to_rgba("tab:orange")}  # (column, row)
    boxes = [p for p in ax.patches if isinstance(p, Rectangle) and not isinstance(p, Circle)]
    assert sorted(round(p.get_width()) for p in boxes) == [1, 1, 1, 1]  # band = diagonal at spacing 2
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["within 1 disk", "2 disks off", "> 2 disks off"]
    fig2 = plot_confusion(np.ones((3, 3), int), [2, 3, 4], "t", bands=True)
    widths = sorted(round(p.get_width()) for p in fig2.axes[0].patches if type(p) is Rectangle)
    assert widths == [2, 2, 3]  # spacing 1: the band spans the neighbours


def test_gradcam_and_saliency_shapes_and_hook_removed():
    from speckleml.disk_count.interpret import gradcam_maps, saliency_maps
    from speckleml.disk_count.model import build_resnet

    torch.manual_seed(0)
    model = build_resnet("resnet18", 3)
    x = np.random.default_rng(0).normal(size=(2, 33, 33)).astype(np.float32)
    cam = gradcam_maps(model, x, np.array([0, 2]), "cpu")
    sal = saliency_maps(model, x, np.array([0, 2]), "cpu")
    assert cam.shape == sal.shape == (2, 33, 33)
    assert cam.min() >= 0 and cam.max() <= 1 + 1e-6 and (sal >= 0).all() and sal.max() > 0
    assert not model.layer4._forward_hooks


def test_maps_drop_gradcam_where_the_feature_map_is_one_pixel():
    """27x27 inputs (135 binned 5x5) give ResNet's layer4 a 1x1 map: a constant Grad-CAM, so the figure
    leaves that row out and says why; 45x45 (the CPU default, 135 binned 3x3) and 53x53 give 2x2 and keep it."""
    from speckleml.disk_count.figures import plot_maps
    from speckleml.disk_count.interpret import feature_map_shape, gradcam_maps
    from speckleml.disk_count.model import build_resnet

    torch.manual_seed(0)
    model = build_resnet("resnet18", 3)
    assert feature_map_shape(model, (27, 27), "cpu") == (1, 1)
    assert feature_map_shape(model, (45, 45), "cpu") == (2, 2)
    assert feature_map_shape(model, (53, 53), "cpu") == (2, 2)
    assert feature_map_shape(model, (89, 89), "cpu") == (3, 3)  # the 2x k-range set at bin 3
    assert feature_map_shape(build_resnet("resnet18", 3, stem="small"), (27, 27), "cpu") == (4, 4)
    x = np.random.default_rng(1).normal(size=(2, 27, 27)).astype(np.float32)
    cam = gradcam_maps(model, x, np.array([0, 1]), "cpu")
    assert np.ptp(cam, axis=(1, 2)).max() == 0  # the constant map the row would show
    labels = np.array([2, 6])
    fig = plot_maps(x, np.abs(x), cam, labels, labels, feature_map=(1, 1))
    assert len(fig.axes) == 4 and "Grad-CAM row omitted" in " ".join(t.get_text() for t in fig.texts)
    assert len(plot_maps(x, np.abs(x), cam, labels, labels, feature_map=(2, 2)).axes) == 6


@pytest.mark.slow
def test_classifier_separates_classes_well_above_chance():
    """3 well-separated disk numbers, 5x5-binned 135 patterns: a short ResNet-18 run beats 1/3 by far."""
    from speckleml.disk_count.model import build_resnet, predict_proba
    from speckleml.disk_count.train import TrainSettings, train_classifier
    from speckleml.runtime import seed_everything

    torch.set_num_threads(2)
    rng = seed_everything(0)
    classes = [2, 6, 20]
    patterns, labels = [], []
    for n in classes:
        p, _ = simulate.simulate_class(n, 40, 135, "mono", rng, dtype=torch.float32)
        patterns.append(p)
        labels += [classes.index(n)] * 40
    x, y = data.standardise(np.concatenate(patterns), 11, 5), np.array(labels)
    split = data.stratified_split(y, (0.6, 0.15, 0.25), rng)
    model = build_resnet("resnet18", 3)
    train_classifier(model, x[split == 0], y[split == 0], x[split == 1], y[split == 1],
                     TrainSettings(epochs=6, batch_size=16, schedule="cosine", augment=True), torch.device("cpu"))
    test = split == data.SPLITS["test"]
    accuracy = (predict_proba(model, x[test], "cpu").argmax(1) == y[test]).mean()
    assert accuracy >= 0.8  # chance is 1/3


def test_checkpoint_round_trip_and_predict_cli(tmp_path):
    from speckleml.disk_count.model import build_resnet, load_model, save_model

    torch.manual_seed(0)
    model = build_resnet("resnet18", 3)
    meta = {"arch": "resnet18", "classes": [2, 6, 20], "block": 5, "bin": 1, "source_size": 33, "k_grid": "quadrant"}
    save_model(tmp_path / "m.pt", model, meta)
    loaded, meta2 = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 1, 33, 33)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x))
    small = build_resnet("resnet18", 3, stem="small").eval()
    save_model(tmp_path / "s.pt", small, {**meta, "stem": "small"})
    torch.testing.assert_close(load_model(tmp_path / "s.pt")[0](x), small(x))
    assert meta2["classes"] == [2, 6, 20]
    rng = np.random.default_rng(0)
    patterns = simulate.disk_speckle([simulate.random_system(6, "mono", rng)], 33)
    np.save(tmp_path / "p.npy", patterns)
    proc = run_cli("disk-count", "predict", tmp_path / "m.pt", tmp_path / "p.npy", "--device", "cpu",
                   "--output", tmp_path / "pred.csv")
    assert proc.returncode == 0, proc.stderr
    assert "pattern 0:" in proc.stdout and "disks (probability" in proc.stdout
    assert (tmp_path / "pred.csv").read_text().startswith("pattern,n_disks,probability")


def test_cli_bad_inputs_fail_with_one_line(tmp_path):
    proc = run_cli("disk-count", "simulate", tmp_path / "p.zarr", "--size", "64", "--k-grid", "centred")
    assert proc.returncode == 2 and "odd" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.zarr").exists()
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    np.save(tmp_path / "p.npy", np.ones((33, 33)))
    proc = run_cli("disk-count", "predict", tmp_path / "bad.pt", tmp_path / "p.npy")
    assert proc.returncode == 2 and "bad.pt" in proc.stderr


def test_simulate_and_preprocess_cli_are_deterministic(tmp_path):
    from speckleml.stores import read_store

    for name in ("a", "b"):
        run_cli("disk-count", "simulate", tmp_path / f"{name}.zarr", "--n-disks", "2", "5", "--per-class", "4",
                "--size", "21", "--dispersity", "poly", "--seed", "3", "--device", "cpu", check=True)
    a, b = (read_store(tmp_path / f"{n}.zarr", data.PATTERNS) for n in "ab")
    np.testing.assert_array_equal(a["patterns"], b["patterns"])
    assert a.provenance["seed"] == 3 and a.attrs["dispersity"] == "poly"
    run_cli("disk-count", "preprocess", tmp_path / "a.zarr", tmp_path / "in.zarr", "--block", "3", "--bin", "1",
            "--split", "0.5", "0.25", "0.25", check=True)
    inputs = read_store(tmp_path / "in.zarr", data.INPUTS)
    assert inputs["inputs"].shape == (8, 21, 21)
    assert np.bincount(inputs["n_disks"][inputs["split"] == data.SPLITS["test"]]).max() == 1
