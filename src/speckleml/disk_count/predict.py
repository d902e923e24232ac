"""Classify user patterns with a trained disk-count model (paper 002 applied to new data).

Patterns must be sampled like the training patterns: same k pixel (``pi / L``) and the same
k grid (:mod:`speckleml.disk_count.kgrid`, recorded in the model); they are blocked, binned and
standardised exactly as the model's training inputs were.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)


def load_user_patterns(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read patterns from a ``.npy`` file or a frames store.

    Parameters
    ----------
    path : path
        ``.npy`` holding one pattern (y, x) or a stack (n, y, x), or a frames store
        (``*.zarr``, :func:`speckleml.stores.read_frames`) whose frames are flattened to a stack.

    Returns
    -------
    patterns : ndarray, float64, shape (n, y, x)
    mask : ndarray of bool, shape (y, x), or None
        Valid detector pixels (frames stores only).

    Raises
    ------
    InputError
        Missing file, another format, or an array that is not numeric (y, x) / (n, y, x).
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f"{path}: file does not exist")
    if source.suffix == ".zarr" or source.is_dir():
        from ..stores import read_frames

        store = read_frames(path)
        frames = store["frames"]
        return frames.reshape(-1, *frames.shape[-2:]).astype(np.float64), store["mask"]
    if source.suffix != ".npy":
        raise InputError(f"{path}: expected a .npy file or a frames store (*.zarr)")
    try:
        patterns = np.load(source, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if patterns.ndim == 2:
        patterns = patterns[None]
    if patterns.ndim != 3 or not np.issubdtype(patterns.dtype, np.number):
        raise InputError(f"{path}: expected a numeric (y, x) or (n, y, x) array, got {patterns.dtype} {patterns.shape}")
    return patterns.astype(np.float64), None


def predict_patterns(model_path, patterns_path, *, output=None, device: str):
    """Most probable disk number of every user pattern.

    Parameters
    ----------
    model_path : path
        Model file (:func:`~speckleml.disk_count.model.save_model`).
    patterns_path : path
        See :func:`load_user_patterns`; square patterns (odd side on the centred grid), on the
        model's k grid (metadata ``k_grid``; ``centred`` for models that lack it).
    output : path, optional
        Also write the table to this CSV.
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    pandas.DataFrame
        ``pattern, n_disks, probability``, one row per pattern.

    Raises
    ------
    InputError
        Unreadable model or patterns, patterns not square (of odd side on the centred grid).
    """
    import pandas as pd

    from ..atomic import write_csv
    from ..runtime import resolve_device
    from .data import standardise
    from .model import load_model, predict_proba

    torch_device = resolve_device(device)
    model, metadata = load_model(model_path, torch_device)
    patterns, mask = load_user_patterns(patterns_path)
    ny, nx = patterns.shape[-2:]
    grid = metadata.get("k_grid", "centred")
    if ny != nx or (grid == "centred" and ny % 2 == 0):
        raise InputError(f"{patterns_path}: patterns must be square"
                         f"{' with an odd side (k = 0 in the centre)' if grid == 'centred' else ''}, got {ny}x{nx}")
    if mask is not None:
        patterns = np.where(mask, patterns, 0.0)  # invalid detector pixels carry no intensity
    if np.nanmin(patterns) < 0:
        log.warning("%s: negative intensities found; the model was trained on intensities >= 0", patterns_path)
    if metadata.get("source_size") and ny != metadata["source_size"]:
        log.warning("patterns are %dx%d, the model was trained on %dx%d (same k pixel assumed)", ny, nx,
                    metadata["source_size"], metadata["source_size"])
    inputs = standardise(patterns, int(metadata["block"]), int(metadata.get("bin", 1)), grid,
                         metadata.get("scale", "linear"), metadata.get("stats_size"))
    probability = predict_proba(model, inputs, torch_device)
    classes = np.asarray(metadata["classes"])
    best = probability.argmax(1)
    table = pd.DataFrame({"pattern": np.arange(len(inputs)), "n_disks": classes[best],
                          "probability": probability[np.arange(len(best)), best]})
    if output:
        write_csv(table, output)
    return table
