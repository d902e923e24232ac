"""Frames store -> c2 store: q-ring ROIs and two-time C2 of every series (``speckleml correlate``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..correlation import G2_OFFSET, NORMALIZATIONS, g2_from_c2, mean_image, q_ring_rois, ring_edges, sector_centres, two_time
from ..errors import InputError
from ..stores import read_frames, write_c2
from .aps import detector_maps

log = logging.getLogger(__name__)


def roi_labels(store, q_edges, n_sectors: int = 1, min_pixel_mean: float = 0.0):
    """ROI labels of a frames store's detector: q rings (and sectors) inside the valid pixels.

    Parameters
    ----------
    store : Store
        A frames store (its ``qx``/``qy`` axes or geometry attrs give ``|q|``; ``mask``).
    q_edges : array (n_rings, 2)
        ``[inner, outer)`` ring edges in the store's q units (:func:`speckleml.correlation.ring_edges`).
    n_sectors : int
        Equal azimuthal sectors per ring.
    min_pixel_mean : float
        Pixels whose time-averaged intensity is ``<=`` this are excluded (beamstop shadow,
        dead pixels); 0 keeps every pixel of the store mask.

    Returns
    -------
    labels : ndarray of int32 (y, x)
        0 = excluded, ``1 + ring * n_sectors + sector`` otherwise.
    roi_q : ndarray (n_rings * n_sectors,)
        Ring centre of every ROI.
    mask : ndarray of bool (y, x)
        Valid pixels (store mask and the mean-intensity cut).
    q_map : ndarray (y, x)
        ``|q|`` of every pixel.
    q_unit : str
        Unit of ``q_map`` (``"1/Angstrom"`` with geometry, else the store's q unit).
    """
    q_map, phi_map, q_unit = detector_maps(store)
    mask = np.asarray(store["mask"], bool)
    if min_pixel_mean > 0:
        mask = mask & (mean_image(store["frames"]) > min_pixel_mean)
        log.info("%d of %d pixels have a mean intensity > %g", int(mask.sum()), mask.size, min_pixel_mean)
    labels, roi_q = q_ring_rois(q_map, q_edges, mask=mask, phi_map=phi_map, n_sectors=n_sectors)
    return labels, roi_q, mask, q_map, q_unit


def correlate_frames(frames: str | os.PathLike, output: str | os.PathLike, *, q_first: float, q_width: float,
                     q_step: float, n_rings: int, n_sectors: int, normalization: str, min_pixel_mean: float,
                     max_memory_mib: float, provenance: dict | None = None) -> Path:
    """Two-time C2 and one-time g2 of every q ring (and sector) of a frames store.

    Parameters
    ----------
    frames : path
        Frames store (``*.zarr``) with ``frames`` (series, time, y, x), streamed by time chunk.
    output : path
        c2 store to write (atomically): ``c2`` (series, roi, T, T) float32, ``g2``/``g2_err``
        (series, roi, T), ``lag`` (s), ``roi_q``, and the ROI definition in ``attrs["rois"]``.
    q_first, q_width, q_step : float
        Inner edge of the first ring, ring width and centre-to-centre spacing, in the store's
        q units (1/Angstrom with geometry, pixels for synthetic stacks); ``q_step >= q_width``.
    n_rings, n_sectors : int
        Rings, and equal azimuthal sectors per ring (paper 001 uses 18).
    normalization : {"pixel_mean", "ring_mean", "covariance", "classical"}
        C2 form (:mod:`speckleml.correlation`); ``ring_mean`` shares one mean per ring over its sectors.
    min_pixel_mean : float
        Exclude pixels whose time-averaged intensity is ``<=`` this (0 keeps all).
    max_memory_mib : float
        MiB of normalised ROI panels held at once; 0 = the size of the C2 output.
    provenance : dict, optional
        Provenance record of the store.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InputError
        Fewer than 2 frames, rings that overlap or contain fewer than 2 valid pixels,
        non-finite ROI pixels, a ROI whose C2 is undefined everywhere (zero intensity).
    """
    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    store = read_frames(frames, lazy=True)
    data = store["frames"]
    n_series, n_frames = data.shape[:2]
    if n_frames < 2:
        raise InputError(f"{frames}: need at least 2 frames, got {n_frames}")
    try:
        edges = ring_edges(q_first, q_width, q_step, n_rings)
    except ValueError as exc:
        raise InputError(f"q_first/q_width/q_step/n_rings: {exc}") from None
    labels, roi_q, _, q_map, q_unit = roi_labels(store, edges, n_sectors, min_pixel_mean)
    n_roi = roi_q.size
    n_pixels = np.bincount(labels.ravel(), minlength=n_roi + 1)[1:]
    if np.any(n_pixels < 2):
        empty = [int(i) for i in np.flatnonzero(n_pixels < 2)]
        raise InputError(f"ROIs {empty} have fewer than 2 valid pixels: rings {edges[0, 0]:g}..{edges[-1, 1]:g} "
                         f"{q_unit} vs detector q {np.nanmin(q_map):g}..{np.nanmax(q_map):g} (check q_first/q_width)")
    max_memory = int(max_memory_mib * 2**20) if max_memory_mib else None
    c2 = np.empty((n_series, n_roi, n_frames, n_frames), np.float32)
    for s in range(n_series):
        try:
            c2[s] = two_time(data, labels, normalization, series=s, n_roi=n_roi, max_memory=max_memory,
                             desc=f"c2 series {s}", mean_groups=np.arange(n_roi) // n_sectors)
        except ValueError as exc:
            raise InputError(f"{frames}: {exc}") from None
        undefined = np.flatnonzero(np.isnan(c2[s]).all(axis=(1, 2)))
        if undefined.size:
            raise InputError(f"{frames}: series {s}: C2 undefined in ROIs {undefined.tolist()} "
                             f"(zero mean intensity: all-zero frames or pixels?)")
    g2, g2_err = g2_from_c2(c2)
    dt = float(store.attrs.get("dt", 1.0))
    rois = {"q_edges": edges.tolist(), "n_sectors": n_sectors, "phi_centres": sector_centres(n_sectors).tolist(),
            "n_pixels": n_pixels.tolist(), "q_units": q_unit, "detector_shape": list(labels.shape),
            "geometry": store.attrs.get("geometry"), "min_pixel_mean": min_pixel_mean}
    attrs = {"dt": dt, "g2_offset": G2_OFFSET[normalization], "rois": rois, "source": str(frames),
             "units": {"lag": "s", "q": q_unit}}
    write_c2(output, c2, g2, np.arange(n_frames) * dt, roi_q, normalization, g2_err=g2_err, attrs=attrs,
             provenance=provenance)
    log.info("wrote %s: %d series x %d ROIs x %d^2 frames (%s)", output, n_series, n_roi, n_frames, normalization)
    return Path(output)
