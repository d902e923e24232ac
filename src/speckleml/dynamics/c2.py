"""Two-time correlation of true vs predicted speckle (paper 000 Fig. 2k, Supp. Fig. 4b-f).

The speckle of one test condition is computed from the true trajectory and from every
member's extrapolation; at one Q ring (the ring of the time-averaged true structure-factor
peak, i.e. the stripe wavevector) :func:`speckleml.correlation.two_time` gives ``C2(t1, t2)``
with the paper's normalisation (Methods eq. 19, ``"covariance"``: the Pearson correlation of
the frames at ``t1`` and ``t2`` over the ring's pixels; 1 on the diagonal, 0 for
decorrelated frames). The ensemble's map is the mean of the members' maps. From the maps:
the MAE between the true and predicted one-time slices ``C2(t1, t1 + dt)`` (``dt > 0``) at each
``t1``, and the slices' relaxation time ``tau(t1)`` and KWW exponent ``gamma(t1)`` of
``exp(-(dt / tau)^gamma)`` (:func:`speckleml.fitting.fit_c2_slice`, amplitude 1 as in the paper).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: Normalisation of paper 000 Methods eq. 19.
C2_NORMALIZATION = "covariance"


def peak_ring(mean_intensity: np.ndarray, q_map: np.ndarray, mask: np.ndarray, width: float) -> tuple[float, float]:
    """``[inner, outer)`` edges of the ring of width ``width`` centred on the azimuthal-average peak.

    Parameters
    ----------
    mean_intensity : ndarray (qy, qx)
        Time-averaged intensity.
    q_map : ndarray (qy, qx)
        ``|q|`` of every pixel.
    mask : ndarray of bool (qy, qx)
        True for valid pixels (outside the beamstop).
    width : float
        Ring width, same units as ``q_map``.

    Returns
    -------
    (inner, outer) : floats, units of ``q_map``

    Raises
    ------
    InputError
        When no valid pixel has ``q > 0``.
    """
    valid = np.asarray(mask, bool) & (q_map > 0)
    if not valid.any():
        raise InputError("no valid detector pixel for the C2 ring")
    bins = np.arange(0.0, q_map[valid].max() + width, width / 2)
    index = np.digitize(q_map[valid], bins) - 1
    total = np.bincount(index, weights=mean_intensity[valid], minlength=len(bins))
    count = np.bincount(index, minlength=len(bins))
    profile = np.where(count > 0, total / np.maximum(count, 1), -np.inf)
    centre = bins[int(np.argmax(profile))] + width / 4
    return max(centre - width / 2, 0.0), centre + width / 2


def ring_c2(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``C2(t1, t2)`` (eq. 19) of ``frames (time, qy, qx)`` over the pixels with ``labels == 1``.

    Returns
    -------
    ndarray float64 (time, time), symmetric, 1 on the diagonal.
    """
    from ..correlation import two_time

    return two_time(np.asarray(frames, np.float32), labels, normalization=C2_NORMALIZATION, n_roi=1,
                    desc="c2")[0].astype(np.float64)


def slice_mae(c2_true: np.ndarray, c2_pred: np.ndarray) -> np.ndarray:
    """MAE between the one-time slices ``C2(t1, t1 + dt)``, ``dt > 0``, of two maps, per ``t1``.

    Parameters
    ----------
    c2_true, c2_pred : ndarray (time, time)

    Returns
    -------
    ndarray (time,); the last entry (no ``dt > 0`` left) is NaN.

    Raises
    ------
    InputError
        On maps of different or non-square shapes.
    """
    c2_true, c2_pred = np.asarray(c2_true, np.float64), np.asarray(c2_pred, np.float64)
    if c2_true.shape != c2_pred.shape or c2_true.ndim != 2 or c2_true.shape[0] != c2_true.shape[1]:
        raise InputError(f"C2 maps must be square and of one shape, got {c2_true.shape} and {c2_pred.shape}")
    diff = np.abs(np.triu(c2_true - c2_pred, k=1))
    n_after = np.arange(c2_true.shape[0])[::-1]  # slice length t1 + 1 .. T - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_after > 0, diff.sum(axis=1) / n_after, np.nan)


