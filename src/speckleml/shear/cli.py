"""`speckleml shear <stage>`: command line of the shear study (paper 003).

Stages: ``simulate`` (figure cases, :func:`speckleml.shear.cases.simulate_cases`), ``dataset``
(one chunk of parameter draws, :func:`speckleml.shear.dataset.simulate_chunk`), ``merge``
(chunks -> one store), ``fit`` / ``evaluate`` / ``invert`` (:mod:`speckleml.shear.models`) and
``figures`` (Fig. 1-7). Each handler parses, validates and calls one library function.
Defaults are the config schema's (``shear.*``, laptop scale).
"""

from __future__ import annotations

import argparse
import logging

from ..cli import add_config_option, add_device, add_seed, add_stage, add_study, non_negative_int, positive_int

log = logging.getLogger(__name__)

PARAMS_METAVAR = ("NL2", "R_S", "D2", "GAMMA_L")
RANGE_OPTIONS = {"nL2": "nl2", "R_s": "r-s", "D2": "d2", "gamma_L": "gamma-l"}

EXAMPLES = {  # epilogs of the stages' --help
    "simulate": "speckleml shear simulate results/shear/simulation.zarr --configs 100 --estimator pairs \\\n"
                "      --baseline 150 0 1 10 --sweep-r-s 0 0.1 0.2 0.3 --sweep-d2 0.5 1 2 --sweep-gamma-l 5 10 20",
    "dataset": "speckleml shear dataset results/shear/dataset.zarr --draws 400 --configs 16 --seed 42\n"
               "  speckleml shear dataset results/shear/chunks/0.zarr --draws 400 --chunks 4 --chunk 0   # 1 of 4 jobs",
    "merge": "speckleml shear merge results/shear/chunks/*.zarr --output results/shear/dataset.zarr",
    "fit": "speckleml shear fit results/shear/dataset.zarr results/shear/gpr.pkl results/shear/analysis.zarr \\\n"
           "      --features angular radial --targets R_s D2 gamma_L --restarts 5",
    "evaluate": "speckleml shear evaluate results/shear/dataset.zarr results/shear/gpr.pkl \\\n"
                "      --predictions results/shear/predictions.csv --table results/shear/table1.csv",
    "figures": "speckleml shear figures --simulation results/shear/simulation.zarr --dataset "
               "results/shear/dataset.zarr \\\n      --analysis results/shear/analysis.zarr --predictions "
               "results/shear/predictions.csv \\\n      --table results/shear/table1.csv --out-dir results/shear/figures",
    "invert": "speckleml shear invert results/shear/gpr.pkl measured_g_theta.csv     # columns theta,g or one column g\n"
              "  speckleml shear invert results/shear/gpr.pkl g_theta.npy --json result.json",
}


def _stage(stages, name, func, help):
    return add_stage(stages, name, func, help, epilog="examples:\n  " + EXAMPLES[name] + "\n")


def _option(parser, flag: str, section: str, help: str, key: str | None = None, **kwargs) -> None:
    """A config-backed option ``shear.<section>.<key>`` (key from the flag by default), parsed within the schema's bounds."""
    key = f"shear.{section}.{key or flag[2:].replace('-', '_')}"
    add_config_option(parser, flag, key=key, help=f"{help} (default %(default)s)", **kwargs)


