"""`speckleml dynamics scan-<stage>`: command line of the scan case (paper 000, proof-of-concept).

Stages (chained by rules/dynamics_scan.smk), each one library call: ``scan-simulate``
(:func:`.scan_run.run_scan_simulation`), ``scan-train`` (:func:`.scan_run.run_scan_training`),
``scan-evaluate`` (:func:`.scan_evaluate.run_scan_evaluation`), ``scan-figures``
(:func:`.scan_figures.make_scan_figures`). Option defaults are the schema's (laptop scale).
"""

from __future__ import annotations

import argparse

from ..cli import (add_config_option, add_device, add_schema_options, add_seed, add_stage, add_threads,
                   non_negative_float, non_negative_int, option_values, positive_float, positive_int, stage_config)

from ..runtime import set_torch_threads

KEY = "dynamics.scan"
SYSTEM = ("window", "turns", "radius", "extrapolation", "omega")
SAMPLE = ("detector", "probe_sigma", "defocus", "feature_size", "phase", "absorption", "beamstop", "lambda_max")
MODEL = ("features", "hidden", "depth")
TRAINING = ("iterations", "learning_rate", "batch_series", "batch_time", "loss", "poisson_below", "rescale_t0",
            "method", "rtol", "atol", "max_num_steps", "spike_rule", "spike_factor", "spike_mad", "spike_window",
            "spike_patience", "lr_recovery", "min_learning_rate", "checkpoint_every", "snapshot_every")



def _optional_float(text: str):
    """``none``/``null`` -> None (noise-free), else a float > 0."""
    return None if text.lower() in ("none", "null") else positive_float(text)


def cmd_simulate(args) -> int:
    from .scan_run import run_scan_simulation

    set_torch_threads(args.threads)
    run_scan_simulation(states=args.states, frames=args.frames, test_states=args.test_states, sample=args.sample,
                        seed=args.seed, run_config=stage_config(args), **option_values(args, SYSTEM),
                        **option_values(args, SAMPLE))
    return 0


def cmd_train(args) -> int:
    from .scan_run import run_scan_training

    set_torch_threads(args.threads)
    run_scan_training(states=args.states, frames=args.frames, model=args.model, history=args.history,
                      checkpoint=args.checkpoint, member=args.member, seed=args.seed, device=args.device,
                      stop_after=args.stop_after, run_config=stage_config(args), **option_values(args, MODEL),
                      **option_values(args, TRAINING))
    return 0


def cmd_evaluate(args) -> int:
    from .scan_evaluate import run_scan_evaluation

    set_torch_threads(args.threads)
    run_scan_evaluation(test_states=args.test_states, frames=args.frames, models=args.models, metrics=args.metrics,
                        store=args.store, q_fractions=args.q_fractions, ring_width=args.ring_width,
                        rtol=args.eval_rtol, atol=args.eval_atol, device=args.device, run_config=stage_config(args))
    return 0


def cmd_figures(args) -> int:
    from .scan_figures import make_scan_figures

    make_scan_figures(args.evaluation, fig7=args.fig7, supp17=args.supp17, supp18=args.supp18)
    return 0


