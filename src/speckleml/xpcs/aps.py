"""XPCS file formats: measured C2 and g2 tables in, APS-layout HDF5 out, detector q maps.

The APS 8-ID-I result layout (``boost_corr`` writer, ``pyXpcsViewer`` reader) that
:func:`read_c2_file` reads and :func:`write_aps_hdf5` writes (every dataset, its dims and units:
:data:`APS_LAYOUT`):

* ``/xpcs/twotime/correlation_map/c2_00001 ...`` - one (T, T) map per bin, upper triangle
  stored (the lower is zero), classical normalisation (baseline 1); ``processed_bins``,
  ``normalized_g2`` and ``normalized_g2_segments`` from the C2 diagonals;
* ``/xpcs/multitau/normalized_g2``, ``normalized_g2_err`` (delay, bin) and ``delay_list`` in
  FRAMES (readers multiply by ``frame_time`` x ``config/stride_frame`` x ``config/avg_frame``);
* ``/xpcs/qmap/...`` - the q-phi partition: ROI maps, ``*_v_list_dim0`` (q per ring) and
  ``*_v_list_dim1`` (phi per sector), ``*_num_pts`` (n_q, n_phi), index mappings, beam
  centre, pixel size and distance;
* ``/xpcs/temporal_mean`` (average frame, SAXS 1D per bin and per time segment) and
  ``/xpcs/spatial_mean/intensity_vs_time``;
* ``/entry/instrument/detector_1/frame_time`` (s) and ``incident_beam/incident_energy`` (keV).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..errors import READ_ERRORS, InputError

APS_C2_GROUP = "/xpcs/twotime/correlation_map"
APS_FRAME_TIME = "/entry/instrument/detector_1/frame_time"
APS_Q_LIST = "/xpcs/qmap/dynamic_v_list_dim0"
HC_KEV_ANGSTROM = 12.398419843320026
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")


# --------------------------------------------------------------------------- detector maps


def detector_maps(store) -> tuple[np.ndarray, np.ndarray, str]:
    """``|q|`` and azimuth maps (y, x) of a frames store, and the q unit.

    Uses the store's geometry attrs (:class:`speckleml.xpcs.frames.Geometry`) when present,
    otherwise its ``qx``/``qy`` axes (a model q grid, or pixel offsets for synthetic stacks).
    Azimuth is ``atan2(row offset, column offset)`` in radians.
    """
    from .frames import Geometry

    qx, qy = np.asarray(store["qx"], float), np.asarray(store["qy"], float)
    shape = (qy.size, qx.size)
    if "geometry" in store.attrs:
        geometry = Geometry.from_attrs(store.attrs["geometry"])
        rows, cols = np.indices(shape, dtype=np.float64)
        phi = np.arctan2(rows - geometry.center[0], cols - geometry.center[1])
        return geometry.q_map(shape), phi, "1/Angstrom"
    unit = store.attrs.get("units", {}).get("q", "pixel")
    return np.hypot(qy[:, None], qx[None, :]), np.arctan2(qy[:, None], qx[None, :]), unit


# --------------------------------------------------------------------------- C2 input


def _symmetrise(c2: np.ndarray, name: str) -> np.ndarray:
    """Full symmetric map from one stored triangle (APS stores ``triu(c2)``; zeros or NaN
    fill the other half) or a map that is already symmetric."""
    below = np.tril_indices_from(c2, -1)
    lower, upper = c2[below], c2.T[below]
    empty = lambda v: not np.any(np.nan_to_num(v, nan=0.0))  # noqa: E731 - zeros or NaN only
    full = c2.copy()
    if empty(lower) and not empty(upper):
        full[below] = upper                       # mirror the upper triangle
        return full
    if empty(upper) and not empty(lower):
        full.T[below] = lower                     # lower triangle stored instead
        return full
    if not np.allclose(c2, c2.T, rtol=1e-5, atol=1e-6, equal_nan=True):
        raise InputError(f"{name}: C2 map is neither symmetric nor one stored triangle")
    return c2


def read_c2_file(path: str | os.PathLike, dataset: str | None = None) -> tuple[np.ndarray, dict]:
    """Load measured two-time maps as (roi, T, T) float64, plus metadata found in the file.

    Parameters
    ----------
    path : path
        ``.npy`` holding one (T, T) map or a (roi, T, T) stack, or an HDF5 file in the APS
        layout (every ``/xpcs/twotime/correlation_map/c2_*`` in name order) or with an
        explicit ``dataset``.
    dataset : str, optional
        HDF5 dataset (2-D or 3-D) to read instead of the APS maps.

    Returns
    -------
    c2 : ndarray (roi, T, T)
        Symmetric maps (upper-triangle storage is mirrored).
    meta : dict
        ``dt`` (s) and ``roi_q`` when the file records them; ``aps_layout`` True when the
        maps came from the APS ``c2_*`` group (classical normalisation by convention).

    Raises
    ------
    InputError
        Missing or unreadable file, complex or non-square maps, infinite values, an empty
        ``frame_time``, an HDF5 layout without the APS group (and no ``dataset``).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: input file does not exist")
    meta: dict = {}
    try:
        if path.name.lower().endswith(".npy"):
            data = np.load(path, allow_pickle=False)
        elif path.name.lower().endswith(HDF5_SUFFIXES):
            data = _read_c2_hdf5(path, dataset, meta)
        else:
            raise InputError(f"{path}: unknown C2 format (use .npy or HDF5 .h5/.hdf/.nxs)")
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot read C2 ({' '.join(str(exc).split())})") from None
    data = np.asarray(data)
    if data.dtype.kind == "c":
        raise InputError(f"{path}: C2 must be real, got complex values ({data.dtype})")
    if data.dtype.kind not in "uifb":
        raise InputError(f"{path}: C2 must be numeric, got dtype {data.dtype}")
    data = data.astype(np.float64)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[-1] != data.shape[-2] or data.shape[-1] < 2:
        raise InputError(f"{path}: C2 must be (T, T) or (roi, T, T) with T >= 2, got shape {data.shape}")
    if np.isinf(data).any():
        raise InputError(f"{path}: C2 contains infinite values")
    return np.stack([_symmetrise(m, str(path)) for m in data]), meta


