"""Benchmark: speckleml two-time C2 and multi-tau g2 against the peers (boost_corr, scikit-beam).

Same data for every tool: synthetic speckle (Ornstein-Uhlenbeck field, tau = 50 frames,
2 counts per pixel on a 128 x 128 detector, 8 q rings from 6 to 62 px = 11,948 pixels) at
each ``--frames`` T, and the real scikit-beam stack (``../shared/data/real/skbeam_speckle_stack``,
the workflow's 8 rings). Each tool runs in its own subprocess (``peak_rss_mib`` = its VmHWM,
``seconds`` = wall time of the computation, loading excluded):

- ``two_time``: classical C2 ``<I1 I2>/(<I1><I2>)`` of every ROI (speckleml
  :func:`speckleml.correlation.two_time`, boost_corr ``TwotimeCorrelator`` "normal" mode);
  ``max_abs_diff`` against float64 over the first 256 rows of every ROI. Only for T <=
  ``--c2-max-frames`` (default 4000): every peer holds all ROIs' C2 at once (8 x T^2 x 4 B).
- ``multitau``: ROI-level multi-tau g2 (speckleml :func:`speckleml.xpcs.multitau.multitau_g2`,
  boost_corr ``MultitauCorrelator`` (its own lags, 4 per level), scikit-beam
  ``multi_tau_auto_corr`` (8 buffers)); ``max_abs_diff`` against a float64 computation of
  the definition at the tool's own lags (frames binned by 2**level, pairs multiplied
  explicitly), lag 0 excluded.

The peers need Python >= 3.12: each gets a venv, built once under ``--cache``
(default ``~/.cache/speckleml-bench``) with pip; a peer that cannot be installed is skipped
with the reason. Threads: OMP/MKL/torch at ``--threads`` (default 2) for every tool.

Prints one JSON line per measurement and a final summary line (the one ``run_all.py`` keeps).
Usage: ``python benchmarks/bench_xpcs.py [--frames 1000 4000 20000] [--no-real] [--no-check]``
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL = HERE.parent.parent / "shared" / "data" / "real" / "skbeam_speckle_stack" / "img_stack5301_5401.npy.zip"
SIZE = 128
RINGS_PX = (6.0, 7.0, 7.0, 8)          # q_first, q_width, q_step (pixels), n_rings
REAL_GEOMETRY = dict(pixel_size=0.108, distance=2230.0, wavelength=1.546, center=(143, 123))
REAL_RINGS = (0.0016, 2.0e-4, 2.0e-4, 8)
PEERS = {   # name: (pip requirements, module that must import, pip timeout s)
    "boost-corr": (["boost-corr"], "boost_corr", 1800),
    "scikit-beam": (["scikit-beam"], "skbeam.core.correlation", 900),
}

# Runs inside any interpreter (project or peer venv): reads DIR/frames.npy (T, y, x) and
# DIR/labels.npy (y, x), computes TASK with TOOL, saves OUT.npz and prints one JSON line.
RUNNER = r'''
import json, sys, time
import numpy as np
tool, task, folder, out = sys.argv[1:5]
frames = np.load(f"{folder}/frames.npy", mmap_mode="r")
labels = np.load(f"{folder}/labels.npy")
n_roi = int(labels.max())
flat = labels.ravel()
order = np.argsort(flat, kind="stable")[np.sum(flat == 0):]
sizes = np.bincount(flat, minlength=n_roi + 1)[1:]
result = {}
if tool == "boost-corr":   # imports (torch's ~5 s) are not timed; their memory counts in the peak
    import torch
    from boost_corr.multitau import MultitauCorrelator
    from boost_corr.twotime import TwotimeCorrelator
elif tool == "scikit-beam":
    from skbeam.core.correlation import multi_tau_auto_corr
else:
    from speckleml.correlation import two_time
    from speckleml.xpcs.multitau import multitau_g2, multitau_lags
start = time.perf_counter()
if tool == "speckleml" and task == "two_time":
    result["c2"] = two_time(frames, labels, "classical")[:, :256]
elif tool == "speckleml" and task == "multitau":
    lag, g2, _ = multitau_g2(frames, labels)
    _, level, _ = multitau_lags(frames.shape[0])
    result.update(lag=lag, level=level, g2=g2)
elif tool == "boost-corr":
    T, P = frames.shape[0], int(order.size)
    blocks = lambda: (torch.from_numpy(np.ascontiguousarray(
        frames[t:t + 256].reshape(-1, flat.size)[:, order], dtype=np.float32)) for t in range(0, T, 256))
    if task == "two_time":
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        qinfo = {"dq_idx": list(range(1, n_roi + 1)), "dq_slc": slices, "sq_idx": [1], "sq_slc": [slice(0, P)]}
        tc = TwotimeCorrelator(qinfo, T, det_size=(1, P), device="cpu", method="normal")
        for x in blocks():
            tc.process(x)
        tc.compute_average()
        maps = [c2 for c2 in tc.calc_normal_twotime()]
        # boost keeps triu(c2): the first 256 rows' upper part is compared
        result["c2"] = np.stack([m[:256] for m in maps])
        result["upper_only"] = np.array(True)
    else:
        mc = MultitauCorrelator(det_size=(1, P), frame_num=T, device="cpu", max_memory=1.0)
        for x in blocks():
            mc.process(x)
        mc.post_process()
        _, res = mc.get_results()
        G = res["G2"].double().numpy()
        roi = np.repeat(np.arange(n_roi), sizes)
        mean = lambda a: np.bincount(roi, weights=a, minlength=n_roi) / sizes
        g2 = np.array([mean(G[k, 0]) / (mean(G[k, 1]) * mean(G[k, 2])) for k in range(G.shape[0])]).T
        result.update(lag=mc.tau_bin[0].astype(float), level=mc.tau_bin[1], g2=g2)
elif tool == "scikit-beam":
    levels = 1
    while frames.shape[0] >> levels >= 5:   # level L has pairs while T // 2**L > buffers / 2
        levels += 1
    g2, lag = multi_tau_auto_corr(levels, 8, labels, np.asarray(frames))
    lag = np.asarray(lag)
    level = np.where(lag < 8, 0, np.floor(np.log2(np.maximum(lag, 1) / 4)).astype(int))
    result.update(lag=lag.astype(float), level=level, g2=np.asarray(g2).T)
else:
    raise SystemExit(f"unknown tool/task {tool}/{task}")
seconds = time.perf_counter() - start
with open("/proc/self/status") as handle:
    hwm = next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmHWM"))
np.savez(out, **result)
print(json.dumps({"seconds": seconds, "peak_rss_mib": hwm}))
'''


def _make_synthetic(folder: Path, n_frames: int, seed: int = 0, tau: float = 50.0) -> None:
    """OU speckle written frame block by frame block (the stack never sits in memory at once)."""
    import numpy as np

    from speckleml.correlation import q_ring_rois, ring_edges

    rng = np.random.default_rng(seed)
    yy, xx = np.indices((SIZE, SIZE)) - SIZE // 2
    pupil = np.hypot(yy, xx) < 0.25 * SIZE
    a = np.exp(-1.0 / tau)
    field = (rng.standard_normal(pupil.shape) + 1j * rng.standard_normal(pupil.shape)) / np.sqrt(2)
    stack = np.lib.format.open_memmap(folder / "frames.npy", mode="w+", dtype=np.float32,
                                      shape=(n_frames, SIZE, SIZE))
    scale = None
    for t0 in range(0, n_frames, 256):
        block = np.empty((min(256, n_frames - t0), SIZE, SIZE))
        for k in range(block.shape[0]):
            noise = (rng.standard_normal(pupil.shape) + 1j * rng.standard_normal(pupil.shape)) / np.sqrt(2)
            field = a * field + np.sqrt(1 - a * a) * noise
            block[k] = np.abs(np.fft.fftshift(np.fft.fft2(field * pupil))) ** 2
        scale = 2.0 / block.mean() if scale is None else scale
        stack[t0:t0 + block.shape[0]] = rng.poisson(block * scale)
    stack.flush()
    labels = q_ring_rois(np.hypot(yy, xx), ring_edges(*RINGS_PX))[0]
    np.save(folder / "labels.npy", labels)


def _make_real(folder: Path) -> None:
    import numpy as np

    from speckleml.correlation import q_ring_rois, ring_edges
    from speckleml.xpcs.frames import Geometry, read_frame_array

    frames = read_frame_array(REAL).astype(np.float32)
    np.save(folder / "frames.npy", frames)
    q_map = Geometry(**REAL_GEOMETRY).q_map(frames.shape[-2:])
    labels = q_ring_rois(q_map, ring_edges(*REAL_RINGS), mask=frames.mean(axis=0) > 0.1)[0]
    np.save(folder / "labels.npy", labels)


def _reference_multitau(frames, labels, lags, levels):
    """Float64 g2 (n_roi, n_lags) from the definition at the given (lag, level) pairs."""
    import numpy as np

    flat = labels.ravel()
    roi = flat[flat > 0]
    x = np.asarray(frames, np.float64).reshape(frames.shape[0], -1)[:, flat > 0]
    out = np.full((int(roi.max()), len(lags)), np.nan)
    binned = {}
    for k, (lag, level) in enumerate(zip(lags, levels)):
        width = 2 ** int(level)
        if width not in binned:
            n = x.shape[0] // width
            binned = {width: x[:n * width].reshape(n, width, -1).mean(axis=1)}
        b = binned[width]
        i = int(round(lag / width))
        if i < 1 or i >= b.shape[0]:
            continue
        past, future = b[:-i], b[i:]
        product, ip, if_ = (past * future).mean(axis=0), past.mean(axis=0), future.mean(axis=0)
        count = np.bincount(roi)[1:]
        mean = lambda a: np.bincount(roi, weights=a)[1:] / count
        out[:, k] = mean(product) / (mean(ip) * mean(if_))
    return out


def _reference_c2_rows(frames, labels, rows: int = 256):
    import numpy as np

    flat = labels.ravel()
    x = np.asarray(frames, np.float64).reshape(frames.shape[0], -1)
    maps = []
    for r in range(1, int(flat.max()) + 1):
        a = x[:, flat == r]
        means = a.mean(axis=1)
        maps.append((a[:rows] @ a.T) / a.shape[1] / np.outer(means[:rows], means))
    return np.stack(maps)


def _python_312() -> str | None:
    """An interpreter >= 3.12 for the peer venvs (pyenv's, one on PATH, or this one)."""
    if sys.version_info >= (3, 12):
        return sys.executable
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python")))
    found += [p for p in (shutil.which("python3.12"), shutil.which("python3.13")) if p]
    return found[0] if found else None


def _peer_python(name: str, cache: Path, install: bool) -> tuple[str | None, str]:
    """(python of the peer's venv, "") or (None, reason it is skipped)."""
    requirements, module, timeout = PEERS[name]
    python = cache / name / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", f"import {module}"],
                                          capture_output=True).returncode == 0:
        return str(python), ""
    if not install:
        return None, f"no venv with {module} under {cache / name} (--no-install)"
    base = _python_312()
    if base is None:
        return None, "no Python >= 3.12 found (pyenv, PATH) for its venv"
    try:
        subprocess.run([base, "-m", "venv", str(cache / name)], check=True, capture_output=True, timeout=300)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements, "numpy"],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"pip install {' '.join(requirements)} took more than {timeout} s"
    except subprocess.CalledProcessError as exc:
        return None, f"venv creation failed: {exc}"
    if proc.returncode != 0 or subprocess.run([str(python), "-c", f"import {module}"],
                                              capture_output=True).returncode != 0:
        tail = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()][-1:] or ["?"]
        return None, f"pip install {' '.join(requirements)} failed: {tail[0][:200]}"
    return str(python), ""


