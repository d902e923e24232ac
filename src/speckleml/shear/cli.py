"""`speckleml shear <stage>`: command line of the shear study (paper 003).

Stages: ``simulate`` (figure cases), ``dataset`` (one chunk of parameter draws), ``merge``
(chunks -> one store), ``fit`` (SVD + one GPR per target), ``evaluate`` (errors, calibration,
Table I), ``figures`` (Fig. 1-7) and ``invert`` (a measured g(theta) -> parameters).
"""

from __future__ import annotations

import argparse
import logging

from ..cli import add_device, add_seed, add_stage, add_study

log = logging.getLogger(__name__)

PARAMS_METAVAR = ("NL2", "R_S", "D2", "GAMMA_L")

SIMULATE_EXAMPLE = """\
example:
  speckleml shear simulate results/shear/simulation.zarr --configs 100 --estimator pairs \\
      --baseline 150 0 1 10 --sweep-r-s 0 0.1 0.2 0.3 --sweep-d2 0.5 1 2 --sweep-gamma-l 5 10 20
"""
DATASET_EXAMPLE = """\
example (chunk 0 of 4 of 400 draws, 16 configurations each):
  speckleml shear dataset results/shear/chunks/0.zarr --draws 400 --chunks 4 --chunk 0 \\
      --configs 16 --estimator pairs --seed 42
"""
MERGE_EXAMPLE = """\
example:
  speckleml shear merge results/shear/chunks/*.zarr --output results/shear/dataset.zarr
"""
FIT_EXAMPLE = """\
example:
  speckleml shear fit results/shear/dataset.zarr results/shear/gpr.pkl results/shear/analysis.zarr \\
      --features angular radial --targets R_s D2 gamma_L --restarts 5
"""
EVALUATE_EXAMPLE = """\
example:
  speckleml shear evaluate results/shear/dataset.zarr results/shear/gpr.pkl \\
      --predictions results/shear/predictions.csv --table results/shear/table1.csv
"""
FIGURES_EXAMPLE = """\
example:
  speckleml shear figures --simulation results/shear/simulation.zarr --dataset results/shear/dataset.zarr \\
      --analysis results/shear/analysis.zarr --predictions results/shear/predictions.csv \\
      --table results/shear/table1.csv --outdir results/shear/figures
"""
INVERT_EXAMPLE = """\
examples:
  speckleml shear invert results/shear/gpr.pkl measured_g_theta.csv     # columns theta,g or one column g
  speckleml shear invert results/shear/gpr.pkl g_theta.npy --json result.json
"""


