"""`speckleml dynamics <stage>`: command line of the dynamics study (paper 000, case 1: Kuramoto).

Stages (chained by rules/dynamics.smk) parse their options and call one library function each:
``simulate`` (:func:`.simulate.run_simulation`), ``speckle`` (:func:`.simulate.write_speckle_store`),
``train`` (:func:`.train.run_training`), ``evaluate`` (:func:`.evaluate.run_evaluation`), ``sweep-level``
(:func:`.sweep_level.run_sweep_level`), ``figures`` (:func:`.figures.make_figures`), ``sweep-table``
(:func:`.sweeps.gather_sweeps`). Option defaults are the config schema's (laptop scale).
"""

from __future__ import annotations

import argparse

from ..cli import (add_device, add_schema_options, add_seed, add_stage, add_study,
                   add_threads, non_negative_float, non_negative_int, option_values, positive_float, positive_int,
                   stage_config)

from ..runtime import set_torch_threads

KEY = "dynamics.kuramoto"
GEOMETRY = ("box", "detector", "dq_factor", "probe_sigma", "beamstop", "sigma_coh", "static_weight", "delta")
TRAINING = ("iterations", "learning_rate", "batch_series", "batch_time", "loss", "poisson_below", "rescale_t0",
            "method", "rtol", "atol", "max_num_steps", "spike_rule", "spike_factor", "spike_mad", "spike_window",
            "spike_patience", "lr_recovery", "min_learning_rate", "checkpoint_every", "snapshot_every")
MODEL = ("kernel_size", "coupling", "init_std", "kernel_symmetry")  # keyword arguments of the case's build_model
SYSTEM = ("series", "lattice", "kernel_size", "kernel_sigma", "kernel_normalization", "coupling", "t_max", "dt", "drop",
          "rtol", "atol", "test_series", "extrapolation")


def _optional_float(text: str):
    """``none``/``null``/``inf`` -> None (noise-free / fully coherent), else a float > 0."""
    return None if text.lower() in ("none", "null", "inf") else positive_float(text)



def _add_geometry(parser) -> None:
    group = parser.add_argument_group("scattering geometry (paper Methods, case study 1)")
    add_schema_options(group, f"{KEY}.system", box=positive_float)
    add_schema_options(group, f"{KEY}.speckle", detector=positive_int, dq_factor=positive_float, probe_sigma=positive_float,
             beamstop=non_negative_float, sigma_coh=_optional_float, static_weight=non_negative_float,
             delta=non_negative_float, lambda_max=_optional_float)


def _add_system(parser) -> None:
    group = parser.add_argument_group("true system (Kuramoto lattice)")
    add_schema_options(group, f"{KEY}.system", series=positive_int, lattice=positive_int, kernel_size=positive_int,
             kernel_sigma=positive_float, kernel_normalization=("none", "max", "l1"), coupling=positive_float,
             t_max=positive_float, dt=positive_float, drop=non_negative_int, rtol=positive_float, atol=positive_float,
             test_series=positive_int, extrapolation=positive_float)


def _add_training(parser) -> None:
    group = parser.add_argument_group("model and training (paper 000 Methods)")
    add_schema_options(group, f"{KEY}.system", coupling=positive_float)
    add_schema_options(group, f"{KEY}.train", kernel_size=positive_int, kernel_symmetry=("none", "point", "d4"), init_std=positive_float,
             iterations=positive_int,
             learning_rate=positive_float, batch_series=positive_int, batch_time=positive_int,
             loss=("auto", "l1", "poisson"), poisson_below=positive_float, rescale_t0=("auto", "yes", "no"),
             method=str, rtol=positive_float, atol=positive_float, max_num_steps=positive_int,
             spike_rule=("robust", "mean"), spike_factor=positive_float, spike_mad=positive_float,
             spike_window=positive_int, spike_patience=positive_int, lr_recovery=non_negative_int,
             min_learning_rate=positive_float,
             checkpoint_every=positive_int, snapshot_every=positive_int)
    group.add_argument("--stop-after", type=positive_int, help=argparse.SUPPRESS)  # tests: simulate a kill


def _add_evaluation(parser) -> None:
    group = parser.add_argument_group("evaluation")
    add_schema_options(group, f"{KEY}.evaluate", example=non_negative_int)
    add_schema_options(group, f"{KEY}.evaluate", prefix="eval-", rtol=positive_float, atol=positive_float)


