"""Figure of the xpcs chain: g2 per ring with its KWW fit, and the C2 map of one ROI (``plot-g2``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd

from ..errors import InputError
from ..fitting import g2_model
from ..plotting import figure, save_figure
from ..stores import read_c2
from .fit import lags_within

log = logging.getLogger(__name__)

#: Columns of a fit-g2 table the figure reads.
FIT_COLUMNS = ("series", "roi", "success", "beta", "tau", "gamma", "baseline")


def read_fit_table(path: str | os.PathLike) -> pd.DataFrame:
    """A fit-g2 table; raises InputError naming the file when it is unreadable or lacks columns."""
    try:
        fits = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read fit table ({' '.join(str(exc).split())})") from None
    missing = [c for c in FIT_COLUMNS if c not in fits.columns]
    if missing:
        raise InputError(f"{path}: fit table lacks column(s) {missing} (write it with speckleml fit-g2)")
    return fits


def plot_g2(c2: str | os.PathLike, fits: str | os.PathLike, output: str | os.PathLike, *, roi: int,
            max_lag_fraction: float) -> Path:
    """Two panels: g2 of every ROI of series 0 with its fit, and the C2 map of ROI ``roi``.

    Parameters
    ----------
    c2 : path
        c2 store (``lag`` in s, ``g2`` (series, roi, lag), ``c2`` (series, roi, T, T)).
    fits : path
        Fit table of :func:`speckleml.xpcs.fit.fit_g2_curves`; failed fits are not drawn.
    output : path
        Figure to write (``.png``/``.pdf``).
    roi : int
        ROI whose C2 map is shown, ``0 <= roi < n_roi``.
    max_lag_fraction : float
        Show lags up to this fraction of the series (as fitted).

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InputError
        ``roi`` out of range, a fit table without its columns.
    """
    store = read_c2(c2, lazy=True)
    table = read_fit_table(fits)
    lag, g2 = np.asarray(store["lag"]), np.asarray(store["g2"])
    err = np.asarray(store["g2_err"]) if "g2_err" in store else np.full_like(g2, np.nan)
    n_roi = g2.shape[1]
    if not 0 <= roi < n_roi:
        raise InputError(f"--roi {roi} out of range (store has {n_roi} ROIs)")
    offset = float(store.attrs.get("g2_offset", 1.0))
    q_unit = store.attrs.get("units", {}).get("q", "")
    fig, axes = figure(1, 2, width=4.2, height=3.4)
    ax = axes[0, 0]
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, n_roi))
    within = (lag > 0) & lags_within(lag, store.attrs, max_lag_fraction)
    for r in range(n_roi):
        # As fit-g2: points without a finite error (single-pair multi-tau lags) are left out.
        finite = np.isfinite(err[0, r])
        shown = within & (finite if finite[within].any() else True)
        ax.errorbar(lag[shown], g2[0, r, shown], yerr=np.where(finite, err[0, r], 0)[shown], fmt="o", ms=2.5, lw=0.6,
                    color=colours[r], alpha=0.8, label=f"q = {float(store['roi_q'][r]):.4g}")
        row = table[(table["series"] == 0) & (table["roi"] == r)]
        if len(row) and bool(row["success"].iloc[0]):
            p = row.iloc[0]
            t = np.geomspace(lag[shown][0], lag[shown][-1], 200)
            ax.plot(t, offset + g2_model(t, p["beta"], p["tau"], p["gamma"], p["baseline"]), color=colours[r], lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("g2" if offset else "g2 - 1")
    ax.set_title(f"g2 per ring ({store.attrs.get('g2_estimator', 'diagonal')}, "
                 f"{store.attrs['normalization']} C2), lines: KWW fits", fontsize=8)
    ax.legend(title=f"q ({q_unit})", fontsize=6, ncol=2)
    ax = axes[0, 1]
    matrix = np.asarray(store["c2"][0, roi])
    dt = float(store.attrs.get("dt", lag[1] - lag[0] if lag.size > 1 else 1.0))
    start, stop = store.attrs.get("c2_frames", (0, matrix.shape[0]))
    span = (start * dt, (stop - 1) * dt)
    off_diagonal = matrix[~np.eye(matrix.shape[0], dtype=bool)]
    low, high = np.nanpercentile(off_diagonal, [1, 99]) if np.isfinite(off_diagonal).any() else (0, 1)
    image = ax.imshow(matrix, origin="lower", extent=span + span, vmin=low, vmax=high, cmap="viridis")
    fig.colorbar(image, ax=ax, label="C2")
    ax.set_xlabel("t1 (s)")
    ax.set_ylabel("t2 (s)")
    ax.set_title(f"C2, ROI {roi} (q = {float(store['roi_q'][roi]):.4g} {q_unit})")
    save_figure(fig, output)
    log.info("wrote %s", output)
    return Path(output)
