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
from .aps import HC_KEV_ANGSTROM, read_c2_file, write_aps_hdf5
from .correlate import roi_labels

log = logging.getLogger(__name__)

#: Normalisation of the APS result layout's two-time maps (``boost_corr``; export-aps shifts to it).
APS_NORMALIZATION = "classical"


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
                                         "units": {"lag": "s", "q": "1/Angstrom"}},
             provenance=provenance)
    log.info("wrote %s: %d ROIs x %d^2 frames from %s", output, c2.shape[0], n_frames, source)
    return Path(output)


def qmap_from_frames(frames: str | os.PathLike, rois: dict) -> dict:
    """``/xpcs/qmap`` datasets rebuilt from the frames store a C2 came from.

    Parameters
    ----------
    frames : path
        Frames store; its detector must have the shape of the C2's ROI map.
    rois : dict
        The c2 store's ``attrs["rois"]`` (``q_edges``, ``n_sectors``, ``phi_centres``,
        ``min_pixel_mean``, ``detector_shape``).

    Returns
    -------
    dict
        ``dynamic_roi_map``/``static_roi_map`` (y, x) int32, ``mask``, ``dynamic_num_pts``
        (rings, sectors), ``dynamic_v_list_dim1`` (sector centres, degrees), units, and the
        beam centre, pixel size (mm) and distance (mm) when the store has a geometry.

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
    labels, _, mask, _, _ = roi_labels(store, np.asarray(rois["q_edges"]), n_sectors,
                                       float(rois.get("min_pixel_mean", 0)))
    qmap = {"dynamic_roi_map": labels, "static_roi_map": labels, "mask": mask.astype(np.int32),
            "dynamic_num_pts": np.array([len(rois["q_edges"]), n_sectors]),
            "dynamic_v_list_dim0": np.asarray(rois["q_edges"], float).mean(axis=1),
            "dynamic_v_list_dim1": np.rad2deg(np.asarray(rois.get("phi_centres", [0.0]))),
            "map_names": np.array([b"q", b"phi"]), "map_units": np.array([b"1/A", b"deg"])}
    geometry = store.attrs.get("geometry")
    if geometry:
        qmap.update(beam_center_y=float(geometry["center"][0]), beam_center_x=float(geometry["center"][1]),
                    pixel_size=float(geometry["pixel_size"]), detector_distance=float(geometry["distance"]))
    return qmap


def series_paths(output: str | os.PathLike, n_series: int) -> list[Path]:
    """One HDF5 path per series: ``output`` for series 0, ``<stem>_sNNN<suffix>`` after it."""
    output = Path(output)
    return [output if s == 0 else output.with_name(f"{output.stem}_s{s:03d}{output.suffix}")
            for s in range(n_series)]


def export_aps(source: str | os.PathLike, output: str | os.PathLike, *, frames: str | os.PathLike | None = None
               ) -> list[Path]:
    """c2 store -> HDF5 files in the APS 8-ID-I result layout, one per series.

    The fluctuation forms (baseline 0: ``pixel_mean``, ``ring_mean``, ``covariance``) are
    shifted to baseline 1 for the APS viewers (root attr ``baseline_shift_added``). Each file
    is complete, incident energy included, before its atomic rename.

    Parameters
    ----------
    source : path
        c2 store.
    output : path
        HDF5 file of series 0 (``.hdf``/``.h5``); see :func:`series_paths`.
    frames : path, optional
        Frames store the C2 came from: adds the ROI map, mask and geometry to ``/xpcs/qmap``.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    InputError
        ``frames`` given but the store has no ROI definition, or a detector of another shape.
    """
    store = read_c2(source)
    rois = store.attrs.get("rois")
    qmap = None
    if frames:
        if not rois:
            raise InputError(f"{source}: store has no ROI definition (rois attr) to rebuild the q map")
        qmap = qmap_from_frames(frames, rois)
    shift = 1.0 - float(store.attrs.get("g2_offset", 1.0))
    attrs = {"normalization": store.attrs["normalization"], "creator": "speckleml export-aps",
             "provenance": json.dumps(store.provenance), "baseline_shift_added": shift}
    geometry = (rois or {}).get("geometry")
    energy = HC_KEV_ANGSTROM / geometry["wavelength"] if geometry else None
    paths = series_paths(output, store["c2"].shape[0])
    for s, path in enumerate(paths):
        write_aps_hdf5(path, store["c2"][s] + shift, store["g2"][s] + shift, store["lag"], store["roi_q"],
                       float(store.attrs.get("dt", 1.0)), g2_err=store["g2_err"][s] if "g2_err" in store else None,
                       qmap=qmap, attrs=attrs, incident_energy=energy)
        log.info("wrote %s (series %d)", path, s)
    return paths
