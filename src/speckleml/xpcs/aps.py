"""XPCS file formats: measured C2 and g2 tables in, APS-layout HDF5 out, detector q maps.

The APS 8-ID-I result layout (``boost_corr`` writer, ``pyXpcsViewer`` reader) that
:func:`read_c2_file` and :func:`write_aps_hdf5` speak:

* ``/xpcs/twotime/correlation_map/c2_00001 ...`` — one (T, T) map per ROI, upper triangle
  stored (the lower is zero), classical normalisation (baseline 1);
* ``/xpcs/twotime/normalized_g2`` and ``delay_list`` — g2 from the C2 diagonals, (lag, roi);
* ``/xpcs/multitau/normalized_g2``, ``normalized_g2_err`` (lag, roi) and ``delay_list`` (s);
* ``/xpcs/qmap/...`` — ROI maps and their q / phi values (``dynamic_roi_map``,
  ``dynamic_v_list_dim0`` ...), beam centre, pixel size and distance;
* ``/entry/instrument/detector_1/frame_time`` (s) and ``incident_beam/incident_energy`` (keV).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..errors import InputError

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
    except (OSError, ValueError, KeyError, EOFError) as exc:
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
            return group[...]
        # numeric order (c2_2 before c2_10; unpadded names occur in practice)
        names = sorted((n for n in group if re.fullmatch(r"c2_\d+", n)), key=lambda n: int(n[3:]))
        if not names:
            raise InputError(f"{path}: {APS_C2_GROUP} holds no c2_* maps")
        maps = [group[n][...] for n in names]
        if len({m.shape for m in maps}) != 1:
            raise InputError(f"{path}: c2 maps differ in shape")
        if APS_Q_LIST in handle:
            q = np.ravel(handle[APS_Q_LIST][()]).astype(float)
            bins = handle["/xpcs/twotime/processed_bins"][()] if "/xpcs/twotime/processed_bins" in handle else None
            # without processed_bins, c2_<k> is bin k (1-based)
            index = [int(n[3:]) - 1 for n in names] if bins is None else list(np.ravel(bins) - 1)
            # q-phi maps: bin k (0-based) is ring k // n_phi, sector k % n_phi
            n_phi = 1
            if "/xpcs/qmap/dynamic_num_pts" in handle:
                points = np.ravel(handle["/xpcs/qmap/dynamic_num_pts"][()])
                if points.size >= 2 and int(points[0]) == q.size and int(points[1]) >= 1:
                    n_phi = int(points[1])
            if len(index) == len(names) and all(0 <= i < q.size * n_phi for i in index):
                meta["roi_q"] = q[np.asarray(index, int) // n_phi].tolist()
        return np.stack(maps)


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


def write_aps_hdf5(path: str | os.PathLike, c2: np.ndarray, g2: np.ndarray, lag: np.ndarray,
                   roi_q: np.ndarray, dt: float, g2_err: np.ndarray | None = None,
                   qmap: dict | None = None, attrs: dict | None = None,
                   incident_energy: float | None = None) -> Path:
    """Write one series' C2 and g2 in the APS 8-ID-I result layout, atomically.

    Parameters
    ----------
    path : path
        Output ``.h5``/``.hdf`` file.
    c2 : array (roi, T, T)
        Two-time maps; written as ``triu(c2)`` per ROI like ``boost_corr``.
    g2, g2_err : array (roi, lag)
        One-time correlation and errors at ``lag`` (seconds); lag 0 is dropped.
    roi_q : array (roi,)
        q of every ROI.
    dt : float
        Frame time (s).
    qmap : dict, optional
        Extra ``/xpcs/qmap`` datasets (``dynamic_roi_map``, ``mask``, beam centre ...).
    attrs : dict, optional
        Root attributes (provenance, normalisation).
    incident_energy : float, optional
        Photon energy (keV) for ``/entry/instrument/incident_beam/incident_energy``; written
        with everything else before the atomic rename.
    """
    import h5py

    c2 = np.asarray(c2, np.float32)
    lag = np.asarray(lag, float)
    keep = lag > 0
    path = Path(path)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value
            handle[APS_FRAME_TIME] = np.float64(dt)
            for r, matrix in enumerate(c2):
                handle.create_dataset(f"{APS_C2_GROUP}/c2_{r + 1:05d}", data=np.triu(matrix), compression="gzip")
            g2_t = np.asarray(g2, float)[:, keep].T
            handle["/xpcs/twotime/normalized_g2"] = g2_t
            handle["/xpcs/twotime/delay_list"] = lag[keep]
            handle["/xpcs/twotime/processed_bins"] = np.arange(1, c2.shape[0] + 1)
            handle["/xpcs/multitau/normalized_g2"] = g2_t
            handle["/xpcs/multitau/delay_list"] = lag[keep]
            if g2_err is not None:
                handle["/xpcs/multitau/normalized_g2_err"] = np.asarray(g2_err, float)[:, keep].T
            if "dynamic_v_list_dim0" not in (qmap or {}):     # else the ring centres of a q-phi map
                handle[APS_Q_LIST] = np.asarray(roi_q, float)
            handle["/xpcs/qmap/dynamic_index_mapping"] = np.arange(c2.shape[0])
            for key, value in (qmap or {}).items():
                handle[f"/xpcs/qmap/{key}"] = value
            if incident_energy is not None:
                handle["/entry/instrument/incident_beam/incident_energy"] = np.float64(incident_energy)
    return path
