"""`speckleml dynamics <stage>`: command line of the dynamics study (paper 000, case 1: Kuramoto).

Stages (chained by rules/dynamics.smk):

* ``simulate``  ground truth with torchdiffeq -> states store; speckle -> frames store
* ``speckle``   frames of an existing states store under another scattering condition (sweeps)
* ``train``     one ensemble member trained only against the frames (checkpointed, resumable)
* ``evaluate``  extrapolate the members on new initial conditions; metrics table and store
* ``figures``   Fig. 2 and Supp. Fig. 2-4 analogues
* ``sweep-table``  robustness sweeps (Fig. 5, 6, Supp. 16): table and plot vs condition
"""

from __future__ import annotations

import argparse

from ..cli import (add_device, add_seed, add_stage, add_study, add_threads, non_negative_float, positive_float,
                   positive_int)
from ..runtime import set_torch_threads
from ..errors import InputError

SPLITS = {"train": 0, "test": 1}


def _optional_float(text: str):
    """``none``/``null`` -> None (noise-free / fully coherent), else a float > 0."""
    if text.lower() in ("none", "null", "inf"):
        return None
    return positive_float(text)


def _add_geometry(parser) -> None:
    group = parser.add_argument_group("scattering geometry (paper Methods, case study 1)")
    group.add_argument("--box", type=positive_float, default=2.0, help="box side L (default %(default)s)")
    group.add_argument("--detector", type=positive_int, default=84,
                       help="detector pixels per side at dQ = pi/L (default %(default)s)")
    group.add_argument("--dq-factor", type=positive_float, default=1.0,
                       help="detector pixel dQ in units of pi/L (default %(default)s)")
    group.add_argument("--probe-sigma", type=positive_float, default=0.25,
                       help="Gaussian probe sigma as a fraction of L (default %(default)s)")
    group.add_argument("--beamstop", type=non_negative_float, default=5.0,
                       help="beamstop radius in pixels at dQ = pi/L (default %(default)s)")
    group.add_argument("--sigma-coh", type=_optional_float, default=None,
                       help="coherence length as a fraction of L; none = fully coherent (default)")
    group.add_argument("--static-weight", type=non_negative_float, default=0.1,
                       help="weight w0 of the orientation-independent channel I0 (default %(default)s)")
    group.add_argument("--delta", type=non_negative_float, default=0.0,
                       help="form-factor perturbation delta of the truth (default %(default)s)")
    group.add_argument("--lambda-max", type=_optional_float, default=None,
                       help="Poisson noise: expected counts of the brightest t0 pixel; none = noise-free")


def _geometry(args, size: int):
    from .systems.kuramoto import SpeckleGeometry

    if args.delta > 1:
        raise InputError(f"--delta must be in [0, 1], got {args.delta}")
    return SpeckleGeometry(size=size, box=args.box, detector=args.detector, dq_factor=args.dq_factor,
                           probe_sigma=args.probe_sigma, beamstop=args.beamstop, sigma_coh=args.sigma_coh,
                           static_weight=args.static_weight, delta=args.delta)



# ------------------------------------------------------------------ simulate / speckle

def _write_frames(path, states_store, states_path, geometry, args, seed: int) -> None:
    from ..provenance import provenance_from_args
    from ..stores import write_frames
    from .simulate import speckle_frames

    frames, mask = speckle_frames(states_store["states"], geometry, args.lambda_max, seed=seed)
    qy, qx = (a.astype("float64") for a in _q_axes(geometry))
    write_frames(path, frames, mask=mask, qx=qx, qy=qy,
                 attrs={"t": states_store["t"].tolist(), "dt": float(states_store["t"][1] - states_store["t"][0]),
                        "geometry": geometry.as_attrs(), "lambda_max": args.lambda_max,
                        "units": "counts" if args.lambda_max else "intensity (probe peak amplitude 1)",
                        "q_units": "1/length of the box"},
                 provenance=provenance_from_args(args, inputs=[states_path]))


def _q_axes(geometry):
    import torch

    from ..scattering import detector_q_axes

    qy, qx = detector_q_axes(geometry.detector_pixels, geometry.dq, dtype=torch.float64)
    return qy.numpy(), qx.numpy()


