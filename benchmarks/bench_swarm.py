"""Benchmark: one swarm graph-NODE training iteration at paper size (paper 000 Case study 2).

Setting: 500 particles (radius 0.03 L, L = 5), mini-batch of 4 series x 20 frames (dt = 0.1),
64x64 detector (dQ = pi/L, probe sigma L/4, beamstop 5 px, sphere form factor), the graph NODE
of eq. 6 (MLP 2-10-10-10-1, trainable R) pretrained to (R0 - r)/r with R0 = 0.97 (the ring
estimate of the laptop run), float64, L1 loss, Adam 1e-3.

Initial states (``--truth``): ``random`` (default) uniform disks of radius L/2 (the t = 0 state,
the stiffest for the solver: close pairs); ``simulate`` integrates the true system to t = 5
first (clustered states; ~1 min per series on one CPU thread).

One iteration = solve (autograd through dopri5 or fixed-step RK4 on the frame grid), forward
model on 80 frames, L1 loss, backward, Adam step, timed separately; ``nfe`` is the number of
right-hand-side evaluations of the solve. Prints one JSON object.

    python benchmarks/bench_swarm.py [--device cpu|cuda] [--threads 1] [--solver dopri5|rk4]
        [--rtol 1e-5] [--atol 1e-7] [--truth random|simulate] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

N_PARTICLES, DETECTOR, BATCH_SERIES, BATCH_TIME, DT, R0 = 500, 64, 4, 20, 0.1, 0.97


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def machine_info(torch, device) -> dict:
    """The machine, thread count and load average at the start (the box may be shared)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": str(device),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--solver", choices=("dopri5", "rk4"), default="dopri5")
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--atol", type=float, default=1e-7)
    parser.add_argument("--truth", choices=("random", "simulate"), default="random")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from torchdiffeq import odeint

    from speckleml.dynamics.systems import swarm as S
    from speckleml.dynamics.training import intensity_loss

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = machine_info(torch, device)
    rng = np.random.default_rng(0)
    p0 = S.random_disk_positions(BATCH_SERIES, rng, n_particles=N_PARTICLES)
    start = time.perf_counter()
    if args.truth == "simulate":
        p0 = S.simulate_truth(p0, np.array([0.0, 5.0]))[:, -1]
    truth_s = time.perf_counter() - start
    y0 = torch.as_tensor(p0, device=device)
    t = torch.arange(BATCH_TIME, dtype=torch.float64, device=device) * DT
    forward = S.SwarmSpeckle(S.SwarmGeometry(detector=DETECTOR), device=device)
    with torch.no_grad():
        target = forward(torch.as_tensor(S.simulate_truth(p0, t.cpu().numpy()), device=device))
    torch.manual_seed(0)
    model = S.build_model(initial_cutoff=R0, pretrain_steps=500, pretrain_scale=1.0).to(device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    options = dict(method="rk4", options={"step_size": DT}) if args.solver == "rk4" else dict(
        method="dopri5", rtol=args.rtol, atol=args.atol)
    timings = []
    for _ in range(args.repeats):
        model.load_state_dict(state)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.nfe = 0
        times = {}
        _sync(device); t0 = time.perf_counter()
        traj = odeint(model, y0, t, **options).movedim(0, 1)
        _sync(device); times["solve"] = time.perf_counter() - t0; t0 = time.perf_counter()
        loss = intensity_loss(forward(traj), target, forward.mask, "l1")
        _sync(device); times["forward"] = time.perf_counter() - t0; t0 = time.perf_counter()
        loss.backward()
        _sync(device); times["backward"] = time.perf_counter() - t0; t0 = time.perf_counter()
        optimizer.step()
        _sync(device); times["step"] = time.perf_counter() - t0
        times["iteration"] = sum(times.values())
        times["nfe_forward"] = model.nfe
        timings.append(times)
    result = {
        "benchmark": "swarm_training_iteration", "particles": N_PARTICLES, "detector": DETECTOR,
        "batch": [BATCH_SERIES, BATCH_TIME], "solver": args.solver, "rtol": args.rtol, "atol": args.atol,
        "truth": args.truth, "truth_s": round(truth_s, 2), "device": str(device), "threads": args.threads,
        "loss": float(loss.detach()),
        **{k: statistics.median(t[k] for t in timings) for k in timings[0]},
        "peak_gpu_mb": (torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # Linux: KiB
        "machine": {**machine, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "torch": torch.__version__, "python": platform.python_version(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
