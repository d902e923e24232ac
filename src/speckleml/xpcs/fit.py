"""c2 store or g2 table -> table of KWW fits per ROI (``speckleml fit-g2``)."""

from __future__ import annotations

import logging
import os
from typing import Iterator

import numpy as np
import pandas as pd

from ..atomic import write_csv
from ..correlation import G2_OFFSET
from ..errors import InputError
from ..fitting import fit_g2
from ..stores import read_c2
from .aps import read_g2_table

log = logging.getLogger(__name__)

#: Range of the stretching exponent: the bounds :func:`speckleml.fitting.fit_g2` fits within,
#: so a held value is one the fit could also have found (the schema states the same range).
GAMMA_RANGE = (0.2, 4.0)


def curves_from_store(path: str | os.PathLike, max_lag_fraction: float) -> Iterator[tuple]:
    """Every g2 curve of a c2 store, up to a fraction of the series length.

    Parameters
    ----------
    path : path
        c2 store (``*.zarr``).
    max_lag_fraction : float
        Keep lags up to this fraction of the series (at least 2 lags): long lags average few
        C2 elements.

    Yields
    ------
    tuple
        ``(series, roi, q, lag, g2, g2_err, offset)``: lag (s), g2 and its error (arrays,
        error None when the store has none) and the value of g2 at full decorrelation
        (``attrs["g2_offset"]``, else the normalisation's).

    Notes
    -----
    Points whose error is not finite are left out when the curve has finite errors
    elsewhere: multi-tau lags with a single pair of frames carry no error estimate
    (:meth:`speckleml.xpcs.multitau.MultiTauAccumulator.result`). A curve without any finite
    error is fitted unweighted (error None).
    """
    store = read_c2(path, lazy=True)
    lag = np.asarray(store["lag"], float)
    g2 = np.asarray(store["g2"], float)
    err = np.asarray(store["g2_err"], float) if "g2_err" in store else None
    offset = float(store.attrs.get("g2_offset", G2_OFFSET.get(store.attrs["normalization"], 1.0)))
    keep = lags_within(lag, store.attrs, max_lag_fraction)
    roi_q = np.asarray(store["roi_q"], float)
    for s in range(g2.shape[0]):
        for r in range(g2.shape[1]):
            points, errors = keep, None
            if err is not None and np.isfinite(err[s, r, keep]).any():
                points = keep & np.isfinite(err[s, r])
                errors = err[s, r, points]
            yield s, r, float(roi_q[r]), lag[points], g2[s, r, points], errors, offset


def lags_within(lag, attrs, max_lag_fraction: float) -> np.ndarray:
    """Mask of the lags up to ``max_lag_fraction`` of the series a c2 store's g2 comes from.

    Parameters
    ----------
    lag : array (n_lags,)
        Lags (s): every frame (C2 diagonals) or multi-tau lags.
    attrs : mapping
        Store attrs: ``dt`` (s) and ``g2_frames`` (frames behind g2); stores without
        ``g2_frames`` (one lag per frame) use the lag count.
    max_lag_fraction : float
        Fraction in (0, 1].

    Returns
    -------
    ndarray of bool (n_lags,)
        ``lag <= max_lag_fraction * g2_frames * dt``, and always the first 3 lags.
    """
    lag = np.asarray(lag, float)
    index = np.arange(lag.size)
    frames, dt = attrs.get("g2_frames"), attrs.get("dt")
    if not frames or not dt:
        return index <= max(2, int(max_lag_fraction * lag.size))
    # In frames, with a margin for the rounding of lag = k * dt.
    return (lag / float(dt) <= max_lag_fraction * int(frames) + 1e-6) | (index <= 2)


def fit_g2_curves(source: str | os.PathLike, output: str | os.PathLike, *, max_lag_fraction: float,
                  fix_gamma: float | None = None, baseline: bool = True, offset: float | None = None) -> pd.DataFrame:
    """Fit ``g2 - offset = beta exp(-2 (t/tau)^gamma) + baseline`` to every curve; write a CSV.

    Parameters
    ----------
    source : path
        c2 store (``*.zarr``) or g2 table (CSV, see :func:`speckleml.xpcs.aps.read_g2_table`).
    output : path
        CSV to write (atomically): ``series, roi, q`` and the fit's ``beta, tau, gamma,
        baseline`` with errors, ``success`` and ``message`` (tau in the lag unit, s).
    max_lag_fraction : float
        c2 store: fit lags up to this fraction of the series, in (0, 1].
    fix_gamma : float, optional
        Hold the stretching exponent at this value, within :data:`GAMMA_RANGE`; None fits it.
    baseline : bool
        Fit a constant baseline (else hold it at 0).
    offset : float, optional
        Value of g2 at full decorrelation (default: the store's normalisation; 1 for tables).

    Returns
    -------
    DataFrame
        The table written.

    Raises
    ------
    InputError
        ``fix_gamma`` outside :data:`GAMMA_RANGE`, ``max_lag_fraction`` outside (0, 1],
        unreadable input.
    """
    if fix_gamma is not None and not GAMMA_RANGE[0] <= fix_gamma <= GAMMA_RANGE[1]:
        raise InputError(f"fix_gamma must be in [{GAMMA_RANGE[0]}, {GAMMA_RANGE[1]}], got {fix_gamma}")
    if not 0 < max_lag_fraction <= 1:
        raise InputError(f"max_lag_fraction must be in (0, 1], got {max_lag_fraction}")
    if str(source).rstrip("/").endswith(".zarr"):
        curves = list(curves_from_store(source, max_lag_fraction))
    else:
        curves = [(0, c["roi"], c["q"], c["lag"], c["g2"], c["g2_err"], 1.0) for c in read_g2_table(source)]
    if not curves:
        raise InputError(f"{source}: no g2 curves (no rows)")
    rows = []
    for series, roi, q, lag, g2, err, own_offset in curves:
        result = fit_g2(lag, g2, err, offset=own_offset if offset is None else offset,
                        fit_gamma=fix_gamma is None, gamma=1.0 if fix_gamma is None else fix_gamma,
                        fit_baseline=baseline)
        rows.append({"series": series, "roi": roi, "q": q, **result.row()})
        if not result.success:
            log.warning("series %d roi %d: fit failed: %s", series, roi, result.message)
    table = pd.DataFrame(rows)
    write_csv(table, output)
    log.info("wrote %s: %d fits (%d succeeded)", output, len(table), int(table["success"].sum()))
    return table