def _read_c2_hdf5(path: Path, dataset: str | None, meta: dict) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        if APS_FRAME_TIME in handle:
            frame_time = np.ravel(handle[APS_FRAME_TIME][()])
            if frame_time.size == 0:
                raise InputError(f"{path}: {APS_FRAME_TIME} is empty (give --dt, or fix the file)")
            meta["dt"] = float(frame_time[0])
        if dataset:
            if dataset not in handle:
                raise InputError(f"{path}: HDF5 dataset {dataset!r} not found")
            return handle[dataset][...]
        if APS_C2_GROUP not in handle:
            raise InputError(f"{path}: no {APS_C2_GROUP} group (APS two-time layout); use --dataset")
        group = handle[APS_C2_GROUP]
        meta["aps_layout"] = True
        if isinstance(group, h5py.Dataset):     # one stacked (roi, T, T) dataset instead of c2_* maps
            if group.ndim != 3:
                raise InputError(f"{path}: {APS_C2_GROUP} is a {group.ndim}-D dataset, expected a group "
                                 f"of c2_* maps or a (roi, T, T) stack")
            stack = group[...]
            _bin_coordinates(handle, list(range(stack.shape[0])), meta)
            return stack
        # numeric order (c2_2 before c2_10; unpadded names occur in practice)
        names = sorted((n for n in group if re.fullmatch(r"c2_\d+", n)), key=lambda n: int(n[3:]))
        if not names:
            raise InputError(f"{path}: {APS_C2_GROUP} holds no c2_* maps")
        maps = [group[n][...] for n in names]
        if len({m.shape for m in maps}) != 1:
            raise InputError(f"{path}: c2 maps differ in shape")
        bins = handle["/xpcs/twotime/processed_bins"][()] if "/xpcs/twotime/processed_bins" in handle else None
        # without processed_bins, c2_<k> is bin k (1-based)
        _bin_coordinates(handle, [int(n[3:]) - 1 for n in names] if bins is None else list(np.ravel(bins) - 1), meta)
        return np.stack(maps)


