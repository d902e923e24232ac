"""Measured frame stacks into frames stores (``speckleml import-frames``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..stores import write_frames
from .frames import Geometry, read_frame_array

log = logging.getLogger(__name__)


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


def _warn_suspicious(data: np.ndarray, source) -> None:
    """Warn (naming them) about frames with negative counts or no counts at all."""
    flat = data.reshape(-1, *data.shape[-2:])
    negative = np.flatnonzero((flat < 0).any(axis=(1, 2)))
    if negative.size:
        log.warning("%s: %d frame(s) hold negative counts (first: %s); dark-subtracted data?", source,
                    negative.size, negative[:10].tolist())
    empty = np.flatnonzero(~flat.any(axis=(1, 2)))
    if empty.size:
        log.warning("%s: %d frame(s) are all zero (first: %s)", source, empty.size, empty[:10].tolist())


def import_frames(source: str | os.PathLike, output: str | os.PathLike, *, dt: float, dataset: str | None = None,
                  mask: str | os.PathLike | None = None, geometry: Geometry | None = None,
                  max_frames: int | None = None, provenance: dict | None = None) -> Path:
    """Measured frames -> frames store (float32, one series unless the input has a series axis).

    Parameters
    ----------
    source : path
        ``.npy``, ``.npy.zip``, HDF5 or zarr stack (:func:`speckleml.xpcs.frames.read_frame_array`).
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
    provenance : dict, optional
        Provenance record of the store.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InputError
        Unreadable input or mask, non-finite frames, a mask of another shape.
    """
    data = read_frame_array(source, dataset)
    if data.ndim == 3:
        data = data[None]
    if max_frames is not None:
        data = data[:, :max_frames]
    if not np.isfinite(data).all():
        raise InputError(f"{source}: frames contain NaN or infinite values")
    _warn_suspicious(data, source)
    ny, nx = data.shape[-2:]
    valid = None if mask is None else read_mask(mask, (ny, nx))
    attrs = {"dt": dt, "units": {"t": "s", "intensity": "counts"}, "source": str(source)}
    qx = qy = None
    if geometry is not None:
        qx, qy = geometry.axis_q(nx, 1), geometry.axis_q(ny, 0)
        attrs["geometry"] = geometry.to_attrs()
        attrs["units"]["q"] = "1/Angstrom"
    else:
        attrs["units"]["q"] = "pixel"
    write_frames(output, data.astype(np.float32), mask=valid, qx=qx, qy=qy, attrs=attrs, provenance=provenance)
    log.info("wrote %s: %d series x %d frames of %dx%d", output, *data.shape)
    return Path(output)
