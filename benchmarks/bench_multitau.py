"""Benchmark: streamed multi-tau g2 (speckleml.xpcs.multitau) from a frames store.

Setting (issue 12): one series of T frames of 128 x 128 Poisson speckle (synthetic OU field,
tau = 50 frames, 2 counts per pixel), 8 q rings from 6 to 62 px (11,948 pixels), 8 buffers
per level, symmetric normalisation at the ROI level (the default, as scikit-beam). The frames store is written once per T in a
temporary directory; :func:`speckleml.xpcs.multitau.multitau_g2_store` then runs in its own
subprocess so that its peak resident memory (VmHWM, MiB) is its own. ``seconds`` is wall
time, ``cpu_seconds`` user + system time of that subprocess.

With ``--check`` (T <= 5000 advised: it holds the stack in memory) the result is compared
with a direct float64 computation (frames binned by 2**L, every lag's pairs multiplied
explicitly): ``max_abs_diff`` over all ROIs and lags.

Prints one JSON object. Usage:
``python benchmarks/bench_multitau.py [--frames 4000 20000] [--check]``
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

SIZE = 128
RINGS_PX = (6.0, 7.0, 7.0, 8)   # q_first, q_width, q_step (pixels), n_rings


def _labels():
    import numpy as np

    from speckleml.correlation import q_ring_rois, ring_edges

    yy, xx = np.indices((SIZE, SIZE)) - SIZE // 2
    return q_ring_rois(np.hypot(yy, xx), ring_edges(*RINGS_PX))[0]


def _write(path: Path, n_frames: int) -> None:
    from speckleml.stores import write_frames
    from speckleml.synthetic import ou_speckle

    frames = ou_speckle(n_frames, SIZE, 50.0, seed=0, mean_counts=2.0)
    write_frames(path, frames, attrs={"dt": 1e-3})


def _run(path: Path, out: Path) -> None:
    import resource

    import numpy as np

    from speckleml.xpcs.multitau import multitau_g2_store

    labels = _labels()
    start = time.perf_counter()
    lag, g2, g2_err = multitau_g2_store(path, labels)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as handle:
        hwm = next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmHWM"))
    np.savez(out, lag=lag, g2=g2)
    print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "peak_rss_mib": hwm, "n_lags": int(lag.size), "pixels": int((labels > 0).sum())}))


def _direct(path: Path, buffers: int = 8):
    """Float64 multi-tau straight from the definition (whole stack in memory)."""
    import numpy as np

    from speckleml.stores import read_frames

    labels = _labels().ravel()
    x = np.asarray(read_frames(path)["frames"][0], np.float64).reshape(-1, labels.size)[:, labels > 0]
    roi = labels[labels > 0]
    out = []
    level = 0
    while True:
        width = 2**level
        n = x.shape[0] // width
        steps = [i for i in range(0 if level == 0 else buffers // 2, buffers) if n - i >= 1]
        if not steps:
            break
        binned = x[:n * width].reshape(n, width, -1).mean(axis=1)
        for i in steps:
            past, future = binned[:n - i], binned[i:]
            product, ip, if_ = (past * future).mean(axis=0), past.mean(axis=0), future.mean(axis=0)
            out.append([product[roi == r].mean() / (ip[roi == r].mean() * if_[roi == r].mean())
                        for r in range(1, roi.max() + 1)])
        level += 1
    return np.array(out).T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[4000])
    parser.add_argument("--check", action="store_true", help="compare with a direct float64 computation")
    parser.add_argument("--_write", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_run", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._write:
        _write(Path(args._write[0]), int(args._write[1]))
        return 0
    if args._run:
        _run(Path(args._run[0]), Path(args._run[1]))
        return 0

    import numpy as np

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results = {"benchmark": "multitau", "machine": platform.machine(), "cpus": os.cpu_count(),
               "load_average": os.getloadavg()[0], "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n_frames in args.frames:
            store = Path(tmp) / f"frames{n_frames}.zarr"
            subprocess.run([sys.executable, __file__, "--_write", str(store), str(n_frames)], check=True, env=env)
            out = Path(tmp) / "g2.npz"
            proc = subprocess.run([sys.executable, __file__, "--_run", str(store), str(out)], check=True,
                                  capture_output=True, text=True, env=env)
            run = {"frames": n_frames, **json.loads(proc.stdout.strip().splitlines()[-1])}
            if args.check:
                g2 = np.load(out)["g2"]
                run["max_abs_diff"] = float(np.nanmax(np.abs(g2 - _direct(store))))
            results["runs"].append(run)
            subprocess.run(["rm", "-rf", str(store)], check=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
