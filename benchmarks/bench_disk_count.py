"""Benchmark: disk_count simulator (patterns/s) and ResNet training throughput (images/s).

* ``simulate``: :func:`speckleml.disk_count.simulate.simulate_class` — random non-overlapping
  disks plus the analytic amplitude sum through ``speckleml.scattering.point_amplitude`` — for
  monodisperse and polydisperse 20-disk systems (the most disks, hence the slowest class) at
  each ``--sizes`` (paper 257 and 513), float32.
* ``train``: Adam steps of a from-scratch torchvision ResNet (1 input channel, 19 classes) on
  random standardised inputs, per ``--archs`` and ``--inputs`` size (45 = the CPU default
  scale, 3x3-binned 135 patterns; 257 = paper), after one warm-up step.

CUDA numbers are measured when a GPU is present; otherwise ``cuda`` says pending. Prints one
JSON object. Usage: ``python benchmarks/bench_disk_count.py [--threads 2] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def bench_simulate(size: int, dispersity: str, count: int, device) -> float:
    """Patterns per second for ``count`` 20-disk patterns of ``size`` x ``size``."""
    import numpy as np
    import torch

    from speckleml.disk_count.simulate import simulate_class

    rng = np.random.default_rng(0)
    simulate_class(20, 2, size, dispersity, rng, dtype=torch.float32, device=device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    simulate_class(20, count, size, dispersity, rng, dtype=torch.float32, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def bench_train(arch: str, size: int, batch: int, steps: int, device) -> float:
    """Training images per second of ``arch`` on ``size`` x ``size`` single-channel inputs."""
    import torch

    from speckleml.disk_count.model import build_resnet

    torch.manual_seed(0)
    model = build_resnet(arch, 19).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randint(0, 19, (batch,), device=device)

    def step():
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()

    step()  # warm-up (allocations, cuDNN autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def run_device(device, args) -> dict:
    sim = {f"{d}_{s}": round(bench_simulate(s, d, args.patterns if s <= 257 else max(args.patterns // 4, 2), device), 2)
           for s in args.sizes for d in ("mono", "poly")}
    train = {}
    for arch in args.archs:
        for size in args.inputs:
            if device.type == "cpu" and size > 64 and arch == "resnet50" and args.quick:
                continue
            steps = args.steps if size <= 64 else max(args.steps // 4, 1)
            batch = args.batch if size <= 64 else 8 if device.type == "cpu" else args.batch
            train[f"{arch}_{size}"] = round(bench_train(arch, size, batch, steps, device), 2)
    return {"simulate_patterns_per_s": sim, "train_images_per_s": train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[257, 513], help="pattern sizes to simulate")
    parser.add_argument("--patterns", type=int, default=16, help="patterns per simulation measurement")
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"], help="ResNets to train")
    parser.add_argument("--inputs", type=int, nargs="+", default=[45, 257], help="training input sizes")
    parser.add_argument("--batch", type=int, default=32, help="training batch (CPU at 257: 8)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    parser.add_argument("--quick", action="store_true", help="skip ResNet-50 at 257 on CPU")
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    result = {
        "benchmark": "disk_count",
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, threads {args.threads}",
        "note": "2-core CPU dev box, shared during development: numbers are lower bounds",
        "cpu": run_device(torch.device("cpu"), args),
    }
    if torch.cuda.is_available():
        result["cuda"] = {"device": torch.cuda.get_device_name(0), **run_device(torch.device("cuda"), args)}
    else:
        result["cuda"] = "pending: no GPU on this machine"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