def cmd_simulate(args) -> int:
    import numpy as np

    from ..provenance import provenance_from_args
    from ..stores import read_states, write_states
    from ..runtime import seed_everything
    from .simulate import simulate_states, true_kernel

    set_torch_threads(args.threads)
    seed_everything(args.seed)
    kernel = true_kernel(args.kernel_size, args.kernel_sigma, args.kernel_normalization)
    geometry = _geometry(args, args.lattice)
    attrs = {"kernel": kernel.tolist(), "coupling": args.coupling, "kernel_sigma": args.kernel_sigma,
             "kernel_normalization": args.kernel_normalization, "box": args.box, "units": "radians",
             "dropped": args.drop, "dt": args.dt}
    runs = [("train", args.states, args.series, args.t_max)]
    if args.test_states:
        runs.append(("test", args.test_states, args.test_series, args.t_max * args.extrapolation))
    for split, path, n_series, t_max in runs:
        rng = np.random.default_rng([args.seed, SPLITS[split]])  # independent initial conditions per split
        states, t = simulate_states(n_series, args.lattice, kernel, args.coupling, t_max, args.dt, args.drop,
                                    rng, rtol=args.rtol, atol=args.atol)
        write_states(path, states, t, system="kuramoto", dims=("series", "time", "y", "x"),
                     attrs={**attrs, "split": split}, provenance=provenance_from_args(args))
    if args.frames:
        _write_frames(args.frames, read_states(args.states), args.states, geometry, args, seed=args.seed)
    return 0


def cmd_speckle(args) -> int:
    from ..stores import read_states

    store = read_states(args.states)
    if store.attrs.get("system") != "kuramoto":
        raise InputError(f"{args.states}: states store is of system {store.attrs.get('system')!r}, expected 'kuramoto'")
    geometry = _geometry(args, int(store["states"].shape[-1]))
    _write_frames(args.frames, store, args.states, geometry, args, seed=args.seed)
    return 0


# ------------------------------------------------------------------ train

def _train_settings(args, lambda_max, seed: int):
    from .training import TrainSettings
    from .train import choose_loss

    loss = choose_loss(args.loss, lambda_max, args.poisson_below)
    rescale = {"auto": lambda_max is not None, "yes": True, "no": False}[args.rescale_t0]
    return TrainSettings(
        iterations=args.iterations, learning_rate=args.learning_rate, batch_series=args.batch_series,
        batch_time=args.batch_time, loss=loss, rescale_t0=rescale, method=args.method, rtol=args.rtol,
        atol=args.atol, max_num_steps=args.max_num_steps, spike_factor=args.spike_factor,
        spike_window=args.spike_window, min_learning_rate=args.min_learning_rate,
        checkpoint_every=args.checkpoint_every, snapshot_every=args.snapshot_every, seed=seed,
    )


def _run_training(args, states, frames, model_path, history_path, checkpoint, member: int) -> bool:
    """Train one member and write its model and history; False when stopped early (--stop-after)."""
    import torch

    from ..provenance import provenance_from_args
    from ..stores import read_frames
    from .training import write_history
    from ..runtime import resolve_device
    from .models import save_model
    from .train import remove_checkpoint, train_member

    device = resolve_device(args.device)
    lambda_max = read_frames(frames, lazy=True).attrs.get("lambda_max")
    seed = args.seed + member
    settings = _train_settings(args, lambda_max, seed)
    checkpoint = checkpoint or f"{model_path}.ckpt"
    model, history, geometry, _ = train_member(states, frames, checkpoint, settings, args.kernel_size, args.coupling,
                                               args.init_std, member, device, stop_after=args.stop_after)
    if history["iterations"] < settings.iterations:
        return False  # interrupted on purpose (tests): the checkpoint is the result
    provenance = provenance_from_args(args, inputs=[states, frames])
    write_history(history_path, history, attrs={"member": member, "seed": seed, "loss": settings.loss,
                                                "rescale_t0": settings.rescale_t0, "snapshot": "coupling kernel"},
                  provenance=provenance)
    save_model(model_path, model.to(torch.device("cpu")), settings, member, seed, provenance=provenance,
               extra={"geometry": geometry.as_attrs(), "rollbacks": history["rollbacks"]})
    remove_checkpoint(checkpoint)
    return True


def cmd_train(args) -> int:
    set_torch_threads(args.threads)
    _run_training(args, args.states, args.frames, args.model, args.history, args.checkpoint, args.member)
    return 0


# ------------------------------------------------------------------ evaluate

