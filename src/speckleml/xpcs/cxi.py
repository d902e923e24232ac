"""CXI ptychography files into frames stores (``speckleml import-cxi``).

The CXI format (cxidb.org, version 1.6) is HDF5 with fixed names and SI units: detector frames
``entry_1/instrument_1/detector_1/data`` (often linked as ``entry_1/data_1/data``), a per-pixel
bit-field ``mask`` (0 = good pixel), ``distance`` and ``x_pixel_size``/``y_pixel_size`` in m, the
photon ``energy`` in J (or ``wavelength`` in m) under ``instrument_1/source_1``, and the sample
translation of every frame ``entry_1/sample_1/geometry_1/translation`` (n, 3) in m.
:func:`read_cxi` reads and validates them, :func:`import_cxi` writes the project's frames store
(pixel size and distance in mm, wavelength in Angstrom, as :class:`~speckleml.xpcs.frames.Geometry`)
with the scan positions in metres in its attrs, and :func:`write_cxi` writes a minimal CXI file
(tests, demos).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.constants import c as SPEED_OF_LIGHT
from scipy.constants import h as PLANCK

from ..atomic import atomic_output
from ..errors import InputError
from ..stores import write_frames
from .frames import Geometry

log = logging.getLogger(__name__)

#: Where the frames may be: the detector's dataset, or the ``data_1`` link to it.
DATA_PATHS = ("entry_1/instrument_1/detector_1/data", "entry_1/data_1/data")
DETECTOR = "entry_1/instrument_1/detector_1"
MASK_PATH = f"{DETECTOR}/mask"
DISTANCE_PATH = f"{DETECTOR}/distance"
X_PIXEL_PATH = f"{DETECTOR}/x_pixel_size"
Y_PIXEL_PATH = f"{DETECTOR}/y_pixel_size"
ENERGY_PATH = "entry_1/instrument_1/source_1/energy"
WAVELENGTH_PATH = "entry_1/instrument_1/source_1/wavelength"
#: Where the scan positions may be: the sample geometry, or the ``data_1`` link to it.
TRANSLATION_PATHS = ("entry_1/sample_1/geometry_1/translation", "entry_1/data_1/translation")

#: CXI mask bit 12: "pixel has signal above background", information, not a defect (CXI 1.5+).
SIGNAL_ABOVE_BACKGROUND = 0x1000
#: h c in J m: wavelength (m) = HC / energy (J).
HC = PLANCK * SPEED_OF_LIGHT
#: Energy and wavelength both in a file must agree to this relative tolerance (float32 storage).
ENERGY_WAVELENGTH_RTOL = 1e-4
#: float32 (the frames store's type) holds every integer up to 2**24 exactly.
FLOAT32_EXACT_MAX = 2 ** 24


@dataclass(frozen=True)
class CXIScan:
    """A ptychography scan as read from a CXI file, in the file's SI units.

    Parameters
    ----------
    frames : ndarray, shape (n, ny, nx)
        Detector frames as stored (counts for photon-counting detectors).
    valid : ndarray of bool, shape (ny, nx)
        True = valid pixel (no CXI mask bit set other than :data:`SIGNAL_ABOVE_BACKGROUND`);
        all True when the file has no mask.
    distance : float
        Sample-detector distance (m).
    x_pixel_size, y_pixel_size : float
        Pixel pitch along columns (x) and rows (y) (m).
    wavelength : float
        X-ray wavelength (m), from ``energy`` (J) when the file has it.
    energy : float or None
        Photon energy (J) as stored, None when the file gives only the wavelength.
    positions : ndarray, shape (n, 3)
        Sample translation (x, y, z) of every frame (m), in the file's dtype.
    paths : dict of str to str or None
        HDF5 path each quantity was read from (None: not in the file).
    cxi_version : int or None
        The file's ``cxi_version`` (e.g. 160 for 1.6), None when absent.
    """

    frames: np.ndarray
    valid: np.ndarray
    distance: float
    x_pixel_size: float
    y_pixel_size: float
    wavelength: float
    energy: float | None
    positions: np.ndarray
    paths: dict
    cxi_version: int | None = None

    def geometry(self) -> Geometry:
        """Project geometry: pixel size and distance in mm, wavelength in Angstrom.

        The direct beam is placed at the detector middle, pixel (ny // 2, nx // 2) (the FFT
        convention of ptychography codes; CXI ``corner_position`` is not read).

        Raises
        ------
        InputError
            Non-square pixels (one pixel pitch per geometry).
        """
        if not np.isclose(self.x_pixel_size, self.y_pixel_size, rtol=1e-6, atol=0):
            raise InputError(f"{self.paths['source']}: non-square pixels (x {self.x_pixel_size:g} m, "
                             f"y {self.y_pixel_size:g} m) are not supported")
        ny, nx = self.frames.shape[1:]
        return Geometry(pixel_size=self.x_pixel_size * 1e3, distance=self.distance * 1e3,
                        wavelength=self.wavelength * 1e10, center=(float(ny // 2), float(nx // 2)))


def _dataset(handle, source, paths: tuple[str, ...], required: bool = True):
    """The first of ``paths`` present in the file: (path, h5py dataset); InputError when required."""
    import h5py

    for path in paths:
        node = handle.get(path)  # None for a missing path or a dangling link
        if isinstance(node, h5py.Dataset):
            return path, node
        if node is not None:
            raise InputError(f"{source}: {path} is a group, expected a dataset")
    if required:
        raise InputError(f"{source}: dataset {' or '.join(paths)} not found")
    return None, None


def _scalar(handle, source, path: str, unit: str, required: bool = True) -> float | None:
    """A positive finite scalar (size-1 or constant array); InputError naming ``path`` otherwise.

    A float32 value is read as its shortest decimal (5.5e-05, not 5.4999998e-05): the number the
    writer meant, which float32 stores only approximately.
    """
    path, node = _dataset(handle, source, (path,), required)
    if node is None:
        return None
    value = np.asarray(node[()])
    if value.dtype.kind not in "iuf" or value.size == 0:
        raise InputError(f"{source}: {path} must be a number in {unit}, got dtype {value.dtype} shape {value.shape}")
    if not np.isfinite(value).all() or (value <= 0).any():
        raise InputError(f"{source}: {path} must be finite and > 0 ({unit}), got {value.ravel()[:5].tolist()}")
    if value.size > 1 and not (value == value.ravel()[0]).all():
        raise InputError(f"{source}: {path} varies over the scan ({value.min():g} to {value.max():g} {unit}); "
                         f"one value is supported")
    return float(str(value.ravel()[0]))


def cxi_valid_pixels(bits: np.ndarray) -> np.ndarray:
    """CXI pixel mask -> True = valid pixel.

    In CXI every set bit flags a defect (invalid, saturated, hot, dead, shadowed, ...) except
    bit 12 (0x1000, "signal above background"), which is information; so a pixel is valid when
    no other bit is set (CDTools reads CXI masks the same way).

    Parameters
    ----------
    bits : ndarray of int or bool, shape (ny, nx)
        CXI ``detector_1/mask`` (0 = good pixel).

    Returns
    -------
    ndarray of bool, shape (ny, nx)
    """
    bits = np.asarray(bits)
    if bits.dtype == bool:
        return ~bits
    return (bits.astype(np.int64) & ~SIGNAL_ABOVE_BACKGROUND) == 0


def read_cxi(source: str | os.PathLike) -> CXIScan:
    """Read and validate a CXI ptychography scan (``entry_1``).

    Parameters
    ----------
    source : path
        CXI (HDF5) file: frames (n, ny, nx), optional mask (ny, nx), distance (m), x/y pixel
        size (m), energy (J) and/or wavelength (m), translation (n, 3) (m); see the module doc.

    Returns
    -------
    CXIScan
        Values in the file's SI units.

    Raises
    ------
    InputError
        One line naming the file and the dataset: a missing file or dataset, a non-HDF5 file,
        frames not (n, ny, nx) numeric, non-finite frames or positions, a mask or a positions
        array whose shape does not match the frames, a non-positive or varying distance,
        pixel size, energy or wavelength, energy and wavelength that disagree.
    """
    import h5py

    source = Path(source)
    if not source.is_file():
        raise InputError(f"{source}: input file does not exist")
    try:
        handle = h5py.File(source, "r")
    except OSError as exc:
        raise InputError(f"{source}: not a readable HDF5/CXI file ({' '.join(str(exc).split())})") from None
    with handle:
        paths = {"source": str(source)}
        paths["data"], node = _dataset(handle, source, DATA_PATHS)
        if node.ndim != 3 or node.dtype.kind not in "iuf":
            raise InputError(f"{source}: {paths['data']} must be numeric frames (n, ny, nx), "
                             f"got dtype {node.dtype} shape {node.shape}")
        frames = node[()]
        if frames.dtype.kind == "f" and not np.isfinite(frames).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(frames))[0])
            raise InputError(f"{source}: {paths['data']} has non-finite values (first at {bad})")
        n, ny, nx = frames.shape

        paths["mask"], node = _dataset(handle, source, (MASK_PATH,), required=False)
        if node is None:
            valid = np.ones((ny, nx), bool)
        elif node.shape != (ny, nx) or node.dtype.kind not in "biu":
            raise InputError(f"{source}: {MASK_PATH} must be an integer bit field of shape {(ny, nx)} "
                             f"(the frames'), got dtype {node.dtype} shape {node.shape}")
        else:
            valid = cxi_valid_pixels(node[()])

        distance = _scalar(handle, source, DISTANCE_PATH, "m")
        x_pixel = _scalar(handle, source, X_PIXEL_PATH, "m")
        y_pixel = _scalar(handle, source, Y_PIXEL_PATH, "m")
        energy = _scalar(handle, source, ENERGY_PATH, "J", required=False)
        wavelength = _scalar(handle, source, WAVELENGTH_PATH, "m", required=False)
        paths.update(distance=DISTANCE_PATH, x_pixel_size=X_PIXEL_PATH, y_pixel_size=Y_PIXEL_PATH,
                     energy=ENERGY_PATH if energy is not None else None,
                     wavelength=WAVELENGTH_PATH if wavelength is not None else None)
        if energy is None and wavelength is None:
            raise InputError(f"{source}: dataset {ENERGY_PATH} (J) or {WAVELENGTH_PATH} (m) not found")
        if energy is not None:
            from_energy = HC / energy
            if wavelength is not None and not np.isclose(wavelength, from_energy, rtol=ENERGY_WAVELENGTH_RTOL, atol=0):
                raise InputError(f"{source}: {ENERGY_PATH} ({energy:g} J = {from_energy:g} m) and "
                                 f"{WAVELENGTH_PATH} ({wavelength:g} m) disagree")
            wavelength = from_energy

        paths["positions"], node = _dataset(handle, source, TRANSLATION_PATHS)
        if node.ndim != 2 or node.shape[1] != 3 or node.dtype.kind not in "iuf":
            raise InputError(f"{source}: {paths['positions']} must be numeric (n, 3) positions in m, "
                             f"got dtype {node.dtype} shape {node.shape}")
        positions = node[()]
        if positions.shape[0] != n:
            raise InputError(f"{source}: {paths['positions']} has {positions.shape[0]} positions "
                             f"but {paths['data']} has {n} frames")
        if not np.isfinite(positions).all():
            raise InputError(f"{source}: {paths['positions']} has non-finite values")

        version = handle.get("cxi_version")
        version = int(version[()]) if isinstance(version, h5py.Dataset) and version.size == 1 else None
    return CXIScan(frames=frames, valid=valid, distance=distance, x_pixel_size=x_pixel, y_pixel_size=y_pixel,
                   wavelength=wavelength, energy=energy, positions=positions, paths=paths, cxi_version=version)


def _warn_suspicious(scan: CXIScan, source) -> None:
    """Warn about negative counts and about integers that float32 (the store's type) rounds."""
    negative = np.flatnonzero((scan.frames < 0).any(axis=(1, 2)))
    if negative.size:
        log.warning("%s: %d frame(s) hold negative counts (first: %s); dark-subtracted data?", source,
                    negative.size, negative[:10].tolist())
    if scan.frames.dtype.kind in "iu" and np.abs(scan.frames).max(initial=0) > FLOAT32_EXACT_MAX:
        log.warning("%s: counts above 2**24 are rounded in the float32 frames store", source)


def import_cxi(source: str | os.PathLike, output: str | os.PathLike, *, figure: str | os.PathLike | None = None,
               provenance: dict | None = None) -> Path:
    """CXI ptychography scan -> frames store (one series, one frame per scan point).

    Parameters
    ----------
    source : path
        CXI file (:func:`read_cxi`).
    output : path
        Frames store to write: ``frames`` (1, n, ny, nx) float32, ``mask`` (ny, nx) True =
        valid, ``qx``/``qy`` in 1/Angstrom (small-angle, beam at the detector middle). Attrs:
        ``geometry`` (mm, mm, Angstrom), ``scan`` (``positions`` (n, 3) in m, exactly as in the
        file, ``axes`` x, y, z), ``cxi`` (the file's SI values and dataset paths), ``units``.
        No ``dt``: frames are scan points, not times.
    figure : path, optional
        Also write the scan positions and mean pattern (:func:`speckleml.xpcs.cxi_figures.draw_scan`),
        ``.png``, ``.pdf`` or ``.svg``.
    provenance : dict, optional
        Provenance record of the store.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InputError
        See :func:`read_cxi`; also non-square pixels, a figure of another format or with no
        positive mean count. Nothing is written then.
    """
    if figure is not None:
        from .cxi_figures import FIGURE_SUFFIXES, draw_scan

        if Path(figure).suffix.lower() not in FIGURE_SUFFIXES:
            raise InputError(f"{figure}: figure must be one of {', '.join(FIGURE_SUFFIXES)}")
    scan = read_cxi(source)
    geometry = scan.geometry()
    _warn_suspicious(scan, source)
    n, ny, nx = scan.frames.shape
    intensity = "counts" if scan.frames.dtype.kind in "iu" else "detector units"
    attrs = {
        "source": str(source),
        "format": "cxi",
        "units": {"t": "scan point", "intensity": intensity, "q": "1/Angstrom", "positions": "m"},
        "geometry": geometry.to_attrs(),
        "scan": {"positions": scan.positions.tolist(), "units": "m", "axes": ["x", "y", "z"],
                 "dtype": scan.positions.dtype.name, "dataset": scan.paths["positions"],
                 "convention": "CXI sample translation, laboratory frame (probe on the sample at -translation)"},
        "cxi": {"version": scan.cxi_version, "distance_m": scan.distance, "x_pixel_size_m": scan.x_pixel_size,
                "y_pixel_size_m": scan.y_pixel_size, "energy_J": scan.energy, "wavelength_m": scan.wavelength,
                "mask_rule": "valid = no mask bit set except 0x1000 (signal above background)",
                "paths": {k: v for k, v in scan.paths.items() if k != "source"}},
    }
    # The figure is drawn (and checked) before anything is written, saved after the store.
    fig = None if figure is None else draw_scan(scan.positions, scan.frames.mean(axis=0), scan.valid, intensity,
                                                source=str(source))
    write_frames(output, scan.frames.astype(np.float32)[None], mask=scan.valid,
                 qx=geometry.axis_q(nx, 1), qy=geometry.axis_q(ny, 0), attrs=attrs, provenance=provenance)
    log.info("wrote %s: %d frames of %dx%d, %d invalid pixels, scan over %.3g x %.3g um", output, n, ny, nx,
             int((~scan.valid).sum()), *(np.ptp(scan.positions[:, :2], axis=0) * 1e6))
    if fig is not None:
        from ..plotting import save_figure

        save_figure(fig, figure)
    return Path(output)


def write_cxi(path: str | os.PathLike, frames: np.ndarray, positions: np.ndarray, *, distance: float,
              x_pixel_size: float, y_pixel_size: float | None = None, energy: float | None = None,
              wavelength: float | None = None, mask: np.ndarray | None = None) -> Path:
    """Write a minimal CXI 1.6 ptychography file (tests, demos), atomically.

    Parameters
    ----------
    path : path
        File to write.
    frames : ndarray, shape (n, ny, nx)
        Detector frames (stored with their dtype); also linked as ``entry_1/data_1/data``.
    positions : ndarray, shape (n, 3)
        Sample translation (x, y, z) per frame (m); also linked as ``entry_1/data_1/translation``.
    distance : float
        Sample-detector distance (m).
    x_pixel_size : float
        Pixel pitch along columns (m).
    y_pixel_size : float, optional
        Pixel pitch along rows (m); ``x_pixel_size`` when omitted.
    energy : float, optional
        Photon energy (J). At least one of ``energy`` and ``wavelength`` is needed.
    wavelength : float, optional
        Wavelength (m).
    mask : ndarray of uint32, shape (ny, nx), optional
        CXI bit-field mask (0 = good pixel).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        Neither ``energy`` nor ``wavelength`` given.
    """
    import h5py

    if energy is None and wavelength is None:
        raise ValueError("write_cxi needs energy (J) or wavelength (m)")
    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as handle:
        handle["cxi_version"] = 160
        handle["number_of_entries"] = 1
        detector = handle.create_group(DETECTOR)
        detector["data"] = np.asarray(frames)
        detector["distance"] = float(distance)
        detector["x_pixel_size"] = float(x_pixel_size)
        detector["y_pixel_size"] = float(x_pixel_size if y_pixel_size is None else y_pixel_size)
        if mask is not None:
            detector["mask"] = np.asarray(mask, np.uint32)
        source = handle.create_group("entry_1/instrument_1/source_1")
        if energy is not None:
            source["energy"] = float(energy)
        if wavelength is not None:
            source["wavelength"] = float(wavelength)
        handle[TRANSLATION_PATHS[0]] = np.asarray(positions)
        handle[DATA_PATHS[1]] = h5py.SoftLink("/" + DATA_PATHS[0])
        handle[TRANSLATION_PATHS[1]] = h5py.SoftLink("/" + TRANSLATION_PATHS[0])
    return path