def _add_grid_and_mc(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("geometry (units of R0)")
    for flag, kind, text in (("--beam", float, "beam size L"), ("--q-min", float, "smallest q"),
                             ("--q-max", float, "largest q"), ("--n-q", positive_int, "log-spaced q values"),
                             ("--n-theta", positive_int, "theta values in [0, pi]")):
        _option(group, flag, "grid", text, type=kind)
    group = parser.add_argument_group("Monte Carlo")
    _option(group, "--estimator", "monte_carlo", "speckle: <I I'> of the two patterns (paper); pairs: "
            "position-averaged products, same expectation, far less noise; steps: pairs averaged over the "
            "non-affine steps analytically, less noise again", choices=("speckle", "pairs", "steps"))
    _option(group, "--nonaffine-scaling", "monte_carlo", "paper: steps N(0, D2) (eq. 3); reference: times "
            "sqrt(R0/R) as the reference code", choices=("paper", "reference"))
    _option(group, "--batch", "monte_carlo", "configurations per vectorised batch", type=positive_int)
    _option(group, "--incoherent-configs", "monte_carlo", "pairs/steps only: extra configurations (no phase sums) for the "
            "theta-independent terms, the polydispersity plateau", type=non_negative_int)
    _option(group, "--dtype", "monte_carlo", "precision of the scattering sums", choices=("float32", "float64"))
    add_device(parser)
    add_seed(parser)


def register(commands) -> None:
    from ..cli_types import schema_type

    stages = add_study(commands, "shear", "sheared colloids: Monte Carlo speckle, SVD, GP inversion (paper 003)")

    p = _stage(stages, "simulate", simulate, "g(q, theta) and <I> for the figure cases (Fig. 1-3)")
    p.add_argument("output", help="simulation store to write (*.zarr)")
    _option(p, "--configs", "simulate", "configurations per case", type=positive_int)
    _option(p, "--speckle-configs", "simulate", "configurations of a speckle-estimator copy of the Fig. 2 case "
            "when --estimator is pairs or steps (0 = none)", type=non_negative_int)
    for name, text in (("fig1", "the single configuration of Fig. 1"), ("fig2", "the averaged maps of Fig. 2"),
                       ("baseline", "the baseline of the Fig. 3 sweeps")):
        _option(p, f"--{name}", "simulate", f"parameters of {text}", type=float, nargs=4, metavar=PARAMS_METAVAR)
    for flag, name in (("--sweep-r-s", "R_s"), ("--sweep-d2", "D2"), ("--sweep-gamma-l", "gamma L")):
        _option(p, flag, "simulate", f"{name} values of Fig. 3", type=float, nargs="+")
    _option(p, "--compare-scaling", "simulate", "also run the R_s sweep with the other non-affine scaling",
            action=argparse.BooleanOptionalAction)
    _add_grid_and_mc(p)

    p = _stage(stages, "dataset", dataset, "g(theta) and g(q) for random parameter draws (or one chunk of them)")
    p.add_argument("output", help="store to write (*.zarr)")
    p.add_argument("--draws", type=schema_type(int, "shear.dataset.draws"), required=True, help="draws (paper 6000)")
    p.add_argument("--chunks", type=schema_type(int, "shear.dataset.chunks"), help="split the draws into this many chunks")
    p.add_argument("--chunk", type=non_negative_int, help="which chunk this job computes (0-based; with --chunks)")
    _option(p, "--configs", "dataset", "configurations per draw (paper 1e4)", type=positive_int)
    for name, flag in RANGE_OPTIONS.items():
        _option(p, f"--range-{flag}", "dataset", "uniform range", key=f"ranges.{name}", type=float, nargs=2,
                metavar=("LOW", "HIGH"))
    _add_grid_and_mc(p)

    p = _stage(stages, "merge", merge, "merge dataset chunk stores into one store")
    p.add_argument("chunks", nargs="+", help="chunk stores")
    p.add_argument("--output", required=True, help="merged store to write (*.zarr)")

    p = _stage(stages, "fit", fit, "SVD of the features and one GPR per target (LML with restarts)")
    p.add_argument("dataset", help="merged dataset store")
    p.add_argument("model", help="output fitted models (*.pkl)")
    p.add_argument("analysis", help="output SVD / PDDF / ACF / LML store (*.zarr)")
    _option(p, "--features", "fit", "feature sets; the first is the main one (paper: angular g(theta); reference "
            "code: radial g(q))", nargs="+", choices=("angular", "radial"))
    _option(p, "--targets", "fit", "parameters inverted", nargs="+", choices=("nL2", "R_s", "D2", "gamma_L"))
    _option(p, "--train-fraction", "fit", "training share", type=float)
    _option(p, "--restarts", "fit", "optimizer restarts per GPR", type=non_negative_int)
    _option(p, "--input-components", "fit", "GPR inputs: 0 = full feature vectors, one RBF length (paper); k = top k "
            "standardised SVD projections, one length each (ARD)", type=non_negative_int)
    _option(p, "--log-targets", "fit", "targets learned as log(value)", nargs="*",
            choices=("nL2", "R_s", "D2", "gamma_L"))
    _option(p, "--feature-scale", "fit", "GPRs learn from asinh((g - 1) / scale); 0 = g itself (paper)",
            type=float)
    _option(p, "--plateau-scale", "fit", "angular GPRs also get the eq. 5 fit of each g(theta) (plateau P as "
            "asinh(P / scale), gamma L, D2); 0 = none (paper)", type=float)
    for flag, text in (("--components", "singular vectors kept for Fig. 4-5"),
                       ("--lml-grid", "points per axis of the LML contours"),
                       ("--lml-points", "training points of the LML contours"),
                       ("--pddf-points", "points used for PDDF/ACF"), ("--pddf-bins", "bins of PDDF/ACF")):
        _option(p, flag, "fit", text, type=positive_int)
    add_seed(p)

    p = _stage(stages, "evaluate", evaluate, "test-set errors (paper's Err), calibration, Table I")
    p.add_argument("dataset", help="merged dataset store")
    p.add_argument("model", help="fitted models (*.pkl)")
    p.add_argument("--predictions", required=True, help="output per-draw predictions CSV")
    p.add_argument("--table", required=True, help="output Table I CSV")

    p = _stage(stages, "figures", figures, "Fig. 1-7 of paper 003")
    for name in ("simulation", "dataset", "analysis", "predictions", "table"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--out-dir", required=True, help="directory for fig1.png ... fig7.png")

    p = _stage(stages, "invert", invert, "measured g(theta) (CSV or npy) -> R_s, D2, gamma L with uncertainties")
    p.add_argument("model", help="fitted models (*.pkl) from `speckleml shear fit`")
    p.add_argument("measured", help="CSV (columns theta,g or one column g) or .npy ((n,) or (n, 2))")
    p.add_argument("--features", choices=("angular", "radial"),
                   help="what the measurement is: g(theta) (angular) or g(q) (radial); default: the model's main set")
    p.add_argument("--json", help="output JSON of the result (optional)")



def _checked(make, option):
    """``make()``, with its ValueError reported as bad input of ``option``."""
    from ..errors import InputError

    try:
        return make()
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def _system(values, option):
    from .system import ShearSystem

    return _checked(lambda: ShearSystem.from_array(values), option)


def _mc(args) -> dict:
    from .system import PolarGrid

    grid = _checked(lambda: PolarGrid(args.beam, args.q_min, args.q_max, args.n_q, args.n_theta),
                    "--beam/--q-min/--q-max/--n-q/--n-theta")
    return dict(grid=grid, estimator=args.estimator, nonaffine_scaling=args.nonaffine_scaling,
                batch=args.batch, dtype=args.dtype, device=args.device, seed=args.seed,
                incoherent_configs=args.incoherent_configs)


def simulate(args) -> int:
    """Figure cases: one configuration (Fig. 1), averaged maps (Fig. 2), sweeps (Fig. 3)."""
    from ..cli import provenance_from_args
    from .cases import simulate_cases

    simulate_cases(args.output, fig1=_system(args.fig1, "--fig1"), fig2=_system(args.fig2, "--fig2"),
                   baseline=_system(args.baseline, "--baseline"),
                   sweeps={"R_s": args.sweep_r_s, "D2": args.sweep_d2, "gamma_L": args.sweep_gamma_l},
                   configs=args.configs, speckle_configs=args.speckle_configs, compare_scaling=args.compare_scaling,
                   provenance=provenance_from_args(args), **_mc(args))
    return 0


def dataset(args) -> int:
    """The whole data set, or one chunk of it (a cluster runs the chunks in parallel)."""
    from ..errors import InputError
    from ..cli import provenance_from_args
    from .dataset import simulate_chunk

    if (args.chunks is None) != (args.chunk is None):
        raise InputError("--chunks and --chunk go together")
    split = {} if args.chunks is None else {"chunks": args.chunks, "chunk": args.chunk}
    ranges = {name: getattr(args, f"range_{flag.replace('-', '_')}") for name, flag in RANGE_OPTIONS.items()}
    simulate_chunk(args.output, draws=args.draws, configs=args.configs, ranges=ranges,
                   provenance=provenance_from_args(args), **split, **_mc(args))
    return 0


def merge(args) -> int:
    """Concatenate chunk stores (checked for equal settings and disjoint draws)."""
    from ..cli import provenance_from_args
    from .dataset import merge_dataset

    merge_dataset(args.chunks, args.output, provenance_from_args(args, inputs=args.chunks))
    return 0


def fit(args) -> int:
    """SVD of the main features, one GPR per target and feature set, PDDF/ACF/LML for the figures."""
    from ..cli import provenance_from_args
    from .models import fit_models

    fit_models(args.dataset, args.model, args.analysis, features=args.features, targets=args.targets,
               train_fraction=args.train_fraction, restarts=args.restarts, components=args.components,
               lml_grid=args.lml_grid, lml_points=args.lml_points, pddf_points=args.pddf_points,
               pddf_bins=args.pddf_bins, seed=args.seed, provenance=provenance_from_args(args, inputs=[args.dataset]),
               input_components=args.input_components, transforms={t: "log" for t in args.log_targets},
               feature_scale=args.feature_scale, plateau_scale=args.plateau_scale)
    return 0


def evaluate(args) -> int:
    """Predict the held-out draws; write predictions and Table I (with calibration)."""
    from .models import evaluate_models

    table = evaluate_models(args.dataset, args.model, args.predictions, args.table)
    for row in table.itertuples():
        log.info("%s %s: Err %.4f (paper %s), within 1/2 sigma %.2f/%.2f", row.features, row.target, row.err,
                 row.err_paper, row.within_1sigma, row.within_2sigma)
    return 0


def figures(args) -> int:
    """Draw Fig. 1-7 (PNG) from the stores and tables."""
    from .figures import draw_all

    paths = draw_all(args.simulation, args.dataset, args.analysis, args.predictions, args.table, args.out_dir)
    log.info("wrote %d figures to %s", len(paths), args.out_dir)
    return 0


def invert(args) -> int:
    """Print every fitted target with its 1-sigma uncertainty, the model's SVD rank and held-out calibration."""
    import json

    from ..atomic import write_text
    from .models import format_inversion, invert_measurement

    result = invert_measurement(args.model, args.measured, args.features)
    print(format_inversion(result))
    if args.json:
        write_text(json.dumps(result, indent=2) + "\n", args.json)
    return 0
