"""Detector corrections at import: dark frame subtraction and flat field (``import-frames --dark/--flat``).

    corrected = (raw - dark) / (flat / <flat>_valid)

``dark`` is the detector's signal without beam (a (y, x) image, or a (n, y, x) stack that is
averaged over its first axis); ``flat`` is its relative pixel efficiency (the response to a
uniform illumination, already dark-subtracted), normalised to mean 1 over the valid pixels so
that the corrected counts keep the raw scale. Pixels outside the mask are left uncorrected
(they are never correlated).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError


def read_image(path: str | os.PathLike, shape: tuple[int, int], what: str) -> np.ndarray:
    """A (y, x) image from a ``.npy`` file ((n, y, x) stacks are averaged), float64.

    Raises
    ------
    InputError
        Unreadable file, non-numeric or non-finite values, a shape other than ``shape``.
    """
    try:
        image = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: cannot read {what} as a .npy array ({' '.join(str(exc).split())})") from None
    if not isinstance(image, np.ndarray) or image.dtype.kind not in "biuf":
        raise InputError(f"{path}: {what} must be a numeric .npy array")
    if image.ndim == 3 and image.shape[0] > 0:
        image = image.mean(axis=0, dtype=np.float64)
    if image.shape != tuple(shape):
        raise InputError(f"{path}: {what} shape {image.shape} does not match the frames' (y, x) {tuple(shape)}")
    image = image.astype(np.float64)
    if not np.isfinite(image).all():
        raise InputError(f"{path}: {what} contains NaN or infinite values")
    return image


def normalised_flat(flat: np.ndarray, mask: np.ndarray | None, source) -> np.ndarray:
    """Flat field divided by its mean over the valid pixels; InputError if a valid pixel is <= 0."""
    valid = np.ones(flat.shape, bool) if mask is None else mask
    dead = valid & (flat <= 0)
    if dead.any():
        raise InputError(f"{source}: flat field is <= 0 at {int(dead.sum())} valid pixel(s) "
                         f"(mask them with --mask)")
    out = np.ones_like(flat)
    out[valid] = flat[valid] / flat[valid].mean()
    return out


def correct_frames(data: np.ndarray, dark: np.ndarray | None = None, flat: np.ndarray | None = None,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """``(data - dark) / flat`` on the valid pixels (module docstring), float32.

    Parameters
    ----------
    data : array (..., y, x)
        Raw frames.
    dark : array (y, x), optional
        Dark image (counts).
    flat : array (y, x), optional
        Flat field already normalised by :func:`normalised_flat` (mean 1 on valid pixels).
    mask : array of bool (y, x), optional
        Valid pixels; others are returned unchanged.

    Returns
    -------
    ndarray of float32, same shape as ``data``.
    """
    out = np.asarray(data, np.float64)
    valid = np.ones(out.shape[-2:], bool) if mask is None else mask
    if dark is not None:
        out = out - np.where(valid, dark, 0.0)
    if flat is not None:
        out = out / np.where(valid, flat, 1.0)
    return out.astype(np.float32)


def apply_corrections(data: np.ndarray, *, dark: str | os.PathLike | None = None,
                      flat: str | os.PathLike | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """Read the dark image and flat field files and correct ``data`` (..., y, x); float32.

    Raises
    ------
    InputError
        See :func:`read_image` and :func:`normalised_flat`.
    """
    shape = tuple(data.shape[-2:])
    dark_image = None if dark is None else read_image(dark, shape, "dark")
    flat_image = None if flat is None else normalised_flat(read_image(flat, shape, "flat field"), mask, flat)
    return correct_frames(data, dark_image, flat_image, mask)
