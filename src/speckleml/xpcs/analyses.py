"""The analyses beamline users run after g2: partial and age-resolved g2, tau(q) power law,
intensity versus time (stability) and SAXS 1D.

* Partial g2 (boost_corr ``g2partial``): the series is cut into ``n_segments`` equal time
  segments and g2 of segment ``k`` is the diagonal mean of the C2 block
  ``C2[t0:t1, t0:t1]``: pairs of frames both inside the segment.
* Age-resolved g2 (:func:`speckleml.correlation.age_resolved_g2`): C2 elements binned by
  age ``(t1 + t2) / 2`` along the diagonal, delay ``|t2 - t1|`` across it.
* tau(q): ``tau = 1 / (D q^n)``, a weighted straight line in log space,
  ``ln tau = -ln D - n ln q`` with ``sigma_ln tau = tau_err / tau`` (scipy ``curve_fit``,
  covariance scaled by the reduced chi^2). Brownian diffusion has ``n = 2`` and
  ``D`` the diffusion coefficient (for the APS convention ``g2 - 1 ~ exp(-2 t / tau)``,
  ``tau = 1 / (D q^2)``); ``n = 1`` is ballistic motion.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_csv
from ..correlation import age_resolved_g2, g2_from_c2, mean_image
from ..errors import InputError
from ..fitting import fit_g2
from ..stores import read_c2, read_frames

log = logging.getLogger(__name__)

#: ``|n - 2|`` within this many standard errors counts as consistent with diffusion.
DIFFUSION_SIGMAS = 2.0


def segment_edges(n_frames: int, n_segments: int) -> np.ndarray:
    """Integer edges of ``n_segments`` equal time segments of ``n_frames`` frames.

    Raises
    ------
    InputError
        Segments of fewer than 2 frames.
    """
    if n_segments < 1 or n_frames // n_segments < 2:
        raise InputError(f"{n_segments} segments of {n_frames} frames: need at least 2 frames per segment")
    return np.linspace(0, n_frames, n_segments + 1).round().astype(int)


def partial_g2(c2, n_segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """g2 of every time segment (module docstring), from two-time maps.

    Parameters
    ----------
    c2 : array (..., T, T)
    n_segments : int
        Equal segments, at least 2 frames each.

    Returns
    -------
    edges : ndarray of int (n_segments + 1,)
        Segment edges in frames.
    g2, g2_err : ndarray (..., n_segments, L)
        Diagonal mean and its standard error, ``L`` = frames of the shortest segment; lags a
        segment cannot reach are NaN.
    """
    c2 = np.asarray(c2)
    edges = segment_edges(c2.shape[-1], n_segments)
    n_lag = int(np.diff(edges).min())
    g2 = np.full(c2.shape[:-2] + (n_segments, n_lag), np.nan)
    err = np.full_like(g2, np.nan)
    for k, (t0, t1) in enumerate(zip(edges[:-1], edges[1:])):
        g2[..., k, :], err[..., k, :] = g2_from_c2(c2[..., t0:t1, t0:t1], max_lag=n_lag - 1)
    return edges, g2, err


def _fit_rows(lag, g2, err, offset, keep, label: dict) -> dict:
    result = fit_g2(lag[keep], g2[keep], err[keep], offset=offset)
    return {**label, **result.row()}


def segment_fits(c2: str | os.PathLike, output: str | os.PathLike, *, n_segments: int, n_ages: int,
                 max_lag_fraction: float) -> tuple[pd.DataFrame, dict]:
    """Partial g2 and age-resolved g2 of every ROI of a c2 store, each fitted; write a CSV.

    Parameters
    ----------
    c2 : path
        c2 store.
    output : path
        CSV (atomic): ``kind`` (``partial``/``age``), ``series, roi, q, index``, ``t_start,
        t_end, age`` (s) and the KWW fit (:func:`speckleml.fitting.fit_g2`, the store's offset).
    n_segments, n_ages : int
        Time segments of the partial g2; age bins of the age-resolved g2.
    max_lag_fraction : float
        Fit lags up to this fraction of a segment (partial) or of the series (age), in (0, 1].

    Returns
    -------
    table : DataFrame
        The table written.
    curves : dict
        ``lag`` (s), ``partial``/``partial_err`` (series, roi, segment, lag), ``edges`` (frames),
        ``age_lag`` (s), ``age``/``age_err`` (series, roi, age, lag), ``ages`` (s), ``offset``,
        ``roi_q``, ``q_unit`` (for the figure).

    Raises
    ------
    InputError
        ``max_lag_fraction`` outside (0, 1], segments of fewer than 2 frames, ``n_ages < 1``.
    """
    if not 0 < max_lag_fraction <= 1:
        raise InputError(f"max_lag_fraction must be in (0, 1], got {max_lag_fraction}")
    if n_ages < 1:
        raise InputError(f"n_ages must be >= 1, got {n_ages}")
    store = read_c2(c2, lazy=True)
    maps, roi_q = store["c2"], np.asarray(store["roi_q"], float)
    n_series, n_roi, n_frames = maps.shape[:3]
    dt = float(store.attrs.get("dt", 1.0))
    # the C2 maps have their own baseline (c2_offset); a multi-tau g2 in the same store has 1
    offset = float(store.attrs.get("c2_offset", store.attrs.get("g2_offset", 1.0)))
    age_lags = max(3, int(max_lag_fraction * n_frames) + 1)
    edges = segment_edges(n_frames, n_segments)
    part = part_err = age = age_err = None
    for s in range(n_series):
        for r in range(n_roi):   # one ROI's C2 in memory at a time (long series)
            matrix = np.asarray(maps[s, r])
            _, p, pe = partial_g2(matrix, n_segments)
            ages, a, ae, _ = age_resolved_g2(matrix, n_ages=n_ages, max_lag=age_lags - 1)
            if part is None:
                part, part_err = np.empty((n_series, n_roi) + p.shape), np.empty((n_series, n_roi) + p.shape)
                age, age_err = np.empty((n_series, n_roi) + a.shape), np.empty((n_series, n_roi) + a.shape)
            part[s, r], part_err[s, r], age[s, r], age_err[s, r] = p, pe, a, ae
    lag_part, lag_age = np.arange(part.shape[-1]) * dt, np.arange(age.shape[-1]) * dt
    keep_part = np.arange(lag_part.size) <= max(2, int(max_lag_fraction * lag_part.size))
    keep_age = np.ones(lag_age.size, bool)
    rows = []
    for s in range(n_series):
        for r in range(n_roi):
            base = {"series": s, "roi": r, "q": roi_q[r]}
            for k in range(n_segments):
                rows.append(_fit_rows(lag_part, part[s, r, k], part_err[s, r, k], offset, keep_part,
                                      {"kind": "partial", **base, "index": k, "t_start": edges[k] * dt,
                                       "t_end": edges[k + 1] * dt, "age": (edges[k] + edges[k + 1]) / 2 * dt}))
            for k in range(ages.size):
                width = n_frames / ages.size
                rows.append(_fit_rows(lag_age, age[s, r, k], age_err[s, r, k], offset, keep_age,
                                      {"kind": "age", **base, "index": k, "t_start": k * width * dt,
                                       "t_end": (k + 1) * width * dt, "age": ages[k] * dt}))
    table = pd.DataFrame(rows)
    write_csv(table, output)
    log.info("wrote %s: %d partial and %d age-resolved fits (%d succeeded)", output,
             int((table["kind"] == "partial").sum()), int((table["kind"] == "age").sum()), int(table["success"].sum()))
    curves = {"lag": lag_part, "partial": part, "partial_err": part_err, "edges": edges, "age_lag": lag_age,
              "age": age, "age_err": age_err, "ages": ages * dt, "offset": offset, "roi_q": roi_q,
              "q_unit": store.attrs.get("units", {}).get("q", ""), "dt": dt}
    return table, curves


def power_law(q, log_d, n):
    """``ln tau = -ln D - n ln q`` (the model of :func:`fit_tau_q`, in log space)."""
    return -log_d - n * np.log(q)


def fit_tau_q(q, tau, tau_err=None) -> dict:
    """Fit ``tau = 1 / (D q^n)`` (module docstring), and ``D`` with ``n`` held at 2.

    Parameters
    ----------
    q : array
        Wavevector magnitudes (> 0; 1/Angstrom for measured data).
    tau : array
        Relaxation times (> 0, s).
    tau_err : array, optional
        One-sigma errors of ``tau``; weights ``tau / tau_err`` in log space (default equal).

    Returns
    -------
    dict
        ``D, D_err, n, n_err`` (``D`` in ``q_unit^-n / s``), ``D2, D2_err`` (n = 2),
        ``n_points``, ``chi2_reduced``, ``diffusive`` (``|n - 2| <= DIFFUSION_SIGMAS n_err``).

    Raises
    ------
    InputError
        Fewer than 3 usable points (finite, positive ``q``, ``tau`` and error).
    """
    from scipy.optimize import curve_fit

    q, tau = np.asarray(q, float), np.asarray(tau, float)
    err = np.full_like(tau, np.nan) if tau_err is None else np.asarray(tau_err, float)
    sigma = np.where(np.isfinite(err) & (err > 0), err / tau, np.nan)
    if tau_err is None or not np.isfinite(sigma).any():
        sigma = np.ones_like(tau)
    good = np.isfinite(q) & np.isfinite(tau) & (q > 0) & (tau > 0) & np.isfinite(sigma)
    if good.sum() < 3:
        raise InputError(f"tau(q) fit needs at least 3 points with finite positive q and tau, got {int(good.sum())}")
    x, y, s = q[good], np.log(tau[good]), sigma[good]
    params, cov = curve_fit(power_law, x, y, p0=[-np.mean(y + 2 * np.log(x)), 2.0], sigma=s)
    chi2 = float(np.sum(((y - power_law(x, *params)) / s) ** 2) / max(x.size - 2, 1))
    log_d, n = params
    log_d_err, n_err = np.sqrt(np.diag(cov))
    log_d2 = float(np.sum((-y - 2 * np.log(x)) / s**2) / np.sum(1 / s**2))
    log_d2_err = float(np.sqrt(max(chi2, 1e-300) / np.sum(1 / s**2))) if x.size > 1 else np.nan
    d, d2 = float(np.exp(log_d)), float(np.exp(log_d2))
    return {"D": d, "D_err": d * float(log_d_err), "n": float(n), "n_err": float(n_err), "D2": d2,
            "D2_err": d2 * log_d2_err, "n_points": int(x.size), "chi2_reduced": chi2,
            "diffusive": bool(abs(n - 2) <= DIFFUSION_SIGMAS * n_err)}


def tau_q_fit(fits: str | os.PathLike, output: str | os.PathLike, *, series: int = 0) -> tuple[dict, pd.DataFrame]:
    """tau(q) power law from a fit-g2 table (its successful fits of one series); write a one-row CSV.

    Fewer than 3 successful fits give a row of NaN with ``success=False`` and the reason in
    ``message`` (as :func:`speckleml.xpcs.fit.fit_g2_curves` reports failed fits).

    Returns
    -------
    result : dict
        :func:`fit_tau_q` plus ``series``, ``success`` and ``message``.
    points : DataFrame
        The successful fits used (``q``, ``tau``, ``tau_err``).

    Raises
    ------
    InputError
        Unreadable table, missing columns.
    """
    from .figures import read_fit_table

    table = read_fit_table(fits)
    if "q" not in table.columns or "tau_err" not in table.columns:
        raise InputError(f"{fits}: fit table lacks 'q' or 'tau_err' (write it with speckleml fit-g2)")
    points = table[(table["series"] == series) & table["success"].astype(bool)]
    try:
        result = {"series": series, **fit_tau_q(points["q"], points["tau"], points["tau_err"]),
                  "success": True, "message": ""}
    except InputError as exc:
        # like fit-g2: a failed fit is a row that says why, so the report still builds
        log.warning("%s: %s", fits, exc)
        result = {"series": series, **{k: np.nan for k in ("D", "D_err", "n", "n_err", "D2", "D2_err",
                                                               "chi2_reduced")},
                  "n_points": len(points), "diffusive": False, "success": False, "message": str(exc)}
        write_csv(pd.DataFrame([result]), output)
        return result, points
    write_csv(pd.DataFrame([result]), output)
    log.info("wrote %s: tau = 1/(D q^n), n = %.3g +- %.2g, D = %.4g +- %.2g (%s)", output, result["n"],
             result["n_err"], result["D"], result["D_err"], "diffusive" if result["diffusive"] else "not n = 2")
    return result, points


def ring_intensity(frames, labels: np.ndarray, n_roi: int, series: int = 0, block: int = 256) -> np.ndarray:
    """Mean counts per pixel of every ROI in every frame of one series, streamed.

    Returns
    -------
    ndarray (time, n_roi)
    """
    n_frames = frames.shape[1]
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n_roi + 1)[1:]
    out = np.empty((n_frames, n_roi))
    for t0 in range(0, n_frames, block):
        chunk = np.asarray(frames[series, t0:t0 + block], np.float64).reshape(-1, flat.size)
        for i, row in enumerate(chunk):
            out[t0 + i] = np.bincount(flat, row, minlength=n_roi + 1)[1:] / sizes
    return out


def drift(t, intensity) -> dict:
    """Stability of a mean-intensity trace: relative linear drift over the series and scatter.

    Returns
    -------
    dict
        ``mean``, ``relative_drift`` (fitted slope x duration / mean), ``relative_std``
        (std / mean), ``slope`` (per unit of ``t``).
    """
    t, intensity = np.asarray(t, float), np.asarray(intensity, float)
    slope, intercept = np.polyfit(t, intensity, 1)
    mean = float(intensity.mean())
    return {"mean": mean, "slope": float(slope), "intercept": float(intercept),
            "relative_drift": float(slope * (t[-1] - t[0]) / mean), "relative_std": float(intensity.std() / mean)}


def intensity_time(frames: str | os.PathLike, output: str | os.PathLike, *, q_first: float, q_width: float,
                   q_step: float, n_rings: int, min_pixel_mean: float) -> tuple[pd.DataFrame, dict]:
    """Mean counts per pixel versus time: all valid pixels and every q ring; write a CSV.

    Parameters
    ----------
    frames : path
        Frames store (streamed).
    output : path
        CSV (atomic): ``series, frame, t`` (s), ``all`` and ``ring_<k>`` (mean counts per pixel).
    q_first, q_width, q_step, n_rings, min_pixel_mean
        The rings, as for ``correlate`` (store q units).

    Returns
    -------
    table : DataFrame
    info : dict
        ``roi_q``, ``q_unit`` and per series the :func:`drift` of ``all``.

    Raises
    ------
    InputError
        Rings that overlap or hold fewer than 2 valid pixels.
    """
    from ..correlation import ring_edges
    from .badframes import frame_means
    from .correlate import roi_labels

    store = read_frames(frames, lazy=True)
    data = store["frames"]
    try:
        edges = ring_edges(q_first, q_width, q_step, n_rings)
    except ValueError as exc:
        raise InputError(f"q_first/q_width/q_step/n_rings: {exc}") from None
    labels, roi_q, mask, _, q_unit = roi_labels(store, edges, 1, min_pixel_mean)
    sizes = np.bincount(labels.ravel(), minlength=roi_q.size + 1)[1:]
    if np.any(sizes < 2):
        raise InputError(f"rings {np.flatnonzero(sizes < 2).tolist()} hold fewer than 2 valid pixels")
    dt = float(store.attrs.get("dt", 1.0))
    parts, info = [], {"roi_q": roi_q, "q_unit": q_unit, "drift": []}
    for s in range(data.shape[0]):
        t = np.arange(data.shape[1]) * dt
        total = frame_means(data, np.asarray(store["mask"], bool), s)
        rings = ring_intensity(data, labels, roi_q.size, s)
        part = pd.DataFrame({"series": s, "frame": np.arange(t.size), "t": t, "all": total})
        for r in range(roi_q.size):
            part[f"ring_{r}"] = rings[:, r]
        parts.append(part)
        info["drift"].append(drift(t, total))
        log.info("series %d: mean %.4g counts/pixel, relative drift %.3g, relative std %.3g", s,
                 info["drift"][-1]["mean"], info["drift"][-1]["relative_drift"], info["drift"][-1]["relative_std"])
    table = pd.concat(parts, ignore_index=True)
    write_csv(table, output)
    log.info("wrote %s", output)
    return table, info


def saxs_1d(frames: str | os.PathLike, output: str | os.PathLike, *, n_bins: int) -> pd.DataFrame:
    """Ring-averaged time-mean intensity versus q (SAXS 1D) over the valid pixels; write a CSV.

    Parameters
    ----------
    frames : path
        Frames store (streamed once for the mean image).
    output : path
        CSV (atomic): ``q`` (bin centre, geometric mean of the edges), ``q_low, q_high``,
        ``intensity`` (mean counts per pixel per frame), ``intensity_err`` (std over the
        bin's pixels / sqrt(pixels)), ``n_pixels``; empty bins are left out.
    n_bins : int
        Log-spaced q bins between the smallest and largest ``|q| > 0`` of the valid pixels.

    Raises
    ------
    InputError
        ``n_bins < 1``, no valid pixel with ``|q| > 0``.
    """
    from .aps import detector_maps

    if n_bins < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    store = read_frames(frames, lazy=True)
    q_map, _, q_unit = detector_maps(store)
    valid = np.asarray(store["mask"], bool) & np.isfinite(q_map) & (q_map > 0)
    if not valid.any():
        raise InputError(f"{frames}: no valid pixel with |q| > 0")
    image = mean_image(store["frames"])
    q, values = q_map[valid], image[valid]
    edges = np.geomspace(q.min(), q.max() * (1 + 1e-12), n_bins + 1)
    which = np.clip(np.searchsorted(edges, q, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    total = np.bincount(which, values, minlength=n_bins)
    square = np.bincount(which, values**2, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        std = np.sqrt(np.maximum(square / count - mean**2, 0) * count / np.maximum(count - 1, 1))
    table = pd.DataFrame({"q": np.sqrt(edges[:-1] * edges[1:]), "q_low": edges[:-1], "q_high": edges[1:],
                          "intensity": mean, "intensity_err": std / np.sqrt(count), "n_pixels": count})
    table = table[count > 0].reset_index(drop=True)
    table.attrs["q_unit"] = q_unit
    write_csv(table, output)
    log.info("wrote %s: %d q bins (%s)", output, len(table), q_unit)
    return table
