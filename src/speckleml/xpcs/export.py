"""c2 stores to and from other software: measured C2 in (``import-c2``), APS HDF5 out (``export-aps``)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..correlation import G2_OFFSET, NORMALIZATIONS, g2_from_c2
from ..errors import InputError
from ..stores import read_c2, read_frames, write_c2
from .aps import APS_FRAMES_KEYS, HC_KEV_ANGSTROM, aps_qmap, read_c2_file, write_aps_hdf5
from .correlate import roi_labels

log = logging.getLogger(__name__)

#: Normalisation of the APS result layout's two-time maps (``boost_corr``; export-aps shifts to it).
APS_NORMALIZATION = "classical"
#: Time segments of the exported ``normalized_g2_segments`` and ``scattering_1d_segments``.
N_SEGMENTS = 5


def import_c2(source: str | os.PathLike, output: str | os.PathLike, *, dataset: str | None = None,
              dt: float | None = None, roi_q=None, normalization: str | None = None,
              provenance: dict | None = None) -> Path:
    """Measured two-time maps (``.npy`` or HDF5) -> c2 store with their g2.

    Parameters
    ----------
    source : path
        ``.npy`` (T, T) or (roi, T, T), or HDF5 in the APS layout
        (``/xpcs/twotime/correlation_map/c2_*``) or with an explicit ``dataset``.
    output : path
        c2 store to write (one series).
    dataset : str, optional
        HDF5 dataset to read instead of the APS maps.
    dt : float, optional
        Frame time (s); default the file's ``frame_time``, else 1 (logged as a warning).
    roi_q : sequence of float, optional
        q of every ROI; default the file's q list, else NaN.
    normalization : str, optional
        Normalisation the maps were computed with (:data:`speckleml.correlation.NORMALIZATIONS`).
        Default: ``"classical"`` for the APS layout (its convention); required otherwise.
    provenance : dict, optional
        Provenance record of the store.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InputError
        Unreadable or non-real maps, a non-positive frame time, ``roi_q`` of the wrong length, no
        normalisation for a non-APS input.
    """
    c2, meta = read_c2_file(source, dataset)
    if normalization is None:
        if not meta.get("aps_layout"):
            raise InputError(f"{source}: state the maps' normalisation (--normalization, one of {NORMALIZATIONS}); "
                             f"only the APS layout implies {APS_NORMALIZATION}")
        normalization = APS_NORMALIZATION
    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    dt = meta.get("dt") if dt is None else dt
    if dt is None:
        log.warning("%s records no frame time: lags are in frames (dt = 1); give --dt for seconds", source)
        dt = 1.0
    if not (np.isfinite(dt) and dt > 0):
        raise InputError(f"{source}: frame time must be a positive finite number, got {dt}")
    roi_q = meta.get("roi_q", [float("nan")] * c2.shape[0]) if roi_q is None else list(roi_q)
    if len(roi_q) != c2.shape[0]:
        raise InputError(f"--roi-q has {len(roi_q)} values but {source} holds {c2.shape[0]} C2 maps")
    g2, g2_err = g2_from_c2(c2)
    n_frames = c2.shape[-1]
    write_c2(output, c2[None].astype(np.float32), g2[None], np.arange(n_frames) * dt, roi_q, normalization,
             g2_err=g2_err[None], attrs={"dt": dt, "g2_offset": G2_OFFSET[normalization], "source": str(source),
                                         "units": {"lag": "s", "q": "1/Angstrom", "phi": "degree"},
                                         **({"roi_phi": meta["roi_phi"]} if "roi_phi" in meta else {})},
             provenance=provenance)
    log.info("wrote %s: %d ROIs x %d^2 frames from %s", output, c2.shape[0], n_frames, source)
    return Path(output)


def qmap_from_frames(frames: str | os.PathLike, rois: dict, roi_q) -> dict:
    """``/xpcs/qmap`` datasets (:func:`speckleml.xpcs.aps.aps_qmap`) rebuilt from the frames store
    a C2 came from.

    Parameters
    ----------
    frames : path
        Frames store; its detector must have the shape of the C2's ROI map.
    rois : dict
        The c2 store's ``attrs["rois"]`` (``q_edges``, ``n_sectors``, ``phi_centres``,
        ``min_pixel_mean``, ``detector_shape``, ``geometry``).
    roi_q : array (n_bins,)
        The c2 store's ``roi_q``.

    Returns
    -------
    dict
        ROI maps and mask (y, x), the q-phi lists and dims, the beam centre (pixels; from the
        geometry, else where the store's q axes cross 0), pixel size and distance (m; NaN
        without a geometry).

    Raises
    ------
    InputError
        The frames' detector shape differs from the C2's ROI map.
    """
    store = read_frames(frames, lazy=True)
    shape = list(store["frames"].shape[-2:])
    expected = rois.get("detector_shape")
    if expected is not None and list(expected) != shape:
        raise InputError(f"{frames}: detector shape {tuple(shape)} differs from the C2's ROI map "
                         f"{tuple(expected)} (frames of another detector?)")
    n_sectors = int(rois.get("n_sectors", 1))
    labels, _, mask, _, q_unit = roi_labels(store, np.asarray(rois["q_edges"]), n_sectors,
                                            float(rois.get("min_pixel_mean", 0)))
    geometry = store.attrs.get("geometry")
    extra = (_geometry_keys(geometry) if geometry
             else {"beam_center": (_axis_zero(store["qy"]), _axis_zero(store["qx"]))})
    return aps_qmap(roi_q, n_sectors, rois.get("phi_centres"), q_unit=_APS_Q_UNITS.get(q_unit, q_unit),
                    labels=labels, mask=mask, **extra)


def _geometry_keys(geometry: dict | None) -> dict:
    """:func:`aps_qmap` arguments of a geometry record (mm -> m); none without one."""
    if not geometry:
        return {}
    return {"beam_center": tuple(geometry["center"]), "pixel_size": float(geometry["pixel_size"]) * 1e-3,
            "detector_distance": float(geometry["distance"]) * 1e-3}


#: APS spelling of the q units of frames stores.
_APS_Q_UNITS = {"1/Angstrom": "1/A"}


def _axis_zero(axis) -> float:
    """Pixel index where a monotonic q axis crosses 0 (NaN if it does not)."""
    axis = np.asarray(axis, np.float64)
    if axis.size < 2 or np.any(np.diff(axis) <= 0) or not axis[0] <= 0 <= axis[-1]:
        return float("nan")
    return float(np.interp(0.0, axis, np.arange(axis.size)))


def temporal_means(frames: str | os.PathLike, labels: np.ndarray, mask: np.ndarray, *, series: int = 0,
                   n_segments: int = N_SEGMENTS) -> dict:
    """Average frame, mean intensity per ROI (whole series and per time segment) and intensity
    vs time of one series, streamed over the frames store's time chunks.

    Parameters
    ----------
    frames : path
        Frames store.
    labels : array of int (y, x)
        ROI of every pixel (0 = none), ``1 .. n_bins``.
    mask : array of bool (y, x)
        Valid pixels (intensity vs time averages these).
    series : int
        Series of the store.
    n_segments : int
        Equal time spans for ``scattering_1d_segments`` (fewer when the series is shorter).

    Returns
    -------
    dict
        ``scattering_2d`` (y, x), ``scattering_1d`` (n_bins,), ``scattering_1d_segments``
        (n_segments, n_bins): counts per pixel and frame; ``intensity_vs_time`` (T,): mean
        counts of the valid pixels in every frame.
    """
    from scipy import sparse

    data = read_frames(frames, lazy=True)["frames"]
    n_frames = data.shape[1]
    flat = np.asarray(labels).ravel()
    n_bins = int(flat.max())
    inside = flat > 0
    # pixels -> (bins, valid-pixel mean) as one sparse product per block of frames
    rows = np.concatenate([np.flatnonzero(inside), np.flatnonzero(np.asarray(mask).ravel())])
    cols = np.concatenate([flat[inside] - 1, np.full(rows.size - inside.sum(), n_bins)])
    weights = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(flat.size, n_bins + 1))
    counts = np.asarray(weights.sum(axis=0)).ravel()
    per_frame = np.empty((n_frames, n_bins + 1))
    image = np.zeros(flat.size)
    block = int(data.chunks[1]) if getattr(data, "chunks", None) else 256
    for t0 in range(0, n_frames, block):
        frames_block = np.asarray(data[series, t0:t0 + block], np.float64).reshape(-1, flat.size)
        per_frame[t0:t0 + frames_block.shape[0]] = np.asarray(weights.T @ frames_block.T).T / counts
        image += frames_block.sum(axis=0)
    edges = np.linspace(0, n_frames, min(n_segments, n_frames) + 1).round().astype(int)
    segments = np.stack([per_frame[a:b, :n_bins].mean(axis=0) for a, b in zip(edges[:-1], edges[1:])])
    return {"scattering_2d": (image / n_frames).reshape(np.shape(labels)),
            "scattering_1d": per_frame[:, :n_bins].mean(axis=0), "scattering_1d_segments": segments,
            "intensity_vs_time": per_frame[:, n_bins]}


def series_paths(output: str | os.PathLike, n_series: int) -> list[Path]:
    """One HDF5 path per series: ``output`` for series 0, ``<stem>_sNNN<suffix>`` after it."""
    output = Path(output)
    return [output if s == 0 else output.with_name(f"{output.stem}_s{s:03d}{output.suffix}")
            for s in range(n_series)]


class _SeriesMaps:
    """The (roi, T, T) maps of one series of a lazy (series, roi, T, T) array, read one ROI at a time."""

    def __init__(self, array, series: int):
        self.array, self.series, self.shape = array, series, tuple(array.shape[1:])

    def __getitem__(self, roi: int) -> np.ndarray:
        return np.asarray(self.array[self.series, roi])


def export_aps(source: str | os.PathLike, output: str | os.PathLike, *, frames: str | os.PathLike | None = None
               ) -> list[Path]:
    """c2 store -> HDF5 files in the APS 8-ID-I result layout that pyXpcsViewer opens, one per series.

    The fluctuation forms (baseline 0: ``pixel_mean``, ``ring_mean``, ``covariance``) are
    shifted to baseline 1 for the APS viewers (root attrs ``baseline_shift_added`` for g2,
    ``c2_baseline_shift_added`` for C2: a multi-tau g2 has baseline 1 already). Delays are
    written in frames with the frame time; q per ring and phi per sector with the partition's
    dims; see :data:`speckleml.xpcs.aps.APS_LAYOUT`. Each file is complete before its atomic rename.

    Parameters
    ----------
    source : path
        c2 store.
    output : path
        HDF5 file of series 0 (``.hdf``/``.h5``); see :func:`series_paths`.
    frames : path, optional
        Frames store the C2 came from: adds the ROI maps, mask, geometry, average frame, SAXS
        1D and intensity vs time. Without it the file has the correlations and q lists but not
        the detector maps, and pyXpcsViewer cannot open it (logged as a warning).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    InputError
        ``frames`` given but the store has no ROI definition, or a detector of another shape;
        ROI q values that do not form rings of ``n_sectors``.
    """
    store = read_c2(source, lazy=True)                 # C2 maps read one at a time
    rois = store.attrs.get("rois") or {}
    roi_q = np.asarray(store["roi_q"], np.float64)
    if frames:
        if not rois:
            raise InputError(f"{source}: store has no ROI definition (rois attr) to rebuild the q map")
        qmap = qmap_from_frames(frames, rois, roi_q)
    else:
        q_unit = rois.get("q_units", "1/Angstrom")
        qmap = aps_qmap(roi_q, int(rois.get("n_sectors", 1)), rois.get("phi_centres"),
                        q_unit=_APS_Q_UNITS.get(q_unit, q_unit), **_geometry_keys(rois.get("geometry")))
        log.warning("%s: no --frames, so the export lacks %s: pyXpcsViewer cannot open it",
                    source, ", ".join(APS_FRAMES_KEYS))
    shift = 1.0 - float(store.attrs.get("g2_offset", 1.0))
    # multi-tau g2 has baseline 1 whatever the C2 form: C2 has its own offset (c2_offset)
    c2_shift = 1.0 - float(store.attrs.get("c2_offset", store.attrs.get("g2_offset", 1.0)))
    attrs = {"normalization": store.attrs["normalization"], "creator": "speckleml export-aps",
             "provenance": json.dumps(store.provenance), "baseline_shift_added": shift,
             "c2_baseline_shift_added": c2_shift}
    geometry = rois.get("geometry")
    energy = HC_KEV_ANGSTROM / geometry["wavelength"] if geometry else float("nan")
    dt = float(store.attrs.get("dt", 1.0))
    lag = np.asarray(store["lag"], np.float64)
    keep = lag > 0                                   # lag 0 (shot noise) is not an APS delay
    delay = lag[keep] / dt                           # frames, whole numbers up to rounding
    whole = np.round(delay)
    delay = np.where(np.abs(delay - whole) <= 1e-9 * np.maximum(whole, 1), whole, delay)
    paths = series_paths(output, store["c2"].shape[0])
    for s, path in enumerate(paths):
        g2 = np.asarray(store["g2"][s], np.float64) + shift
        g2_err = np.asarray(store["g2_err"][s]) if "g2_err" in store else np.full_like(g2, np.nan)
        temporal = None
        if frames:
            temporal = temporal_means(frames, qmap["dynamic_roi_map"], qmap["mask"].astype(bool), series=s)
        write_aps_hdf5(path, c2=_SeriesMaps(store["c2"], s), c2_shift=c2_shift, g2=g2[:, keep], g2_err=g2_err[:, keep],
                       delay=delay, frame_time=dt, n_segments=N_SEGMENTS, qmap=qmap, temporal=temporal,
                       start_time=str(store.provenance.get("created", "")), incident_energy=energy, attrs=attrs)
        log.info("wrote %s (series %d)", path, s)
    return paths
