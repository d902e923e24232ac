"""Multi-tau g2: an independent float64 reference, the OU analytic g2, streaming, scikit-beam."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from speckleml.correlation import q_ring_rois, ring_edges
from speckleml.fitting import fit_g2
from speckleml.stores import write_frames
from speckleml.synthetic import ou_speckle
from speckleml.xpcs.multitau import (MultiTauAccumulator, multitau_g2, multitau_g2_store,
                                     multitau_lags)


def reference_multitau(frames, labels, buffers, normalization="roi", static=None):
    """Straight from the definition: bin 2**L frames, correlate every kept lag directly."""
    n_frames = frames.shape[0]
    x = frames.reshape(n_frames, -1).astype(np.float64)
    flat = labels.ravel()
    n_roi = int(flat.max())
    lags, g2, err = [], [], []
    level = 0
    while True:
        width = 2**level
        n = n_frames // width
        steps = range(0 if level == 0 else buffers // 2, buffers)
        steps = [i for i in steps if n - i >= 1]
        if not steps:
            break
        binned = x[: n * width].reshape(n, width, -1).mean(axis=1)
        for i in steps:
            past, future = binned[: n - i], binned[i:]
            G, ip, if_ = (past * future).mean(axis=0), past.mean(axis=0), future.mean(axis=0)
            row, row_err = [], []
            for r in range(1, n_roi + 1):
                sel = flat == r
                ok = sel & (ip * if_ > 0)
                pixel = G[ok] / (ip[ok] * if_[ok])
                if normalization == "pixel":
                    row.append(pixel.mean())
                elif normalization == "roi":
                    row.append(G[sel].mean() / (ip[sel].mean() * if_[sel].mean()))
                else:
                    ratios = [G[part].mean() / (ip[part].mean() * if_[part].mean())
                              for part in (sel & (static.ravel() == s) for s in np.unique(static[labels == r]))]
                    row.append(np.mean(ratios))
                # With one pair every pixel ratio is 1: the convention is no error bar (NaN).
                row_err.append(pixel.std(ddof=1) / np.sqrt(pixel.size) if n - i > 1 else np.nan)
            lags.append(i * width)
            g2.append(row)
            err.append(row_err)
        level += 1
    return np.array(lags, float), np.array(g2).T, np.array(err).T


@pytest.fixture(scope="module")
def stack():
    frames = ou_speckle(203, 24, 12.0, seed=5, mean_counts=2.0)[0]
    yy, xx = np.indices((24, 24)) - 12
    labels, _ = q_ring_rois(np.hypot(yy, xx), ring_edges(2, 3, 3, 3))
    return frames, labels


@pytest.mark.parametrize("buffers", [2, 4, 8])
@pytest.mark.parametrize("normalization", ["pixel", "roi"])
def test_equals_direct_float64_reference(stack, buffers, normalization):
    frames, labels = stack
    lag, g2, err = multitau_g2(frames, labels, buffers=buffers, dt=0.5, normalization=normalization, block=17)
    ref_lag, ref_g2, ref_err = reference_multitau(frames, labels, buffers, normalization)
    np.testing.assert_array_equal(lag, ref_lag * 0.5)
    np.testing.assert_allclose(g2, ref_g2, rtol=1e-10, atol=0)
    np.testing.assert_allclose(err, ref_err, rtol=1e-8, atol=1e-14)
    # Poisson frames of 2 counts: some pixels are dark at some levels and are excluded.
    assert np.isfinite(g2).all() and g2.shape == (3, lag.size)


def test_static_partition_is_the_boost_corr_form_and_spans_pixel_and_roi(stack):
    frames, labels = stack
    yy, xx = np.indices(labels.shape) - 12
    static = 1 + (np.arctan2(yy, xx) > 0) + 2 * (xx > 0)     # 4 quadrant-like bins per ring
    lag, g2, err = multitau_g2(frames, labels, normalization="static", static_labels=static)
    _, ref_g2, ref_err = reference_multitau(frames, labels, 8, "static", static)
    np.testing.assert_allclose(g2, ref_g2, rtol=1e-10, atol=0)
    np.testing.assert_allclose(err, ref_err, rtol=1e-8)
    as_roi = multitau_g2(frames, labels, normalization="static", static_labels=labels + 1)[1]
    np.testing.assert_allclose(as_roi, multitau_g2(frames, labels, normalization="roi")[1], rtol=1e-12)
    one_per_pixel = 1 + np.arange(labels.size).reshape(labels.shape)
    as_pixel = multitau_g2(frames, labels, normalization="static", static_labels=one_per_pixel)[1]
    np.testing.assert_allclose(as_pixel, multitau_g2(frames, labels, normalization="pixel")[1], rtol=1e-12)
    # The conventions really differ on speckle (static contrast enters the ROI-level ratio).
    np.testing.assert_allclose(multitau_g2(frames, labels)[1], as_roi, rtol=1e-12)   # default: "roi"
    assert np.abs(as_roi - as_pixel)[:, 1:].max() > 0.05
    with pytest.raises(ValueError, match="static_labels"):
        multitau_g2(frames, labels, normalization="static")
    with pytest.raises(ValueError, match=">= 1"):
        multitau_g2(frames, labels, normalization="static", static_labels=np.zeros_like(labels))


def test_lags_follow_scikit_beam_multi_tau_lags():
    lag, level, pairs = multitau_lags(100, buffers=8)
    # skbeam.core.utils.multi_tau_lags(5, 8): 0..7, then (4..7) * 2**L; level 4 has 6 frames
    # (lags 64, 80 have 2 and 1 pairs), level 5 has 3 frames and no lag >= 4.
    np.testing.assert_array_equal(lag, [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28,
                                        32, 40, 48, 56, 64, 80])
    np.testing.assert_array_equal(pairs, (100 >> level) - (lag >> level))
    assert pairs[-2:].tolist() == [2, 1]
    assert multitau_lags(100, buffers=8, n_levels=2)[0][-1] == 14
    with pytest.raises(ValueError, match="even"):
        multitau_lags(100, buffers=5)


def test_dark_pixels_are_left_out_of_the_pixel_mean(stack):
    frames, labels = stack
    frames = frames.copy()
    ring = np.argwhere(labels == 2)
    frames[:, ring[0][0], ring[0][1]] = 0.0        # never lit: IP = IF = 0 at every lag
    frames[:100, ring[1][0], ring[1][1]] = 0.0     # dark at first: excluded only where IP IF = 0
    lag, g2, err = multitau_g2(frames, labels, buffers=4, normalization="pixel")
    ref_lag, ref_g2, ref_err = reference_multitau(frames, labels, 4, "pixel")
    np.testing.assert_allclose(g2, ref_g2, rtol=1e-10, atol=0)
    np.testing.assert_allclose(err, ref_err, rtol=1e-8)
    assert np.isfinite(g2).all()


def test_streaming_is_independent_of_blocks_and_source(stack, tmp_path):
    frames, labels = stack
    whole = multitau_g2(frames, labels, block=frames.shape[0], dt=0.25)
    for block in (1, 2, 5, 64):
        for got, want in zip(multitau_g2(frames, labels, block=block, dt=0.25), whole):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    pieces = (frames[t:t + 9] for t in range(0, frames.shape[0], 9))
    for got, want in zip(multitau_g2(pieces, labels, dt=0.25), whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    series = np.stack([frames[::-1], frames])
    path = write_frames(tmp_path / "frames.zarr", series, attrs={"dt": 0.25})
    for got, want in zip(multitau_g2_store(path, labels, series=1), whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # A series read back from the store is the one asked for, not the first.
    assert not np.allclose(multitau_g2_store(path, labels, series=0)[1], whole[1])


@pytest.mark.parametrize("normalization, tolerance", [("roi", 0.02), ("pixel", 0.03)])
def test_ou_speckle_recovers_the_analytic_g2_and_tau(normalization, tolerance):
    # Field OU with tau = 20 frames: every pixel has g2 - 1 = exp(-2 t / tau), contrast 1.
    frames = ou_speckle(4000, 32, 20.0, seed=11)[0]
    yy, xx = np.indices((32, 32)) - 16
    labels, _ = q_ring_rois(np.hypot(yy, xx), ring_edges(2, 4, 4, 3))
    dt = 0.01
    lag, g2, err = multitau_g2(frames, labels, dt=dt, normalization=normalization)
    analytic = 1 + np.exp(-2 * lag / (20 * dt))
    # Finite-series bias (T = 200 tau) and the binning of higher levels stay small.
    assert np.abs(g2 - analytic).max() < tolerance
    # The last lag has a single pair of frames: its pixel spread is no error bar.
    assert multitau_lags(4000)[2][-1] == 1 and np.isnan(err[:, -1]).all() and np.isfinite(err[:, :-1]).all()
    for r in range(3):
        fit = fit_g2(lag, g2[r], err[r], offset=1.0, fit_gamma=False, fit_baseline=False)
        assert fit.success
        assert fit["tau"] == pytest.approx(20 * dt, rel=2 * tolerance)
        assert fit["beta"] == pytest.approx(1.0, abs=tolerance)


def test_accumulator_reports_partial_results_and_validates():
    rng = np.random.default_rng(0)
    frames = rng.poisson(3.0, (40, 6, 6)).astype(np.float32)
    labels = np.ones((6, 6), np.int32)
    correlator = MultiTauAccumulator(labels, buffers=4)
    correlator.update(frames[:20])
    early = correlator.result()
    correlator.update(frames[20:])
    assert correlator.n_frames == 40
    np.testing.assert_allclose(early[1], multitau_g2(frames[:20], labels, buffers=4)[1], rtol=1e-12)
    with pytest.raises(ValueError, match="do not match"):
        correlator.update(np.ones((3, 5, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        correlator.update(np.full((1, 6, 6), np.nan))
    with pytest.raises(ValueError, match="no ROI"):
        MultiTauAccumulator(np.zeros((6, 6), int))
    with pytest.raises(ValueError, match="at least 2 frames"):
        multitau_g2(frames[:1], labels)
    with pytest.raises(ValueError, match="normalization"):
        multitau_g2(frames, labels, normalization="classical")
    with pytest.raises(ValueError, match="dt"):
        multitau_g2(frames, labels, dt=0.0)
    # n_roi beyond the labels gives an all-NaN ROI rather than an error.
    assert np.isnan(multitau_g2(frames, labels, n_roi=2)[1][1]).all()


def test_matches_scikit_beam_multi_tau_auto_corr(stack):
    correlation = pytest.importorskip("skbeam.core.correlation")
    frames, labels = stack
    g2, lag_steps = correlation.multi_tau_auto_corr(6, 8, labels.astype(np.int64), frames.astype(np.float64))
    lag, ours, _ = multitau_g2(frames, labels, buffers=8, n_levels=6, normalization="roi")
    np.testing.assert_array_equal(lag, lag_steps)
    np.testing.assert_allclose(ours, g2.T, rtol=1e-10)


def test_memory_does_not_grow_with_the_number_of_frames():
    # O(pixels x buffers x levels), not O(T x pixels): 4096 frames of 32 x 32 pixels are
    # 32 MiB in float64; the correlator holds ~2 buffers + block / 2**L rows at level L (3.3 MiB).
    labels = np.ones((32, 32), np.int32)
    rng = np.random.default_rng(1)
    pool = rng.poisson(2.0, (64, 32, 32)).astype(np.float32)
    tracemalloc.start()
    try:
        lag, g2, _ = multitau_g2((pool for _ in range(64)), labels, buffers=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lag.size == 8 + 4 * 9 and lag[-1] == 7 * 2**9 and np.isfinite(g2).all()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.realdata
def test_skbeam_real_stack_equals_the_direct_reference():
    from conftest import real_file
    from speckleml.xpcs.frames import Geometry, read_frame_array

    frames = read_frame_array(real_file("skbeam_speckle_stack", "img_stack5301_5401.npy.zip"))
    assert frames.dtype == np.uint16                                   # raw photon counts, 0.67 / px
    geometry = Geometry(0.108, 2230.0, 1.546, (143, 123))             # PROVENANCE.md
    labels, _ = q_ring_rois(geometry.q_map(frames.shape[1:]), ring_edges(0.0016, 2e-4, 2e-4, 8))
    for normalization in ("pixel", "roi"):
        lag, g2, err = multitau_g2(frames, labels, dt=1.30068e-3, normalization=normalization, block=10)
        ref_lag, ref_g2, ref_err = reference_multitau(frames, labels, 8, normalization)
        np.testing.assert_allclose(lag, ref_lag * 1.30068e-3, rtol=1e-15)
        np.testing.assert_allclose(g2, ref_g2, rtol=1e-10, atol=0)
        np.testing.assert_allclose(err, ref_err, rtol=1e-8)
    assert lag.size == 8 + 4 * 4 - 2    # T = 100: levels 1-3 full, level 4 (6 frames) has lags 64, 80
