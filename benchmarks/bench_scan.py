"""Benchmark: scan-case NODE training iterations at paper size (paper 000 proof-of-concept).

Setting (paper size): eq. 9 over 80 scan points from t0 = 609 (one turn, omega = 4), radius
320 object pixels, a random-feature object holding the spiral, 512 x 512 probe and patterns, mini-batches of
5 windows x 35 scan points (paper), the NODE of eq. 10 (featuriser 8, 3 hidden layers of 32),
float64, dopri5 rtol 1e-5, L1 loss, Adam 3e-4: the shared loop
(:func:`speckleml.dynamics.training.train_ode`) for ``--iterations`` steps, timed after one
warm-up step. Prints one JSON object: seconds per iteration and peak GPU memory.

    python benchmarks/bench_scan.py [--device cpu|cuda] [--detector 128] [--radius 80] [--iterations 5]
        [--threads 1]

The defaults are a CPU-sized 128 x 128 (``make bench``); ``gpu_paper_scale.sh`` passes the
paper's ``--detector 512 --radius 320``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detector", type=int, default=128, help="pattern side (paper: 512)")
    parser.add_argument("--radius", type=float, default=80.0, help="spiral radius at t0, object px (paper scale: 320)")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch

    from speckleml.dynamics.systems import scan as S
    from speckleml.dynamics.training import TrainSettings, WindowData, train_ode

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    states, t = S.simulate_states(1, window=80, radius=args.radius, extrapolation=1.0)
    size = S.object_size(float(np.hypot(states[0, :, 0], states[0, :, 1]).max()) * 1.2, args.detector)
    obj = S.make_object(size, np.random.default_rng(0), feature_size=args.detector * 3 / 64)
    forward = S.ScanSpeckle(obj, S.make_probe(args.detector), dtype=torch.float64, device=device)
    st = torch.as_tensor(states, device=device)
    with torch.no_grad():
        frames = torch.cat([forward(st[:, k:k + 8]) for k in range(0, 80, 8)], dim=1).float()
    data = WindowData(states=st, frames=frames, mask=torch.ones(args.detector, args.detector, dtype=torch.bool,
                                                                 device=device), t=torch.as_tensor(t, device=device))
    torch.manual_seed(0)
    model = S.build_model(t[0], 80.0, args.radius).to(device)
    result = {"benchmark": "scan_train_iteration", "device": str(device), "detector": args.detector,
              "object": size, "batch": "5 x 35", "host": platform.node()}
    with tempfile.TemporaryDirectory() as tmp:
        def run(iterations):
            settings = TrainSettings(iterations=iterations, learning_rate=3e-4, batch_series=5, batch_time=35,
                                     rtol=1e-5, atol=1e-6, checkpoint_every=10_000, snapshot_every=10_000)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            history = train_ode(model, forward, data, settings, Path(tmp) / f"c{iterations}.ckpt")
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start, history

        run(1)  # warm-up (allocations, kernels)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds, history = run(args.iterations)
    result.update(seconds_per_iteration=seconds / args.iterations, nfe_mean=float(np.mean(history["nfe"])),
                  loss_last=float(history["loss"][-1]))
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(result))


if __name__ == "__main__":
    main()
