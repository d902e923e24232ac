"""Data set of correlation functions for random system parameters (paper 003, Sec. III B).

Draw ``i`` takes its parameters and its configurations from ``SeedSequence([seed, i])``, so a
draw does not depend on how the draws are split into chunks: the chunk jobs of the workflow
(one per ``chunk``, spread over a cluster) and a single job give the same arrays.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np

from ..stores import FLOATS, ArraySpec, StoreSchema, read_store, register_schema, write_store
from .system import PAIR_ESTIMATORS, PARAM_NAMES, PolarGrid, ShearSystem

log = logging.getLogger(__name__)

#: Paper ranges: nL^2 ~ U(100, 200), R_s ~ U(0, 0.3), D2 ~ U(0.5, 3), gamma L ~ U(5, 30).
PAPER_RANGES = {"nL2": (100.0, 200.0), "R_s": (0.0, 0.3), "D2": (0.5, 3.0), "gamma_L": (5.0, 30.0)}

DATASET = register_schema(StoreSchema(
    name="shear_dataset", version=1,
    description="angular g(theta) and radial g(q) correlation functions for parameter draws",
    arrays={
        "params": ArraySpec(("draw", "param"), ("float64",), finite=True),
        "draw_index": ArraySpec(("draw",), ("int64",)),
        "g_theta": ArraySpec(("draw", "theta"), FLOATS, finite=True),
        "g_q": ArraySpec(("draw", "q"), FLOATS, finite=True),
        "g_theta_err": ArraySpec(("draw", "theta"), FLOATS, required=False),
        "mean_i_q": ArraySpec(("draw", "q"), FLOATS, required=False),
        "q": ArraySpec(("q",), ("float64",)),
        "theta": ArraySpec(("theta",), ("float64",)),
    },
    required_attrs=("param_names", "estimator", "nonaffine_scaling", "configs"),
))


def chunk_draws(n_draws: int, n_chunks: int, chunk: int) -> range:
    """Global draw indices of one chunk (contiguous, sizes differ by at most one).

    Parameters
    ----------
    n_draws, n_chunks, chunk : int
        Draws in all, chunks, and the chunk (0-based).

    Returns
    -------
    range

    Raises
    ------
    ValueError
        ``chunk`` outside ``[0, n_chunks)`` or more chunks than draws.
    """
    if not 0 <= chunk < n_chunks or n_chunks < 1 or n_draws < n_chunks:
        raise ValueError(f"chunk {chunk} of {n_chunks} for {n_draws} draws is not valid")
    bounds = np.linspace(0, n_draws, n_chunks + 1).round().astype(int)
    return range(int(bounds[chunk]), int(bounds[chunk + 1]))


def draw_parameters(seed: int, draw: int, ranges: Mapping[str, Sequence[float]] = PAPER_RANGES) -> ShearSystem:
    """Uniform parameters of one draw from ``SeedSequence([seed, draw, 0])`` (paper Sec. III B).

    Parameters
    ----------
    seed, draw : int
    ranges : mapping ``{name: (low, high)}``
        For every name of :data:`PARAM_NAMES` (units of R0).

    Returns
    -------
    ShearSystem
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(draw), 0]))
    values = [rng.uniform(*ranges[name]) for name in PARAM_NAMES]
    return ShearSystem.from_array(values)


