"""Cases of the ``simulate`` stage (Fig. 1-3) and their store."""

from __future__ import annotations

import numpy as np

from ..stores import FLOATS, ArraySpec, StoreSchema, read_store, register_schema, write_store
from .system import PARAM_NAMES, PolarGrid, ShearSystem

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


def build_cases(args, make_system) -> list[dict]:
    """Fig. 2 case (plus a speckle-estimator copy), the three Fig. 3 sweeps and the scaling comparison."""
    other_scaling = "reference" if args.nonaffine_scaling == "paper" else "paper"
    base = dict(configs=args.configs, estimator=args.estimator, scaling=args.nonaffine_scaling)
    cases = [dict(base, label="fig2", group="fig2", system=make_system(args.fig2, "--fig2"))]
    if args.estimator != "speckle" and args.speckle_configs > 0:
        cases.append(dict(base, label="fig2 speckle", group="fig2_speckle", estimator="speckle",
                          configs=args.speckle_configs, system=make_system(args.fig2, "--fig2")))
    sweeps = (("R_s", 1, args.sweep_r_s), ("D2", 2, args.sweep_d2), ("gamma_L", 3, args.sweep_gamma_l))
    for name, index, values in sweeps:
        for value in values:
            params = list(args.baseline)
            params[index] = value
            cases.append(dict(base, label=f"{name}={value:g}", group=name,
                              system=make_system(params, f"--sweep ({name})")))
            if name == "R_s" and args.compare_scaling:
                cases.append(dict(base, label=f"{name}={value:g} ({other_scaling})", group=f"R_s_{other_scaling}",
                                  scaling=other_scaling, system=make_system(params, f"--sweep ({name})")))
    return cases


def example_configuration(system: ShearSystem, grid: PolarGrid, seed: int, scaling: str, dtype, device) -> dict:
    """One configuration before/after the move and its two speckle patterns (Fig. 1)."""
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


def write_simulation(path, grid: PolarGrid, cases, results, example, attrs, provenance):
    """Write the :data:`SIMULATION` store."""
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
    """Read and validate a :data:`SIMULATION` store."""
    return read_store(path, SIMULATION)
