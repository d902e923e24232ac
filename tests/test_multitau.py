"""Multi-tau g2: an independent float64 reference, the OU analytic g2, streaming, scikit-beam."""

from __future__ import annotations

import numpy as np
import pytest

from speckleml.correlation import q_ring_rois, ring_edges
from speckleml.fitting import fit_g2
from speckleml.stores import write_frames
from speckleml.synthetic import ou_speckle
from speckleml.xpcs.multitau import (MultiTauAccumulator, multitau_g2, multitau_g2_store,
                                     multitau_lags)


def reference_multitau(frames, labels, buffers, normalization="pixel"):
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
                else:
                    row.append(G[sel].mean() / (ip[sel].mean() * if_[sel].mean()))
                row_err.append(pixel.std(ddof=1) / np.sqrt(pixel.size))
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
