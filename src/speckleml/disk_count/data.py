"""Preprocessing, splits and the study's zarr stores (paper 002, Data processing).

Each pattern gets its beamstop block around k = 0 (11 x 11 in the paper; see
:mod:`speckleml.disk_count.kgrid` for where it sits on each k grid) set to zero and is then
standardised to zero mean and unit variance over the whole image, so that the classifier
cannot use the overall intensity, only the structure of the pattern.

Intensity scale: the paper standardises the intensity itself (``linear``). ``log`` standardises
``log I`` instead. For monodisperse disks ``I(k) = |F(k)|^2 S(k)`` (form factor times the
speckle of the disk centres), so ``log I`` is the smooth envelope plus a speckle term whose
statistics are the same at every k: a convolutional feature of ``log I`` means the same thing
anywhere on the pattern, and the global average pool over a pattern of twice the k range
averages the same kind of evidence (the transfer of paper Fig. 4). In linear intensity the
envelope's k^-3 decay leaves the outer k range near a constant the model never learnt to ignore.
``log_k3`` (the default scale) also removes that decay: ``log(I |k|^3)``, the log of the
Porod-compensated intensity (a 2D disk's ``|F|^2`` falls on average as ``8 pi r / k^3``), whose
envelope beyond the first ring is a k-independent oscillation of period ``pi / r``.

The statistics of the standardisation come from the whole pattern (paper) or, with
``stats_size``, from a fixed k window (the training patterns' k range), so that a pattern of a
larger k range gets exactly the training inputs' values where the two overlap.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError
from ..stores import FLOATS, ArraySpec, StoreSchema, register_schema
from .kgrid import block_mask, k_index

log = logging.getLogger(__name__)

#: Split codes stored in the ``split`` array of an inputs store.
SPLITS = {"train": 0, "val": 1, "test": 2}

PATTERNS = register_schema(StoreSchema(
    name="disk_patterns", version=1,
    description="speckle intensities of random disk systems with their disk numbers and geometry",
    arrays={
        "patterns": ArraySpec(("pattern", "ky", "kx"), ("float32",), finite=True),
        "n_disks": ArraySpec(("pattern",), ("int64",)),
        "disks": ArraySpec(("pattern", "disk", "param"), ("float64",)),
        "kx": ArraySpec(("kx",), FLOATS),
        "ky": ArraySpec(("ky",), FLOATS),
    },
    required_attrs=("box", "dispersity"),
))

INPUTS = register_schema(StoreSchema(
    name="disk_inputs", version=1,
    description="preprocessed (centre-blocked, standardised) patterns with labels and split",
    arrays={
        "inputs": ArraySpec(("pattern", "y", "x"), ("float32",), finite=True),
        "n_disks": ArraySpec(("pattern",), ("int64",)),
        "split": ArraySpec(("pattern",), ("int8",)),
    },
    required_attrs=("block", "dispersity"),
))

MAPS = register_schema(StoreSchema(
    name="disk_maps", version=1,
    description="saliency and Grad-CAM maps of one test pattern per class",
    arrays={
        "inputs": ArraySpec(("sample", "y", "x"), ("float32",), finite=True),
        "saliency": ArraySpec(("sample", "y", "x"), ("float32",), finite=True),
        "gradcam": ArraySpec(("sample", "y", "x"), ("float32",), finite=True),
        "n_disks": ArraySpec(("sample",), ("int64",)),
        "predicted": ArraySpec(("sample",), ("int64",)),
        "probability": ArraySpec(("sample",), ("float32",)),
    },
))


def bin_patterns(patterns: np.ndarray, factor: int, grid: str = "quadrant") -> np.ndarray:
    """Sum ``factor x factor`` pixel blocks (a detector with coarser pixels).

    Parameters
    ----------
    patterns : ndarray, shape (..., y, x)
    factor : int
        Odd binning factor; 1 returns the input unchanged.
    grid : {"quadrant", "centred"}
        k grid of the patterns (:mod:`speckleml.disk_count.kgrid`). Quadrant: bins start at
        the k = 0 corner and the far edge is cropped to a multiple of ``factor`` (bin ``i`` is
        centred on ``n = i factor + (factor-1)/2``). Centred: the pattern (square, odd side) is
        cropped symmetrically to the largest odd multiple of ``factor`` (e.g. 257 -> 255 for
        ``factor`` 3) so that the centre bin is centred on k = 0.

    Returns
    -------
    ndarray, shape (..., y // factor, x // factor) (centred: the odd size below it)
        The k pixel is ``factor`` times larger.

    Raises
    ------
    InputError
        Even or non-positive ``factor``, a factor larger than the pattern, a centred pattern
        that is not square of odd side, unknown ``grid``.
    """
    if factor < 1 or factor % 2 == 0:
        raise InputError(f"--bin must be an odd positive integer, got {factor}")
    patterns = np.asarray(patterns)
    if factor == 1:
        return patterns
    ny, nx = patterns.shape[-2:]
    if grid == "quadrant":
        oy, ox = ny // factor, nx // factor
        if min(oy, ox) < 1:
            raise InputError(f"--bin {factor} is larger than the {ny}x{nx} pattern")
        core = patterns[..., : oy * factor, : ox * factor]
        return core.reshape(*patterns.shape[:-2], oy, factor, ox, factor).sum(axis=(-3, -1))
    k_index(ny, grid)  # validates grid
    if ny != nx or ny % 2 == 0:
        raise InputError(f"binning needs square patterns of odd size, got {ny}x{nx}")
    out = ny // factor if (ny // factor) % 2 == 1 else ny // factor - 1
    if out < 1:
        raise InputError(f"--bin {factor} is larger than the {ny}x{nx} pattern")
    crop = (ny - out * factor) // 2
    core = patterns[..., crop: crop + out * factor, crop: crop + out * factor]
    return core.reshape(*patterns.shape[:-2], out, factor, out, factor).sum(axis=(-3, -1))


#: Intensity scales of a standardised input: the intensity (paper), its logarithm, or the logarithm of
#: the Porod-compensated intensity ``I |k|^3`` (the 2D disk form factor's mean decay removed).
SCALES = ("linear", "log", "log_k3")
#: Power of |k| in the ``log_k3`` scale: a 2D disk's ``|F(k)|^2 = (pi r^2)^2 (2 J1(kr)/(kr))^2`` decays on
#: average as ``8 pi r / k^3`` for ``kr >> 1`` (J1's asymptote), the 2D form of Porod's law.
POROD_POWER = 3
#: Floor of the log scale as a fraction of the pattern's maximum (blocked and zero-intensity pixels).
#: The maximum sits at low k, inside any smaller k range of the same pattern, so a corner crop of a
#: log input is the log input of the smaller pattern (the k-range augmentation relies on it).
LOG_FLOOR = 1e-6


def bin_k_index(size: int, factor: int, grid: str = "quadrant") -> np.ndarray:
    """k coordinate ``n`` (k = n pi/L) of the centre of every bin of :func:`bin_patterns` along one axis.

    Parameters
    ----------
    size : int
        Pixels of the unbinned axis.
    factor : int
        Odd binning factor (1 = none).
    grid : {"quadrant", "centred"}

    Returns
    -------
    ndarray, float64, shape (binned size,)
        Quadrant: ``i factor + (factor - 1) / 2``; centred: ``i factor`` for ``i`` from minus to plus
        half the binned size.

    Raises
    ------
    InputError
        As :func:`bin_patterns`.
    """
    axis = k_index(size, grid).astype(np.float64)
    square = np.broadcast_to(axis, (size, size))  # bin_patterns takes (y, x); the mean of a bin is its centre
    return bin_patterns(square, factor, grid)[0] / factor**2


def stats_window(shape: tuple[int, int], stats_size: int | None, bin_factor: int = 1,
                 grid: str = "quadrant") -> tuple[slice, slice]:
    """The (y, x) slices of a binned input whose pixels give its standardisation statistics.

    Parameters
    ----------
    shape : (ny, nx)
        Binned input shape.
    stats_size : int or None
        Side in unbinned k pixels of the k window (quadrant: ``n < stats_size`` from k = 0;
        centred: the centred square); None or a window at least the input's = the whole input.
    bin_factor : int
        Binning factor of the input.
    grid : {"quadrant", "centred"}

    Returns
    -------
    (slice, slice)

    Raises
    ------
    InputError
        A window of less than 3 binned pixels.
    """
    ny, nx = shape
    if stats_size is None:
        return slice(0, ny), slice(0, nx)
    side = stats_size // bin_factor
    if grid == "centred" and side % 2 == 0:
        side -= 1
    if side < 3:
        raise InputError(f"--stats-size {stats_size} leaves fewer than 3 binned pixels")
    if grid == "quadrant":
        return slice(0, min(side, ny)), slice(0, min(side, nx))
    y0, x0 = max((ny - side) // 2, 0), max((nx - side) // 2, 0)
    return slice(y0, ny - y0), slice(x0, nx - x0)


def standardise(patterns: np.ndarray, block: int, bin_factor: int = 1, grid: str = "quadrant",
                scale: str = "linear", stats_size: int | None = None) -> np.ndarray:
    """Block k = 0 (set to 0), optionally bin, and standardise every pattern (paper 002 §2, "Data processing").

    Parameters
    ----------
    patterns : ndarray, shape (batch, y, x)
        Speckle intensities.
    block : int
        Side of the blocked centre square in pixels of the input (odd, 0 = none); the paper
        blocks 11 x 11.
    bin_factor : int
        Odd binning factor applied after blocking (1 = none, the paper).
    grid : {"quadrant", "centred"}
        k grid of the patterns; places the block at k = 0 (:func:`~.kgrid.block_mask`).
    scale : {"linear", "log", "log_k3"}
        Standardise the (blocked, binned) intensity ``I`` (paper),
        ``log(max(I, LOG_FLOOR * max(I)))`` (the floor keeps blocked pixels finite), or that plus
        ``3 log |k|`` (``|k|`` of the bin centre in k pixels, at least 1): the log of the
        Porod-compensated ``I |k|^3``, whose statistics beyond the first form-factor ring no
        longer depend on k (:data:`POROD_POWER`).

    stats_size : int, optional
        Side in unbinned k pixels of the k window whose pixels give each pattern's mean and
        standard deviation (:func:`stats_window`; quadrant: the corner ``n < stats_size``).
        None: the whole pattern (paper). A pattern of a larger k range standardised over the
        training patterns' window gets the training inputs' values where the two overlap.

    Returns
    -------
    ndarray, float32, shape (batch, y', x')
        Zero mean and unit variance per pattern (over the window).

    Raises
    ------
    InputError
        Not (batch, y, x), non-finite values, bad ``block``/``bin_factor``/``grid``/``scale``,
        or a pattern that is constant outside the block.
    """
    if scale not in SCALES:
        raise InputError(f"--scale must be one of {SCALES}, got {scale!r}")
    patterns = np.asarray(patterns, dtype=np.float64)
    if patterns.ndim != 3:
        raise InputError(f"patterns must be (batch, y, x), got shape {patterns.shape}")
    if not np.isfinite(patterns).all():
        raise InputError("patterns contain NaN or infinite values")
    blocked = patterns.copy()
    blocked[:, block_mask(patterns.shape[1:], block, grid)] = 0.0
    blocked = bin_patterns(blocked, bin_factor, grid)
    if scale in ("log", "log_k3"):
        floor = LOG_FLOOR * blocked.max(axis=(1, 2), keepdims=True)
        blocked = np.log(np.maximum(blocked, np.where(floor > 0, floor, 1.0)))
    if scale == "log_k3":
        ky = bin_k_index(patterns.shape[1], bin_factor, grid)
        kx = bin_k_index(patterns.shape[2], bin_factor, grid)
        # |k| >= 1 pixel: k = 0 lies under the beamstop, where the floor already stands
        blocked = blocked + POROD_POWER * np.log(np.maximum(np.hypot(ky[:, None], kx[None, :]), 1.0))
    window = (slice(None), *stats_window(blocked.shape[1:], stats_size, bin_factor, grid))
    mean = blocked[window].mean(axis=(1, 2), keepdims=True)
    std = blocked[window].std(axis=(1, 2), keepdims=True)
    if (std == 0).any():
        index = int(np.flatnonzero(std.reshape(-1) == 0)[0])
        raise InputError(f"pattern {index} is constant outside the blocked centre; cannot standardise")
    return ((blocked - mean) / std).astype(np.float32)


def stratified_split(labels: np.ndarray, fractions: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Deterministic train/val/test split with the same number of test patterns per class.

    The test set takes ``round(test_fraction * count)`` patterns of every class (paper:
    exactly 100 of the 1000 per class); train and validation are then split at random
    from the rest in the ratio of their fractions (paper: 15200 / 1900).

    Parameters
    ----------
    labels : ndarray of int, shape (pattern,)
        Disk numbers.
    fractions : (train, val, test)
        Non-negative, summing to 1.
    rng : numpy.random.Generator
        Draws the split.

    Raises
    ------
    InputError
        Fractions that are negative or do not sum to 1, or that leave a split empty.

    Returns
    -------
    ndarray, int8
        One :data:`SPLITS` code per pattern.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise InputError(f"--split needs three non-negative fractions summing to 1, got {fractions}")
    labels = np.asarray(labels)
    split = np.full(labels.shape, SPLITS["train"], np.int8)
    rest = []
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_test = int(round(fractions[2] * members.size))
        split[members[:n_test]] = SPLITS["test"]
        rest.append(members[n_test:])
    rest = rng.permutation(np.concatenate(rest)) if rest else np.array([], int)
    train_val = fractions[0] + fractions[1]
    n_val = int(round(rest.size * fractions[1] / train_val)) if train_val > 0 else 0
    split[rest[:n_val]] = SPLITS["val"]
    empty = [name for name, code in SPLITS.items() if not (split == code).any()]
    if empty:  # training needs train and validation patterns, evaluation test patterns
        raise InputError(f"--split {' '.join(f'{f:g}' for f in fractions)}: leaves the {' and '.join(empty)} "
                         f"split empty for {labels.size} patterns (use --all-test for a transfer set)")
    return split


def preprocess_store(source, output, *, block: int, bin_factor: int, split: tuple[float, float, float] | None,
                     seed: int, scale: str = "linear", stats_size: int | None = None):
    """Block, bin and standardise a patterns store into an inputs store with a split.

    Paper 002 §2 "Data processing" (11 x 11 centre block, per-pattern standardisation) and
    "Machine learning model and data" (test set of equal size per class).

    Parameters
    ----------
    source : path
        Patterns store (:data:`PATTERNS`).
    output : path
        Inputs store to write (:data:`INPUTS`), atomically.
    block : int
        Side in k pixels of the blocked square around k = 0 (odd, or 0 for none); the k grid
        is the patterns store's ``k_grid`` attribute (``centred`` when absent).
    bin_factor : int
        Odd k-pixel binning factor (1 = none).
    split : (train, val, test) fractions, or None
        Fractions summing to 1 (see :func:`stratified_split`); ``None`` marks every pattern as
        test (a transfer set classified by a model trained on another size).
    seed : int
        Seed of the split.
    scale : {"linear", "log", "log_k3"}
        Intensity scale that is standardised (:func:`standardise`; the paper's is linear).
    stats_size : int, optional
        Side in k pixels of the window whose pixels give the standardisation statistics
        (:func:`stats_window`); None = the whole pattern (paper).

    Returns
    -------
    pathlib.Path
        ``output``: ``inputs`` (pattern, y, x) float32, ``n_disks`` and ``split`` codes.

    Raises
    ------
    InputError
        Unreadable store, bad ``block``/``bin_factor``/``split``, constant pattern.
    """
    from ..provenance import make_provenance
    from ..stores import read_store, write_store

    store = read_store(source, PATTERNS)
    grid = store.attrs.get("k_grid", "centred")  # stores written before the paper's grid are centred
    inputs = standardise(store["patterns"], block, bin_factor, grid, scale, stats_size)
    labels = store["n_disks"]
    if split is None:
        codes = np.full(labels.shape, SPLITS["test"], np.int8)
    else:
        codes = stratified_split(labels, tuple(split), np.random.default_rng(seed))
    attrs = {"block": block, "bin": bin_factor, "dispersity": store.attrs["dispersity"],
             "box": store.attrs["box"], "source_size": int(store["patterns"].shape[-1]),
             "k_pixel": store.attrs.get("k_pixel", float(np.pi / store.attrs["box"])) * bin_factor,
             "k_grid": grid, "scale": scale, "stats_size": stats_size,
             "normalisation": f"k = 0 block set to 0, binned, {scale} intensity to zero mean and unit variance"
                              f" over {'the whole pattern' if stats_size is None else f'n < {stats_size}'}",
             "splits": SPLITS}
    settings = {"block": block, "bin": bin_factor, "scale": scale, "stats_size": stats_size, "split": None if split is None else list(split), "seed": seed}
    path = write_store(output, INPUTS, {"inputs": inputs, "n_disks": labels, "split": codes}, attrs=attrs,
                       provenance=make_provenance(config=settings, seed=seed, inputs=[source]))
    counts = {name: int((codes == code).sum()) for name, code in SPLITS.items()}
    log.info("wrote %s inputs of %dx%d to %s", counts, *inputs.shape[1:], output)
    return path