def _run(python: str, tool: str, task: str, folder: Path, env: dict) -> tuple[dict, Path | None]:
    out = folder / f"{tool}-{task}.npz"
    runner = folder / "runner.py"
    runner.write_text(RUNNER)
    proc = subprocess.run([python, str(runner), tool, task, str(folder), str(out)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["(no stderr)"]
        return {"error": tail[0][:300]}, None
    return json.loads(proc.stdout.strip().splitlines()[-1]), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="*", default=[1000, 4000, 20000])
    parser.add_argument("--c2-max-frames", type=int, default=4000, help="two-time only up to this T")
    parser.add_argument("--no-real", action="store_true", help="skip the real scikit-beam stack")
    parser.add_argument("--no-check", action="store_true", help="skip the float64 comparisons")
    parser.add_argument("--no-install", action="store_true", help="use cached peer venvs only")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("SPECKLEML_BENCH_CACHE", "~/.cache/speckleml-bench")).expanduser())
    args = parser.parse_args(argv)

    import numpy as np

    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    tools = {"speckleml": sys.executable}
    skipped = {}
    for name in args.peers:
        python, reason = _peer_python(name, args.cache, not args.no_install)
        if python:
            tools[name] = python
        else:
            skipped[name] = reason
    summary = {"benchmark": "xpcs", "machine": platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
               "load_average": os.getloadavg()[0], "skipped": skipped, "rows": []}
    cases = [("synthetic", t) for t in args.frames] + ([] if args.no_real else [("real", None)])
    for kind, n_frames in cases:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if kind == "real":
                _make_real(folder)
            else:
                _make_synthetic(folder, n_frames)
            frames = np.load(folder / "frames.npy", mmap_mode="r")
            labels = np.load(folder / "labels.npy")
            shape = {"data": kind, "frames": int(frames.shape[0]), "pixels": int((labels > 0).sum()),
                     "rois": int(labels.max())}
            for task in ("two_time", "multitau"):
                if task == "two_time" and frames.shape[0] > args.c2_max_frames:
                    continue
                for tool, python in tools.items():
                    if tool == "scikit-beam" and task == "two_time":
                        continue   # scikit-beam's two_time_corr is a multi-tau two-time: another quantity
                    row = {**shape, "task": task, "tool": tool}
                    measured, out = _run(python, tool, task, folder, env)
                    row.update(measured)
                    if out is not None and not args.no_check:
                        result = np.load(out)
                        if task == "two_time":
                            ref = _reference_c2_rows(frames, labels)
                            got = result["c2"]
                            if "upper_only" in result:
                                keep = np.triu(np.ones(ref.shape[1:], bool))
                                got, ref = got[:, keep], ref[:, keep]
                        else:
                            lag, level = result["lag"], result["level"]
                            ref = _reference_multitau(frames, labels, lag, level)
                            got = result["g2"]
                            got, ref = got[:, lag > 0], ref[:, lag > 0]
                        row["max_abs_diff"] = float(np.nanmax(np.abs(got - ref)))
                    print(json.dumps(row), flush=True)
                    summary["rows"].append(row)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