# ------------------------------------------------------------------ handlers

def cmd_simulate(args) -> int:
    from .simulate import run_simulation

    set_torch_threads(args.threads)
    run_simulation(states=args.states, frames=args.frames, test_states=args.test_states, geometry=option_values(args, GEOMETRY),
                   lambda_max=args.lambda_max, seed=args.seed, run_config=stage_config(args), **option_values(args, SYSTEM))
    return 0


def cmd_speckle(args) -> int:
    from .simulate import write_speckle_store

    write_speckle_store(args.frames, states=args.states, geometry=option_values(args, GEOMETRY), lambda_max=args.lambda_max,
                        seed=args.seed, run_config=stage_config(args))
    return 0


def cmd_train(args) -> int:
    from .train import run_training

    set_torch_threads(args.threads)
    run_training(states=args.states, frames=args.frames, model=args.model, history=args.history,
                 checkpoint=args.checkpoint, member=args.member, seed=args.seed, model_options=option_values(args, MODEL),
                 device=args.device, stop_after=args.stop_after, run_config=stage_config(args), **option_values(args, TRAINING))
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import run_evaluation

    set_torch_threads(args.threads)
    run_evaluation(test_states=args.test_states, train_states=args.train_states, frames=args.frames, models=args.models,
                   metrics=args.metrics, store=args.store, per_frame=args.per_frame, example=args.example,
                   rtol=args.eval_rtol, atol=args.eval_atol, device=args.device, run_config=stage_config(args))
    return 0


def cmd_sweep_level(args) -> int:
    from .sweep_level import run_sweep_level

    set_torch_threads(args.threads)
    run_sweep_level(states=args.states, test_states=args.test_states, frames=args.frames, model=args.model,
                    history=args.history, metrics=args.metrics, store=args.store, checkpoint=args.checkpoint,
                    geometry=option_values(args, GEOMETRY), lambda_max=args.lambda_max, seed=args.seed,
                    model_options=option_values(args, MODEL), example=args.example, eval_rtol=args.eval_rtol,
                    eval_atol=args.eval_atol, device=args.device, stop_after=args.stop_after,
                    run_config=stage_config(args), **option_values(args, TRAINING))
    return 0


def cmd_figures(args) -> int:
    from .figures import make_figures

    make_figures(args.evaluation, args.histories, args.metrics, fig2=args.fig2, kernels=args.kernels,
                 vorticity=args.vorticity, spread=args.spread, c2=args.c2)
    return 0


def cmd_sweep_table(args) -> int:
    from .sweeps import gather_sweeps

    gather_sweeps(args.condition or [], args.reference, args.table, args.plot, level_stores=args.level_stores)
    return 0


# ------------------------------------------------------------------ parser

def _paths(parser, specs) -> None:
    for flag, text in specs:
        parser.add_argument(flag, required=True, help=text)


def _runtime(parser, seed: bool = True, device: bool = True) -> None:
    if seed:
        add_seed(parser)
    if device:
        add_device(parser)
    add_threads(parser, default=1)


