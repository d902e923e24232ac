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
from .system import PARAM_NAMES, PolarGrid, ShearSystem

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
    """Global draw indices of one chunk (contiguous, sizes differ by at most one)."""
    if not 0 <= chunk < n_chunks or n_chunks < 1 or n_draws < n_chunks:
        raise ValueError(f"chunk {chunk} of {n_chunks} for {n_draws} draws is not valid")
    bounds = np.linspace(0, n_draws, n_chunks + 1).round().astype(int)
    return range(int(bounds[chunk]), int(bounds[chunk + 1]))


def draw_parameters(seed: int, draw: int, ranges: Mapping[str, Sequence[float]] = PAPER_RANGES) -> ShearSystem:
    """Uniform parameters of one draw from ``SeedSequence([seed, draw])``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(draw), 0]))
    values = [rng.uniform(*ranges[name]) for name in PARAM_NAMES]
    return ShearSystem.from_array(values)


def simulate_draws(draws: Sequence[int], seed: int, n_configs: int, grid: PolarGrid,
                   ranges: Mapping[str, Sequence[float]] = PAPER_RANGES, estimator: str = "speckle",
                   nonaffine_scaling: str = "paper", batch: int = 8, dtype=None, device="cpu",
                   iterate=lambda it, n: it) -> dict[str, np.ndarray]:
    """Simulate ``g`` for each draw; returns the arrays of a :data:`DATASET` store.

    ``iterate(iterable, total)`` wraps the loop over draws (progress reporting).
    """
    import torch

    from .simulate import simulate_correlation

    dtype = dtype or torch.float32
    rows = {k: [] for k in ("params", "g_theta", "g_q", "g_theta_err", "mean_i_q")}
    for draw in iterate(draws, len(draws)):
        system = draw_parameters(seed, draw, ranges)
        out = simulate_correlation(system, n_configs, grid, np.random.SeedSequence([int(seed), int(draw), 1]),
                                   estimator=estimator, nonaffine_scaling=nonaffine_scaling,
                                   batch=batch, dtype=dtype, device=device)
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


def merge_chunks(paths: Sequence[str]) -> tuple[dict[str, np.ndarray], dict]:
    """Concatenate chunk stores (in draw order); check they share grid and settings."""
    from ..errors import InputError

    stores = [read_store(p, DATASET) for p in paths]
    if not stores:
        raise InputError("merge needs at least one chunk store")
    first = stores[0]
    keys = ("estimator", "nonaffine_scaling", "configs", "param_names")
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
    arrays["q"], arrays["theta"] = first["q"], first["theta"]
    attrs = {k: first.attrs[k] for k in first.attrs if k not in ("schema", "provenance", "chunk")}
    return arrays, attrs


def write_dataset(path, arrays, attrs, provenance):
    """Write a :data:`DATASET` store (one chunk or the merged set)."""
    return write_store(path, DATASET, arrays, attrs=attrs, provenance=provenance)


def read_dataset(path):
    """Read and validate a :data:`DATASET` store."""
    return read_store(path, DATASET)