def slice_fits(c2: np.ndarray, t: np.ndarray, starts: np.ndarray, min_lags: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """KWW fit ``exp(-(dt/tau)^gamma)`` of the one-time slice of ``c2`` at each ``t1 = t[starts]``.

    Parameters
    ----------
    c2 : ndarray (time, time)
    t : ndarray (time,)
        Frame times (uniform step).
    starts : ndarray of int
        Slice start indices.
    min_lags : int
        Fewer lags after ``t1`` than this: NaN.

    Returns
    -------
    tau, gamma : ndarray (len(starts),), NaN where the fit failed (time units of ``t``).
    """
    from ..fitting import fit_c2_slice

    tau, gamma = np.full(len(starts), np.nan), np.full(len(starts), np.nan)
    for k, i in enumerate(starts):
        lag, y = t[i + 1:] - t[i], c2[i, i + 1:]
        if lag.size < min_lags or not np.isfinite(y).all():
            continue
        fit = fit_c2_slice(lag, y)
        if fit.success:
            tau[k], gamma[k] = fit["tau"], fit["gamma"]
    return tau, gamma


def c2_analysis(speckle_true: np.ndarray, speckle_pred: np.ndarray, t: np.ndarray, q_map: np.ndarray,
                mask: np.ndarray, ring_width: float, n_starts: int = 24) -> dict:
    """C2 of true vs predicted speckle at the structure-factor-peak ring, slice MAE, tau and gamma.

    Parameters
    ----------
    speckle_true : ndarray (time, qy, qx)
        Speckle of the true trajectory of one condition.
    speckle_pred : ndarray (member, time, qy, qx)
        Speckle of each member's extrapolation of the same condition.
    t : ndarray (time,)
    q_map, mask : ndarray (qy, qx)
        ``|q|`` and the valid pixels.
    ring_width : float
        Ring width (units of ``q_map``).
    n_starts : int
        Slice starts ``t1`` for the fits, spread over the first 80 % of the window.

    Returns
    -------
    dict of ndarray: ``c2_true (time, time)``, ``c2_pred (member, time, time)``, ``c2_slice_mae
    (member + 1, time)`` (members, then the ensemble-mean map), ``c2_t1 (start,)``,
    ``c2_tau_true``, ``c2_gamma_true (start,)``, ``c2_tau_pred``, ``c2_gamma_pred (start,)``
    (of the ensemble-mean map), ``c2_ring (2,)``.
    """
    speckle_pred = np.asarray(speckle_pred)
    if speckle_pred.shape[1:] != np.shape(speckle_true):
        raise InputError(f"predicted speckle {speckle_pred.shape} does not match the true {np.shape(speckle_true)}")
    inner, outer = peak_ring(np.mean(speckle_true, axis=0), q_map, mask, ring_width)
    labels = (np.asarray(mask, bool) & (q_map >= inner) & (q_map < outer)).astype(np.int32)
    c2_true = ring_c2(speckle_true, labels)
    c2_pred = np.stack([ring_c2(frames, labels) for frames in speckle_pred])
    ensemble = c2_pred.mean(axis=0)
    starts = np.unique(np.linspace(0, int(0.8 * (len(t) - 1)), n_starts).astype(int))
    tau_true, gamma_true = slice_fits(c2_true, t, starts)
    tau_pred, gamma_pred = slice_fits(ensemble, t, starts)
    return {
        "c2_true": c2_true, "c2_pred": c2_pred,
        "c2_slice_mae": np.stack([slice_mae(c2_true, c) for c in (*c2_pred, ensemble)]),
        "c2_t1": np.asarray(t)[starts], "c2_tau_true": tau_true, "c2_gamma_true": gamma_true,
        "c2_tau_pred": tau_pred, "c2_gamma_pred": gamma_pred, "c2_ring": np.array([inner, outer]),
    }