def _run_evaluation(args, test_states, train_states, frames_path, models, metrics, store, per_frame=None) -> None:
    """Evaluate ``models`` on the test truth; write the metrics table and evaluation store."""
    import numpy as np

    from ..atomic import write_csv
    from ..provenance import provenance_from_args
    from ..stores import read_frames, read_states, write_store
    from ..runtime import resolve_device
    from .evaluate import EVALUATION, evaluate_members, per_frame_table, summarize
    from .models import load_model
    from .train import geometry_from_attrs

    device = resolve_device(args.device)
    test = read_states(test_states)
    train_t = read_states(train_states)["t"]
    frames = read_frames(frames_path, lazy=True)
    geometry = geometry_from_attrs(frames.attrs, frames_path)
    true_kernel = np.asarray(test.attrs.get("kernel"), np.float64)
    if true_kernel.ndim != 2:
        raise InputError(f"{test_states}: states store has no 'kernel' attr")
    loaded = [load_model(path, device)[0] for path in models]
    train_t_max = float(train_t[-1])
    arrays, rows = evaluate_members(loaded, test["states"], test["t"], true_kernel, geometry, train_t_max,
                                    example=args.example, rtol=args.eval_rtol, atol=args.eval_atol, device=device)
    provenance = provenance_from_args(args, inputs=[test_states, train_states, frames_path, *models])
    dims = {"speckle_true": ("qy", "qx"), "speckle_pred": ("member", "qy", "qx"), "mask": ("qy", "qx")}
    write_store(store, EVALUATION, arrays,
                attrs={"train_t_max": train_t_max, "example": args.example, "geometry": geometry.as_attrs(),
                       "lambda_max": frames.attrs.get("lambda_max"), "models": [str(p) for p in models],
                       "mae_units": "radians (phi -> -phi ambiguity removed per frame)"},
                provenance=provenance, dims=dims)
    write_csv(summarize(rows), metrics)
    if per_frame:
        write_csv(per_frame_table(arrays), per_frame)


def cmd_evaluate(args) -> int:
    set_torch_threads(args.threads)
    _run_evaluation(args, args.test_states, args.train_states, args.frames, args.models, args.metrics, args.store,
                    args.per_frame)
    return 0


# ------------------------------------------------------------------ one sweep level

def cmd_sweep_level(args) -> int:
    """Speckle under the level's condition, train one model on it, evaluate it: one job per level."""
    from ..stores import read_states

    set_torch_threads(args.threads)
    store = read_states(args.states)
    geometry = _geometry(args, int(store["states"].shape[-1]))
    _write_frames(args.frames, store, args.states, geometry, args, seed=args.seed)
    if not _run_training(args, args.states, args.frames, args.model, args.history, args.checkpoint, member=0):
        return 0
    _run_evaluation(args, args.test_states, args.states, args.frames, [args.model], args.metrics, args.store)
    return 0


# ------------------------------------------------------------------ figures and sweeps

def cmd_figures(args) -> int:
    from .figures import make_figures

    make_figures(args.evaluation, args.histories, args.metrics, fig2=args.fig2, kernels=args.kernels,
                 vorticity=args.vorticity, spread=args.spread)
    return 0


def cmd_sweep_table(args) -> int:
    from .sweeps import gather_sweeps

    gather_sweeps(args.condition or [], args.reference, args.table, args.plot)
    return 0


# ------------------------------------------------------------------ parser

def _add_system(parser) -> None:
    group = parser.add_argument_group("true system (Kuramoto lattice)")
    group.add_argument("--series", type=positive_int, default=100, help="initial conditions (default %(default)s)")
    group.add_argument("--lattice", type=positive_int, default=80, help="lattice sites per side (default %(default)s)")
    group.add_argument("--kernel-size", type=positive_int, default=11, help="true kernel width (default %(default)s)")
    group.add_argument("--kernel-sigma", type=positive_float, default=1.5, help="LoG sigma in sites (default %(default)s)")
    group.add_argument("--kernel-normalization", choices=("none", "max", "l1"), default="none",
                       help="scale of the -LoG kernel (default %(default)s, the paper's)")
    group.add_argument("--coupling", type=positive_float, default=20.0, help="coupling strength K (default %(default)s)")
    group.add_argument("--t-max", type=positive_float, default=50.0, help="kept time window (default %(default)s)")
    group.add_argument("--dt", type=positive_float, default=0.5, help="time step of the frames (default %(default)s)")
    group.add_argument("--drop", type=int, default=10, help="leading time points dropped (default %(default)s)")
    group.add_argument("--rtol", type=positive_float, default=1e-7, help="dopri5 rtol (default %(default)s)")
    group.add_argument("--atol", type=positive_float, default=1e-9, help="dopri5 atol (default %(default)s)")


