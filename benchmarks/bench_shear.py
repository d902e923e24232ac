"""Shear simulator throughput: ours (torch, vectorised) vs a direct transcription of the reference.

The reference algorithm (github.com/ljding94/Sheared_Suspension, code/suspension.cpp) loops, per
configuration, over q magnitudes and particles and accumulates V F(qR) cos/sin(q.r) on the theta
row. Both run on the same configurations here; the script checks equal results and prints JSON:
configurations per second for the speckle estimator (two patterns per configuration) on this
machine, and the estimated paper-scale wall time (6000 draws x 1e4 configurations). It also times
the polar fast path :func:`speckleml.scattering.polar_intensity` against the general
:func:`speckleml.scattering.point_intensity` on the same particles and weights
(``polar_fast_path_speedup``).

    OMP_NUM_THREADS=2 python benchmarks/bench_shear.py [--configs 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from speckleml.scattering import point_intensity, polar_intensity, polar_q_grid
from speckleml.shear.simulate import (PolarGrid, ShearSystem, in_beam, pack, particle_amplitudes,
                                      sample_configurations, speckle_patterns)


def reference_pattern(positions: np.ndarray, radii: np.ndarray, q: np.ndarray, theta: np.ndarray, beam: float):
    """calc_structure_factor_2d of the reference: loops over q and particles, numpy over theta."""
    inside = (np.abs(positions) < beam / 2).all(axis=1)
    pos, rad = positions[inside], radii[inside]
    volume = 4.0 / 3.0 * math.pi * rad**3
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    intensity = np.zeros((len(q), len(theta)))
    for k, qk in enumerate(q):
        real = np.zeros(len(theta))
        imag = np.zeros(len(theta))
        for (x, y), v, r in zip(pos, volume, rad):
            qr = qk * r
            form = 3.0 * (math.sin(qr) - qr * math.cos(qr)) / qr**3
            phase = qk * cos_t * x + qk * sin_t * y
            real += v * form * np.cos(phase)
            imag += v * form * np.sin(phase)
        intensity[k] = real**2 + imag**2
    return intensity / (volume**2).sum()


def polar_fast_path(positions, radii, grid: PolarGrid, dtype=torch.float32, repeats: int = 3) -> dict:
    """Best-of-``repeats`` seconds of the polar fast path and of the general point model."""
    q = torch.as_tensor(grid.q(), dtype=dtype)
    theta = torch.as_tensor(grid.theta(), dtype=dtype)
    mask, pos, rad = pack(in_beam(positions, grid.beam), positions.to(dtype), radii.to(dtype))
    amplitude, _ = particle_amplitudes(rad, mask, q)
    per_q = amplitude[..., None].expand(*amplitude.shape, len(theta)).reshape(*amplitude.shape[:2], -1)
    qgrid = polar_q_grid(q, theta)
    times = {"fast": [], "general": []}
    for _ in range(repeats):
        for name, fn in (("fast", lambda: polar_intensity(pos, q, theta, amplitude)),
                         ("general", lambda: point_intensity(pos, qgrid, per_q))):
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            if name == "fast":
                fast = out
            else:
                difference = float((fast - out).abs().max() / out.abs().max())
    return {"polar_fast_path_s": min(times["fast"]), "point_intensity_s": min(times["general"]),
            "polar_fast_path_speedup": min(times["general"]) / min(times["fast"]),
            "polar_fast_path_max_relative_difference": difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=8, help="configurations timed (default %(default)s)")
    parser.add_argument("--reference-configs", type=int, default=2, help="configurations for the slow reference")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    grid = PolarGrid()
    system = ShearSystem(150, 0.15, 1.0, 10.0)
    gen = torch.Generator().manual_seed(0)
    positions, moved, radii = sample_configurations(system, args.configs, grid.beam, gen)
    q64, t64 = torch.as_tensor(grid.q()), torch.as_tensor(grid.theta())
    results = {"threads": torch.get_num_threads(), "device": args.device, "grid": [grid.n_q, grid.n_theta],
               "particles_in_beam": float(in_beam(positions, grid.beam).sum(1).double().mean())}
    for dtype in (torch.float32, torch.float64):
        to = dict(dtype=dtype, device=args.device)
        q, t = q64.to(**to), t64.to(**to)
        speckle_patterns(positions[:1].to(**to), radii[:1].to(**to), grid.beam, q, t)  # warm-up
        start = time.perf_counter()
        ours = [speckle_patterns(p.to(**to), radii.to(**to), grid.beam, q, t) for p in (positions, moved)]
        if args.device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        results[f"ours_{str(dtype)[6:]}_configs_per_s"] = args.configs / elapsed
        if dtype == torch.float64:
            ours64 = ours[0].cpu().numpy()
    results.update(polar_fast_path(positions, radii, grid))
    start = time.perf_counter()
    ref = [reference_pattern(positions[i].numpy(), radii[i].numpy(), grid.q(), grid.theta(), grid.beam)
           for i in range(args.reference_configs)]
    elapsed = time.perf_counter() - start
    results["reference_configs_per_s"] = args.reference_configs / (2 * elapsed)  # two patterns per config
    diff = max(np.abs(ours64[i] - ref[i]).max() / ref[i].max() for i in range(args.reference_configs))
    results["max_relative_difference_float64"] = float(diff)
    results["equal"] = bool(diff < 1e-9)
    results["speedup_float32"] = results["ours_float32_configs_per_s"] / results["reference_configs_per_s"]
    paper_configs = 6000 * 10_000
    results["paper_scale_hours_ours_float32"] = paper_configs / results["ours_float32_configs_per_s"] / 3600
    results["paper_scale_hours_reference"] = paper_configs / results["reference_configs_per_s"] / 3600
    print(json.dumps(results))


if __name__ == "__main__":
    main()
