"""`speckleml lotka-volterra <stage>`: the fluctuating-source case of paper 000 (case study 3).

Stages (chained by rules/dynamics_lotka_volterra.smk) parse their options and call one library
function each: ``simulate`` (:func:`.lotka_volterra_simulate.run_simulation`), ``train`` (the
shared :func:`.train.run_training`, one job per member), ``evaluate``
(:func:`.lotka_volterra_evaluate.run_evaluation`), ``figures``
(:func:`.lotka_volterra_figures.make_figures`). Option defaults are the config schema's
(``dynamics.lotka_volterra``, laptop scale).
"""

from __future__ import annotations

import argparse

from ..cli import (add_device, add_schema_options, add_seed, add_stage, add_study,
                   add_threads, non_negative_int, option_values, positive_float, positive_int, stage_config)

KEY = "dynamics.lotka_volterra"
SYSTEM = ("series", "t_max", "dt", "test_series", "test_t_max", "test_dt", "n_particles", "box", "particle_radius")
SPECKLE = ("detector", "dq_factor", "probe_sigma", "render_dtype")
TRAINING = ("iterations", "learning_rate", "batch_series", "batch_time", "loss", "poisson_below", "rescale_t0",
            "method", "rtol", "atol", "max_num_steps", "spike_rule", "spike_factor", "spike_mad", "spike_window",
            "spike_patience", "lr_recovery", "min_learning_rate", "checkpoint_every", "snapshot_every")



def cmd_simulate(args) -> int:
    from ..runtime import set_torch_threads
    from .lotka_volterra_simulate import run_simulation

    set_torch_threads(args.threads)
    run_simulation(states=args.states, frames=args.frames, test_states=args.test_states, seed=args.seed,
                   run_config=stage_config(args), **option_values(args, SYSTEM), **option_values(args, SPECKLE))
    return 0


def cmd_train(args) -> int:
    from ..runtime import set_torch_threads
    from .train import run_training

    set_torch_threads(args.threads)
    run_training(states=args.states, frames=args.frames, model=args.model, history=args.history,
                 checkpoint=args.checkpoint, member=args.member, seed=args.seed,
                 model_options={"hidden": args.hidden, "init_scale": args.init_scale},
                 device=args.device, stop_after=args.stop_after, run_config=stage_config(args), **option_values(args, TRAINING))
    return 0


def cmd_evaluate(args) -> int:
    from ..runtime import set_torch_threads
    from .lotka_volterra_evaluate import run_evaluation

    set_torch_threads(args.threads)
    run_evaluation(test_states=args.test_states, train_states=args.train_states, models=args.models,
                   metrics=args.metrics, store=args.store, grid_points=args.grid_points,
                   agreement_tolerance=args.agreement_tolerance, rtol=args.eval_rtol, atol=args.eval_atol,
                   seed=args.seed, run_config=stage_config(args))
    return 0


def cmd_figures(args) -> int:
    from .lotka_volterra_figures import make_figures

    make_figures(args.evaluation, args.metrics, trajectories=args.trajectories, spectra=args.spectra,
                 emd=args.emd, fields=args.fields)
    return 0


def _paths(parser, specs) -> None:
    for flag, text in specs:
        parser.add_argument(flag, required=True, help=text)


def register(commands) -> None:
    stages = add_study(commands, "lotka-volterra", "dynamics case 3: Lotka-Volterra beam motion learned through "
                       "speckle (paper 000)")
    ex = "example:\n  speckleml lotka-volterra "
    p = add_stage(stages, "simulate", cmd_simulate, help="random objects, Lotka-Volterra truth -> states stores, "
                  "speckle -> frames store", epilog=ex + "simulate states.zarr frames.zarr test_states.zarr")
    p.add_argument("states", help="output training states store (series, time, 2)")
    p.add_argument("frames", help="output training frames store (series, time, qy, qx)")
    p.add_argument("test_states", help="output test states store (new objects, long horizon)")
    group = p.add_argument_group("truth and speckle (paper 000 case study 3)")
    add_schema_options(group, f"{KEY}.system", series=positive_int, t_max=positive_float, dt=positive_float, test_series=positive_int,
             test_t_max=positive_float, test_dt=positive_float, n_particles=positive_int, box=positive_float,
             particle_radius=positive_float)
    add_schema_options(group, f"{KEY}.speckle", detector=positive_int, dq_factor=positive_float, probe_sigma=positive_float,
             render_dtype=("float32", "float64"))
    add_seed(p)
    add_threads(p, default=1)

    p = add_stage(stages, "train", cmd_train, help="train one MLP ensemble member through speckle (checkpointed; "
                  "a rerun resumes)", epilog=ex + "train --states s.zarr --frames f.zarr --model m0.pt "
                  "--history h0.zarr --member 0")
    _paths(p, [("--states", "training states store (window initial states)"), ("--frames", "training frames store"),
               ("--model", "output model file (.pt)"), ("--history", "output training history store")])
    p.add_argument("--checkpoint", help="checkpoint file (default: MODEL.ckpt); resumed when present")
    p.add_argument("--member", type=non_negative_int, default=0, help="ensemble member; its seed is --seed + member")
    group = p.add_argument_group("model and training (paper 000 Methods)")
    add_schema_options(group, f"{KEY}.train", hidden=positive_int, init_scale=positive_float, iterations=positive_int,
             learning_rate=positive_float,
             batch_series=positive_int, batch_time=positive_int, loss=("auto", "l1", "poisson"),
             poisson_below=positive_float, rescale_t0=("auto", "yes", "no"), method=str, rtol=positive_float,
             atol=positive_float, max_num_steps=positive_int, spike_rule=("robust", "mean"),
             spike_factor=positive_float, spike_mad=positive_float, spike_window=positive_int,
             spike_patience=positive_int, lr_recovery=non_negative_int, min_learning_rate=positive_float,
             checkpoint_every=positive_int, snapshot_every=positive_int)
    group.add_argument("--stop-after", type=positive_int, help=argparse.SUPPRESS)  # tests: simulate a kill
    add_seed(p)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "evaluate", cmd_evaluate, help="extrapolate members, ensemble model and an untrained "
                  "baseline on new objects; tidy metrics and evaluation store",
                  epilog=ex + "evaluate --test-states t.zarr --train-states s.zarr --models m0.pt m1.pt "
                  "--metrics metrics.csv --store evaluation.zarr")
    _paths(p, [("--test-states", "true test trajectories"), ("--train-states", "training states (window)"),
               ("--metrics", "output tidy metrics CSV"), ("--store", "output evaluation store")])
    p.add_argument("--models", nargs="+", required=True, help="member model files")
    group = p.add_argument_group("evaluation")
    add_schema_options(group, f"{KEY}.evaluate", grid_points=positive_int, agreement_tolerance=positive_float)
    add_schema_options(group, f"{KEY}.evaluate", prefix="eval-", rtol=positive_float, atol=positive_float)
    add_seed(p)
    add_threads(p, default=1)

    p = add_stage(stages, "figures", cmd_figures, help="Fig. 4c-f and Supp. Fig. 13-14 analogues")
    _paths(p, [("--evaluation", "evaluation store"), ("--metrics", "metrics CSV"),
               ("--trajectories", "output figure: x(t), y(t), V(t): truth, members band, ensemble model"),
               ("--spectra", "output figure: Fourier spectra and their CDFs"),
               ("--emd", "output figure: EMD distributions and periods"),
               ("--fields", "output figure: learned vector fields vs truth")])
