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
        Missing file, another format, an array that is not real-valued (y, x) / (n, y, x),
        empty, or holds NaN or infinite values (the error names the file).
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f"{path}: file does not exist")
    if source.suffix == ".zarr" or source.is_dir():
        from ..stores import read_frames

        store = read_frames(path)
        frames = store["frames"]
        return check_values(frames.reshape(-1, *frames.shape[-2:]), path), store["mask"]
    if source.suffix != ".npy":
        raise InputError(f"{path}: expected a .npy file or a frames store (*.zarr)")
    try:
        patterns = np.load(source, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if patterns.ndim == 2:
        patterns = patterns[None]
    # a complex array is an amplitude, not an intensity: casting would drop its imaginary part
    real = np.issubdtype(patterns.dtype, np.integer) or np.issubdtype(patterns.dtype, np.floating)
    if patterns.ndim != 3 or not real:
        raise InputError(f"{path}: expected a real-valued (y, x) or (n, y, x) intensity array, "
                         f"got {patterns.dtype} {patterns.shape}")
    return check_values(patterns, path), None


def check_values(patterns: np.ndarray, path) -> np.ndarray:
    """``patterns`` as float64 after checking it is a non-empty stack of finite values.

    Raises
    ------
    InputError
        Naming ``path``: no pattern or no pixel, or NaN / infinite values.
    """
    if patterns.size == 0:
        raise InputError(f"{path}: no patterns (array shape {patterns.shape})")
    patterns = patterns.astype(np.float64)
    if not np.isfinite(patterns).all():
        raise InputError(f"{path}: patterns contain NaN or infinite values")
    return patterns


def check_k_grid(patterns: np.ndarray, grid: str, path, valid: np.ndarray | None = None) -> None:
    """Check that every pattern has its k = 0 pixel where the model's k grid puts it.

    For disk speckle ``|F(k)| <= sum_j |a_j(0)| = F(0)`` (every disk amplitude peaks at k = 0),
    so ``I(0)`` is the pattern's global maximum and positive. A pattern whose maximum lies
    elsewhere is on another grid (e.g. an fftshifted, centred pattern for a quadrant model),
    or is not a disk speckle pattern; an all-zero pattern holds no disks.

    Parameters
    ----------
    patterns : ndarray, shape (n, y, x)
    grid : {"quadrant", "centred"}
    path : path
        Named in the error.
    valid : ndarray of bool, shape (y, x), optional
        Valid detector pixels; when k = 0 is not valid (a beamstop) the check is skipped.

    Raises
    ------
    InputError
        A pattern with ``I(0) <= 0`` or a larger intensity at another k.
    """
    from .kgrid import k_index

    ny, nx = patterns.shape[-2:]
    origin = (int(np.flatnonzero(k_index(ny, grid) == 0)[0]), int(np.flatnonzero(k_index(nx, grid) == 0)[0]))
    if valid is not None and not valid[origin]:
        log.warning("%s: the k = 0 pixel is masked; the k grid of the patterns cannot be checked", path)
        return
    at_origin = patterns[:, origin[0], origin[1]]
    # 1e-6: float32 rounding of the amplitude sum; a pattern on another grid misses by far more
    bad = np.flatnonzero((at_origin <= 0) | (patterns.max(axis=(1, 2)) > at_origin * (1 + 1e-6)))
    if bad.size:
        i = int(bad[0])
        if at_origin[i] <= 0:
            raise InputError(f"{path}: pattern {i} has I(k = 0) = {at_origin[i]:g} at pixel {origin}: no disks, "
                             f"or not on the model's {grid} k grid ({bad.size} such patterns)")
        where = tuple(int(w) for w in np.unravel_index(int(patterns[i].argmax()), (ny, nx)))
        raise InputError(f"{path}: pattern {i} is not on the model's {grid} k grid: its maximum is at pixel "
                         f"{where}, not at k = 0 (pixel {origin}) ({bad.size} such patterns)")


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
        Unreadable model or patterns, patterns not square (of odd side on the centred grid),
        smaller than the model's training patterns (a k range the model never saw), or not on
        the model's k grid (:func:`check_k_grid`).
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
    trained = metadata.get("source_size")
    if trained and ny < trained:
        raise InputError(f"{patterns_path}: patterns are {ny}x{nx}, smaller than the model's {trained}x{trained} "
                         "training patterns (only a larger k range at the same k pixel is classified)")
    if mask is not None:
        patterns = np.where(mask, patterns, 0.0)  # invalid detector pixels carry no intensity
    if np.min(patterns) < 0:
        log.warning("%s: negative intensities found; the model was trained on intensities >= 0", patterns_path)
    check_k_grid(patterns, grid, patterns_path, mask)
    if trained and ny != trained:
        log.info("patterns are %dx%d, the model was trained on %dx%d (same k pixel assumed)", ny, nx,
                 trained, trained)
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
