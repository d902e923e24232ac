"""Stages of the analyses after g2 (:mod:`speckleml.xpcs.analyses`): each writes its table and
its figure for the report (``partial-g2``, ``tau-q``, ``intensity-time``, ``saxs-1d``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd

from ..errors import InputError
from ..plotting import figure, save_figure
from ..stores import read_c2
from . import analyses

log = logging.getLogger(__name__)


def _colours(n: int):
    return matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(n, 1)))


def _tau_panel(ax, table: pd.DataFrame) -> None:
    """tau vs age of every ROI of series 0: circles partial g2, squares age-resolved g2."""
    rows = table[table["success"].astype(bool) & (table["series"] == 0)]
    rois = sorted(table["roi"].unique())
    for colour, r in zip(_colours(len(rois)), rois):
        label = f"{table.loc[table['roi'] == r, 'q'].iloc[0]:.3g}"
        for kind, marker in (("partial", "o-"), ("age", "s:")):
            sub = rows[(rows["roi"] == r) & (rows["kind"] == kind)]
            if len(sub):
                ax.errorbar(sub["age"], sub["tau"], yerr=sub["tau_err"], fmt=marker, ms=3, lw=0.7, color=colour,
                            label=label)
                label = None


def partial_g2_report(c2: str | os.PathLike, output: str | os.PathLike, figure_path: str | os.PathLike, *,
                      n_segments: int, n_ages: int, max_lag_fraction: float, roi: int) -> Path:
    """Partial and age-resolved g2 fits (:func:`speckleml.xpcs.analyses.segment_fits`) and a figure.

    The figure: partial g2 of ROI ``roi`` per time segment (series 0), and the fitted tau
    versus age of every ROI (circles: partial g2 per segment; squares: age-resolved g2).

    Raises
    ------
    InputError
        ``roi`` out of range, and see :func:`~speckleml.xpcs.analyses.segment_fits`.
    """
    n_roi = read_c2(c2, lazy=True)["roi_q"].shape[0]
    if not 0 <= roi < n_roi:
        raise InputError(f"--roi {roi} out of range (store has {n_roi} ROIs)")
    table, curves = analyses.segment_fits(c2, output, n_segments=n_segments, n_ages=n_ages,
                                          max_lag_fraction=max_lag_fraction)
    fig, axes = figure(1, 2, width=4.0, height=3.3)
    ax = axes[0, 0]
    lag, edges = curves["lag"], curves["edges"]
    shown = (lag > 0) & (np.arange(lag.size) <= max(2, int(max_lag_fraction * lag.size)))
    for k, colour in enumerate(_colours(n_segments)):
        ax.errorbar(lag[shown], curves["partial"][0, roi, k, shown], yerr=curves["partial_err"][0, roi, k, shown],
                    fmt="o-", ms=2.5, lw=0.6, color=colour,
                    label=f"{edges[k] * curves['dt']:.3g}-{edges[k + 1] * curves['dt']:.3g} s")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("g2" if curves["offset"] else "g2 - 1")
    ax.set_title(f"partial g2, ROI {roi} (q = {curves['roi_q'][roi]:.4g} {curves['q_unit']})")
    ax.legend(title="segment", fontsize=6)
    ax = axes[0, 1]
    _tau_panel(ax, table)
    ax.set_yscale("log")
    ax.set_xlabel("age (s)")
    ax.set_ylabel("tau (s)")
    ax.set_title("tau vs age: o partial g2, s age-resolved C2")
    ax.legend(fontsize=6, title=f"q ({curves['q_unit']})")
    save_figure(fig, figure_path)
    log.info("wrote %s", figure_path)
    return Path(figure_path)


def tau_q_report(c2: str | os.PathLike, fits: str | os.PathLike, output: str | os.PathLike,
                 figure_path: str | os.PathLike) -> Path:
    """tau(q) power-law fit of a fit-g2 table (:func:`speckleml.xpcs.analyses.tau_q_fit`) and a
    log-log figure of tau versus q with the fit and the n = 2 line.

    Raises
    ------
    InputError
        See :func:`~speckleml.xpcs.analyses.tau_q_fit`.
    """
    q_unit = read_c2(c2, lazy=True).attrs.get("units", {}).get("q", "")
    result, points = analyses.tau_q_fit(fits, output)
    fig, axes = figure(1, 1, width=4.2, height=3.4)
    ax = axes[0, 0]
    ax.errorbar(points["q"], points["tau"], yerr=points["tau_err"], fmt="o", ms=4, color="k", label="KWW fits")
    d_unit = "Angstrom^2/s" if q_unit == "1/Angstrom" else f"({q_unit})^-2/s"
    if result["success"]:
        q = np.geomspace(points["q"].min(), points["q"].max(), 100)
        ax.plot(q, 1 / (result["D"] * q ** result["n"]), color="C0",
                label=f"1/(D q^n): n = {result['n']:.2f} +- {result['n_err']:.2f}")
        ax.plot(q, 1 / (result["D2"] * q**2), "--", color="C1",
                label=f"n = 2: D = {result['D2']:.3g} +- {result['D2_err']:.2g} {d_unit}")
        verdict = (f"n = 2 within {analyses.DIFFUSION_SIGMAS:g} sigma (diffusion)" if result["diffusive"]
                   else f"n = 2 rejected at {analyses.DIFFUSION_SIGMAS:g} sigma")
    else:
        verdict = "no fit: " + result["message"][:40]
    ax.set_xscale("log")
    ax.set_yscale("log")
    if len(points):
        ax.set_xticks(points["q"], [f"{v:.3g}" for v in points["q"]], fontsize=7)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"q ({q_unit})")
    ax.set_ylabel("tau (s)")
    ax.set_title(f"tau(q): {verdict}")
    ax.legend(fontsize=7)
    save_figure(fig, figure_path)
    log.info("wrote %s", figure_path)
    return Path(figure_path)


def intensity_time_report(frames: str | os.PathLike, output: str | os.PathLike, figure_path: str | os.PathLike, *,
                          q_first: float, q_width: float, q_step: float, n_rings: int, min_pixel_mean: float,
                          flagged: str | os.PathLike | None = None) -> Path:
    """Intensity versus time per ring (:func:`speckleml.xpcs.analyses.intensity_time`) and a
    stability figure: ring intensities relative to their mean, and the mean counts per frame
    with its linear drift and the flagged frames (``flagged``: a flag-frames CSV).
    """
    from .badframes import read_frame_list

    table, info = analyses.intensity_time(frames, output, q_first=q_first, q_width=q_width, q_step=q_step,
                                          n_rings=n_rings, min_pixel_mean=min_pixel_mean)
    bad = read_frame_list(flagged) if flagged else []
    first = table[table["series"] == 0]
    t = first["t"].to_numpy()
    fig, axes = figure(1, 2, width=4.0, height=3.2)
    ax = axes[0, 0]
    for r, colour in enumerate(_colours(info["roi_q"].size)):
        values = first[f"ring_{r}"].to_numpy()
        ax.plot(t, values / values.mean(), lw=0.7, color=colour, label=f"{info['roi_q'][r]:.3g}")
    ax.set_xlabel("t (s)")
    ax.set_ylabel("I(t) / <I> per ring")
    ax.set_title("intensity vs time per ring")
    ax.legend(title=f"q ({info['q_unit']})", fontsize=6, ncol=2)
    ax = axes[0, 1]
    kept = np.setdiff1d(np.arange(t.size), bad)
    stats = analyses.drift(t[kept], first["all"].to_numpy()[kept])  # drift of the frames that are correlated
    ax.plot(t, first["all"], lw=0.8, color="k", label="mean counts / pixel")
    ax.plot(t, stats["intercept"] + stats["slope"] * t, "--", color="C0",
            label=f"drift {100 * stats['relative_drift']:.2g} %, std {100 * stats['relative_std']:.2g} %")
    if bad:
        keep = [b for b in bad if b < len(first)]
        ax.plot(t[keep], first["all"].to_numpy()[keep], "x", color="C3", ms=6, label=f"flagged ({len(keep)})")
    ax.set_xlabel("t (s)")
    ax.set_ylabel("mean counts per pixel per frame")
    ax.set_title("stability (series 0)")
    ax.legend(fontsize=6)
    save_figure(fig, figure_path)
    log.info("wrote %s", figure_path)
    return Path(figure_path)


def saxs_report(frames: str | os.PathLike, output: str | os.PathLike, figure_path: str | os.PathLike, *,
                n_bins: int) -> Path:
    """SAXS 1D (:func:`speckleml.xpcs.analyses.saxs_1d`) and its log-log figure."""
    table = analyses.saxs_1d(frames, output, n_bins=n_bins)
    q_unit = table.attrs.get("q_unit", "")
    fig, axes = figure(1, 1, width=4.2, height=3.4)
    ax = axes[0, 0]
    positive = table["intensity"] > 0
    ax.errorbar(table["q"][positive], table["intensity"][positive], yerr=table["intensity_err"][positive],
                fmt="o-", ms=2.5, lw=0.7, color="k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"q ({q_unit})")
    ax.set_ylabel("mean counts per pixel per frame")
    ax.set_title("SAXS 1D (time-averaged, ring-averaged)")
    save_figure(fig, figure_path)
    log.info("wrote %s", figure_path)
    return Path(figure_path)
