"""C2 of true vs predicted speckle (paper 000 Fig. 2k, Supp. Fig. 4): slice MAE, tau and gamma."""

import numpy as np
import pytest

from speckleml.dynamics.c2 import c2_analysis, peak_ring, ring_c2, slice_fits, slice_mae
from speckleml.errors import InputError


def _ring_geometry(n=32):
    q = np.arange(n) - n // 2
    q_map = np.hypot(q[:, None], q[None, :]).astype(np.float64)
    return q_map, q_map > 1.5


def _ar1_frames(n_time, tau, shape, rng):
    """Gaussian frames whose Pearson correlation between frames decays as exp(-|dt| / tau)."""
    rho = np.exp(-1.0 / tau)
    frames = np.empty((n_time, *shape))
    frames[0] = rng.standard_normal(shape)
    for i in range(1, n_time):
        frames[i] = rho * frames[i - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(shape)
    return frames


def test_identical_trajectories_have_zero_slice_mae():
    rng = np.random.default_rng(0)
    q_map, mask = _ring_geometry()
    frames = 1.0 + rng.random((40, 32, 32))
    out = c2_analysis(frames, np.stack([frames, frames]), np.arange(40.0), q_map, mask, ring_width=2.0)
    assert np.nanmax(np.abs(out["c2_slice_mae"])) < 1e-6
    np.testing.assert_allclose(np.diag(out["c2_true"]), 1.0, atol=1e-5)


def test_frozen_truth_vs_decorrelated_prediction_has_mae_one():
    # truth: one static speckle (C2 = 1 everywhere); prediction: independent frames (C2 = 0 off the
    # diagonal up to 1/sqrt(P) scatter), so E|C2_true - C2_pred| = 1 for every slice.
    rng = np.random.default_rng(1)
    q_map, mask = _ring_geometry(64)
    frozen = np.broadcast_to(1.0 + rng.random((64, 64)), (30, 64, 64))
    labels = (mask & (q_map >= 10) & (q_map < 20)).astype(np.int32)
    n_pixels = labels.sum()
    mae = slice_mae(ring_c2(frozen, labels), ring_c2(1.0 + rng.random((30, 64, 64)), labels))
    assert np.isnan(mae[-1])
    np.testing.assert_allclose(mae[:-5], 1.0, atol=4 / np.sqrt(n_pixels * 5))


def test_slice_fit_recovers_exponential_decay():
    rng = np.random.default_rng(2)
    q_map, mask = _ring_geometry(64)
    labels = (mask & (q_map < 30)).astype(np.int32)
    frames = _ar1_frames(120, 8.0, (64, 64), rng)
    c2 = ring_c2(frames, labels)
    tau, gamma = slice_fits(c2, np.arange(120.0), np.array([0, 40, 80]))
    np.testing.assert_allclose(tau, 8.0, rtol=0.15)
    np.testing.assert_allclose(gamma, 1.0, atol=0.15)


def test_peak_ring_is_centred_on_the_intensity_maximum():
    q_map, mask = _ring_geometry(64)
    intensity = np.exp(-((q_map - 12.0) ** 2) / 4.0)
    inner, outer = peak_ring(intensity, q_map, mask, width=2.0)
    assert inner <= 12.0 < outer and outer - inner == pytest.approx(2.0)


def test_mismatched_maps_are_an_input_error():
    with pytest.raises(InputError):
        slice_mae(np.zeros((4, 4)), np.zeros((5, 5)))
