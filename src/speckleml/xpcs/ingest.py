"""Measured frame stacks into frames stores (``speckleml import-frames``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .frames import Geometry, open_frame_stack

log = logging.getLogger(__name__)

#: Frames read and written at once (the frames store's time chunk).
CHUNK_FRAMES = 64


def read_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A ``.npy`` boolean mask (y, x), True = valid pixel; InputError naming the file otherwise."""
    try:
        mask = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: cannot read mask as a .npy array ({' '.join(str(exc).split())})") from None
    if not isinstance(mask, np.ndarray) or mask.dtype.kind not in "biuf":
        raise InputError(f"{path}: mask must be a numeric or boolean .npy array")
    if mask.shape != tuple(shape):
        raise InputError(f"{path}: mask shape {mask.shape} does not match frames {tuple(shape)}")
    return mask.astype(bool)


def _suspicious(block: np.ndarray, t0: int) -> tuple[list[int], list[int]]:
    """Indices (offset by ``t0``) of the frames of a (b, y, x) block with negative counts / no counts."""
    negative = np.flatnonzero((block < 0).any(axis=(1, 2))) + t0
    empty = np.flatnonzero(~block.any(axis=(1, 2))) + t0
    return negative.tolist(), empty.tolist()


def _warn_suspicious(negative: list[int], empty: list[int], source) -> None:
    """Warn (naming them) about frames with negative counts or no counts at all."""
    if negative:
        log.warning("%s: %d frame(s) hold negative counts (first: %s); dark-subtracted data?", source,
                    len(negative), negative[:10])
    if empty:
        log.warning("%s: %d frame(s) are all zero (first: %s)", source, len(empty), empty[:10])


def import_frames(source: str | os.PathLike, output: str | os.PathLike, *, dt: float, dataset: str | None = None,
                  mask: str | os.PathLike | None = None, geometry: Geometry | None = None,
                  max_frames: int | None = None, dark: str | os.PathLike | None = None,
                  flat: str | os.PathLike | None = None, provenance: dict | None = None) -> Path:
    """Measured frames -> frames store (float32, one series unless the input has a series axis).

    The stack is streamed: read, checked and written :data:`CHUNK_FRAMES` frames at a time
    (the store's time chunk), so memory does not grow with the number of frames.

    Parameters
    ----------
    source : path
        ``.npy``, ``.npy.zip``, HDF5 or zarr stack (:func:`speckleml.xpcs.frames.open_frame_stack`).
    output : path
        Frames store to write.
    dt : float
        Frame time (s), > 0.
    dataset : str, optional
        HDF5 dataset or zarr array name.
    mask : path, optional
        ``.npy`` boolean mask (y, x), True = valid pixel.
    geometry : Geometry, optional
        Detector geometry: the store gets ``qx``/``qy`` in 1/Angstrom; else pixel offsets.
    max_frames : int, optional
        Keep only the first ``max_frames`` (>= 1) frames of every series.
    dark, flat : path, optional
        ``.npy`` dark image and flat field (y, x), applied as ``(raw - dark) / flat`` on the
        valid pixels (:mod:`speckleml.xpcs.corrections`).
    provenance : dict, optional
        Provenance record of the store.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InputError
        Unreadable input, mask, dark or flat, non-finite frames, a mask, dark or flat of
        another shape, a flat field <= 0 on a valid pixel (nothing is written then).
    """
    from ..stores import FRAMES, streamed_store
    from .corrections import correct_frames, normalised_flat, read_image

    with open_frame_stack(source, dataset) as stack:
        shape = tuple(stack.shape) if stack.ndim == 4 else (1, *stack.shape)
        n_series, n_frames, ny, nx = shape
        if max_frames is not None:
            n_frames = min(n_frames, int(max_frames))
        valid = np.ones((ny, nx), bool) if mask is None else read_mask(mask, (ny, nx))
        attrs = {"dt": dt, "units": {"t": "s", "intensity": "counts"}, "source": str(source)}
        # dark and flat are read once; each streamed block is corrected (corrections.correct_frames)
        dark_image = None if dark is None else read_image(dark, (ny, nx), "dark")
        flat_image = None if flat is None else normalised_flat(read_image(flat, (ny, nx), "flat field"),
                                                               None if mask is None else valid, flat)
        if dark is not None or flat is not None:
            attrs["corrections"] = {"dark": None if dark is None else str(dark),
                                    "flat": None if flat is None else str(flat)}
        if geometry is not None:
            qx, qy = geometry.axis_q(nx, 1), geometry.axis_q(ny, 0)
            attrs["geometry"] = geometry.to_attrs()
            attrs["units"]["q"] = "1/Angstrom"
        else:
            qx, qy = np.arange(nx, dtype=np.float64) - nx // 2, np.arange(ny, dtype=np.float64) - ny // 2
            attrs["units"]["q"] = "pixel"
        negative, empty = [], []
        with streamed_store(output, FRAMES, {"frames": (n_series, n_frames, ny, nx)}) as out:
            for s in range(n_series):
                for t0 in range(0, n_frames, CHUNK_FRAMES):
                    t1 = min(n_frames, t0 + CHUNK_FRAMES)
                    block = np.asarray(stack[(s, slice(t0, t1)) if stack.ndim == 4 else slice(t0, t1)])
                    if not np.isfinite(block).all():
                        raise InputError(f"{source}: frames contain NaN or infinite values")
                    if dark_image is not None or flat_image is not None:
                        block = correct_frames(block, dark_image, flat_image, None if mask is None else valid)
                    found = _suspicious(block, s * n_frames + t0)
                    negative += found[0]
                    empty += found[1]
                    out.arrays["frames"][s, t0:t1] = block.astype(np.float32)
            _warn_suspicious(negative, empty, source)
            out.finish({"mask": valid, "qx": qx, "qy": qy}, attrs=attrs, provenance=provenance)
    log.info("wrote %s: %d series x %d frames of %dx%d", output, n_series, n_frames, ny, nx)
    return Path(output)
