"""Shared matplotlib style and atomic figure saving."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: rules run on clusters without a display
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_output  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": False,
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the project style (readable at report size, colour-blind-safe defaults)."""
    plt.rcParams.update(STYLE)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save ``fig`` atomically (format from the suffix) and close it."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def figure(nrows: int = 1, ncols: int = 1, width: float = 3.2, height: float = 2.8, **kwargs):
    """``plt.subplots`` with a per-panel size in inches and the project style."""
    use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                        constrained_layout=True, **kwargs)
