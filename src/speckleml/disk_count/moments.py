"""First-moment baseline of paper 002 (§4 Discussion, Fig. 6).

A classical width of the speckle (the intensity-weighted mean distance from k = 0) shrinks
with the disk size, hence grows with the disk number at fixed total area; the paper shows
that its spread across configurations is too large to count disks, which the CNN does.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError
from .data import standardise
from .kgrid import block_mask

log = logging.getLogger(__name__)


def first_moments(patterns: np.ndarray, block: int, k_norm: np.ndarray,
                  grid: str = "quadrant") -> dict[str, np.ndarray]:
    """The four first-moment widths of paper 002 (Discussion, Fig. 6) for each pattern.

    With ``I`` the raw intensity blocked around k = 0, ``Z`` its standardised form and ``|k|`` the
    distance of each pixel from k = 0 (pixels inside the block are left out):

    - ``raw``: ``mean(I |k|) / mean(I)``
    - ``shifted``: ``mean(Z |k|) / (mean(Z) + 1)`` ("shifted standardised", +1 avoids 0/0)
    - ``absolute``: ``mean(|Z| |k|)`` ("absolute standardised")
    - ``normalized``: ``mean(N |k|) / mean(N)`` with ``N = (Z - min Z) / (max Z - min Z)``

    Parameters
    ----------
    patterns : ndarray, shape (batch, y, x)
        Raw intensities (>= 0).
    block : int
        Side of the blocked square around k = 0 (odd, or 0).
    k_norm : ndarray, shape (y, x)
        Distance of every pixel from k = 0, in the unit the widths are wanted in (k pixels).
    grid : {"quadrant", "centred"}
        k grid of the patterns (places the block).

    Returns
    -------
    dict of str to ndarray (batch,)
        The four widths, in the unit of ``k_norm``.

    Raises
    ------
    InputError
        Bad ``block`` or a constant pattern (see :func:`~speckleml.disk_count.data.standardise`).
    """
    raw = np.asarray(patterns, np.float64)
    z = standardise(raw, block, grid=grid).astype(np.float64)
    keep = ~block_mask(raw.shape[1:], block, grid)
    k = np.asarray(k_norm, np.float64)[keep]
    raw_kept, z_kept = raw[:, keep], z[:, keep]
    lo, hi = z_kept.min(axis=1, keepdims=True), z_kept.max(axis=1, keepdims=True)
    normalized = (z_kept - lo) / (hi - lo)
    return {
        "raw": (raw_kept * k).mean(axis=1) / raw_kept.mean(axis=1),
        "shifted": (z_kept * k).mean(axis=1) / (z_kept.mean(axis=1) + 1.0),
        "absolute": (np.abs(z_kept) * k).mean(axis=1),
        "normalized": (normalized * k).mean(axis=1) / normalized.mean(axis=1),
    }


def moments_table(source, output, *, block: int, per_class: int, seed: int):
    """First moments (:func:`first_moments`) of ``per_class`` random patterns per class, as a CSV.

    Parameters
    ----------
    source : path
        Patterns store (raw intensities) of :data:`~speckleml.disk_count.data.PATTERNS`.
    output : path
        CSV to write: ``pattern, n_disks, raw, shifted, absolute, normalized``; widths in k
        pixels (``pi / L``), the paper's "distance from q = 0".
    block : int
        Blocked square around k = 0 (odd, or 0); its pixels are left out.
    per_class : int
        Patterns sampled per class without replacement (>= 1; all when a class has fewer).
    seed : int
        Seed of the sample.

    Returns
    -------
    pandas.DataFrame
        The table written.

    Raises
    ------
    InputError
        ``per_class`` < 1 or more than a class holds, unreadable store, bad ``block``.
    """
    import pandas as pd

    from ..atomic import write_csv
    from ..stores import read_store
    from .data import PATTERNS

    if per_class < 1:
        raise InputError(f"--per-class must be >= 1, got {per_class}")
    store = read_store(source, PATTERNS)
    labels = store["n_disks"]
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if per_class > counts.min():
        raise InputError(f"--per-class {per_class}: {source} holds only {counts.min()} patterns of "
                         f"n = {classes[counts.argmin()]}")
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes])
    k_pixel = float(np.pi / store.attrs["box"])
    k_norm = np.hypot(*np.meshgrid(store["ky"], store["kx"], indexing="ij")) / k_pixel
    values = first_moments(store["patterns"][chosen], block, k_norm, store.attrs.get("k_grid", "centred"))
    table = pd.DataFrame({"pattern": chosen, "n_disks": labels[chosen], **values})
    write_csv(table, output)
    log.info("wrote first moments of %d patterns to %s", len(chosen), output)
    return table