def simulate_draws(draws: Sequence[int], seed: int, n_configs: int, grid: PolarGrid,
                   ranges: Mapping[str, Sequence[float]] = PAPER_RANGES, estimator: str = "speckle",
                   nonaffine_scaling: str = "paper", batch: int = 8, dtype=None, device="cpu",
                   iterate=lambda it, n: it, incoherent_configs: int = 0) -> dict[str, np.ndarray]:
    """Simulate ``g`` for each draw; returns the arrays of a :data:`DATASET` store.

    Parameters
    ----------
    draws : sequence of int
        Global draw indices; draw ``i`` uses ``SeedSequence([seed, i, 0])`` for its parameters and
        ``SeedSequence([seed, i, 1])`` for its configurations.
    seed, n_configs, grid, ranges, estimator, nonaffine_scaling, batch, dtype, device, incoherent_configs
        See :func:`simulate_chunk` (``dtype`` a torch dtype here, default float32).
    iterate : callable ``(iterable, total) -> iterable``
        Wraps the loop over draws (progress reporting).

    Returns
    -------
    dict
        ``params`` (draws, 4), ``g_theta`` (draws, n_theta), ``g_q`` (draws, n_q),
        ``g_theta_err`` (draws, n_theta), ``mean_i_q`` (draws, n_q), ``draw_index`` (draws,),
        ``q`` and ``theta``.
    """
    import torch

    from .simulate import simulate_correlation

    dtype = dtype or torch.float32
    rows = {k: [] for k in ("params", "g_theta", "g_q", "g_theta_err", "mean_i_q")}
    for draw in iterate(draws, len(draws)):
        system = draw_parameters(seed, draw, ranges)
        out = simulate_correlation(system, n_configs, grid, np.random.SeedSequence([int(seed), int(draw), 1]),
                                   estimator=estimator, nonaffine_scaling=nonaffine_scaling,
                                   batch=batch, dtype=dtype, device=device, incoherent_configs=incoherent_configs)
        rows["params"].append(system.as_array())
        rows["g_theta"].append(out["g_theta"])
        rows["g_q"].append(out["g_q"])
        # error of a q-average of independent speckle points (exact for the speckle estimator;
        # the pairs estimator's errors are correlated in q, so this understates them)
        rows["g_theta_err"].append(np.sqrt((out["g_err"] ** 2).sum(axis=0)) / grid.n_q)
        rows["mean_i_q"].append(out["mean_i"].mean(axis=1))
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in rows.items()}
    arrays["draw_index"] = np.asarray(list(draws), dtype=np.int64)
    arrays["q"], arrays["theta"] = grid.q(), grid.theta()
    return arrays