def _add_grid(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("geometry (units of R0)")
    group.add_argument("--beam", type=float, default=800.0, help="beam size L (default %(default)s)")
    group.add_argument("--q-min", type=float, default=0.5, help="smallest q (default %(default)s)")
    group.add_argument("--q-max", type=float, default=5.0, help="largest q (default %(default)s)")
    group.add_argument("--n-q", type=int, default=100, help="log-spaced q values (default %(default)s)")
    group.add_argument("--n-theta", type=int, default=101, help="theta values in [0, pi] (default %(default)s)")


def _add_mc(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Monte Carlo")
    group.add_argument("--estimator", choices=("speckle", "pairs"), default="speckle",
                       help="speckle: <I I'> of the two patterns (paper); pairs: position-averaged "
                            "products, same expectation, far less noise (default %(default)s)")
    group.add_argument("--nonaffine-scaling", choices=("paper", "reference"), default="paper",
                       help="paper: steps N(0, D2) (eq. 3); reference: times sqrt(R0/R) as the reference code")
    group.add_argument("--batch", type=int, default=8, help="configurations per vectorised batch (default %(default)s)")
    group.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="precision of the scattering sums (default %(default)s)")
    add_device(parser)
    add_seed(parser)


def register(commands) -> None:
    stages = add_study(commands, "shear", "sheared colloids: Monte Carlo speckle, SVD, GP inversion (paper 003)")

    p = add_stage(stages, "simulate", simulate, "g(q, theta) and <I> for the figure cases (Fig. 1-3)",
                  epilog=SIMULATE_EXAMPLE)
    p.add_argument("output", help="simulation store to write (*.zarr)")
    p.add_argument("--configs", type=int, default=100, help="configurations per case (default %(default)s)")
    p.add_argument("--speckle-configs", type=int, default=200,
                   help="configurations of the speckle-estimator copy of the Fig. 2 case when --estimator is "
                        "pairs (0 = none; default %(default)s)")
    p.add_argument("--fig1", type=float, nargs=4, default=[150, 0, 0.5, 30], metavar=PARAMS_METAVAR,
                   help="parameters of the single configuration of Fig. 1")
    p.add_argument("--fig2", type=float, nargs=4, default=[150, 0, 0.5, 10], metavar=PARAMS_METAVAR,
                   help="parameters of the averaged maps of Fig. 2")
    p.add_argument("--baseline", type=float, nargs=4, default=[150, 0, 1, 10], metavar=PARAMS_METAVAR,
                   help="baseline of the Fig. 3 sweeps")
    p.add_argument("--sweep-r-s", type=float, nargs="+", default=[0, 0.1, 0.2, 0.3], help="R_s values of Fig. 3")
    p.add_argument("--sweep-d2", type=float, nargs="+", default=[0.5, 1, 2, 3], help="D2 values of Fig. 3")
    p.add_argument("--sweep-gamma-l", type=float, nargs="+", default=[5, 10, 20, 30], help="gamma L values of Fig. 3")
    p.add_argument("--compare-scaling", action="store_true",
                   help="also run the R_s sweep with the other non-affine scaling (paper vs reference code)")
    _add_grid(p)
    _add_mc(p)

    p = add_stage(stages, "dataset", dataset, "g(theta) and g(q) for one chunk of random parameter draws",
                  epilog=DATASET_EXAMPLE)
    p.add_argument("output", help="chunk store to write (*.zarr)")
    p.add_argument("--draws", type=int, required=True, help="draws in the whole data set (paper 6000)")
    p.add_argument("--chunks", type=int, default=1, help="number of chunks the draws are split into")
    p.add_argument("--chunk", type=int, default=0, help="which chunk this job computes (0-based)")
    p.add_argument("--configs", type=int, default=100, help="configurations per draw (paper 1e4)")
    for name, (lo, hi) in (("nl2", (100, 200)), ("r-s", (0, 0.3)), ("d2", (0.5, 3)), ("gamma-l", (5, 30))):
        p.add_argument(f"--range-{name}", type=float, nargs=2, default=[lo, hi], metavar=("LOW", "HIGH"),
                       help=f"uniform range (default {lo} {hi})")
    _add_grid(p)
    _add_mc(p)

    p = add_stage(stages, "merge", merge, "merge dataset chunk stores into one store", epilog=MERGE_EXAMPLE)
    p.add_argument("chunks", nargs="+", help="chunk stores")
    p.add_argument("--output", required=True, help="merged store to write (*.zarr)")

    p = add_stage(stages, "fit", fit, "SVD of the features and one GPR per target (LML with restarts)",
                  epilog=FIT_EXAMPLE)
    p.add_argument("dataset", help="merged dataset store")
    p.add_argument("model", help="fitted models to write (*.pkl)")
    p.add_argument("analysis", help="SVD / PDDF / ACF / LML store to write (*.zarr)")
    p.add_argument("--features", nargs="+", choices=("angular", "radial"), default=["angular", "radial"],
                   help="feature sets; the first is the main one (paper: angular g(theta); reference code: radial g(q))")
    p.add_argument("--targets", nargs="+", choices=("nL2", "R_s", "D2", "gamma_L"), default=["R_s", "D2", "gamma_L"])
    p.add_argument("--train-fraction", type=float, default=0.7, help="training share (default %(default)s)")
    p.add_argument("--restarts", type=int, default=5, help="optimizer restarts per GPR (default %(default)s)")
    p.add_argument("--components", type=int, default=3, help="singular vectors kept for Fig. 4-5 (default %(default)s)")
    p.add_argument("--lml-grid", type=int, default=20, help="points per axis of the LML contours (default %(default)s)")
    p.add_argument("--lml-points", type=int, default=600,
                   help="training points used for the LML contours (subsample; default %(default)s)")
    p.add_argument("--pddf-points", type=int, default=2000, help="points used for PDDF/ACF (default %(default)s)")
    p.add_argument("--pddf-bins", type=int, default=50, help="bins of PDDF/ACF (default %(default)s)")
    add_seed(p)

    p = add_stage(stages, "evaluate", evaluate, "test-set errors (paper's Err), calibration, Table I",
                  epilog=EVALUATE_EXAMPLE)
    p.add_argument("dataset", help="merged dataset store")
    p.add_argument("model", help="fitted models (*.pkl)")
    p.add_argument("--predictions", required=True, help="per-draw predictions CSV to write")
    p.add_argument("--table", required=True, help="Table I CSV to write")

    p = add_stage(stages, "figures", figures, "Fig. 1-7 of paper 003", epilog=FIGURES_EXAMPLE)
    for name in ("simulation", "dataset", "analysis", "predictions", "table"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--outdir", required=True, help="directory for fig1.png ... fig7.png")

    p = add_stage(stages, "invert", invert, "measured g(theta) (CSV or npy) -> R_s, D2, gamma L with uncertainties",
                  epilog=INVERT_EXAMPLE)
    p.add_argument("model", help="fitted models (*.pkl) from `speckleml shear fit`")
    p.add_argument("measured", help="CSV (columns theta,g or one column g) or .npy ((n,) or (n, 2))")
    p.add_argument("--features", choices=("angular", "radial"), default="angular",
                   help="what the measurement is: g(theta) (angular) or g(q) (radial)")
    p.add_argument("--json", help="also write the result as JSON")


# ---------------------------------------------------------------------------------------- helpers


def _grid(args):
    from ..errors import InputError
    from .simulate import PolarGrid

    try:
        return PolarGrid(args.beam, args.q_min, args.q_max, args.n_q, args.n_theta)
    except ValueError as exc:
        raise InputError(f"--beam/--q-min/--q-max/--n-q/--n-theta: {exc}") from None


def _mc_settings(args):
    import torch

    from ..errors import InputError
    from ..runtime import resolve_device

    if args.batch < 1 or args.configs < 1:
        raise InputError("--batch and --configs must be >= 1")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    return {"dtype": getattr(torch, args.dtype), "device": resolve_device(args.device)}


def _system(values, option):
    from ..errors import InputError
    from .simulate import ShearSystem

    try:
        return ShearSystem.from_array(values)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def _mc_attrs(args) -> dict:
    return {"estimator": args.estimator, "nonaffine_scaling": args.nonaffine_scaling,
            "grid": {"beam": args.beam, "q_min": args.q_min, "q_max": args.q_max,
                     "n_q": args.n_q, "n_theta": args.n_theta}}


# ---------------------------------------------------------------------------------------- stages


def simulate(args) -> int:
    """Figure cases: one configuration (Fig. 1), averaged maps (Fig. 2), sweeps (Fig. 3)."""
    import numpy as np

    from ..progress import progress
    from ..provenance import provenance_from_args
    from ..runtime import seed_everything
    from .figures_data import build_cases, example_configuration, write_simulation
    from .simulate import simulate_correlation

    grid = _grid(args)
    settings = _mc_settings(args)
    seed_everything(args.seed)
    cases = build_cases(args, _system)
    results = []
    for number, case in enumerate(progress(cases, "shear cases")):
        out = simulate_correlation(case["system"], case["configs"], grid,
                                   np.random.SeedSequence([args.seed, number, 3]),
                                   estimator=case["estimator"], nonaffine_scaling=case["scaling"],
                                   batch=args.batch, **settings)
        results.append(out)
        log.info("case %s: g(theta) in [%.4f, %.4f]", case["label"], out["g_theta"].min(), out["g_theta"].max())
    example = example_configuration(_system(args.fig1, "--fig1"), grid, args.seed, args.nonaffine_scaling, **settings)
    write_simulation(args.output, grid, cases, results, example, _mc_attrs(args), provenance_from_args(args))
    log.info("wrote %s (%d cases)", args.output, len(cases))
    return 0


def dataset(args) -> int:
    """One chunk of the data set (a cluster runs the chunks in parallel)."""
    from ..errors import InputError
    from ..progress import progress
    from ..provenance import provenance_from_args
    from ..runtime import seed_everything
    from .dataset import chunk_draws, simulate_draws, write_dataset
    from .simulate import PARAM_NAMES

    grid = _grid(args)
    settings = _mc_settings(args)
    try:
        draws = chunk_draws(args.draws, args.chunks, args.chunk)
    except ValueError as exc:
        raise InputError(f"--draws/--chunks/--chunk: {exc}") from None
    ranges = {"nL2": args.range_nl2, "R_s": args.range_r_s, "D2": args.range_d2, "gamma_L": args.range_gamma_l}
    for name, (low, high) in ranges.items():
        if not low <= high or (name != "gamma_L" and low < 0) or (name == "nL2" and low <= 0):
            raise InputError(f"--range for {name}: need 0 <= LOW <= HIGH, got {low} {high}")
    seed_everything(args.seed)
    arrays = simulate_draws(draws, args.seed, args.configs, grid, ranges, args.estimator, args.nonaffine_scaling,
                            args.batch, iterate=lambda it, n: progress(it, f"chunk {args.chunk} draws", total=n),
                            **settings)
    attrs = {**_mc_attrs(args), "param_names": list(PARAM_NAMES), "configs": args.configs,
             "ranges": ranges, "chunk": args.chunk, "draws_total": args.draws}
    write_dataset(args.output, arrays, attrs, provenance_from_args(args))
    log.info("wrote %s: draws %d..%d", args.output, draws.start, draws.stop - 1)
    return 0


def merge(args) -> int:
    """Concatenate chunk stores (checked for equal settings and disjoint draws)."""
    from ..provenance import provenance_from_args
    from .dataset import merge_chunks, write_dataset

    arrays, attrs = merge_chunks(args.chunks)
    write_dataset(args.output, arrays, attrs, provenance_from_args(args, inputs=args.chunks))
    log.info("wrote %s: %d draws from %d chunks", args.output, len(arrays["params"]), len(args.chunks))
    return 0


def fit(args) -> int:
    """SVD of the main features, one GPR per target and feature set, PDDF/ACF/LML for the figures."""
    from ..errors import InputError
    from ..provenance import provenance_from_args
    from .fitting import fit_models

    if args.restarts < 0 or args.components < 1 or args.lml_grid < 2:
        raise InputError("need --restarts >= 0, --components >= 1, --lml-grid >= 2")
    if not 0 < args.train_fraction < 1:
        raise InputError(f"--train-fraction must be in (0, 1), got {args.train_fraction}")
    fit_models(args, provenance_from_args(args, inputs=[args.dataset]))
    return 0


def evaluate(args) -> int:
    """Predict the held-out draws; write predictions and Table I (with calibration)."""
    from .fitting import evaluate_models

    table = evaluate_models(args.dataset, args.model, args.predictions, args.table)
    for row in table.itertuples():
        log.info("%s %s: Err %.4f (paper %s), within 1/2 sigma %.2f/%.2f", row.features, row.target, row.err,
                 row.err_paper, row.within_1sigma, row.within_2sigma)
    return 0


def figures(args) -> int:
    """Draw Fig. 1-7 (PNG) from the stores and tables."""
    from .figures import draw_all

    paths = draw_all(args.simulation, args.dataset, args.analysis, args.predictions, args.table, args.outdir)
    log.info("wrote %d figures to %s", len(paths), args.outdir)
    return 0


def invert(args) -> int:
    """Print R_s, D2, gamma L (and any other fitted target) with 1-sigma uncertainties."""
    import json

    from ..atomic import write_text
    from .fitting import invert_measurement

    result = invert_measurement(args.model, args.measured, args.features)
    for name, (mean, std) in result.items():
        print(f"{name} = {mean:.4g} +/- {std:.2g}")
    if args.json:
        write_text(json.dumps({k: {"mean": m, "std": s} for k, (m, s) in result.items()}, indent=2) + "\n", args.json)
    return 0
