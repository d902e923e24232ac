"""Benchmark: one Kuramoto NODE training iteration at paper size, FFT vs dense forward model.

Setting (paper 000 case study 1, DESIGN.md §5): 80x80 lattice (L = 2), 11x11 trainable kernel,
K = 20 on the analytic -LoG(1.5); 84x84 detector, dQ = pi/L, probe sigma L/4, beamstop 5 px,
I = 0.1 I0 + I1; mini-batch of 20 series x 30 time steps; dopri5 rtol 1e-7, atol 1e-9,
float64; L1 loss, Adam 5e-3 (speckleml.training.train_ode, the loop the workflow runs).

* ``fft``: the workflow's forward model (:class:`MomentsSpeckle`, zero-padded rfft2).
* ``dense``: the reference code's forward model -- the (6400 x 7056) cos/sin phase matrices
  built once (not timed), two GEMMs per frame, |.|^2, beamstop; the static channel I0 is
  precomputed as in ours.

Both loops run the same seeds (same batches, same initial kernel), so their losses must agree
(reported: max relative difference). Time per iteration = wall time of ``--iterations``
iterations / iterations, after ``--warmup`` untimed ones; ``nfe`` = mean solver evaluations per
iteration. ``--kernel true`` starts from the true kernel (the solves of late training, which
need more steps than the near-zero initial kernel).

Prints one JSON object. Usage:
``python benchmarks/bench_dynamics.py [--iterations 3] [--warmup 1] [--device cpu] [--threads 1] [--kernel init]
[--truth simulate|random] [--batch-series 20]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def machine_info(torch, device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def dense_forward_model(torch, sc, geometry, static, device):
    """Reference-code style dense sum for I1 = |sum_j p_j cos(phi_j) e^{iQ.r_j}|^2, plus w0 I0."""
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


def time_loop(torch, train_ode, settings_cls, make_model, forward, data, iterations, warmup, batch_series,
              device, workdir, name):
    """Seconds per iteration (after ``warmup`` untimed iterations), mean nfe, and the losses."""
    def run(n, tag):
        model = make_model().to(device)
        settings = settings_cls(iterations=n, learning_rate=5e-3, batch_series=batch_series, batch_time=30, rtol=1e-7,
                                atol=1e-9, checkpoint_every=10_000, spike_factor=1e9, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        history = train_ode(model, forward, data, settings, Path(workdir) / f"{name}-{tag}.ckpt")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start, history

    for _ in range(warmup):
        run(1, "warmup")
    seconds, history = run(iterations, "timed")
    return seconds / iterations, float(sum(history["nfe"]) / len(history["nfe"])), history["loss"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per forward model")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--kernel", choices=("init", "true"), default="init",
                        help="initial kernel: N(0, 0.01) (paper init) or the true kernel")
    parser.add_argument("--series", type=int, default=20, help="training series (>= --batch-series)")
    parser.add_argument("--batch-series", type=int, default=20, help="series per batch (paper: 20)")
    parser.add_argument("--truth", choices=("simulate", "random"), default="simulate",
                        help="states: the true dynamics (minutes on a CPU) or random phases (same cost per iteration)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from speckleml import scattering as sc
    from speckleml.dynamics.simulate import simulate_states, speckle_frames
    from speckleml.dynamics.systems.kuramoto import KuramotoRHS, MomentsSpeckle, SpeckleGeometry, log_kernel
    from speckleml.training import TrainSettings, WindowData, seed_everything, train_ode

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kernel = log_kernel(11, 1.5, "none")
    start = time.perf_counter()
    n_time = 31
    if args.truth == "simulate":
        states, t = simulate_states(args.series, 80, kernel, 20.0, 0.5 * (n_time - 1), 0.5, 2,
                                    np.random.default_rng(0), device=device)
    else:  # the cost of an iteration does not depend on where the observed frames come from
        states = np.random.default_rng(0).uniform(0, 2 * math.pi, size=(args.series, n_time, 80, 80))
        t = 0.5 * np.arange(n_time)
    print(f"truth ({args.truth}) {states.shape} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    geometry = SpeckleGeometry(size=80, box=2.0, detector=84, beamstop=5.0)
    frames, mask = speckle_frames(states, geometry, device=device)
    simulate_s = time.perf_counter() - start
    data = WindowData(torch.as_tensor(states, device=device), torch.as_tensor(frames, device=device),
                      torch.as_tensor(mask, device=device), torch.as_tensor(t, device=device))
    fft = MomentsSpeckle(geometry, device=device)
    dense = dense_forward_model(torch, sc, geometry, fft.static, device)

    def make_model():
        seed_everything(0)
        model = KuramotoRHS(coupling=20.0, kernel_size=11)
        if args.kernel == "true":
            with torch.no_grad():
                model.kernel.copy_(torch.as_tensor(kernel))
        return model

    with torch.no_grad():
        probe_phi = data.states[:2, :3]
        agreement = float((dense(probe_phi) - fft(probe_phi)).abs().max() / fft(probe_phi).abs().max())
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, forward in (("fft", fft), ("dense", dense)):
            per_it, nfe, losses = time_loop(torch, train_ode, TrainSettings, make_model, forward, data,
                                            args.iterations, args.warmup, args.batch_series,
                                            device, workdir, name)
            print(f"{name}: {per_it:.2f} s per iteration", file=sys.stderr)
            results[name] = {"seconds_per_iteration": round(per_it, 3), "nfe_per_iteration": nfe, "losses": losses}
    loss_diff = max(abs(a - b) / abs(b) for a, b in zip(results["fft"]["losses"], results["dense"]["losses"]))
    out = {
        "benchmark": "dynamics_training_iteration",
        "machine": machine_info(torch, device),
        "setting": {"lattice": 80, "kernel": 11, "coupling": 20.0, "detector": 84, "dq": "pi/L",
                    "probe_sigma": "L/4", "beamstop_px": 5, "batch": f"{args.batch_series} series x 30 steps", "truth": args.truth,
                    "solver": "dopri5 rtol 1e-7 atol 1e-9 float64", "initial_kernel": args.kernel,
                    "iterations": args.iterations, "warmup": args.warmup},
        "simulate_seconds": round(simulate_s, 1),
        "seconds_per_iteration": {k: v["seconds_per_iteration"] for k, v in results.items()},
        "nfe_per_iteration": {k: v["nfe_per_iteration"] for k, v in results.items()},
        "speedup_fft_vs_dense": round(results["dense"]["seconds_per_iteration"] / results["fft"]["seconds_per_iteration"], 1),
        "forward_max_relative_difference": agreement,
        "loss_max_relative_difference": loss_diff,
        "passed": bool(agreement < 1e-5 and loss_diff < 1e-6),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
