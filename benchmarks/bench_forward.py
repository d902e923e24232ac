"""Benchmark: lattice FFT forward model against the dense direct sum (paper 000 Kuramoto size).

Setting (DESIGN.md §3 / §5 dynamics): 80x80 lattice in a box L = 2, 84x84 detector with
dQ = pi/L, Gaussian probe sigma = L/4, beamstop 5 px, batch of 20 fields cos(phi), float64.

* ``dense``: the reference code's algorithm -- the (7056 x 6400) cos/sin phase matrices are
  built once (not timed) and every call is two GEMMs plus ``|.|^2`` and the mask.
* ``fft``: :func:`speckleml.scattering.lattice_intensity` (probe, zero-padded rfft2 of
  length 160, crop, beamstop).
* ``matmul``: the same function's separable-DFT path (used when 2 pi / (dQ a) is not an
  integer).

Prints one JSON object: machine, settings, median and best timings (ms) of forward and
forward+backward (candidates interleaved within every repeat), max relative difference to
the dense sum, speedups.

Usage: ``python benchmarks/bench_forward.py [--repeats 9] [--threads 1] [--device cpu]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time


def machine_info(torch, device) -> dict:
    """Where the numbers were taken."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def interleaved_timings(torch, runs: dict, repeats: int, device) -> dict:
    """Wall times (ms) of each ``runs[name]()``: median and best of ``repeats``.

    The candidates are run in turn inside every repeat (after one warm-up call each), so on
    a shared machine they all see the same background load and their ratio stays fair.
    """
    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for fn in runs.values():
        fn()
    samples = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            samples[name].append(timed(fn))
    return {name: {"median": 1e3 * statistics.median(t), "best": 1e3 * min(t)}
            for name, t in samples.items()}


def dense_reference(torch, sc, box, n_sites, n_det, dq, probe_sigma, beamstop, dtype, device):
    """Reference-code style dense model: precomputed phase matrices, GEMMs per call."""
    spacing = box / n_sites
    y = sc.lattice_coordinates(n_sites, spacing, dtype=dtype, device=device)
    grid_y, grid_x = torch.meshgrid(y, y, indexing="ij")
    sites = torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=-1)     # (6400, 2)
    q = sc.detector_q_grid(n_det, dq, dtype=dtype, device=device).reshape(-1, 2)  # (7056, 2)
    phase = sites @ q.T                                                        # (6400, 7056)
    cos, sin = torch.cos(phase), torch.sin(phase)
    del phase
    probe = sc.gaussian_probe(n_sites, spacing, probe_sigma, dtype=dtype,
                              device=device).reshape(-1)
    valid = sc.beamstop_mask(n_det, beamstop, device=device).reshape(-1).to(dtype)

    def model(field):
        weighted = field.reshape(field.shape[0], -1) * probe
        real, imag = weighted @ cos, weighted @ sin
        return ((real**2 + imag**2) * valid).reshape(field.shape[0], n_det, n_det)

    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from speckleml import scattering as sc

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float64
    box, n_sites, n_det = 2.0, 80, 84
    dq, probe_sigma, beamstop = math.pi / box, box / 4, 5
    spacing = box / n_sites

    gen = torch.Generator().manual_seed(args.seed)
    phi = torch.rand(args.batch, n_sites, n_sites, generator=gen, dtype=dtype) * 2 * math.pi
    field = torch.cos(phi).to(device)
    dense = dense_reference(torch, sc, box, n_sites, n_det, dq, probe_sigma, beamstop,
                            dtype, device)
    kwargs = dict(probe=probe_sigma, beamstop_radius=beamstop)

    def fft_model(f):
        return sc.lattice_intensity(f, spacing, dq, n_det, method="fft", **kwargs)

    def matmul_model(f):
        return sc.lattice_intensity(f, spacing, dq, n_det, method="matmul", **kwargs)

    with torch.no_grad():
        reference = dense(field)
        scale = float(reference.abs().max())
        diffs = {name: float((model(field) - reference).abs().max()) / scale
                 for name, model in (("fft", fft_model), ("matmul", matmul_model))}

    def forward(model):
        def run():
            with torch.no_grad():
                model(field)
        return run

    def forward_backward(model):
        def run():
            f = field.clone().requires_grad_(True)
            model(f).sum().backward()
        return run

    timings = interleaved_timings(torch, {
        "dense_forward": forward(dense),
        "fft_forward": forward(fft_model),
        "matmul_forward": forward(matmul_model),
        "dense_forward_backward": forward_backward(dense),
        "fft_forward_backward": forward_backward(fft_model),
    }, args.repeats, device)
    median = {name: t["median"] for name, t in timings.items()}
    speedup = median["dense_forward"] / median["fft_forward"]
    result = {
        "benchmark": "forward_model",
        "machine": machine_info(torch, device),
        "setting": {"field": [args.batch, n_sites, n_sites], "detector": [n_det, n_det],
                    "box_L": box, "dq": "pi/L", "probe_sigma": "L/4", "beamstop_px": beamstop,
                    "dtype": "float64", "fft_length": 160, "repeats": args.repeats},
        "timings_ms_median": {k: round(v, 3) for k, v in median.items()},
        "timings_ms_best": {k: round(t["best"], 3) for k, t in timings.items()},
        "max_relative_difference_to_dense": diffs,
        "speedup_fft_vs_dense_forward": round(speedup, 1),
        "speedup_fft_vs_dense_forward_backward": round(
            median["dense_forward_backward"] / median["fft_forward_backward"], 1),
        "target": ">= 20x forward, max relative difference < 1e-5",
        "passed": bool(speedup >= 20 and max(diffs.values()) < 1e-5),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
