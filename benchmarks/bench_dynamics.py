"""Benchmark: one Kuramoto NODE training iteration at paper size, FFT vs dense forward model.

Setting (paper 000 case study 1, DESIGN.md §5): 80x80 lattice (L = 2), 11x11 trainable kernel
(init N(0, 0.01)), K = 20, truth on the analytic -LoG(1.5); 84x84 detector, dQ = pi/L, probe
sigma L/4, beamstop 5 px, I = 0.1 I0 + I1; mini-batch of 20 series x 30 time steps (600 frames);
float64; L1 loss, Adam 5e-3.

* ``fft``: the workflow's forward model (:class:`MomentsSpeckle`, zero-padded rfft2).
* ``dense``: the reference code's dense direct sum -- the (6400 x 7056) cos/sin phase matrices
  built once (not timed), two GEMMs per batch, |.|^2, beamstop; the static channel I0 is
  precomputed as in ours. (Checked against :func:`lattice_intensity_direct`, which rebuilds the
  phases on every call and is timed per frame only.)

Solvers (``--solver``):

* ``rk4`` (default): torchdiffeq's fixed-step RK4 on the data's grid dt = 0.5, i.e. 29 steps x
  4 = 116 right-hand-side evaluations per solve whatever the kernel. A **fixed-cost stand-in**
  for the paper's adaptive solver so that a paper-size iteration fits in minutes on a CPU and
  both forward models see exactly the same solve; the forward-model part of the iteration (the
  part the comparison is about) does not depend on the solver.
* ``dopri5``: the paper's solver, rtol 1e-7, atol 1e-9 (its cost depends on the kernel and the
  states: use it on a GPU, ``--device cuda``).

One iteration = sample a batch, solve (with autograd), forward model on all 600 frames, L1 loss,
backward, Adam step -- the steps of :func:`speckleml.dynamics.training.train_ode`, called here one by one
with timers: ``solve``, ``forward`` (forward model + loss), ``backward_forward_model`` (gradient
down to the states), ``backward_solve`` (through the solver to the kernel), ``step`` (Adam).
Before timing, one iteration of the real ``train_ode`` runs per forward model (warm-up); the
every timed iteration must reproduce its loss (``loop_matches_train_ode``). Both forward models
start from the same kernel and draw the same batches, so their trajectories are identical and
the intensities and losses are compared directly. Reported times are medians over ``--repeats``
copies of the first iteration (same kernel, same batch). ``solve_graph_mb`` is the memory the
solver's autograd graph holds (saved tensors, deduplicated by storage). With ``--solver rk4``
the benchmark also counts the evaluations dopri5 needs on the same batch (no gradients) and
extrapolates the paper-solver iteration from it (``dopri5_estimate``).

Prints one JSON object. Usage::

    python benchmarks/bench_dynamics.py [--solver rk4|dopri5] [--repeats 3] [--device cpu|cuda]
        [--threads 1] [--truth simulate|random] [--kernel init|true]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

N_SITES, KERNEL_SIZE, COUPLING, DETECTOR, BEAMSTOP = 80, 11, 20.0, 84, 5.0
BATCH_SERIES, BATCH_TIME, DT = 20, 30, 0.5
SOLVERS = {"rk4": dict(method="rk4", rtol=1e-7, atol=1e-9),  # tolerances unused by a fixed-step solver
           "dopri5": dict(method="dopri5", rtol=1e-7, atol=1e-9)}


def machine_info(torch, device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": str(device),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def dense_forward_model(torch, sc, geometry, static, device):
    """Reference-code style dense sum ``I = w0 I0 + |sum_j p_j cos(phi_j) e^{iQ.r_j}|^2``, masked."""
    n, m = geometry.size, geometry.detector_pixels
    y = sc.lattice_coordinates(n, geometry.spacing, dtype=torch.float64, device=device)
    gy, gx = torch.meshgrid(y, y, indexing="ij")
    sites = torch.stack((gx.reshape(-1), gy.reshape(-1)), dim=-1)
    q = sc.detector_q_grid(m, geometry.dq, dtype=torch.float64, device=device).reshape(-1, 2)
    phase = sites @ q.T
    cos, sin = torch.cos(phase), torch.sin(phase)
    del phase
    probe = sc.gaussian_probe(n, geometry.spacing, geometry.probe_sigma * geometry.box, dtype=torch.float64,
                              device=device).reshape(-1)
    valid = sc.beamstop_mask(m, geometry.beamstop_pixels, device=device).reshape(-1).to(torch.float64)
    background = geometry.static_weight * static

    def model(phi):
        lead = phi.shape[:-2]
        weighted = torch.cos(phi).reshape(-1, n * n) * probe
        real, imag = weighted @ cos, weighted @ sin
        return background + ((real**2 + imag**2) * valid).reshape(*lead, m, m)

    return model


def make_clock(torch, device):
    """``perf_counter`` that first waits for queued GPU work (asynchronous CUDA kernels)."""
    def clock():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()
    return clock


def per_frame_ms(forward, phi, repeats, clock) -> float:
    """Median milliseconds per frame of ``forward(phi)`` without gradients (after one warm call)."""
    import torch

    with torch.no_grad():
        forward(phi)
        times = []
        for _ in range(repeats):
            start = clock()
            forward(phi)
            times.append(clock() - start)
    n_frames = math.prod(phi.shape[:-2])
    return 1e3 * statistics.median(times) / n_frames


def timed_iteration(torch, training, model, forward, data, settings, optimizer, rng, clock) -> dict:
    """One training iteration (the steps of ``train_ode``), timed phase by phase.

    The backward pass is split at the states: ``loss.backward()`` through the forward model to
    the detached trajectory, then ``traj.backward(grad)`` through the solver -- the chain rule
    in two calls, the same gradient as one ``loss.backward()``.
    """
    t, y0, target = training.sample_windows(data, settings.batch_series, settings.batch_time, rng)
    optimizer.zero_grad(set_to_none=True)
    model.nfe = 0
    saved = {}  # storages the solve's autograd graph keeps alive: its memory

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[(tensor.device, storage.data_ptr())] = storage.nbytes()
        return tensor

    marks = [clock()]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        traj = training._solve(model, y0, t, settings)  # (batch, time, N, N), autograd graph kept
    marks.append(clock())
    states = traj.detach().requires_grad_()
    pred = forward(states)
    loss = training.intensity_loss(pred, target, data.mask, settings.loss, settings.rescale_t0)
    marks.append(clock())
    loss.backward()
    marks.append(clock())
    traj.backward(states.grad)
    marks.append(clock())
    optimizer.step()
    marks.append(clock())
    phases = ("solve", "forward", "backward_forward_model", "backward_solve", "step")
    out = {name: b - a for name, a, b in zip(phases, marks[:-1], marks[1:])}
    out["total"] = marks[-1] - marks[0]
    return {**out, "loss": float(loss.detach()), "nfe": model.nfe, "pred": pred.detach(),
            "graph_mb": sum(saved.values()) / 2**20}


def run_loops(torch, training, make_model, forwards, data, settings, repeats, clock, workdir) -> tuple[dict, dict]:
    """Per forward model: one real ``train_ode`` iteration (warm-up), then ``repeats`` timed copies of it.

    Every repeat starts again from the initial kernel, a fresh Adam and the seed's batch stream,
    so all repeats (and both forward models) do exactly the same work on the same batch: their
    losses must agree to rounding. (Successive iterations would not do: from a random
    N(0, 0.01) kernel at K = 20 the solves are chaotic, and rounding-level differences between
    the two forward models grow to ~1e-3 in the loss after two Adam steps.) The repeats of the
    forward models are interleaved so that a change of machine load hits both alike.
    """
    import numpy as np

    warmup = {}
    for name, forward in forwards.items():
        start = clock()
        history = training.train_ode(make_model(), forward, data, dataclasses.replace(settings, iterations=1),
                                     Path(workdir) / f"{name}.ckpt", desc=f"warm-up {name}")
        warmup[name] = (clock() - start, history["loss"][0])
    runs = {name: [] for name in forwards}
    for _ in range(repeats):
        for name, forward in forwards.items():
            model = make_model()
            optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
            rng = np.random.default_rng(settings.seed)  # train_ode's batch stream
            runs[name].append(timed_iteration(torch, training, model, forward, data, settings, optimizer, rng, clock))
    phases = ("total", "solve", "forward", "backward_forward_model", "backward_solve", "step")
    summaries, preds = {}, {}
    for name, done in runs.items():
        summary = {f"{p}_s": round(statistics.median(r[p] for r in done), 4) for p in phases}
        summary["backward_s"] = round(statistics.median(r["backward_forward_model"] + r["backward_solve"]
                                                        for r in done), 4)
        summary["total_all_s"] = [round(r["total"], 3) for r in done]
        summary["nfe"] = done[0]["nfe"]
        summary["solve_graph_mb"] = round(done[0]["graph_mb"], 1)
        summary["loss"] = done[0]["loss"]
        summary["train_ode_warmup_iteration_s"] = round(warmup[name][0], 3)
        summary["loop_matches_train_ode"] = bool(all(math.isclose(r["loss"], warmup[name][1], rel_tol=1e-12)
                                                     for r in done))
        summaries[name], preds[name] = summary, done[0]["pred"]
    # the solve is the same work in both loops: its pooled median is the better estimate
    solve_runs = [r for done in runs.values() for r in done]
    summaries["solve_pooled_s"] = round(statistics.median(r["solve"] for r in solve_runs), 4)
    summaries["backward_solve_pooled_s"] = round(statistics.median(r["backward_solve"] for r in solve_runs), 4)
    return summaries, preds


def dopri5_nfe(torch, make_model, data, batch_series, batch_time, seed) -> int:
    """Right-hand-side evaluations of the paper's dopri5 (rtol 1e-7, atol 1e-9) on the first batch, no graph."""
    import numpy as np
    from torchdiffeq import odeint

    from speckleml.dynamics.training import sample_windows

    t, y0, _ = sample_windows(data, batch_series, batch_time, np.random.default_rng(seed))
    model = make_model()
    model.nfe = 0
    with torch.no_grad():
        odeint(model, y0, t, method="dopri5", rtol=1e-7, atol=1e-9)
    return model.nfe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", choices=tuple(SOLVERS), default="rk4",
                        help="rk4: fixed step dt = 0.5, 116 evaluations per solve (CPU stand-in); "
                             "dopri5: the paper's adaptive solver, rtol 1e-7 atol 1e-9 (GPU: ~1400 evaluations and a "
                             "~12 GB autograd graph per solve from the initial kernel)")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per forward model (median)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--truth", choices=("simulate", "random"), default="simulate",
                        help="states: the true dynamics (dopri5, ~15 s on one CPU core) or random phases")
    parser.add_argument("--kernel", choices=("init", "true"), default="init",
                        help="initial NODE kernel: N(0, 0.01) (paper init) or the true kernel (late-training "
                             "solves; changes the dopri5 cost, not the rk4 cost)")
    parser.add_argument("--no-dopri5-probe", action="store_true",
                        help="with --solver rk4, skip counting the evaluations dopri5 needs on the same batch "
                             "(a solve without gradients, ~10 s on one CPU core)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")

    import numpy as np
    import torch

    from speckleml import scattering as sc
    from speckleml.dynamics import training
    from speckleml.runtime import seed_everything
    from speckleml.dynamics.simulate import simulate_states, speckle_frames
    from speckleml.dynamics.systems.kuramoto import KuramotoRHS, MomentsSpeckle, SpeckleGeometry, log_kernel

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = make_clock(torch, device)
    info = machine_info(torch, device)
    kernel = log_kernel(KERNEL_SIZE, 1.5, "none")
    n_time = BATCH_TIME + 1  # two possible window starts per series

    start = clock()
    if args.truth == "simulate":
        states, t = simulate_states(BATCH_SERIES, N_SITES, kernel, COUPLING, DT * (n_time - 1), DT, 2,
                                    np.random.default_rng(0), device=device)
    else:  # the cost of an rk4 iteration does not depend on where the observed frames come from
        states = np.random.default_rng(0).uniform(0, 2 * math.pi, size=(BATCH_SERIES, n_time, N_SITES, N_SITES))
        t = DT * np.arange(n_time)
    geometry = SpeckleGeometry(size=N_SITES, box=2.0, detector=DETECTOR, beamstop=BEAMSTOP)
    frames, mask = speckle_frames(states, geometry, device=device)
    truth_seconds = clock() - start
    print(f"truth ({args.truth}) {states.shape} and frames in {truth_seconds:.1f} s", file=sys.stderr)
    data = training.WindowData(torch.as_tensor(states, device=device), torch.as_tensor(frames, device=device),
                               torch.as_tensor(mask, device=device), torch.as_tensor(t, device=device))
    fft = MomentsSpeckle(geometry, device=device)
    dense = dense_forward_model(torch, sc, geometry, fft.static, device)

    # per-frame forward cost (no gradients): one time slice of the 20 series
    phi = data.states[:, 0]
    frame_ms = {"fft": per_frame_ms(fft, phi, 5, clock), "dense": per_frame_ms(dense, phi, 3, clock)}
    direct = MomentsSpeckle(geometry, device=device, direct=True)  # phases rebuilt on every call
    frame_ms["dense_recomputed_phases"] = per_frame_ms(direct, phi[:1], 1, clock)
    with torch.no_grad():
        reference = direct(phi[:1])
        dense_vs_direct = float((dense(phi[:1]) - reference).abs().max() / reference.abs().max())
    print("ms per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in frame_ms.items()), file=sys.stderr)

    def make_model():
        seed_everything(0)
        model = KuramotoRHS(coupling=COUPLING, kernel_size=KERNEL_SIZE).to(device)
        if args.kernel == "true":
            with torch.no_grad():
                model.kernel.copy_(torch.as_tensor(kernel))
        return model

    settings = training.TrainSettings(iterations=1, learning_rate=5e-3, batch_series=BATCH_SERIES,
                                      batch_time=BATCH_TIME, checkpoint_every=10_000, spike_factor=1e9, seed=0,
                                      **SOLVERS[args.solver])
    with tempfile.TemporaryDirectory() as workdir:
        results, preds = run_loops(torch, training, make_model, {"fft": fft, "dense": dense}, data, settings,
                                   args.repeats, clock, workdir)
    solve_pooled = {"solve_s": results.pop("solve_pooled_s"), "backward_solve_s": results.pop("backward_solve_pooled_s")}
    for name in preds:
        print(f"{name}: {results[name]['total_s']:.2f} s per iteration", file=sys.stderr)
    intensity_diff = float((preds["dense"] - preds["fft"]).abs().max() / preds["fft"].abs().max())
    loss_diff = abs(results["fft"]["loss"] - results["dense"]["loss"]) / abs(results["dense"]["loss"])
    ours, theirs = results["fft"], results["dense"]
    forward_part = ("forward_s", "backward_forward_model_s")
    estimate = None
    if args.solver == "rk4" and not args.no_dopri5_probe:
        # the solver's share scales with its evaluations; the forward model's share does not
        nfe = dopri5_nfe(torch, make_model, data, BATCH_SERIES, BATCH_TIME, settings.seed)
        print(f"dopri5 on the same batch: {nfe} evaluations", file=sys.stderr)
        scale = nfe / ours["nfe"]
        solve_s = scale * (solve_pooled["solve_s"] + solve_pooled["backward_solve_s"])
        per_model = {name: round(sum(r[k] for k in forward_part) + solve_s, 1) for name, r in results.items()}
        estimate = {"dopri5_nfe_same_batch_no_grad": nfe, "iteration_s": per_model,
                    "speedup_iteration": round(per_model["dense"] / per_model["fft"], 2),
                    "solve_graph_gb": round(scale * ours["solve_graph_mb"] / 1024, 1),
                    "note": "extrapolation: rk4 solve and solve-backward times (pooled medians of both loops) and "
                            "graph memory x (dopri5 nfe / rk4 nfe), plus each loop's forward-model times"}
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out = {
        "benchmark": "dynamics_training_iteration",
        "machine": info,
        "setting": {"lattice": N_SITES, "kernel": KERNEL_SIZE, "coupling": COUPLING, "detector": DETECTOR,
                    "dq": "pi/L", "probe_sigma": "L/4", "beamstop_px": BEAMSTOP, "dtype": "float64",
                    "batch": f"{BATCH_SERIES} series x {BATCH_TIME} steps ({BATCH_SERIES * BATCH_TIME} frames)",
                    "solver": ("rk4 fixed step dt=0.5 (fixed-cost stand-in, 116 evaluations per solve)"
                               if args.solver == "rk4" else "dopri5 rtol 1e-7 atol 1e-9"),
                    "truth": args.truth, "initial_kernel": args.kernel, "repeats": args.repeats},
        "truth_seconds": round(truth_seconds, 1),
        "forward_ms_per_frame": {k: round(v, 3) for k, v in frame_ms.items()},
        "iteration": results,
        "solve_pooled": solve_pooled,
        "speedup_iteration": round(theirs["total_s"] / ours["total_s"], 1),
        "speedup_forward_model_with_backward": round(sum(theirs[k] for k in forward_part)
                                                     / sum(ours[k] for k in forward_part), 1),
        "speedup_per_frame": round(frame_ms["dense"] / frame_ms["fft"], 1),
        "dopri5_estimate": estimate,
        "intensity_max_relative_difference": intensity_diff,
        "dense_vs_lattice_intensity_direct_max_relative_difference": dense_vs_direct,
        "loss_max_relative_difference": loss_diff,
        "passed": bool(intensity_diff < 1e-5 and dense_vs_direct < 1e-5 and loss_diff < 1e-10
                       and ours["loop_matches_train_ode"] and theirs["loop_matches_train_ode"]),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