def register(commands) -> None:
    stages = add_study(commands, "dynamics", "neural ODEs learned through speckle (paper 000)")
    from .scan_cli import register_scan  # case 4 (scan-* stages)
    from .swarm_cli import register_swarm  # case 2 (swarm-* stages)

    register_swarm(stages)
    register_scan(stages)
    ex = "example:\n  speckleml dynamics "

    p = add_stage(stages, "simulate", cmd_simulate, help="integrate the true Kuramoto lattice -> states store, "
                  "speckle -> frames store",
                  epilog=ex + "simulate states.zarr --frames frames.zarr --test-states test_states.zarr")
    p.add_argument("states", help="output states store (series, time, y, x), phases in radians")
    p.add_argument("--frames", help="output frames store (speckle of the training states)")
    p.add_argument("--test-states", help="output states store of new initial conditions for the evaluation")
    _add_system(p)
    _add_geometry(p)
    _runtime(p, device=False)

    p = add_stage(stages, "speckle", cmd_speckle, help="speckle frames of a states store under one scattering "
                  "condition (sweeps)", epilog=ex + "speckle states.zarr noisy.zarr --lambda-max 1000")
    p.add_argument("states", help="input states store (kuramoto)")
    p.add_argument("frames", help="output frames store")
    _add_geometry(p)
    _runtime(p, device=False)

    p = add_stage(stages, "train", cmd_train, help="train one NODE ensemble member through speckle (checkpointed; "
                  "a rerun resumes)", epilog=ex + "train --states states.zarr --frames frames.zarr --model m0.pt "
                  "--history m0_history.zarr --member 0")
    _paths(p, [("--states", "true states store (initial conditions of the windows)"),
               ("--frames", "observed frames store"), ("--model", "output model file (.pt)"),
               ("--history", "output training history store (loss, kernel snapshots)")])
    p.add_argument("--checkpoint", help="checkpoint file (default: MODEL.ckpt); resumed when present")
    p.add_argument("--member", type=non_negative_int, default=0, help="ensemble member; its seed is --seed + member")
    _add_training(p)
    _runtime(p)

    p = add_stage(stages, "evaluate", cmd_evaluate, help="extrapolate the ensemble on new initial conditions; "
                  "metrics table and evaluation store", epilog=ex + "evaluate --test-states test.zarr --train-states "
                  "states.zarr --frames frames.zarr --models m0.pt m1.pt --metrics metrics.csv --store ev.zarr")
    _paths(p, [("--test-states", "true test trajectories (new initial conditions)"),
               ("--train-states", "training states (for the training window length)"),
               ("--frames", "training frames store (scattering geometry)"),
               ("--metrics", "output metrics CSV (members + ensemble mean/min/max)"),
               ("--store", "output evaluation store")])
    p.add_argument("--models", nargs="+", required=True, help="member model files")
    p.add_argument("--per-frame", help="output per-frame CSV (MAE, r vs time)")
    _add_evaluation(p)
    _runtime(p, seed=False)

    p = add_stage(stages, "sweep-level", cmd_sweep_level, help="one robustness-sweep level: speckle under its "
                  "condition, train a model, evaluate it",
                  epilog=ex + "sweep-level --states states.zarr --test-states test.zarr --frames f.zarr --model m.pt "
                  "--history h.zarr --metrics m.csv --store e.zarr --lambda-max 10")
    _paths(p, [("--states", "training truth (states store)"), ("--test-states", "test truth (states store)"),
               ("--frames", "output frames store of this condition"), ("--model", "output model file"),
               ("--history", "output training history store"), ("--metrics", "output metrics CSV"),
               ("--store", "output evaluation store")])
    p.add_argument("--checkpoint", help="checkpoint file (default: MODEL.ckpt)")
    _add_geometry(p)
    _add_training(p)
    _add_evaluation(p)
    _runtime(p)

    p = add_stage(stages, "figures", cmd_figures, help="Fig. 2 and Supp. Fig. 2-4 analogues")
    _paths(p, [("--evaluation", "evaluation store"), ("--metrics", "metrics CSV"),
               ("--fig2", "output figure: kernel evolution, real space, r/psi, speckle (Fig. 2)"),
               ("--kernels", "output figure: kernel and loss history per member (Supp. Fig. 2)"),
               ("--vorticity", "output figure: error vs vorticity (Supp. Fig. 3)"),
               ("--spread", "output figure: MAE per member (Supp. Fig. 4a)"),
               ("--c2", "output figure: C2 true vs predicted, slice MAE, tau, gamma (Fig. 2k, Supp. Fig. 4d)")])
    p.add_argument("--histories", nargs="+", required=True, help="training history stores")

    p = add_stage(stages, "sweep-table", cmd_sweep_table, help="robustness sweeps: table and plot of final-frame "
                  "and kernel MAE vs condition", epilog=ex + "sweep-table --reference metrics.csv --condition "
                  "lambda_max 1000 lvl/metrics.csv --table sweeps.csv --plot sweeps.png")
    p.add_argument("--reference", required=True, help="metrics CSV of the noise-free ensemble (min-max band)")
    p.add_argument("--condition", nargs=3, action="append", metavar=("PARAM", "VALUE", "METRICS"),
                   help="one sweep level: parameter, value, its metrics CSV (repeat)")
    p.add_argument("--level-stores", nargs="*", help="evaluation store of each level, in --condition order (kernels)")
    _paths(p, [("--table", "output sweep table (CSV)"), ("--plot", "output sweep plot (PNG)")])
