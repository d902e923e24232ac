"""Figure of an imported ptychography scan: scan positions and mean diffraction pattern."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

from ..errors import InputError
from ..plotting import figure, save_figure
from ..stores import read_frames

#: Axis labels of the two panels (tests look for them).
POSITION_LABELS = ("x (µm)", "y (µm)")
PATTERN_LABELS = ("column (pixel)", "row (pixel)")
#: Figure formats the figure option accepts.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def draw_scan(positions: np.ndarray, mean: np.ndarray, valid: np.ndarray, intensity: str = "a.u.", source=""):
    """Two panels: sample positions of the scan (µm, coloured by scan order) and the mean
    pattern over all frames (log colour scale, invalid pixels blank). Not saved.

    Parameters
    ----------
    positions : ndarray, shape (n, 2) or (n, 3)
        Sample positions (x, y[, z]) in m.
    mean : ndarray, shape (ny, nx)
        Mean pattern over the frames.
    valid : ndarray of bool, shape (ny, nx)
        True = valid pixel.
    intensity : str
        Unit of ``mean`` (colour-bar label).
    source : str
        Name of the data for error messages.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputError
        No valid pixel with a positive mean (nothing to show on a log scale).
    """
    positions_um = np.asarray(positions, np.float64) * 1e6
    mean = np.where(valid, np.asarray(mean, np.float64), np.nan)
    positive = mean[np.isfinite(mean) & (mean > 0)]
    if positive.size == 0:
        raise InputError(f"{source}: the mean pattern has no positive value to show on a log scale")

    fig, axes = figure(1, 2, width=3.4, height=3.0)
    ax = axes[0, 0]
    order = ax.scatter(positions_um[:, 0], positions_um[:, 1], c=np.arange(len(positions_um)), s=8, cmap="viridis")
    ax.plot(positions_um[:, 0], positions_um[:, 1], lw=0.3, color="0.6", zorder=0)
    ax.set(xlabel=POSITION_LABELS[0], ylabel=POSITION_LABELS[1], aspect="equal",
           title=f"scan positions ({len(positions_um)})")
    fig.colorbar(order, ax=ax, label="scan point")
    ax = axes[0, 1]
    image = ax.imshow(mean, norm=LogNorm(vmin=positive.min(), vmax=positive.max()), origin="upper",
                      interpolation="nearest")
    ax.set(xlabel=PATTERN_LABELS[0], ylabel=PATTERN_LABELS[1], title="mean pattern")
    fig.colorbar(image, ax=ax, label=f"mean intensity ({intensity})")
    return fig


def plot_cxi_scan(frames: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Figure of an imported scan (:func:`draw_scan`) from its frames store, saved to ``output``.

    Parameters
    ----------
    frames : path
        Frames store written by :func:`speckleml.xpcs.cxi.import_cxi` (attrs ``scan.positions``
        (n, 3) in m).
    output : path
        Figure to write (``.png``/``.pdf``/``.svg``).

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InputError
        A frames store without scan positions in metres, or with no positive mean count.
    """
    store = read_frames(frames, lazy=True)
    scan = store.attrs.get("scan")
    if not isinstance(scan, dict) or scan.get("units") != "m" or "positions" not in scan:
        raise InputError(f"{frames}: no scan positions in m (attrs 'scan'); import it with speckleml import-cxi")
    mean = np.asarray(store["frames"][0], np.float64).mean(axis=0)
    fig = draw_scan(scan["positions"], mean, store["mask"], store.attrs.get("units", {}).get("intensity", "a.u."),
                    source=str(frames))
    return save_figure(fig, output)