def check_ranges(ranges: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
    """Validate the uniform ranges of the four parameters (units of R0).

    Returns
    -------
    dict ``{name: (low, high)}`` in :data:`PARAM_NAMES` order.

    Raises
    ------
    InputError
        A parameter is missing, or ``low > high``, or a range allows ``nL^2 <= 0``,
        ``R_s < 0`` or ``D2 < 0``.
    """
    from ..errors import InputError

    out = {}
    for name in PARAM_NAMES:
        if name not in ranges or len(ranges[name]) != 2:
            raise InputError(f"range of {name}: need two numbers LOW HIGH")
        low, high = (float(v) for v in ranges[name])
        if not low <= high or (name != "gamma_L" and low < 0) or (name == "nL2" and low <= 0):
            raise InputError(f"range of {name}: need 0 <= LOW <= HIGH, got {low:g} {high:g}")
        out[name] = (low, high)
    return out


def simulate_chunk(output, *, draws: int, configs: int, grid: PolarGrid, ranges: Mapping[str, Sequence[float]],
                   estimator: str, nonaffine_scaling: str, batch: int, dtype: str, device: str, seed: int,
                   provenance: dict, chunks: int = 1, chunk: int = 0, incoherent_configs: int = 0) -> range:
    """The ``dataset`` stage: simulate one chunk of the data set and write it as a :data:`DATASET` store.

    Parameters
    ----------
    output : path
        Chunk store to write (``*.zarr``), atomically.
    draws : int
        Draws in the whole data set (paper: 6000).
    configs : int
        Monte Carlo configurations per draw (paper: 1e4).
    grid : PolarGrid
    ranges : mapping ``{"nL2" | "R_s" | "D2" | "gamma_L": (low, high)}``
        Uniform ranges of the parameters (paper: :data:`PAPER_RANGES`).
    estimator : {"speckle", "pairs", "steps"}
    nonaffine_scaling : {"paper", "reference"}
    batch : int
        Configurations per vectorised batch.
    dtype : {"float32", "float64"}
    device : {"auto", "cpu", "cuda"}
    seed : int
        Draw ``i`` is seeded by ``SeedSequence([seed, i, ...])`` whatever the chunking.
    provenance : dict
        Written into the store.
    chunks, chunk : int
        Split of the draws into ``chunks`` contiguous parts, and which one to compute (0-based).
    incoherent_configs : int
        ``pairs``/``steps`` only: extra configurations per draw for the theta-independent terms
        (:func:`speckleml.shear.simulate.simulate_correlation`).

    Returns
    -------
    range
        The global draw indices written.

    Raises
    ------
    InputError
        Invalid chunking, ranges, batch, configs, dtype or device, or extra configurations with
        the speckle estimator.
    """
    from ..errors import InputError
    from ..progress import progress
    from ..runtime import seed_everything
    from .simulate import mc_settings, monte_carlo_attrs

    settings = mc_settings(batch=batch, configs=configs, dtype=dtype, device=device)
    try:
        indices = chunk_draws(draws, chunks, chunk)
    except ValueError as exc:
        raise InputError(f"draws/chunks/chunk: {exc}") from None
    ranges = check_ranges(ranges)
    if incoherent_configs and estimator not in PAIR_ESTIMATORS:
        raise InputError("--incoherent-configs needs --estimator pairs or steps")
    seed_everything(seed)
    arrays = simulate_draws(indices, seed, configs, grid, ranges, estimator, nonaffine_scaling, batch,
                            iterate=lambda it, n: progress(it, f"chunk {chunk} draws", total=n), **settings,
                            incoherent_configs=incoherent_configs)
    attrs = {**monte_carlo_attrs(grid, estimator, nonaffine_scaling, incoherent_configs),
             "param_names": list(PARAM_NAMES),
             "configs": configs, "ranges": {k: list(v) for k, v in ranges.items()}, "chunk": chunk,
             "draws_total": draws}
    write_dataset(output, arrays, attrs, provenance)
    log.info("wrote %s: draws %d..%d", output, indices.start, indices.stop - 1)
    return indices


def merge_dataset(chunk_paths: Sequence, output, provenance: dict) -> int:
    """The ``merge`` stage: concatenate chunk stores into one :data:`DATASET` store.

    Parameters
    ----------
    chunk_paths : sequence of paths
        Chunk stores written by :func:`simulate_chunk`, in any order.
    output : path
        Merged store to write.
    provenance : dict

    Returns
    -------
    int
        Number of draws written.

    Raises
    ------
    InputError
        No chunks, chunks with different settings or grids, or overlapping draws.
    """
    arrays, attrs = merge_chunks(chunk_paths)
    write_dataset(output, arrays, attrs, provenance)
    log.info("wrote %s: %d draws from %d chunks", output, len(arrays["params"]), len(chunk_paths))
    return len(arrays["params"])


def merge_chunks(paths: Sequence[str]) -> tuple[dict[str, np.ndarray], dict]:
    """Concatenate chunk stores (in draw order); check they share grid and settings.

    Returns
    -------
    arrays : dict of ndarray
    attrs : dict
        The first chunk's attributes without ``chunk`` and provenance.

    Raises
    ------
    InputError
        No chunks, different settings or grids, a draw in two chunks, or (when the chunks
        record ``draws_total``) a draw that no chunk holds.
    """
    from ..errors import InputError

    stores = [read_store(p, DATASET) for p in paths]
    if not stores:
        raise InputError("merge needs at least one chunk store")
    first = stores[0]
    keys = ("estimator", "nonaffine_scaling", "incoherent_configs", "configs", "param_names")
    for store in stores[1:]:
        for key in keys:
            if store.attrs.get(key) != first.attrs.get(key):
                raise InputError(f"{store.path}: attr {key}={store.attrs.get(key)!r} differs from "
                                 f"{first.path} ({first.attrs.get(key)!r})")
        for axis in ("q", "theta"):
            if not np.array_equal(store[axis], first[axis]):
                raise InputError(f"{store.path}: {axis} grid differs from {first.path}")
    arrays = {name: np.concatenate([s[name] for s in stores]) for name in
              ("params", "draw_index", "g_theta", "g_q", "g_theta_err", "mean_i_q") if name in first}
    order = np.argsort(arrays["draw_index"], kind="stable")
    if len(np.unique(arrays["draw_index"])) != len(order):
        raise InputError("chunk stores overlap: a draw index appears twice")
    arrays = {k: v[order] for k, v in arrays.items()}
    total = first.attrs.get("draws_total")
    if total is not None and len(order) != total:
        missing = sorted(set(range(total)) - set(arrays["draw_index"].tolist()))
        raise InputError(f"incomplete chunk set: {len(order)} of {total} draws "
                         f"(missing draws {missing[0]}..{missing[-1]}; merge every chunk of the split)")
    arrays["q"], arrays["theta"] = first["q"], first["theta"]
    attrs = {k: first.attrs[k] for k in first.attrs if k not in ("schema", "provenance", "chunk")}
    return arrays, attrs


def write_dataset(path, arrays, attrs, provenance):
    """Write a :data:`DATASET` store (one chunk or the merged set), atomically.

    Parameters
    ----------
    path : path
    arrays : dict of ndarray
        As :func:`simulate_draws` returns.
    attrs, provenance : dict
    """
    return write_store(path, DATASET, arrays, attrs=attrs, provenance=provenance)


def read_dataset(path):
    """Read and validate a :data:`DATASET` store (raises InputError when it is not one)."""
    return read_store(path, DATASET)
