"""`speckleml dynamics swarm-<stage>`: command line of the swarm case (paper 000, Case study 2).

Stages (chained by rules/dynamics_swarm.smk), each one library call: ``swarm-simulate``
(:func:`.swarm_run.run_swarm_simulation`), ``swarm-train`` (:func:`.swarm_run.run_swarm_training`),
``swarm-evaluate`` (:func:`.swarm_evaluate.run_swarm_evaluation`), ``swarm-figures``
(:func:`.swarm_figures.make_swarm_figures`). Option defaults are the schema's (laptop scale).
"""

from __future__ import annotations

import argparse

from ..cli import (add_device, add_schema_options, add_seed, add_stage, add_threads,
                   non_negative_float, non_negative_int, option_values, positive_float, positive_int, stage_config)

from ..runtime import set_torch_threads

KEY = "dynamics.swarm"
SYSTEM = ("series", "particles", "disk_radius", "box_length", "cutoff", "aggregation", "t_max", "dt",
          "extrapolation", "test_series", "rtol", "atol")
GEOMETRY = ("detector", "dq_factor", "probe_sigma", "beamstop", "particle_radius")
PRETRAIN = ("hidden", "pretrain_steps", "pretrain_lr", "pretrain_scale")
TRAINING = ("iterations", "learning_rate", "batch_series", "batch_time", "loss", "poisson_below", "rescale_t0",
            "method", "rtol", "atol", "max_num_steps", "spike_rule", "spike_factor", "spike_mad", "spike_window",
            "spike_patience", "lr_recovery", "min_learning_rate", "checkpoint_every", "snapshot_every")



def cmd_simulate(args) -> int:
    from .swarm_run import run_swarm_simulation

    set_torch_threads(args.threads)
    run_swarm_simulation(states=args.states, frames=args.frames, test_states=args.test_states,
                         geometry=option_values(args, GEOMETRY), seed=args.seed, run_config=stage_config(args),
                         **option_values(args, SYSTEM))
    return 0


def cmd_train(args) -> int:
    from .swarm_run import run_swarm_training

    set_torch_threads(args.threads)
    run_swarm_training(states=args.states, frames=args.frames, model=args.model, history=args.history,
                       checkpoint=args.checkpoint, member=args.member, seed=args.seed, device=args.device,
                       stop_after=args.stop_after, run_config=stage_config(args), **option_values(args, PRETRAIN),
                       **option_values(args, TRAINING))
    return 0


def cmd_evaluate(args) -> int:
    from .swarm_evaluate import run_swarm_evaluation

    set_torch_threads(args.threads)
    run_swarm_evaluation(test_states=args.test_states, frames=args.frames, models=args.models, metrics=args.metrics,
                         store=args.store, example=args.example, snapshots=args.snapshots, n_lags=args.n_lags,
                         agreement_mae=args.agreement_mae,
                         rtol=args.eval_rtol, atol=args.eval_atol, device=args.device, run_config=stage_config(args))
    return 0


def cmd_figures(args) -> int:
    from .swarm_figures import make_swarm_figures

    make_swarm_figures(args.evaluation, fig3=args.fig3, supp10=args.supp10)
    return 0


def register_swarm(stages) -> None:
    """Add the swarm stages to the ``dynamics`` study's subparsers."""
    ex = "example:\n  speckleml dynamics "
    p = add_stage(stages, "swarm-simulate", cmd_simulate, help="swarm: integrate the true particles (eq. 4-5) -> "
                  "states stores, speckle (eq. 16) -> frames store",
                  epilog=ex + "swarm-simulate states.zarr --frames frames.zarr --test-states test.zarr")
    p.add_argument("states", help="output states store (series, time, particle, xy), length units")
    p.add_argument("--frames", required=True, help="output frames store of the training states")
    p.add_argument("--test-states", help="output states store of new initial conditions (evaluation)")
    add_schema_options(p.add_argument_group("true system"), f"{KEY}.system", series=positive_int, particles=positive_int,
             disk_radius=positive_float, box_length=positive_float, cutoff=positive_float,
             aggregation=("mean", "sum"), t_max=positive_float, dt=positive_float, extrapolation=positive_float,
             test_series=positive_int, rtol=positive_float, atol=positive_float)
    add_schema_options(p.add_argument_group("scattering geometry"), f"{KEY}.speckle", detector=positive_int, dq_factor=positive_float,
             probe_sigma=non_negative_float, beamstop=non_negative_float, particle_radius=positive_float)
    add_seed(p)
    add_threads(p, default=1)

    p = add_stage(stages, "swarm-train", cmd_train, help="swarm: pretrain (eq. 20) and train one graph-NODE member "
                  "through speckle (checkpointed; a rerun resumes)",
                  epilog=ex + "swarm-train --states s.zarr --frames f.zarr --model m0.pt --history h0.zarr")
    for flag, text in (("--states", "true states store (window initial conditions)"),
                       ("--frames", "observed frames store"), ("--model", "output model file (.pt)"),
                       ("--history", "output training history store")):
        p.add_argument(flag, required=True, help=text)
    p.add_argument("--checkpoint", help="checkpoint file (default: MODEL.ckpt); resumed when present")
    p.add_argument("--member", type=non_negative_int, default=0, help="ensemble member; its seed is --seed + member")
    add_schema_options(p.add_argument_group("model, pretraining and training"), f"{KEY}.train", hidden=positive_int,
             pretrain_steps=non_negative_int, pretrain_lr=positive_float, pretrain_scale=positive_float,
             iterations=positive_int, learning_rate=positive_float, batch_series=positive_int,
             batch_time=positive_int, loss=("auto", "l1", "poisson"), poisson_below=positive_float,
             rescale_t0=("auto", "yes", "no"), method=str, rtol=positive_float, atol=positive_float,
             max_num_steps=positive_int, spike_rule=("robust", "mean"), spike_factor=positive_float,
             spike_mad=positive_float, spike_window=positive_int, spike_patience=positive_int,
             lr_recovery=non_negative_int, min_learning_rate=positive_float, checkpoint_every=positive_int,
             snapshot_every=positive_int)
    p.add_argument("--stop-after", type=positive_int, help=argparse.SUPPRESS)  # tests: simulate a kill
    add_seed(p)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "swarm-evaluate", cmd_evaluate, help="swarm: extrapolate the ensemble on new initial "
                  "conditions; metrics CSV and evaluation store",
                  epilog=ex + "swarm-evaluate --test-states t.zarr --frames f.zarr --models m0.pt --metrics m.csv "
                  "--store ev.zarr")
    for flag, text in (("--test-states", "true test trajectories"), ("--frames", "training frames store"),
                       ("--metrics", "output metrics CSV (tidy: metric, member, value)"),
                       ("--store", "output evaluation store")):
        p.add_argument(flag, required=True, help=text)
    p.add_argument("--models", nargs="+", required=True, help="member model files")
    group = p.add_argument_group("evaluation")
    add_schema_options(group, f"{KEY}.evaluate", example=non_negative_int, snapshots=positive_int, n_lags=positive_int,
                       agreement_mae=positive_float)
    add_schema_options(group, f"{KEY}.evaluate", prefix="eval-", rtol=positive_float, atol=positive_float)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "swarm-figures", cmd_figures, help="swarm: Fig. 3 and Supp. Fig. 10 analogues")
    for flag, text in (("--evaluation", "evaluation store"), ("--fig3", "output Fig. 3 analogue (PNG)"),
                       ("--supp10", "output Supp. Fig. 10 analogue (PNG)")):
        p.add_argument(flag, required=True, help=text)
