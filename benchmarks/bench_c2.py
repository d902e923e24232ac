"""Benchmark: two-time correlation C2 (speckleml.correlation.two_time) against two references.

Setting (issue 3): one series of 2000 frames of 256 x 256 Poisson speckle (synthetic OU field,
2 counts per pixel), 8 q rings between 30 and 120 px (42,404 pixels), classical normalisation
``C2 = <I1 I2>_p / (<I1>_p <I2>_p)`` (the form all three implementations share).

* ``ours``: :func:`speckleml.correlation.two_time`, streaming the frames from the zarr frames
  store with a panel budget of ``--max-memory`` MiB (default 384, below the stack size): SYRK
  on diagonal blocks, GEMM on off-diagonal blocks, mirrored. ``ours_strict`` is the same with
  the library default budget (ROI panels no larger than the C2 output), which re-reads frame
  blocks once per row group.
* ``gemm`` (reference a): the APS ``boost_corr`` two-time algorithm - the whole stack in memory,
  one full float32 ``torch.matmul(X, X.T)`` per ROI, then the normalisation.
* ``skbeam`` (reference b): scikit-beam ``two_time_corr`` (num_levels=1, num_bufs=T). The package
  does not install on Python 3.11 here (sdist only, needs Cython), so its algorithm is
  transcribed below (BSD-3, Brookhaven Science Associates). It is O(T^2) Python iterations of
  three ``np.bincount`` over the ROI pixels, so it runs on the first ``--skbeam-frames`` frames
  and its time is extrapolated by (T / frames)^2 (it is exactly quadratic in T).

Each method runs in its own subprocess so that its peak resident memory (VmHWM) is its own;
``rss_import`` is the resident memory after imports, ``peak_rss`` the peak, both in MiB.
Results are compared element-wise (max relative difference). The machine's float32 GEMM peak
is measured in the same run (numpy 4096^3, distinct operands).

Prints one JSON object. Usage:
``python benchmarks/bench_c2.py [--frames 2000] [--size 256] [--threads 1] [--skbeam-frames 200]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RING_PX = (30.0, 11.25, 11.25, 8)   # q_first, q_width, q_step (pixels), n_rings


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _labels(size: int):
    import numpy as np

    from speckleml.correlation import q_ring_rois, ring_edges

    yy, xx = np.indices((size, size)) - size // 2
    return q_ring_rois(np.hypot(yy, xx), ring_edges(*RING_PX))[0]


def skbeam_two_time(labels, images, num_frames):
    """scikit-beam ``two_time_corr(labels, images, num_frames, num_bufs=num_frames, num_levels=1)``.

    Transcribed from skbeam/core/correlation.py (``_validate_and_transform_inputs``,
    ``lazy_two_time``, ``_two_time_process`` and ``two_time_state_to_results``, level 0 only).
    """
    import numpy as np

    num_bufs = num_frames
    label_array = labels[labels > 0]
    pixel_list = np.flatnonzero(labels.ravel() > 0)
    # Labels are already 1..n in raster order, as skbeam's remapping produces.
    num_rois = int(label_array.max())
    num_pixels = np.bincount(label_array)[1:]
    lag_steps = np.arange(num_bufs)
    buf = np.zeros((1, num_bufs, len(pixel_list)), dtype=np.float64)
    img_per_level = np.zeros(1, dtype=np.int64)
    cur = np.ones(1, dtype=np.int64)
    g2 = np.zeros((num_rois, num_frames, num_frames), dtype=np.float64)
    current_img_time = 0
    for img in images:
        cur[0] = (1 + cur[0]) % num_bufs
        current_img_time += 1
        buf[0, cur[0] - 1] = np.ravel(img)[pixel_list]
        buf_no = cur[0] - 1
        img_per_level[0] += 1
        for i in range(0, min(img_per_level[0], num_bufs)):
            delay_no = (buf_no - i) % num_bufs
            past_img = buf[0, delay_no]
            future_img = buf[0, buf_no]
            tmp_binned = np.bincount(label_array, weights=past_img * future_img)[1:]
            pi_binned = np.bincount(label_array, weights=past_img)[1:]
            fi_binned = np.bincount(label_array, weights=future_img)[1:]
            tind1 = current_img_time - 1
            tind2 = current_img_time - lag_steps[i] - 1
            g2[:, tind1, tind2] = tmp_binned / (pi_binned * fi_binned) * num_pixels
    for q in range(num_rois):
        x0 = g2[q]
        g2[q] = np.tril(x0) + np.tril(x0).T - np.diag(np.diag(x0))
    return g2


def child(args) -> dict:
    """Run one method, save its C2 next to the stack, report time and memory."""
    import numpy as np

    work = Path(args.work)
    out: dict = {"method": args.method}
    if args.method == "gemm":
        import torch

        torch.set_num_threads(args.threads)
    from speckleml.correlation import two_time
    from speckleml.stores import read_frames

    labels = np.load(work / "labels.npy")
    out["rss_import"] = _rss_mib("VmRSS")
    if args.method == "ours":
        frames = read_frames(work / "frames.zarr", lazy=True)["frames"]
        if args.n_frames:
            frames = np.asarray(frames[0, : args.n_frames])
        start = time.perf_counter()
        c2 = two_time(frames, labels, "classical", max_memory=int(args.max_memory * 2**20) or None)
        out["seconds"] = time.perf_counter() - start
    elif args.method == "gemm":
        stack = np.load(work / "stack.npy")             # the whole stack in memory
        start = time.perf_counter()
        c2 = np.empty((labels.max(), stack.shape[0], stack.shape[0]), np.float32)
        for r in range(1, labels.max() + 1):
            x = torch.from_numpy(stack[:, labels == r])
            product = torch.matmul(x, x.T)               # one full float32 GEMM per ROI
            norm = 1.0 / x.sum(dim=1)
            c2[r - 1] = (product * norm[:, None] * norm[None, :] * x.shape[1]).numpy()
        out["seconds"] = time.perf_counter() - start
    else:
        stack = np.load(work / "stack.npy", mmap_mode="r")[: args.n_frames]
        start = time.perf_counter()
        c2 = skbeam_two_time(labels, stack, args.n_frames)
        out["seconds"] = time.perf_counter() - start
    out["peak_rss"] = _rss_mib("VmHWM")
    np.save(work / f"c2_{args.method}_{args.n_frames or 0}.npy", c2.astype(np.float32))
    return out


def run_child(method: str, work: Path, threads: int, n_frames: int = 0, max_memory: float = 0.0) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, __file__, "--child", method, "--work", str(work), "--threads",
                           str(threads), "--n-frames", str(n_frames), "--max-memory", str(max_memory)],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{method} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def gemm_peak(threads: int) -> float:
    """Float32 GEMM GFLOP/s of this machine (numpy/OpenBLAS, best of 3, distinct operands)."""
    code = ("import numpy as np, time\nn=4096\nr=np.random.default_rng(0)\n"
            "a=r.random((n,n),dtype=np.float32); b=r.random((n,n),dtype=np.float32)\nbest=1e9\n"
            "for _ in range(3):\n t=time.perf_counter(); a@b; best=min(best,time.perf_counter()-t)\n"
            "print(2*n**3/best/1e9)")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True).stdout)


def max_rel_diff(a, b) -> float:
    import numpy as np

    return float(np.nanmax(np.abs(a.astype(np.float64) - b) / np.abs(b)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads for every method")
    parser.add_argument("--skbeam-frames", type=int, default=200)
    parser.add_argument("--max-memory", type=float, default=384.0, help="MiB of ROI panels for ours")
    parser.add_argument("--child", choices=("ours", "gemm", "skbeam"), help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--n-frames", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.method = args.child
        print(json.dumps(child(args)))
        return 0

    import numpy as np

    from speckleml.stores import write_frames
    from speckleml.synthetic import ou_speckle

    with tempfile.TemporaryDirectory(prefix="bench_c2_") as tmp:
        work = Path(tmp)
        stack = ou_speckle(args.frames, args.size, tau=50.0, seed=0, mean_counts=2.0)[0]
        np.save(work / "stack.npy", stack)
        write_frames(work / "frames.zarr", stack)
        labels = _labels(args.size)
        np.save(work / "labels.npy", labels)
        n_pixels = int((labels > 0).sum())
        stack_mib = stack.nbytes / 2**20
        del stack
        peak = gemm_peak(args.threads)
        ours = run_child("ours", work, args.threads, max_memory=args.max_memory)
        ours_strict = run_child("ours", work, args.threads)
        gemm = run_child("gemm", work, args.threads)
        short = args.skbeam_frames
        skbeam = run_child("skbeam", work, args.threads, short)
        ours_short = run_child("ours", work, args.threads, short)
        c2 = {name: np.load(work / f"c2_{name}.npy") for name in ("ours_0", "gemm_0", "skbeam_%d" % short,
                                                                   "ours_%d" % short)}
        n_frames = args.frames
        sizes = np.bincount(labels.ravel())[1:]
        flops_syrk = float(sum(n_frames * (n_frames + 1) * p for p in sizes))
        flops_gemm = float(sum(2 * n_frames**2 * p for p in sizes))
        skbeam_extrapolated = skbeam["seconds"] * (n_frames / short) ** 2
        result = {
            "benchmark": "c2_two_time",
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "threads": args.threads, "python": platform.python_version(),
                        "numpy": np.__version__,
                        "note": "2-core CPU dev box, shared with other engineers during development"},
            "setting": {"frames": n_frames, "detector": [args.size, args.size], "rings": int(sizes.size),
                        "ring_pixels": n_pixels, "stack_mib": round(stack_mib, 1),
                        "c2_mib": round(sizes.size * n_frames**2 * 4 / 2**20, 1), "normalization": "classical"},
            "gemm_peak_gflops": round(peak, 1),
            "ours": {**ours, "panel_budget_mib": args.max_memory, "gflops_actual": round(flops_syrk / ours["seconds"] / 1e9, 1),
                     "gflops_gemm_equivalent": round(flops_gemm / ours["seconds"] / 1e9, 1)},
            "ours_strict": {**ours_strict, "panel_budget": "C2 size"},
            "gemm_reference": {**gemm, "gflops": round(flops_gemm / gemm["seconds"] / 1e9, 1)},
            "skbeam_reference": {**skbeam, "frames_run": short,
                                 "seconds_extrapolated_full": round(skbeam_extrapolated, 1),
                                 "ours_seconds_same_frames": ours_short["seconds"]},
            "speedup_vs_gemm": round(gemm["seconds"] / ours["seconds"], 2),
            "speedup_vs_gemm_strict": round(gemm["seconds"] / ours_strict["seconds"], 2),
            "peak_rss_ratio_ours_over_gemm": round((ours["peak_rss"] - ours["rss_import"])
                                                   / (gemm["peak_rss"] - gemm["rss_import"]), 2),
            "speedup_vs_skbeam_same_frames": round(skbeam["seconds"] / ours_short["seconds"], 1),
            "speedup_vs_skbeam_extrapolated": round(skbeam_extrapolated / ours["seconds"], 1),
            "max_rel_diff_vs_gemm": max_rel_diff(c2["ours_0"], c2["gemm_0"]),
            "max_rel_diff_vs_skbeam": max_rel_diff(c2["ours_%d" % short], c2["skbeam_%d" % short]),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
