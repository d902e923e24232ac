"""Frames store -> c2 store: q-ring ROIs and two-time C2 of every series (``speckleml correlate``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..correlation import G2_OFFSET, NORMALIZATIONS, mean_image, q_ring_rois, ring_edges, sector_centres
from ..errors import InputError
from ..stores import read_frames
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


#: Estimators of the one-time g2 written to the c2 store.
G2_ESTIMATORS = ("multitau", "diagonal")

#: Memory budget (MiB) for C2 maps and panels held at once when ``max_memory_mib`` is 0.
AUTO_MEMORY_MIB = 1024


class BinnedFrames:
    """Lazy (series, time, y, x) view of a frames array: frames averaged ``frame_bin`` at a time,
    then the window ``[start, stop)`` of those.

    Binned frame ``k`` is the float32 mean of raw frames ``(start + k) * frame_bin ...
    (start + k + 1) * frame_bin - 1``; a last incomplete bin is dropped. Reads are by time
    slices ``view[s, t0:t1]``, as :func:`speckleml.correlation.two_time` and
    :func:`speckleml.xpcs.multitau.multitau_g2` do.
    """

    def __init__(self, frames, frame_bin: int = 1, start: int = 0, stop: int | None = None):
        n_series, n_raw, ny, nx = frames.shape
        self.frames, self.frame_bin = frames, int(frame_bin)
        n_binned = n_raw // self.frame_bin
        stop = n_binned if stop is None else int(stop)
        if not 0 <= start < stop <= n_binned:
            raise ValueError(f"frame window {start}..{stop} outside the {n_binned} frames "
                             f"({n_raw} raw frames binned by {self.frame_bin})")
        self.start = int(start)
        self.shape = (n_series, stop - self.start, ny, nx)
        chunks = getattr(frames, "chunks", None)
        self.chunks = (1, max(1, int(chunks[1]) // self.frame_bin) if chunks else 64, ny, nx)

    def __getitem__(self, key):
        series, window = key
        t0, t1, _ = window.indices(self.shape[1])
        raw = np.asarray(self.frames[series, (self.start + t0) * self.frame_bin:(self.start + t1) * self.frame_bin])
        if self.frame_bin == 1:
            return raw
        binned = raw.reshape(t1 - t0, self.frame_bin, *raw.shape[1:]).mean(axis=1, dtype=np.float64)
        return binned.astype(np.float32)


def correlate_frames(frames: str | os.PathLike, output: str | os.PathLike, *, q_first: float, q_width: float,
                     q_step: float, n_rings: int, n_sectors: int, normalization: str, min_pixel_mean: float,
                     max_memory_mib: float, g2: str = "multitau", buffers: int = 8, frame_bin: int = 1,
                     c2_frames: tuple[int, int] | None = None, exclude_frames=(),
                     provenance: dict | None = None) -> Path:
    """Two-time C2 and one-time g2 of every q ring (and sector) of a frames store.

    The frames are streamed; at most ``max_memory_mib`` of C2 maps (at least one ROI's) and
    as much of normalised panels are held, and the C2 of each batch of ROIs is written to
    the store before the next is computed. The multi-tau g2 is accumulated from the blocks
    the C2 pass reads (a separate pass only when C2 covers part of the series).

    Parameters
    ----------
    frames : path
        Frames store (``*.zarr``) with ``frames`` (series, time, y, x), streamed by time chunk.
    output : path
        c2 store to write (atomically): ``c2`` (series, roi, T, T) float32, ``g2``/``g2_err``
        (series, roi, lag), ``lag`` (s), ``roi_q``, the ROI definition in ``attrs["rois"]``,
        ``g2_estimator``, ``g2_offset`` (g2 at full decorrelation), ``dt`` (s, of the binned
        frames), ``c2_frames`` (window of C2 in binned frames) and ``g2_frames`` (frames behind g2).
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
        MiB of C2 maps held at once beyond one ROI's, and of normalised ROI panels;
        0 = :data:`AUTO_MEMORY_MIB`.
    g2 : {"multitau", "diagonal"}
        ``multitau``: the standard multi-tau estimator over all (binned) frames
        (:mod:`speckleml.xpcs.multitau`, ROI-level symmetric normalisation, baseline 1,
        ``g2_err`` NaN at lags with a single pair of frames); ``diagonal``: the mean of each
        diagonal of C2 (every lag of the C2 window, baseline of the C2 normalisation).
    buffers : int
        Multi-tau buffers per level (even, >= 2).
    frame_bin : int
        Average this many consecutive frames first (the frame time becomes ``frame_bin * dt``).
    c2_frames : (int, int), optional
        ``[start, stop)`` of the (binned) frames whose C2 is computed (default: all).
    exclude_frames : sequence of int
        Raw frame indices dropped from every series before binning and correlation (bad
        frames, :mod:`speckleml.xpcs.badframes`); lags then count kept frames.
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
        non-finite ROI pixels, a ROI whose C2 is undefined everywhere (zero intensity),
        a bad estimator, bin or window.
    """
    from ..correlation import g2_from_c2, two_time_batches
    from ..stores import C2, streamed_store
    from .multitau import MultiTauAccumulator, multitau_g2

    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if g2 not in G2_ESTIMATORS:
        raise InputError(f"g2 must be one of {G2_ESTIMATORS}, got {g2!r}")
    if int(frame_bin) != frame_bin or frame_bin < 1:
        raise InputError(f"frame_bin must be an integer >= 1, got {frame_bin}")
    if int(buffers) != buffers or buffers < 2 or buffers % 2:
        raise InputError(f"buffers must be an even integer >= 2, got {buffers}")
    store = read_frames(frames, lazy=True)
    raw = store["frames"]
    if len(exclude_frames):
        from .badframes import drop_frames
        raw, _ = drop_frames(raw, exclude_frames, frames)
    n_series = raw.shape[0]
    try:
        series_frames = BinnedFrames(raw, frame_bin) if frame_bin > 1 else raw
        window = BinnedFrames(raw, frame_bin, *c2_frames) if c2_frames is not None else series_frames
    except ValueError as exc:
        raise InputError(f"{frames}: {exc}") from None
    n_frames, n_c2 = series_frames.shape[1], window.shape[1]
    if n_c2 < 2:
        raise InputError(f"{frames}: need at least 2 frames, got {n_c2}")
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
    budget = int((max_memory_mib or AUTO_MEMORY_MIB) * 2**20)
    dt = float(store.attrs.get("dt", 1.0)) * frame_bin
    same_pass = window is series_frames
    g2_values, g2_err, lag = [], [], None
    chunk = min(n_c2, 64)
    with streamed_store(output, C2, {"c2": (n_series, n_roi, n_c2, n_c2)},
                        chunks={"c2": (1, 1, chunk, n_c2)}) as out:
        for s in range(n_series):
            correlator = MultiTauAccumulator(labels, buffers=buffers, n_roi=n_roi) if g2 == "multitau" else None
            observer = correlator.update if correlator is not None and same_pass else None
            diagonal = np.full((2, n_roi, n_c2), np.nan)
            try:
                for r0, r1, c2 in two_time_batches(window, labels, normalization, series=s, n_roi=n_roi,
                                                   max_memory=budget, c2_memory=budget, desc=f"c2 series {s}",
                                                   mean_groups=np.arange(n_roi) // n_sectors, observer=observer):
                    # A row of C2 is NaN exactly where its diagonal element is (zero frame or mean).
                    undefined = np.flatnonzero(np.isnan(np.diagonal(c2, axis1=1, axis2=2)).all(axis=1))
                    if undefined.size:
                        raise InputError(f"{frames}: series {s}: C2 undefined in ROIs {(undefined + r0).tolist()} "
                                         f"(zero mean intensity: all-zero frames or pixels?)")
                    for t0 in range(0, n_c2, chunk):   # chunk rows: zarr's encoding buffers stay small
                        out.arrays["c2"][s, r0:r1, t0:t0 + chunk] = c2[:, t0:t0 + chunk]
                    if g2 == "diagonal":
                        diagonal[:, r0:r1] = g2_from_c2(c2)
                    del c2
                if correlator is None:
                    lag = np.arange(n_c2) * dt
                    g2_values.append(diagonal[0])
                    g2_err.append(diagonal[1])
                    continue
                if correlator.n_frames != n_frames:
                    lag, values, errors = multitau_g2(series_frames, labels, buffers=buffers, dt=dt, series=s,
                                                      n_roi=n_roi)
                else:
                    lag, values, errors = correlator.result(dt=dt)
            except InputError:
                raise
            except ValueError as exc:
                raise InputError(f"{frames}: {exc}") from None
            g2_values.append(values)
            g2_err.append(errors)
        rois = {"q_edges": edges.tolist(), "n_sectors": n_sectors, "phi_centres": sector_centres(n_sectors).tolist(),
                "n_pixels": n_pixels.tolist(), "q_units": q_unit, "detector_shape": list(labels.shape),
                "geometry": store.attrs.get("geometry"), "min_pixel_mean": min_pixel_mean}
        c2_start = window.start if isinstance(window, BinnedFrames) else 0
        attrs = {"normalization": normalization, "dt": dt,
                 "g2_offset": 1.0 if g2 == "multitau" else G2_OFFSET[normalization],
                 "c2_offset": G2_OFFSET[normalization], "g2_estimator": g2,
                 "frame_bin": int(frame_bin), "g2_frames": int(n_frames if g2 == "multitau" else n_c2), "c2_frames": [c2_start, c2_start + n_c2],
                 "rois": rois, "source": str(frames), "units": {"lag": "s", "q": q_unit},
                 "excluded_frames": sorted(int(f) for f in exclude_frames)}
        if g2 == "multitau":
            attrs["multitau"] = {"buffers": int(buffers), "normalization": "roi"}
        out.finish({"g2": np.stack(g2_values), "g2_err": np.stack(g2_err), "lag": lag, "roi_q": roi_q},
                   attrs=attrs, provenance=provenance)
    log.info("wrote %s: %d series x %d ROIs x %d^2 frames (%s), g2 %s over %d frames", output, n_series, n_roi,
             n_c2, normalization, g2, n_frames)
    return Path(output)
