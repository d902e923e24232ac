"""Correlation engine: ROIs, C2 in three normalisations, streaming, g2 and age-resolved g2."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from conftest import real_file
from speckleml.correlation import (NORMALIZATIONS, age_resolved_g2, g2_from_c2, mean_image, q_ring_rois,
                                   ring_edges, two_time)
from speckleml.synthetic import ou_speckle


def naive_c2(frames, labels, normalization):
    """Float64 reference written straight from the equations (one ROI at a time)."""
    out = []
    for r in range(1, labels.max() + 1):
        x = frames[:, labels == r].astype(np.float64)
        if normalization == "classical":
            m = x.mean(axis=1)
            c = (x @ x.T) / x.shape[1] / np.outer(m, m)
        elif normalization == "covariance":
            xc = x - x.mean(axis=1, keepdims=True)
            c = (xc @ xc.T) / x.shape[1]
            c /= np.sqrt(np.outer(np.diag(c), np.diag(c)))
        elif normalization == "ring_mean":
            d = x / x.mean() - 1                      # one time-and-pixel mean per ring
            c = d @ d.T / d.shape[1]
        else:
            m = x.mean(axis=0)
            d = x[:, m > 0] / m[m > 0] - 1
            c = d @ d.T / d.shape[1]
        out.append(c)
    return np.array(out)


@pytest.fixture(scope="module")
def stack():
    frames = ou_speckle(150, 32, 10.0, seed=3, mean_counts=3.0)[0]
    yy, xx = np.indices((32, 32)) - 16
    labels, roi_q = q_ring_rois(np.hypot(yy, xx), ring_edges(3, 3, 3, 4))
    return frames, labels, roi_q


def test_ring_rois_match_direct_pixel_selection():
    yy, xx = np.indices((41, 41)) - 20
    q = np.hypot(yy, xx)
    labels, roi_q = q_ring_rois(q, ring_edges(2.0, 1.5, 2.0, 5))
    np.testing.assert_allclose(roi_q, 2.75 + 2.0 * np.arange(5))
    for ring in range(5):
        inner = 2.0 + 2.0 * ring
        np.testing.assert_array_equal(labels == ring + 1, (q >= inner) & (q < inner + 1.5))
    mask = np.ones_like(q, bool)
    mask[:, :20] = False
    masked, _ = q_ring_rois(q, [2, 4, 6], mask=mask)
    assert masked[:, :20].max() == 0 and masked.max() == 2


def test_sectors_split_a_symmetric_ring_equally():
    yy, xx = np.indices((64, 64)) - 31.5
    labels, roi_q = q_ring_rois(np.hypot(yy, xx), [10, 20], phi_map=np.arctan2(yy, xx), n_sectors=4)
    counts = np.bincount(labels.ravel())[1:]
    assert roi_q.size == 4 and counts.size == 4
    assert counts.min() == counts.max() > 0


def test_ring_definition_errors():
    with pytest.raises(ValueError, match="overlap"):
        ring_edges(1.0, 2.0, 1.0, 3)
    with pytest.raises(ValueError, match="phi_map"):
        q_ring_rois(np.ones((4, 4)), [0, 2], n_sectors=2)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_two_time_matches_float64_reference(stack, normalization):
    frames, labels, _ = stack
    c2 = two_time(frames, labels, normalization)
    assert c2.dtype == np.float32 and c2.shape == (4, 150, 150)
    np.testing.assert_allclose(c2, naive_c2(frames, labels, normalization), rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(c2, np.swapaxes(c2, 1, 2))


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_streaming_from_zarr_in_row_groups_gives_the_same_c2(stack, normalization, tmp_path):
    from speckleml.stores import read_frames, write_frames

    frames, labels, _ = stack
    write_frames(tmp_path / "f.zarr", np.stack([frames, frames[::-1]]))
    lazy = read_frames(tmp_path / "f.zarr", lazy=True)["frames"]
    in_memory = two_time(frames[::-1], labels, normalization)
    # A budget of one 64-frame block forces three row groups and re-reads of later blocks.
    streamed = two_time(lazy, labels, normalization, series=1, max_memory=1)
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-5, atol=1e-6)


def test_ring_mean_is_paper_001_eq_2_with_sectors_sharing_the_ring_mean():
    """Paper 001 eq. 1-2: D = I / <I(Q)>_t - 1 with <I(Q)>_t the azimuthal average of the time
    average; the sectors of one ring share it. Independent loop over pixels, float64."""
    rng = np.random.default_rng(5)
    yy, xx = np.indices((24, 24)) - 11.5
    q, phi = np.hypot(yy, xx), np.arctan2(yy, xx)
    # an anisotropic static pattern (brighter on the right) times fluctuating speckle
    profile = 2.0 + 1.5 * (xx > 0)
    frames = (profile * rng.gamma(4.0, 0.25, (60, 24, 24))).astype(np.float32)
    labels, _ = q_ring_rois(q, ring_edges(2, 4, 4, 2), phi_map=phi, n_sectors=2)
    c2 = two_time(frames, labels, "ring_mean", mean_groups=np.arange(4) // 2)
    for roi in range(4):
        ring = (labels - 1) // 2 == roi // 2
        ring &= labels > 0
        ring_mean = frames[:, ring].astype(np.float64).mean()      # time and azimuthal average
        pixels = np.argwhere(labels == roi + 1)
        expected = np.zeros((60, 60))
        for y, x in pixels:
            d = frames[:, y, x].astype(np.float64) / ring_mean - 1
            expected += np.outer(d, d)
        np.testing.assert_allclose(c2[roi], expected / len(pixels), rtol=1e-4, atol=1e-5)


def test_ring_mean_and_pixel_mean_are_different_estimators():
    """A static pattern across the ring raises the ring_mean baseline by var_p(<I>_t)/<I>^2;
    pixel_mean removes it (decorrelated frames: baseline ~0)."""
    rng = np.random.default_rng(6)
    yy, xx = np.indices((32, 32)) - 15.5
    profile = np.where(xx > 0, 3.0, 1.0)                           # mean 2, variance 1
    frames = (profile * rng.exponential(1.0, (200, 32, 32))).astype(np.float32)
    labels, _ = q_ring_rois(np.hypot(yy, xx), ring_edges(4, 8, 8, 1))
    off = ~np.eye(200, dtype=bool)
    pixel = two_time(frames, labels, "pixel_mean")[0][off].mean()
    ring = two_time(frames, labels, "ring_mean")[0][off].mean()
    assert abs(pixel) < 0.02
    assert ring == pytest.approx(0.25, abs=0.03)                    # var 1 / mean 2 squared


def test_peak_memory_is_bounded_by_c2_not_by_the_stack(tmp_path):
    from speckleml.stores import FRAMES, read_frames, write_store

    rng = np.random.default_rng(0)
    frames = rng.poisson(2.0, (1, 512, 128, 128)).astype(np.float32)   # 32 MiB stack, 1 MiB chunks
    write_store(tmp_path / "f.zarr", FRAMES, {"frames": frames, "mask": np.ones((128, 128), bool),
                                              "qx": np.arange(128.0), "qy": np.arange(128.0)},
                chunks={"frames": (1, 16, 128, 128)})
    yy, xx = np.indices((128, 128)) - 64
    labels, _ = q_ring_rois(np.hypot(yy, xx), ring_edges(10, 3, 3, 2))   # ~2000 pixels, C2 2 MiB
    lazy = read_frames(tmp_path / "f.zarr", lazy=True)["frames"]
    del frames
    tracemalloc.start()
    block = np.asarray(lazy[0, :16])                  # what reading one zarr chunk costs
    chunk_peak = tracemalloc.get_traced_memory()[1]
    del block
    tracemalloc.reset_peak()
    budget = 2 * 512 * 512 * 4                        # = the C2 output, the default budget
    c2 = two_time(lazy, labels, "classical", max_memory=budget)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # C2 output + ROI panels (within the budget) + chunk reads (zarr may decode two at once).
    assert peak < c2.nbytes + budget + 2 * chunk_peak + 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert peak < 0.5 * 512 * 128 * 128 * 4
    assert np.isfinite(c2).all()


def test_g2_of_ou_speckle_follows_the_analytic_decay():
    # Noise-free speckle of an OU field: g2 - 1 = exp(-2 lag / tau), contrast 1.
    tau = 6.0
    frames = ou_speckle(400, 48, tau, seed=11)[0]
    yy, xx = np.indices((48, 48)) - 24
    labels, _ = q_ring_rois(np.hypot(yy, xx), [2, 20])
    g2, err = g2_from_c2(two_time(frames, labels, "classical"), max_lag=12)
    expected = 1 + np.exp(-2 * np.arange(13) / tau)
    np.testing.assert_allclose(g2[0], expected, atol=0.08)
    assert np.all(err[0, 1:] > 0)
    cov_g2, _ = g2_from_c2(two_time(frames, labels, "covariance"), max_lag=12)
    assert cov_g2[0, 0] == pytest.approx(1.0, abs=1e-5)          # eq. 19 is 1 on the diagonal
    np.testing.assert_allclose(cov_g2[0, 1:], expected[1:] - 1, atol=0.08)


def test_g2_from_c2_and_age_resolved_match_direct_loops():
    rng = np.random.default_rng(1)
    c2 = rng.normal(size=(2, 30, 30))
    c2 = c2 + np.swapaxes(c2, 1, 2)
    c2[1, 3, 7] = c2[1, 7, 3] = np.nan
    g2, err = g2_from_c2(c2)
    for lag in (0, 4, 29):
        d = np.diagonal(c2[1], lag)
        d = d[np.isfinite(d)]
        assert g2[1, lag] == pytest.approx(d.mean())
        if d.size > 1:
            assert err[1, lag] == pytest.approx(d.std(ddof=1) / np.sqrt(d.size))
    ages, g2a, _, counts = age_resolved_g2(c2[0], age_edges=[0, 10, 20, 30], max_lag=6)
    np.testing.assert_allclose(ages, [5, 15, 25])
    # Element (t, t + 4) has age t + 2: the second bin holds t = 8..17.
    assert g2a[1, 4] == pytest.approx(np.mean([c2[0, t, t + 4] for t in range(8, 18)]))
    assert counts[1, 4] == 10
    # For a stationary (Toeplitz) C2 every age sees the same g2.
    toeplitz = np.exp(-np.abs(np.subtract.outer(np.arange(40), np.arange(40))) / 5.0)
    _, g2t, _, _ = age_resolved_g2(toeplitz, n_ages=4, max_lag=8)
    np.testing.assert_allclose(g2t, np.tile(np.exp(-np.arange(9) / 5.0), (4, 1)))


def test_mean_image_streams_all_series(tmp_path):
    from speckleml.stores import read_frames, write_frames

    frames = np.random.default_rng(2).random((2, 100, 8, 8)).astype(np.float32)
    write_frames(tmp_path / "f.zarr", frames)
    lazy = read_frames(tmp_path / "f.zarr", lazy=True)["frames"]
    np.testing.assert_allclose(mean_image(lazy), frames.mean(axis=(0, 1)), rtol=1e-6)


@pytest.mark.realdata
def test_skbeam_stack_g2_equals_an_independent_per_lag_pixel_average():
    from speckleml.xpcs.frames import Geometry, read_frame_array

    frames = read_frame_array(real_file("skbeam_speckle_stack", "img_stack5301_5401.npy.zip"))
    geometry = Geometry(0.108, 2230.0, 1.546, (143, 123))            # PROVENANCE.md
    labels, roi_q = q_ring_rois(geometry.q_map(frames.shape[1:]), ring_edges(0.0016, 2e-4, 2e-4, 8))
    assert roi_q.size == 8 and np.all(np.bincount(labels.ravel())[1:] > 40)
    g2, _ = g2_from_c2(two_time(frames, labels, "classical"))
    for r in range(8):
        x = frames[:, labels == r + 1].astype(np.float64)              # (100, pixels)
        mean = x.mean(axis=1)
        for lag in (1, 5, 20, 60):
            # g2(lag) = < <I(t) I(t+lag)>_pixels / (<I(t)>_pixels <I(t+lag)>_pixels) >_t
            ratios = [np.mean(x[t] * x[t + lag]) / (mean[t] * mean[t + lag]) for t in range(100 - lag)]
            assert g2[r, lag] == pytest.approx(np.mean(ratios), rel=1e-5)


def test_frozen_speckle_is_high_and_flat_with_ring_mean_and_zero_with_pixel_mean():
    """Paper 001: a frozen sample is the high, flat class; eq. 2 (ring_mean) keeps the static
    speckle contrast (fully developed speckle: var/mean^2 = 1), pixel_mean removes it."""
    rng = np.random.default_rng(8)
    speckle = rng.exponential(20.0, (32, 32))                      # one static pattern
    frames = rng.poisson(speckle, (80, 32, 32)).astype(np.float32)  # shot noise only
    yy, xx = np.indices((32, 32)) - 15.5
    labels, _ = q_ring_rois(np.hypot(yy, xx), ring_edges(2, 12, 12, 1))
    off = ~np.eye(80, dtype=bool)
    ring = two_time(frames, labels, "ring_mean")[0]
    pixel = two_time(frames, labels, "pixel_mean")[0]
    pixels = speckle[labels == 1]
    assert ring[off].mean() == pytest.approx(pixels.var() / pixels.mean() ** 2, rel=0.05)
    assert ring[off].std() < 0.05 * ring[off].mean()                  # flat
    assert abs(pixel[off].mean()) < 0.01