def _add_training(parser) -> None:
    group = parser.add_argument_group("model and training (paper 000 Methods)")
    group.add_argument("--kernel-size", type=positive_int, default=11, help="trainable kernel width (default %(default)s)")
    group.add_argument("--coupling", type=positive_float, default=20.0, help="known coupling strength K (default %(default)s)")
    group.add_argument("--init-std", type=positive_float, default=0.01, help="std of the initial kernel (default %(default)s)")
    group.add_argument("--iterations", type=positive_int, default=500, help="optimizer steps (default %(default)s)")
    group.add_argument("--learning-rate", type=positive_float, default=5e-3, help="Adam learning rate (default %(default)s)")
    group.add_argument("--batch-series", type=positive_int, default=20, help="series per batch (default %(default)s)")
    group.add_argument("--batch-time", type=positive_int, default=30, help="time points per window (default %(default)s)")
    group.add_argument("--loss", choices=("auto", "l1", "poisson"), default="auto",
                       help="auto: Poisson NLL when lambda_max <= --poisson-below, else L1 (default %(default)s)")
    group.add_argument("--poisson-below", type=positive_float, default=10.0,
                       help="lambda_max up to which auto picks the Poisson NLL (default %(default)s)")
    group.add_argument("--rescale-t0", choices=("auto", "yes", "no"), default="auto",
                       help="rescale observed frames at each window's t0; auto: when the frames are noisy")
    group.add_argument("--method", default="dopri5", help="torchdiffeq solver (default %(default)s)")
    group.add_argument("--rtol", type=positive_float, default=1e-7, help="training solver rtol (default %(default)s)")
    group.add_argument("--atol", type=positive_float, default=1e-9, help="training solver atol (default %(default)s)")
    group.add_argument("--max-num-steps", type=positive_int, default=20000,
                       help="solver step budget per solve; more counts as a failure (default %(default)s)")
    group.add_argument("--spike-factor", type=positive_float, default=3.0,
                       help="rollback when the loss exceeds this x the running mean (default %(default)s)")
    group.add_argument("--spike-window", type=positive_int, default=10,
                       help="losses in the running mean (default %(default)s)")
    group.add_argument("--min-learning-rate", type=positive_float, default=1e-6)
    group.add_argument("--checkpoint-every", type=positive_int, default=25)
    group.add_argument("--snapshot-every", type=positive_int, default=10)
    group.add_argument("--stop-after", type=positive_int, help=argparse.SUPPRESS)  # tests: simulate a kill


def _add_evaluation(parser) -> None:
    group = parser.add_argument_group("evaluation")
    group.add_argument("--example", type=int, default=0, help="test condition drawn in the figures (default %(default)s)")
    group.add_argument("--eval-rtol", type=positive_float, default=1e-7, help="extrapolation rtol (default %(default)s)")
    group.add_argument("--eval-atol", type=positive_float, default=1e-9, help="extrapolation atol (default %(default)s)")