def register_scan(stages) -> None:
    """Add the scan stages to the ``dynamics`` study's subparsers."""
    ex = "example:\n  speckleml dynamics "
    p = add_stage(stages, "scan-simulate", cmd_simulate, help="scan: object and probe, eq. 9 trajectory -> states "
                  "stores, |FFT(object x probe)|^2 -> frames store",
                  epilog=ex + "scan-simulate states.zarr --frames f.zarr --test-states test.zarr --sample sample.zarr")
    p.add_argument("states", help="output training states store (1, window, [x, y, t]), object pixels, scan points")
    for flag, text in (("--frames", "output frames store of the training window"),
                       ("--test-states", "output states store over the extrapolation window"),
                       ("--sample", "output sample store (object and probe)")):
        p.add_argument(flag, required=True, help=text)
    add_schema_options(p.add_argument_group("trajectory (eq. 9)"), f"{KEY}.system", window=positive_int,
                       turns=positive_float, radius=positive_float, extrapolation=positive_float, omega=positive_float)
    add_schema_options(p.add_argument_group("object, probe, detector"), f"{KEY}.sample", detector=positive_int,
                       probe_sigma=positive_float, defocus=float, feature_size=positive_float, phase=float,
                       absorption=non_negative_float, beamstop=non_negative_float, lambda_max=_optional_float)
    add_seed(p)
    add_threads(p, default=1)

    p = add_stage(stages, "scan-train", cmd_train, help="scan: train one NODE member (eq. 10) through the patterns "
                  "(checkpointed; a rerun resumes)",
                  epilog=ex + "scan-train --states s.zarr --frames f.zarr --model m0.pt --history h0.zarr")
    for flag, text in (("--states", "training states store (window initial conditions)"),
                       ("--frames", "observed frames store"), ("--model", "output model file (.pt)"),
                       ("--history", "output training history store")):
        p.add_argument(flag, required=True, help=text)
    p.add_argument("--checkpoint", help="checkpoint file (default: MODEL.ckpt); resumed when present")
    p.add_argument("--member", type=non_negative_int, default=0, help="ensemble member; its seed is --seed + member")
    add_schema_options(p.add_argument_group("model and training"), f"{KEY}.train", features=positive_int,
                       hidden=positive_int, depth=positive_int, iterations=positive_int, learning_rate=positive_float,
                       batch_series=positive_int, batch_time=positive_int, loss=("auto", "l1", "poisson"),
                       poisson_below=positive_float, rescale_t0=("auto", "yes", "no"), method=str,
                       rtol=positive_float, atol=positive_float, max_num_steps=positive_int,
                       spike_rule=("robust", "mean"), spike_factor=positive_float, spike_mad=positive_float,
                       spike_window=positive_int, spike_patience=positive_int, lr_recovery=non_negative_int,
                       min_learning_rate=positive_float, checkpoint_every=positive_int, snapshot_every=positive_int)
    p.add_argument("--stop-after", type=positive_int, help=argparse.SUPPRESS)  # tests: simulate a kill
    add_seed(p)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "scan-evaluate", cmd_evaluate, help="scan: extrapolate the ensemble to the test window; "
                  "metrics CSV and evaluation store",
                  epilog=ex + "scan-evaluate --test-states t.zarr --frames f.zarr --models m0.pt --metrics m.csv "
                  "--store ev.zarr")
    for flag, text in (("--test-states", "true trajectory over the test window"), ("--frames", "training frames store"),
                       ("--metrics", "output metrics CSV (tidy: metric, member, value)"),
                       ("--store", "output evaluation store")):
        p.add_argument(flag, required=True, help=text)
    p.add_argument("--models", nargs="+", required=True, help="member model files")
    group = p.add_argument_group("evaluation")
    add_config_option(group, "--q-fractions", key=f"{KEY}.evaluate.q_fractions", type=float, nargs=3,
                      help="radii of the three C2 rings as fractions of the detector half-width (default %(default)s)")
    add_schema_options(group, f"{KEY}.evaluate", ring_width=positive_float)
    add_schema_options(group, f"{KEY}.evaluate", prefix="eval-", rtol=positive_float, atol=positive_float)
    add_device(p)
    add_threads(p, default=1)

    p = add_stage(stages, "scan-figures", cmd_figures, help="scan: Fig. 7 and Supp. Fig. 17-18 analogues")
    for flag, text in (("--evaluation", "evaluation store"), ("--fig7", "output Fig. 7 analogue (PNG)"),
                       ("--supp17", "output Supp. Fig. 17 analogue (PNG)")):
        p.add_argument(flag, required=True, help=text)
    p.add_argument("--supp18", help="output Supp. Fig. 18 analogue (PNG): frames and patterns along both paths")
