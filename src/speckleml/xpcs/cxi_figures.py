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


def plot_cxi_scan(frames: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Two panels: sample positions of the scan (µm, coloured by scan order) and the mean
    pattern over all frames (log colour scale, invalid pixels blank).

    Parameters
    ----------
    frames : path
        Frames store written by :func:`speckleml.xpcs.cxi.import_cxi` (attrs ``scan.positions``
        (n, 3) in m).
    output : path
        Figure to write (``.png``/``.pdf``).

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
    positions_um = np.asarray(scan["positions"], np.float64) * 1e6
    mean = np.asarray(store["frames"][0], np.float64).mean(axis=0)
    mean[~store["mask"]] = np.nan
    positive = mean[np.isfinite(mean) & (mean > 0)]
    if positive.size == 0:
        raise InputError(f"{frames}: the mean pattern has no positive value to show on a log scale")

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
    intensity = store.attrs.get("units", {}).get("intensity", "a.u.")
    fig.colorbar(image, ax=ax, label=f"mean intensity ({intensity})")
    return save_figure(fig, output)