def register(commands) -> None:
    stages = add_study(commands, "dynamics", "neural ODEs learned through speckle (paper 000)")

    p = add_stage(stages, "simulate", cmd_simulate,
                  help="integrate the true Kuramoto lattice (torchdiffeq) -> states store, speckle -> frames store",
                  epilog="example:\n  speckleml dynamics simulate results/dynamics/kuramoto/states.zarr \\\n"
                         "      --frames results/dynamics/kuramoto/frames.zarr --series 16 --lattice 24 --kernel-size 7 \\\n"
                         "      --kernel-normalization max --coupling 1 --detector 26 --beamstop 2")
    p.add_argument("states", help="output states store (series, time, y, x), phases in radians")
    p.add_argument("--frames", help="output frames store (speckle of the training states)")
    p.add_argument("--test-states", help="output states store of new initial conditions for the evaluation")
    p.add_argument("--test-series", type=positive_int, default=50, help="test initial conditions (default %(default)s)")
    p.add_argument("--extrapolation", type=positive_float, default=5.0,
                   help="test window as a multiple of --t-max (default %(default)s)")
    _add_system(p)
    _add_geometry(p)
    add_seed(p)
    add_threads(p, default=1)

    p = add_stage(stages, "speckle", cmd_speckle,
                  help="speckle frames of a states store under one scattering condition (sweeps)",
                  epilog="example:\n  speckleml dynamics speckle results/dynamics/kuramoto/states.zarr noisy.zarr "
                         "--detector 26 --beamstop 2 --lambda-max 1000")
    p.add_argument("states", help="input states store (kuramoto)")
    p.add_argument("frames", help="output frames store")
    _add_geometry(p)
    add_seed(p)
    add_threads(p, default=1)

    p = add_stage(stages, "train", cmd_train,
                  help="train one NODE ensemble member through speckle (checkpointed; a rerun resumes)",
                  epilog="example:\n  speckleml dynamics train --states states.zarr --frames frames.zarr \\\n"
                         "      --model member0.pt --history member0_history.zarr --member 0 --kernel-size 7 \\\n"
                         "      --coupling 1 --iterations 800 --learning-rate 0.01 --batch-series 8 --batch-time 10")
    p.add_argument("--states", required=True, help="true states store (initial conditions of the windows)")
    p.add_argument("--frames", required=True, help="observed frames store")
    p.add_argument("--model", required=True, help="output model file (.pt)")
    p.add_argument("--history", required=True, help="output training history store (loss, kernel snapshots)")
    p.add_argument("--checkpoint", help="checkpoint file (default: MODEL.ckpt); resumed when present")
    p.add_argument("--member", type=int, default=0, help="ensemble member; its seed is --seed + member")
    _add_training(p)
    add_seed(p)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "evaluate", cmd_evaluate,
                  help="extrapolate the ensemble on new initial conditions; metrics table and evaluation store",
                  epilog="example:\n  speckleml dynamics evaluate --test-states test_states.zarr --train-states states.zarr \\\n"
                         "      --frames frames.zarr --models member0.pt member1.pt --metrics metrics.csv \\\n"
                         "      --per-frame per_frame.csv --store evaluation.zarr")
    p.add_argument("--test-states", required=True, help="true test trajectories (new initial conditions)")
    p.add_argument("--train-states", required=True, help="training states (for the training window length)")
    p.add_argument("--frames", required=True, help="training frames store (scattering geometry)")
    p.add_argument("--models", nargs="+", required=True, help="member model files")
    p.add_argument("--metrics", required=True, help="output metrics CSV (members + ensemble mean/min/max)")
    p.add_argument("--per-frame", help="output per-frame CSV (MAE, r vs time)")
    p.add_argument("--store", required=True, help="output evaluation store")
    _add_evaluation(p)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "sweep-level", cmd_sweep_level,
                  help="one robustness-sweep level: speckle under its condition, train a model, evaluate it",
                  epilog="example:\n  speckleml dynamics sweep-level --states states.zarr --test-states test_states.zarr \\\n"
                         "      --frames lvl/frames.zarr --model lvl/model.pt --history lvl/history.zarr \\\n"
                         "      --metrics lvl/metrics.csv --store lvl/evaluation.zarr --lambda-max 1000 \\\n"
                         "      --detector 26 --beamstop 2 --kernel-size 7 --coupling 1 --iterations 800")
    p.add_argument("--states", required=True, help="training truth (states store)")
    p.add_argument("--test-states", required=True, help="test truth (states store)")
    p.add_argument("--frames", required=True, help="output frames store of this condition")
    p.add_argument("--model", required=True, help="output model file")
    p.add_argument("--history", required=True, help="output training history store")
    p.add_argument("--metrics", required=True, help="output metrics CSV")
    p.add_argument("--store", required=True, help="output evaluation store")
    p.add_argument("--checkpoint", help="checkpoint file (default: MODEL.ckpt)")
    _add_geometry(p)
    _add_training(p)
    _add_evaluation(p)
    add_seed(p)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "figures", cmd_figures, help="Fig. 2 and Supp. Fig. 2-4 analogues",
                  epilog="example:\n  speckleml dynamics figures --evaluation evaluation.zarr --histories h0.zarr h1.zarr \\\n"
                         "      --metrics metrics.csv --fig2 fig2.png --kernels kernels.png --vorticity vort.png --spread spread.png")
    p.add_argument("--evaluation", required=True)
    p.add_argument("--histories", nargs="+", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--fig2", required=True, help="kernel evolution, real space, r/psi, speckle (Fig. 2)")
    p.add_argument("--kernels", required=True, help="kernel and loss history per member (Supp. Fig. 2)")
    p.add_argument("--vorticity", required=True, help="error vs vorticity (Supp. Fig. 3)")
    p.add_argument("--spread", required=True, help="per-condition MAE per member (Supp. Fig. 4a)")

    p = add_stage(stages, "sweep-table", cmd_sweep_table,
                  help="robustness sweeps: table and plot of final-frame and kernel MAE vs condition",
                  epilog="example:\n  speckleml dynamics sweep-table --reference metrics.csv \\\n"
                         "      --condition lambda_max 1000 sweeps/lambda_max/0/metrics.csv \\\n"
                         "      --table sweeps.csv --plot sweeps.png")
    p.add_argument("--reference", required=True, help="metrics CSV of the noise-free ensemble (min-max band)")
    p.add_argument("--condition", nargs=3, action="append", metavar=("PARAM", "VALUE", "METRICS"),
                   help="one sweep level: parameter, value, its metrics CSV (repeat)")
    p.add_argument("--table", required=True)
    p.add_argument("--plot", required=True)