def _bin_coordinates(handle, index: list, meta: dict) -> None:
    """``roi_q`` (and ``roi_phi`` for q-phi partitions) of the 0-based APS bins ``index``.

    Bin k is ring k // n_phi and sector k % n_phi (``/xpcs/qmap/dynamic_num_pts`` = (n_q, n_phi));
    q from ``dynamic_v_list_dim0``, phi (degrees) from ``dynamic_v_list_dim1``. Nothing is set
    when the file has no q list or the bins do not fit it.
    """
    if APS_Q_LIST not in handle:
        return
    q = np.ravel(handle[APS_Q_LIST][()]).astype(float)
    n_phi = 1
    if "/xpcs/qmap/dynamic_num_pts" in handle:
        points = np.ravel(handle["/xpcs/qmap/dynamic_num_pts"][()])
        if points.size >= 2 and int(points[0]) == q.size and int(points[1]) >= 1:
            n_phi = int(points[1])
    if not all(0 <= i < q.size * n_phi for i in index):
        return
    index = np.asarray(index, int)
    meta["roi_q"] = q[index // n_phi].tolist()
    phi_list = "/xpcs/qmap/dynamic_v_list_dim1"
    if n_phi > 1 and phi_list in handle:
        phi = np.ravel(handle[phi_list][()]).astype(float)
        if phi.size == n_phi:
            meta["roi_phi"] = phi[index % n_phi].tolist()


# --------------------------------------------------------------------------- g2 tables


def read_g2_table(path: str | os.PathLike) -> list[dict]:
    """Read measured one-time g2 curves from CSV.

    Two layouts are accepted:

    * tidy, with a header: columns ``lag`` and ``g2``, optional ``g2_err`` and ``roi``
      (or ``q``) to separate curves;
    * rows (no header, e.g. the Tosson SiO2 exports): row 0 holds the delays, then each
      curve is a g2 row followed by its error row. Columns beyond the shortest complete
      row pair are ignored and non-finite values are dropped later by the fit.

    Returns
    -------
    list of dict
        One per curve: ``roi`` (int), ``q`` (float or NaN), ``lag``, ``g2``, ``g2_err``
        (arrays; ``g2_err`` may be None).
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: input file does not exist")
    first = path.read_text().splitlines()[:1]
    if not first:
        raise InputError(f"{path}: empty g2 table")
    try:
        numeric = all(_is_number(v) for v in first[0].split(","))
        if numeric:
            rows = np.genfromtxt(path, delimiter=",", dtype=float)
            if rows.ndim != 2 or rows.shape[0] < 3 or (rows.shape[0] - 1) % 2:
                raise InputError(f"{path}: rows layout needs a delay row then (g2, error) row pairs, "
                                 f"got {rows.shape[0]} rows")
            lag = rows[0]
            return [{"roi": k, "q": float("nan"), "lag": lag, "g2": rows[1 + 2 * k], "g2_err": rows[2 + 2 * k]}
                    for k in range((rows.shape[0] - 1) // 2)]
        table = pd.read_csv(path)
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read g2 table ({' '.join(str(exc).split())})") from None
    missing = {"lag", "g2"} - set(table.columns)
    if missing:
        raise InputError(f"{path}: g2 table lacks column(s) {sorted(missing)} (need lag, g2[, g2_err, roi])")
    if table.empty:
        raise InputError(f"{path}: g2 table has a header but no rows")
    for column in ("lag", "g2", "g2_err"):
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce")
            bad = values.isna() & table[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(f"{path}: column {column!r} row {row + 1} is not a number: {table[column].iloc[row]!r}")
            table[column] = values
    key = "roi" if "roi" in table.columns else ("q" if "q" in table.columns else None)
    groups = table.groupby(key, sort=True) if key else [(0, table)]
    curves = []
    for index, (value, part) in enumerate(groups):
        curves.append({
            "roi": int(part["roi"].iloc[0]) if "roi" in part else index,
            "q": float(part["q"].iloc[0]) if "q" in part else float("nan"),
            "lag": part["lag"].to_numpy(float), "g2": part["g2"].to_numpy(float),
            "g2_err": part["g2_err"].to_numpy(float) if "g2_err" in part else None,
        })
    return curves


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- APS output

#: Every dataset :func:`write_aps_hdf5` writes: path -> (units, meaning). Each is stored with
#: ``units`` and ``description`` attributes. pyXpcsViewer 1.2.2 (``XpcsFile``, key map
#: ``pyxpcsviewer/core/file_io/aps_8idi.py``) opens all of them except the two ``delay_list`` of
#: ``twotime`` and the config of ``twotime`` when the file has no C2; a missing one is a KeyError.
APS_LAYOUT: dict[str, tuple[str, str]] = {
    "/entry/start_time": ("", "ISO 8601 time the C2 was computed (the acquisition start is not recorded)"),
    APS_FRAME_TIME: ("s", "time between frames; the viewer's t0, by which it multiplies delays in frames"),
    "/entry/instrument/detector_1/count_time": ("s", "exposure per frame (the viewer's t1); NaN: not recorded"),
    "/entry/instrument/incident_beam/incident_energy": ("keV", "photon energy; NaN without a detector geometry"),
    "/xpcs/qmap/mask": ("", "(y, x) int32: 1 = valid pixel (store mask and mean-intensity cut), 0 = excluded"),
    "/xpcs/qmap/dynamic_roi_map": ("", "(y, x) int32: bin of every pixel, 1 + ring * n_phi + sector; 0 = none"),
    "/xpcs/qmap/static_roi_map": ("", "(y, x) int32: the same partition as dynamic_roi_map (static = dynamic)"),
    APS_Q_LIST: ("q unit", "(n_q,) q of every ring (dim 0 of the q-phi partition)"),
    "/xpcs/qmap/static_v_list_dim0": ("q unit", "(n_q,) q of every static ring (= dynamic_v_list_dim0)"),
    "/xpcs/qmap/dynamic_v_list_dim1": ("deg", "(n_phi,) sector centre azimuth in the viewer's convention, "
                                              "phi = -atan2(row - beam_center_y, col - beam_center_x)"),
    "/xpcs/qmap/static_v_list_dim1": ("deg", "(n_phi,) = dynamic_v_list_dim1"),
    "/xpcs/qmap/dynamic_num_pts": ("", "(2,) [n_q, n_phi]: the partition's dims; bin k (1-based) is ring "
                                       "(k - 1) // n_phi, sector (k - 1) % n_phi"),
    "/xpcs/qmap/static_num_pts": ("", "(2,) [n_q, n_phi] of the static partition"),
    "/xpcs/qmap/dynamic_index_mapping": ("", "(n_bins,) 0-based q-phi index of every stored bin "
                                             "(iq * n_phi + iphi; all bins are stored)"),
    "/xpcs/qmap/static_index_mapping": ("", "(n_bins,) the same for the static bins (scattering_1d columns)"),
    "/xpcs/qmap/map_names": ("", "names of the two partition dims, [b'q', b'phi']"),
    "/xpcs/qmap/map_units": ("", "units of the two partition dims, [q unit, b'deg']"),
    "/xpcs/qmap/beam_center_x": ("pixel", "direct-beam column"),
    "/xpcs/qmap/beam_center_y": ("pixel", "direct-beam row"),
    "/xpcs/qmap/pixel_size": ("m", "pixel pitch; NaN without a detector geometry"),
    "/xpcs/qmap/detector_distance": ("m", "sample-detector distance; NaN without a detector geometry"),
    "/xpcs/multitau/normalized_g2": ("", "(n_delay, n_bins) one-time g2 (baseline 1) at delay_list"),
    "/xpcs/multitau/normalized_g2_err": ("", "(n_delay, n_bins) standard error of normalized_g2"),
    "/xpcs/multitau/delay_list": ("frame", "(n_delay,) delays in frames (x frame_time x stride_frame x "
                                           "avg_frame = seconds, as the viewer computes them)"),
    "/xpcs/multitau/config/stride_frame": ("frame", "frames skipped between correlated frames (1: none)"),
    "/xpcs/multitau/config/avg_frame": ("frame", "frames averaged into one before correlating (1: none)"),
    APS_C2_GROUP + "/c2_NNNNN": ("", "(T, T) two-time C2 of bin NNNNN (1-based, zero-padded), baseline 1: "
                                     "upper triangle with the diagonal stored, zeros below (the viewer "
                                     "rebuilds c2 + c2.T with the diagonal halved)"),
    "/xpcs/twotime/processed_bins": ("", "(n_bins,) 1-based bin of every c2 map, in name order"),
    "/xpcs/twotime/normalized_g2": ("", "(T, n_bins) g2 from the C2 diagonals at lags 0 .. T-1 frames (row = "
                                        "lag, as the viewer plots it; lag 0 carries the shot noise)"),
    "/xpcs/twotime/normalized_g2_segments": ("", "(L, n_segments, n_bins) the same within each of n_segments "
                                                 "consecutive (L, L) blocks on the C2 diagonal, lags 0 .. L-1"),
    "/xpcs/twotime/delay_list": ("frame", "(T,) lags of twotime/normalized_g2, 0 .. T-1"),
    "/xpcs/twotime/config/stride_frame": ("frame", "as multitau/config/stride_frame, for the C2"),
    "/xpcs/twotime/config/avg_frame": ("frame", "as multitau/config/avg_frame, for the C2"),
    "/xpcs/temporal_mean/scattering_2d": ("counts/pixel/frame", "(1, y, x) time-averaged frame"),
    "/xpcs/temporal_mean/scattering_1d": ("counts/pixel/frame", "(1, n_bins) mean intensity of every static "
                                                                "bin, static_index_mapping order"),
    "/xpcs/temporal_mean/scattering_1d_segments": ("counts/pixel/frame", "(n_segments, n_bins) the same over "
                                                                         "each of n_segments equal time spans"),
    "/xpcs/spatial_mean/intensity_vs_time": ("counts/pixel", "(2, T): row 0 the frame index, row 1 the mean "
                                                             "intensity of the valid pixels in every frame"),
}

#: Datasets only the frames give (``--frames``); without them the viewer cannot open the file.
APS_FRAMES_KEYS = ("/xpcs/qmap/mask", "/xpcs/qmap/dynamic_roi_map", "/xpcs/qmap/static_roi_map",
                   "/xpcs/temporal_mean/scattering_2d", "/xpcs/temporal_mean/scattering_1d",
                   "/xpcs/temporal_mean/scattering_1d_segments", "/xpcs/spatial_mean/intensity_vs_time")


def aps_qmap(roi_q, n_phi: int = 1, phi_centres=None, *, q_unit: str = "1/A", labels=None, mask=None,
             beam_center=(float("nan"), float("nan")), pixel_size: float = float("nan"),
             detector_distance: float = float("nan")) -> dict:
    """``/xpcs/qmap`` datasets of a ring x sector partition (keys relative to the group).

    Parameters
    ----------
    roi_q : array (n_bins,)
        q of every ROI in bin order ``ring * n_phi + sector`` (every sector of a ring has
        the ring's q, as :func:`speckleml.correlation.q_ring_rois` gives).
    n_phi : int
        Sectors per ring.
    phi_centres : array (n_phi,), optional
        Sector centre azimuths in radians, speckleml's convention ``atan2(row - cy, col - cx)``;
        written in degrees in the viewer's (``-atan2``). Default 0 (one full ring).
    q_unit : str
        Unit of ``roi_q`` for ``map_units`` (``"1/A"``, or ``"pixel"`` for synthetic stacks).
    labels, mask : array (y, x), optional
        Bin map (0 = none, ``1 + ring * n_phi + sector``) and valid pixels; with them the
        maps the viewer needs are added.
    beam_center : (row, column)
        Direct beam in pixels.
    pixel_size, detector_distance : float
        Metres (NaN when the store has no geometry).

    Returns
    -------
    dict
        Dataset name -> value, including the ``dynamic_*`` and ``static_*`` lists with dims
        ``(n_q, n_phi)``; see :data:`APS_LAYOUT`.

    Raises
    ------
    InputError
        ``roi_q`` does not split into rings of ``n_phi`` sectors with one q each, or
        ``labels`` holds bins beyond ``roi_q``.
    """
    roi_q = np.asarray(roi_q, np.float64).ravel()
    n_phi = int(n_phi)
    if n_phi < 1 or roi_q.size == 0 or roi_q.size % n_phi:
        raise InputError(f"{roi_q.size} ROIs do not split into rings of {n_phi} sectors")
    rings = roi_q.reshape(-1, n_phi)
    if not np.allclose(rings, rings[:, :1], rtol=1e-9, atol=0, equal_nan=True):
        raise InputError(f"ROI q values {roi_q.tolist()} differ within a ring of {n_phi} sectors")
    phi = np.zeros(n_phi) if phi_centres is None else -np.rad2deg(np.asarray(phi_centres, np.float64))
    if phi.shape != (n_phi,):
        raise InputError(f"{phi.size} sector angles for {n_phi} sectors")
    points = np.array([rings.shape[0], n_phi], np.int64)
    index = np.arange(roi_q.size, dtype=np.int64)
    qmap = {}
    for kind in ("dynamic", "static"):
        qmap.update({f"{kind}_v_list_dim0": rings[:, 0], f"{kind}_v_list_dim1": phi,
                     f"{kind}_num_pts": points, f"{kind}_index_mapping": index})
    qmap.update(map_names=np.array([b"q", b"phi"]), map_units=np.array([q_unit.encode(), b"deg"]),
                beam_center_y=np.float64(beam_center[0]), beam_center_x=np.float64(beam_center[1]),
                pixel_size=np.float64(pixel_size), detector_distance=np.float64(detector_distance))
    if labels is not None:
        labels = np.asarray(labels, np.int32)
        if labels.max() > roi_q.size or labels.min() < 0:
            raise InputError(f"ROI map holds bins 0..{labels.max()}, the C2 has {roi_q.size}")
        qmap.update(dynamic_roi_map=labels, static_roi_map=labels,
                    mask=(labels > 0 if mask is None else np.asarray(mask, bool)).astype(np.int32))
    return qmap


def _qmap_hash(qmap: dict) -> str:
    """Content hash of the q map: the viewer caches q maps by ``/xpcs/qmap`` attr ``hash``."""
    digest = hashlib.sha256()
    for key in sorted(qmap):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(qmap[key]).tobytes())
    return digest.hexdigest()


def write_aps_hdf5(path: str | os.PathLike, *, c2, g2: np.ndarray, g2_err: np.ndarray, delay: np.ndarray,
                   frame_time: float, qmap: dict, c2_shift: float = 0.0, n_segments: int = 5,
                   temporal: dict | None = None, start_time: str = "",
                   count_time: float = float("nan"), incident_energy: float = float("nan"),
                   stride_frame: int = 1, avg_frame: int = 1, c2_stride_frame: int = 1, c2_avg_frame: int = 1,
                   attrs: dict | None = None) -> Path:
    """Write one series in the APS 8-ID-I result layout that pyXpcsViewer opens, atomically.

    Every dataset, its shape and units are listed in :data:`APS_LAYOUT` and stored with
    ``units``/``description`` attributes. Values are baseline 1 (classical form).

    Parameters
    ----------
    path : path
        Output ``.hdf``/``.h5``.
    c2 : array-like (n_bins, T, T)
        Two-time maps (a lazy zarr array is read one map at a time); ``triu(c2 + c2_shift)``
        is stored per bin as float32, as ``boost_corr`` does.
    c2_shift : float
        Added to every map (1 for the baseline-0 forms, so the file has baseline 1).
    g2, g2_err : array (n_bins, n_delay)
        One-time g2 and its error at ``delay``.
    delay : array (n_delay,)
        Delays in frames (> 0).
    frame_time : float
        Seconds between frames.
    qmap : dict
        ``/xpcs/qmap`` datasets (:func:`aps_qmap`).
    n_segments : int
        Diagonal blocks of ``twotime/normalized_g2_segments`` (:func:`twotime_g2`).
    temporal : dict, optional
        ``scattering_2d`` (y, x), ``scattering_1d`` (n_bins,), ``scattering_1d_segments``
        (n_segments, n_bins), ``intensity_vs_time`` (T,): from the frames. Without them (and
        the detector maps in ``qmap``) pyXpcsViewer cannot open the file.
    start_time : str
        ``/entry/start_time``.
    count_time, incident_energy : float
        Exposure (s) and photon energy (keV); NaN when unknown.
    stride_frame, avg_frame : int
        Frame stride and frames averaged into one for the one-time g2 (1, 1: every frame);
        the viewer's delays in seconds are ``delay * frame_time * stride_frame * avg_frame``.
    c2_stride_frame, c2_avg_frame : int
        The same for the C2 maps.
    attrs : dict, optional
        Root attributes (provenance, normalisation).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        Inconsistent shapes (bins, delays or frames).
    """
    import h5py

    n_bins, n_frames = c2.shape[0], c2.shape[-1]
    g2, g2_err, delay = np.asarray(g2, np.float64), np.asarray(g2_err, np.float64), np.asarray(delay, np.float64)
    if g2.shape != g2_err.shape or g2.shape != (n_bins, delay.size):
        raise InputError(f"g2 {g2.shape} and g2_err {g2_err.shape} must be (bins, delays) = ({n_bins}, {delay.size})")
    if np.asarray(qmap["dynamic_index_mapping"]).size != n_bins:
        raise InputError(f"q map has {np.size(qmap['dynamic_index_mapping'])} bins, the C2 {n_bins}")
    datasets = {
        "/entry/start_time": start_time,
        APS_FRAME_TIME: np.float64(frame_time),
        "/entry/instrument/detector_1/count_time": np.float64(count_time),
        "/entry/instrument/incident_beam/incident_energy": np.float64(incident_energy),
        "/xpcs/multitau/normalized_g2": g2.T,
        "/xpcs/multitau/normalized_g2_err": g2_err.T,
        "/xpcs/multitau/delay_list": delay,
        "/xpcs/twotime/processed_bins": np.arange(1, n_bins + 1),
        "/xpcs/twotime/delay_list": np.arange(n_frames, dtype=np.float64),
    }
    for kind, stride, average in (("multitau", stride_frame, avg_frame), ("twotime", c2_stride_frame, c2_avg_frame)):
        datasets[f"/xpcs/{kind}/config/stride_frame"] = np.int64(stride)
        datasets[f"/xpcs/{kind}/config/avg_frame"] = np.int64(average)
    datasets.update({f"/xpcs/qmap/{key}": value for key, value in qmap.items()})
    if temporal is not None:
        series = np.asarray(temporal["intensity_vs_time"], np.float64)
        datasets.update({
            "/xpcs/temporal_mean/scattering_2d": np.asarray(temporal["scattering_2d"], np.float32)[None],
            "/xpcs/temporal_mean/scattering_1d": np.asarray(temporal["scattering_1d"], np.float64)[None],
            "/xpcs/temporal_mean/scattering_1d_segments": np.asarray(temporal["scattering_1d_segments"], np.float64),
            "/xpcs/spatial_mean/intensity_vs_time": np.stack([np.arange(series.size, dtype=np.float64), series]),
        })
    path = Path(path)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value
            q_unit = np.asarray(qmap["map_units"])[0].decode()
            for key, value in datasets.items():
                _write(handle, key, value, key, q_unit=q_unit)
            full, segments = [], []
            for r in range(n_bins):             # one map in memory at a time (c2 may be a lazy zarr array)
                matrix = np.asarray(c2[r], np.float32)
                g2_full, g2_segments = twotime_g2(matrix, n_segments)     # float64 sums; the shift after
                full.append(g2_full + c2_shift)
                segments.append(g2_segments + c2_shift)
                upper = matrix + np.float32(c2_shift)                     # the caller's maps stay as they are
                del matrix
                for row in range(1, upper.shape[0]):                       # triu in place: two maps at most
                    upper[row, :row] = 0
                _write(handle, f"{APS_C2_GROUP}/c2_{r + 1:05d}", upper, APS_C2_GROUP + "/c2_NNNNN",
                       compression="gzip")
                del upper
            # (lag, bin) and (lag, segment, bin), as boost_corr writes them
            _write(handle, "/xpcs/twotime/normalized_g2", np.stack(full, axis=-1), "/xpcs/twotime/normalized_g2")
            _write(handle, "/xpcs/twotime/normalized_g2_segments", np.stack(segments, axis=-1).transpose(1, 0, 2),
                   "/xpcs/twotime/normalized_g2_segments")
            handle["/xpcs/qmap"].attrs["hash"] = _qmap_hash(qmap)
    return path


def twotime_g2(c2: np.ndarray, n_segments: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """g2 from the diagonals of one C2 map, over the whole series and within diagonal blocks
    (``boost_corr``'s two-time ``g2`` and ``g2_partial``).

    Parameters
    ----------
    c2 : array (T, T)
    n_segments : int
        Consecutive (L, L) blocks on the diagonal, ``L = T // n_segments`` (fewer blocks when
        ``T < 2 n_segments``); frames after the last block are left out of the blocks.

    Returns
    -------
    g2 : ndarray (T,)
        Mean of ``C2(t, t + lag)`` over t, lags 0 .. T-1 frames.
    segments : ndarray (n_segments, L)
        The same within each block, lags 0 .. L-1 frames.
    """
    from ..correlation import g2_from_c2

    c2 = np.asarray(c2)
    n_frames = c2.shape[-1]
    n_segments = max(1, min(int(n_segments), n_frames // 2))
    length = n_frames // n_segments
    blocks = [g2_from_c2(c2[k * length:(k + 1) * length, k * length:(k + 1) * length])[0]
              for k in range(n_segments)]
    return g2_from_c2(c2)[0], np.stack(blocks)


def _write(handle, key: str, value, layout_key: str, q_unit: str = "", **options) -> None:
    dataset = handle.create_dataset(key, data=value, **options)
    units, description = APS_LAYOUT[layout_key]
    dataset.attrs["units"] = q_unit if units == "q unit" else units
    dataset.attrs["description"] = description
