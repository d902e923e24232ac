"""Bad frames: flagged by frame-intensity outliers and by a user list (``speckleml flag-frames``),
and dropped before correlation (``speckleml correlate --exclude-frames``).

Rule (robust z-score, as Xana and pyCHX flag frames): with ``I_t`` the mean counts per valid
pixel of frame ``t`` of one series, a frame is an outlier when

    |I_t - median_t(I)| > k * 1.4826 * MAD,   MAD = median_t |I_t - median_t(I)|

(1.4826 MAD is the standard deviation of normal data; ``k`` is ``xpcs.frames_check.k_mad``).
A shutter drop-out, a beam dump or a detector glitch moves ``I_t`` by many MADs; the Poisson
noise of a stable beam does not.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_csv
from ..errors import InputError
from ..stores import read_frames

log = logging.getLogger(__name__)

#: Scale from the median absolute deviation to the standard deviation of a normal distribution.
MAD_SCALE = 1.4826


def frame_means(frames, mask=None, series: int = 0, block: int = 256) -> np.ndarray:
    """Mean counts per valid pixel of every frame of one series, streamed by time block.

    Parameters
    ----------
    frames : array (series, time, y, x)
        Intensities (numpy or lazy zarr array).
    mask : array of bool (y, x), optional
        Valid pixels (default: all).
    series : int
        Series to read.
    block : int
        Frames read at once.

    Returns
    -------
    ndarray of float64 (time,)
    """
    n_frames = frames.shape[1]
    valid = np.ones(frames.shape[-2:], bool) if mask is None else np.asarray(mask, bool)
    out = np.empty(n_frames)
    for t0 in range(0, n_frames, block):
        chunk = np.asarray(frames[series, t0:t0 + block], np.float64)
        out[t0:t0 + chunk.shape[0]] = chunk[:, valid].mean(axis=1)
    return out


def robust_z(values) -> np.ndarray:
    """``(x - median) / (1.4826 MAD)``; 0 where ``x`` equals the median, +-inf otherwise when MAD = 0."""
    values = np.asarray(values, float)
    centre = np.median(values)
    scale = MAD_SCALE * np.median(np.abs(values - centre))
    deviation = values - centre
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(deviation == 0, 0.0, deviation / scale)


def outlier_frames(intensity, k_mad: float) -> np.ndarray:
    """Frames with ``|I_t - median| > k_mad * 1.4826 * MAD`` (module docstring), as a bool array.

    Raises
    ------
    InputError
        ``k_mad`` not > 0.
    """
    if not k_mad > 0:
        raise InputError(f"k_mad must be > 0, got {k_mad}")
    return np.abs(robust_z(intensity)) > k_mad


def flag_frames(frames: str | os.PathLike, output: str | os.PathLike, *, k_mad: float,
                user_frames=()) -> pd.DataFrame:
    """Flag bad frames of a frames store; write them as a CSV (one row per flagged frame).

    Parameters
    ----------
    frames : path
        Frames store (streamed).
    output : path
        CSV to write (atomically): ``series, frame, t`` (s), ``intensity`` (mean counts per
        valid pixel), ``robust_z`` and ``reason`` (``outlier``, ``user`` or ``outlier+user``).
        Read by ``correlate --exclude-frames``.
    k_mad : float
        Outlier threshold in robust standard deviations (module docstring), > 0.
    user_frames : sequence of int
        Frame indices flagged by the user (every series); ``0 <= frame < T``.

    Returns
    -------
    DataFrame
        The table written (possibly empty: header only).

    Raises
    ------
    InputError
        A user frame out of range, ``k_mad <= 0``.
    """
    store = read_frames(frames, lazy=True)
    data, mask = store["frames"], np.asarray(store["mask"], bool)
    n_series, n_frames = data.shape[:2]
    user = np.asarray(list(user_frames), int)
    bad = user[(user < 0) | (user >= n_frames)]
    if bad.size:
        raise InputError(f"user bad frames {bad.tolist()} out of range (the series has {n_frames} frames)")
    dt = float(store.attrs.get("dt", 1.0))
    rows = []
    for s in range(n_series):
        intensity = frame_means(data, mask, s)
        outlier = outlier_frames(intensity, k_mad)
        listed = np.isin(np.arange(n_frames), user)
        z = robust_z(intensity)
        for t in np.flatnonzero(outlier | listed):
            reason = "+".join(name for name, hit in (("outlier", outlier[t]), ("user", listed[t])) if hit)
            rows.append({"series": s, "frame": int(t), "t": t * dt, "intensity": intensity[t],
                         "robust_z": z[t], "reason": reason})
        log.info("series %d: %d outlier frame(s) (|z| > %g), %d user frame(s)", s, int(outlier.sum()), k_mad,
                 int(listed.sum()))
    table = pd.DataFrame(rows, columns=["series", "frame", "t", "intensity", "robust_z", "reason"])
    write_csv(table, output)
    log.info("wrote %s: %d flagged frame(s)", output, len(table))
    return table


def read_frame_list(path: str | os.PathLike) -> list[int]:
    """Frame indices from a CSV with a ``frame`` column (the table of :func:`flag_frames`).

    Every series drops the union of the listed frames (a C2 store holds equally long series).

    Raises
    ------
    InputError
        Unreadable file, no ``frame`` column, non-integer or negative frames.
    """
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file (a frame list needs at least the header 'frame')") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read frame list ({' '.join(str(exc).split())})") from None
    if "frame" not in table.columns:
        raise InputError(f"{path}: frame list lacks a 'frame' column (write it with speckleml flag-frames)")
    values = pd.to_numeric(table["frame"], errors="coerce").to_numpy(float)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or np.any(values < 0):
        raise InputError(f"{path}: column 'frame' must hold integers >= 0")
    return sorted({int(v) for v in values})


class KeptFrames:
    """A (series, time, y, x) frame array without some frames, read lazily (for ``two_time``).

    Lags then count kept frames: dropping a few isolated frames shifts the lags after them by
    at most that many frames, the approximation the peers make.
    """

    def __init__(self, frames, keep):
        self.frames, self.keep = frames, np.asarray(keep, int)
        self.shape = (frames.shape[0], self.keep.size) + tuple(frames.shape[2:])
        chunks = getattr(frames, "chunks", None)
        self.chunks = None if chunks is None else tuple(chunks)

    def __getitem__(self, index):
        series, times = index
        wanted = self.keep[times]
        if wanted.size == 0:
            return np.empty((0,) + self.shape[2:], np.float32)
        block = np.asarray(self.frames[series, int(wanted[0]):int(wanted[-1]) + 1])
        return block[wanted - wanted[0]]


def drop_frames(frames, exclude, source) -> tuple[object, np.ndarray]:
    """``frames`` without the listed frame indices, and the kept indices.

    Raises
    ------
    InputError
        A listed frame out of range, or fewer than 2 frames kept.
    """
    n_frames = frames.shape[1]
    exclude = np.asarray(sorted(set(int(f) for f in exclude)), int)
    out = exclude[(exclude < 0) | (exclude >= n_frames)]
    if out.size:
        raise InputError(f"excluded frames {out.tolist()} out of range ({source} has {n_frames} frames)")
    keep = np.setdiff1d(np.arange(n_frames), exclude)
    if keep.size < 2:
        raise InputError(f"{source}: excluding {exclude.size} frames leaves {keep.size} (need 2)")
    return KeptFrames(frames, keep), keep
