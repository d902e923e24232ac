"""The figure cases of paper 003 (Fig. 1-3): which systems are simulated, the driver of the
``simulate`` stage and the store it writes.

Fig. 1 is one configuration before and after the transformation of eq. 3 with its two speckle
patterns; Fig. 2 the averaged ``<I>`` and ``g(q)`` of one system (with a copy from the paper's
speckle estimator when the data set uses ``pairs`` or ``steps``); Fig. 3 sweeps of ``R_s``, ``D2`` and
``gamma L`` around a baseline (and, optionally, the ``R_s`` sweep with the other non-affine
scaling: eq. 3 vs the reference code).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..stores import FLOATS, ArraySpec, StoreSchema, read_store, register_schema, write_store
from .system import PAIR_ESTIMATORS, PARAM_NAMES, SCALINGS, PolarGrid, ShearSystem

log = logging.getLogger(__name__)

SIMULATION = register_schema(StoreSchema(
    name="shear_simulation", version=1,
    description="g(q, theta), <I> for the figure cases and one example configuration",
    arrays={
        "g": ArraySpec(("case", "q", "theta"), FLOATS, finite=True),
        "g_err": ArraySpec(("case", "q", "theta"), FLOATS),
        "mean_i": ArraySpec(("case", "q", "theta"), FLOATS, finite=True),
        "params": ArraySpec(("case", "param"), ("float64",)),
        "q": ArraySpec(("q",), ("float64",)),
        "theta": ArraySpec(("theta",), ("float64",)),
        "example_before": ArraySpec(("particle", "xy"), ("float64",)),
        "example_after": ArraySpec(("particle", "xy"), ("float64",)),
        "example_radii": ArraySpec(("particle",), ("float64",)),
        "example_intensity": ArraySpec(("state", "q", "theta"), FLOATS),
    },
    required_attrs=("cases", "param_names"),
))

#: Field of :class:`ShearSystem` changed by each Fig. 3 sweep.
SWEEP_FIELDS = {"R_s": "r_s", "D2": "d2", "gamma_L": "gamma_l"}


def figure_cases(fig2: ShearSystem, baseline: ShearSystem, sweeps: Mapping[str, Sequence[float]], *,
                 configs: int, estimator: str, nonaffine_scaling: str, speckle_configs: int = 0,
                 compare_scaling: bool = False) -> list[dict]:
    """The systems simulated for Fig. 2 and Fig. 3, in the order of the store's ``case`` axis.

    Parameters
    ----------
    fig2 : ShearSystem
        System of the averaged maps (Fig. 2).
    baseline : ShearSystem
        System the Fig. 3 sweeps start from.
    sweeps : mapping ``{"R_s" | "D2" | "gamma_L": values}``
        Values of each swept parameter (units of R0).
    configs : int
        Monte Carlo configurations per case.
    estimator : {"speckle", "pairs", "steps"}
        Estimator of every case (see :mod:`speckleml.shear.simulate`).
    nonaffine_scaling : {"paper", "reference"}
        Non-affine step scaling of every case.
    speckle_configs : int
        Configurations of a speckle-estimator copy of the Fig. 2 case, added when
        ``estimator`` is ``pairs`` or ``steps`` and this is > 0.
    compare_scaling : bool
        Also run the ``R_s`` sweep with the other non-affine scaling.

    Returns
    -------
    list of dict
        One dict per case: ``label``, ``group`` (figure panel), ``system``, ``configs``,
        ``estimator``, ``scaling``.

    Raises
    ------
    InputError
        When a sweep names an unknown parameter or a swept value is not a valid system
        (e.g. ``D2 < 0``), or ``nonaffine_scaling`` is unknown.
    """
    if nonaffine_scaling not in SCALINGS:
        raise InputError(f"nonaffine_scaling must be one of {SCALINGS}, got {nonaffine_scaling!r}")
    other_scaling = "reference" if nonaffine_scaling == "paper" else "paper"
    base = dict(configs=configs, estimator=estimator, scaling=nonaffine_scaling)
    cases = [dict(base, label="fig2", group="fig2", system=fig2)]
    if estimator != "speckle" and speckle_configs > 0:
        cases.append(dict(base, label="fig2 speckle", group="fig2_speckle", estimator="speckle",
                          configs=speckle_configs, system=fig2))
    for name, values in sweeps.items():
        if name not in SWEEP_FIELDS:
            raise InputError(f"sweep of unknown parameter {name!r} (use {sorted(SWEEP_FIELDS)})")
        for value in values:
            try:
                system = dataclasses.replace(baseline, **{SWEEP_FIELDS[name]: float(value)})
            except ValueError as exc:
                raise InputError(f"sweep {name}={value:g}: {exc}") from None
            cases.append(dict(base, label=f"{name}={value:g}", group=name, system=system))
            if name == "R_s" and compare_scaling:
                cases.append(dict(base, label=f"{name}={value:g} ({other_scaling})", group=f"R_s_{other_scaling}",
                                  scaling=other_scaling, system=system))
    return cases


def example_configuration(system: ShearSystem, grid: PolarGrid, seed: int, scaling: str, dtype, device) -> dict:
    """One configuration before/after the move and its two speckle patterns (Fig. 1).

    Parameters
    ----------
    system : ShearSystem
    grid : PolarGrid
    seed : int
        Seeds the configuration (``SeedSequence([seed, 4])``).
    scaling : {"paper", "reference"}
        Non-affine step scaling.
    dtype, device
        Torch precision and device of the scattering sums.

    Returns
    -------
    dict
        ``example_before``, ``example_after`` (particles near the beam, (n, 2), R0),
        ``example_radii`` (n,), ``example_intensity`` (2, n_q, n_theta) normalised eq. 1
        intensities before and after, ``example_params`` (the four parameters).
    """
    import torch

    from .simulate import in_beam, make_generator, sample_configurations, speckle_patterns

    generator = make_generator(np.random.SeedSequence([int(seed), 4]))
    positions, moved, radii = sample_configurations(system, 1, grid.beam, generator, scaling, torch.float64, "cpu")
    q = torch.as_tensor(grid.q(), dtype=dtype, device=device)
    theta = torch.as_tensor(grid.theta(), dtype=dtype, device=device)
    to = dict(dtype=dtype, device=device)
    before = speckle_patterns(positions.to(**to), radii.to(**to), grid.beam, q, theta)[0]
    after = speckle_patterns(moved.to(**to), radii.to(**to), grid.beam, q, theta)[0]
    # keep the particles near the beam for the picture (the rest never scatter)
    keep = (in_beam(positions, 1.2 * grid.beam) | in_beam(moved, 1.2 * grid.beam))[0]
    return {"example_before": positions[0][keep].numpy(), "example_after": moved[0][keep].numpy(),
            "example_radii": radii[0][keep].numpy(),
            "example_intensity": torch.stack([before, after]).cpu().double().numpy(),
            "example_params": system.as_array().tolist()}


def simulate_cases(output, *, fig1: ShearSystem, fig2: ShearSystem, baseline: ShearSystem,
                   sweeps: Mapping[str, Sequence[float]], configs: int, speckle_configs: int,
                   compare_scaling: bool, grid: PolarGrid, estimator: str, nonaffine_scaling: str,
                   batch: int, dtype: str, device: str, seed: int, provenance: dict,
                   incoherent_configs: int = 0) -> list[dict]:
    """The ``simulate`` stage: simulate every figure case and write the :data:`SIMULATION` store.

    Case ``k`` draws its configurations from ``SeedSequence([seed, k, 3])``; Fig. 1's example
    from ``SeedSequence([seed, 4])``.

    Parameters
    ----------
    output : path
        Store to write (``*.zarr``), atomically.
    fig1, fig2, baseline, sweeps, configs, speckle_configs, compare_scaling
        The cases (see :func:`figure_cases`); ``fig1`` is the example configuration.
    grid : PolarGrid
    estimator : {"speckle", "pairs", "steps"}
    nonaffine_scaling : {"paper", "reference"}
    batch : int
        Configurations per vectorised batch (>= 1).
    dtype : {"float32", "float64"}
        Precision of the scattering sums.
    device : {"auto", "cpu", "cuda"}
    seed : int
    provenance : dict
        Written into the store (:func:`speckleml.provenance.make_provenance`).
    incoherent_configs : int
        Extra configurations of the theta-independent terms for the ``pairs``/``steps`` cases
        (:func:`speckleml.shear.simulate.simulate_correlation`).

    Returns
    -------
    list of dict
        The cases (as :func:`figure_cases`), each with its ``result`` (the dict of
        :func:`speckleml.shear.simulate.simulate_correlation`).

    Raises
    ------
    InputError
        Invalid cases, ``batch < 1`` or ``configs < 1``, an unknown dtype or device.
    """
    from ..progress import progress
    from ..runtime import seed_everything
    from .simulate import mc_settings, monte_carlo_attrs, simulate_correlation

    settings = mc_settings(batch=batch, configs=configs, dtype=dtype, device=device)
    if incoherent_configs and estimator not in PAIR_ESTIMATORS:
        raise InputError("--incoherent-configs needs --estimator pairs or steps")
    cases = figure_cases(fig2, baseline, sweeps, configs=configs, estimator=estimator,
                         nonaffine_scaling=nonaffine_scaling, speckle_configs=speckle_configs,
                         compare_scaling=compare_scaling)
    seed_everything(seed)
    for number, case in enumerate(progress(cases, "shear cases")):
        case["result"] = simulate_correlation(case["system"], case["configs"], grid,
                                              np.random.SeedSequence([seed, number, 3]),
                                              estimator=case["estimator"], nonaffine_scaling=case["scaling"],
                                              batch=batch, **settings, incoherent_configs=incoherent_configs
                                              if case["estimator"] in PAIR_ESTIMATORS else 0)
        g_theta = case["result"]["g_theta"]
        log.info("case %s: g(theta) in [%.4f, %.4f]", case["label"], g_theta.min(), g_theta.max())
    example = example_configuration(fig1, grid, seed, nonaffine_scaling, **settings)
    write_simulation(output, grid, cases, example,
                     monte_carlo_attrs(grid, estimator, nonaffine_scaling, incoherent_configs),
                     provenance)
    log.info("wrote %s (%d cases)", output, len(cases))
    return cases


def write_simulation(path, grid: PolarGrid, cases: Sequence[dict], example: dict, attrs: dict, provenance: dict):
    """Write the :data:`SIMULATION` store.

    Parameters
    ----------
    path : path
        ``*.zarr`` store to write.
    grid : PolarGrid
    cases : list of dict
        Cases of :func:`figure_cases`, each with its ``result``.
    example : dict
        From :func:`example_configuration`.
    attrs, provenance : dict
        Extra store attributes and the provenance record.
    """
    results = [c["result"] for c in cases]
    arrays = {
        "g": np.stack([r["g"] for r in results]), "g_err": np.stack([r["g_err"] for r in results]),
        "mean_i": np.stack([r["mean_i"] for r in results]),
        "params": np.stack([c["system"].as_array() for c in cases]),
        "q": grid.q(), "theta": grid.theta(),
        **{k: v for k, v in example.items() if k.startswith("example_") and k != "example_params"},
    }
    meta = [{"label": c["label"], "group": c["group"], "configs": c["configs"], "estimator": c["estimator"],
             "scaling": c["scaling"]} for c in cases]
    return write_store(path, SIMULATION, arrays, provenance=provenance,
                       attrs={**attrs, "cases": meta, "param_names": list(PARAM_NAMES),
                              "example_params": example["example_params"]})


def read_simulation(path):
    """Read and validate a :data:`SIMULATION` store (raises InputError when it is not one)."""
    return read_store(path, SIMULATION)
