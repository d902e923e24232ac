"""Reading measured speckle stacks (npy, npy.zip, HDF5, zarr) and detector geometry."""

from __future__ import annotations

import os
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import READ_ERRORS, InputError

#: HDF5 dataset used by NeXus / Eiger master files and the APS.
DEFAULT_HDF5_DATASET = "/entry/data/data"


@dataclass(frozen=True)
class Geometry:
    """Small-angle detector geometry.

    Parameters
    ----------
    pixel_size : float
        Pixel pitch in mm.
    distance : float
        Sample-detector distance in mm.
    wavelength : float
        X-ray wavelength in Angstrom.
    center : tuple of float
        Direct-beam position (row, column) in pixels.
    """

    pixel_size: float
    distance: float
    wavelength: float
    center: tuple[float, float]

    def __post_init__(self):
        for name in ("pixel_size", "distance", "wavelength"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise InputError(f"geometry {name} must be a positive number, got {getattr(self, name)}")
        if len(self.center) != 2 or not np.isfinite(self.center).all():
            raise InputError(f"geometry center must be two finite pixel coordinates, got {self.center}")

    def axis_q(self, n: int, axis: int) -> np.ndarray:
        """Signed momentum transfer (1/Angstrom) along one detector axis through the centre."""
        offset = (np.arange(n) - self.center[axis]) * self.pixel_size
        two_theta = np.arctan2(offset, self.distance)
        return 4 * np.pi / self.wavelength * np.sin(two_theta / 2)

    def q_map(self, shape: tuple[int, int]) -> np.ndarray:
        """|q| (1/Angstrom) of every pixel of a detector of ``shape`` (rows, columns)."""
        rows, cols = np.indices(shape, dtype=np.float64)
        radius = np.hypot(rows - self.center[0], cols - self.center[1]) * self.pixel_size
        two_theta = np.arctan2(radius, self.distance)
        return 4 * np.pi / self.wavelength * np.sin(two_theta / 2)

    def to_attrs(self) -> dict:
        return {**asdict(self), "center": list(self.center),
                "units": {"pixel_size": "mm", "distance": "mm", "wavelength": "Angstrom", "q": "1/Angstrom"}}

    @classmethod
    def from_attrs(cls, attrs: dict) -> "Geometry":
        return cls(float(attrs["pixel_size"]), float(attrs["distance"]), float(attrs["wavelength"]),
                   tuple(float(c) for c in attrs["center"]))


def read_frame_array(path: str | os.PathLike, dataset: str | None = None) -> np.ndarray:
    """Load a whole stack of detector frames into memory.

    Parameters
    ----------
    path : path
        Any format :func:`open_frame_stack` reads: ``.npy``, ``.npy.zip`` (a zip holding one
        ``.npy``), ``.h5``/``.hdf5``/``.nxs`` (dataset ``/entry/data/data`` unless ``dataset`` is
        given), or ``.zarr`` (a frames store or a bare zarr array).
    dataset : str, optional
        HDF5 dataset path or zarr array name.

    Returns
    -------
    ndarray (time, y, x) or (series, time, y, x)
        The frames in the file's dtype.

    Raises
    ------
    InputError
        As :func:`open_frame_stack`.
    """
    with open_frame_stack(path, dataset) as stack:  # read errors become InputError there
        if stack.ndim == 3:
            return np.array(stack[0:stack.shape[0]])
        return np.stack([np.array(stack[s, 0:stack.shape[1]]) for s in range(stack.shape[0])])


class _NpyStream:
    """Reader of a C-ordered ``.npy`` by time slices through file reads (no memory map, so the
    resident memory stays one block; a zip member is read in increasing order)."""

    def __init__(self, handle, shape, dtype):
        self.handle, self.shape, self.dtype = handle, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self._frame_bytes = int(np.prod(self.shape[-2:])) * self.dtype.itemsize
        self._start = handle.tell()  # first data byte
        self._position = 0          # frames read so far (flattened over series and time)

    def __getitem__(self, key):
        """``stack[t0:t1]`` or ``stack[s, t0:t1]``."""
        key = key if isinstance(key, tuple) else (key,)
        offset = int(key[0]) * self.shape[1] if self.ndim == 4 else 0
        t0, t1, _ = key[-1].indices(self.shape[-3])
        if offset + t0 != self._position:
            self.handle.seek(self._start + (offset + t0) * self._frame_bytes)
        raw = self.handle.read((t1 - t0) * self._frame_bytes)
        if len(raw) != (t1 - t0) * self._frame_bytes:
            raise ValueError(f"the .npy ends before frame {offset + t1}")
        self._position = offset + t1
        return np.frombuffer(raw, self.dtype).reshape(t1 - t0, *self.shape[-2:])


def _npy_stream(handle, path):
    """A :class:`_NpyStream` of an open ``.npy`` (C order), or None for Fortran order."""
    version = np.lib.format.read_magic(handle)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(handle)
    if np.dtype(dtype).hasobject:
        raise InputError(f"{path}: the .npy holds Python objects, not numbers")
    return None if fortran else _NpyStream(handle, shape, dtype)


@contextmanager
def open_frame_stack(path: str | os.PathLike, dataset: str | None = None):
    """Open a stack of frames without loading it: an array-like read by time slices.

    Parameters
    ----------
    path : path
        ``.npy`` (file reads; memory-mapped if Fortran-ordered),
        ``.npy.zip`` (read in order), HDF5 (dataset ``/entry/data/data`` unless ``dataset``) or ``.zarr``.
    dataset : str, optional
        HDF5 dataset path or zarr array name.

    Yields
    ------
    array-like (time, y, x) or (series, time, y, x)
        With ``shape``, ``dtype``, ``ndim``; ``stack[t0:t1]`` / ``stack[s, t0:t1]`` give numpy
        blocks.

    Raises
    ------
    InputError
        Missing or unreadable file, unknown format, wrong dims or a non-numeric dtype.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: input file does not exist")
    name = path.name.lower()
    try:
        with _open(path, name, dataset) as stack:
            if stack.ndim not in (3, 4):
                raise InputError(f"{path}: frames must have 3 (time, y, x) or 4 (series, time, y, x) dims, "
                                 f"got shape {stack.shape}")
            if np.dtype(stack.dtype).kind not in "uif":
                raise InputError(f"{path}: frames must be numeric, got dtype {stack.dtype}")
            yield stack
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot read frames ({' '.join(str(exc).split())})") from None


@contextmanager
def _open(path: Path, name: str, dataset: str | None):
    if name.endswith(".npy.zip") or name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".npy")]
            if len(members) != 1:
                raise InputError(f"{path}: expected exactly one .npy in the zip, found {len(members)}")
            with archive.open(members[0]) as handle:
                stream = _npy_stream(handle, path)
                if stream is None:
                    raise InputError(f"{path}: the zipped .npy is Fortran-ordered; unzip it or save it in C order")
                yield stream
    elif name.endswith(".npy"):
        with open(path, "rb") as handle:
            stream = _npy_stream(handle, path)
            yield np.load(path, mmap_mode="r", allow_pickle=False) if stream is None else stream
    elif name.endswith((".h5", ".hdf5", ".hdf", ".nxs")):
        import h5py

        key = dataset or DEFAULT_HDF5_DATASET
        with h5py.File(path, "r") as handle:
            if key not in handle or not isinstance(handle[key], h5py.Dataset):
                raise InputError(f"{path}: HDF5 dataset {key!r} not found (use --dataset)")
            yield handle[key]
    elif name.endswith(".zarr") or path.is_dir():
        import zarr

        node = zarr.open(str(path), mode="r")
        if hasattr(node, "array_keys"):
            key = dataset or "frames"
            if key not in node:
                raise InputError(f"{path}: zarr group has no array {key!r} (use --dataset)")
            node = node[key]
        yield node
    else:
        raise InputError(f"{path}: unknown frame format (use .npy, .npy.zip, .h5/.nxs or .zarr)")
