"""Zarr v3 stores: schemas, atomic writes with provenance, validated reads.

Every store is a zarr group whose ``schema`` attr names its schema and version and whose
``provenance`` attr records how it was made (:func:`speckleml.provenance.make_provenance`).
Its ``chunks`` attr lists, per array, the chunk files the writer wrote (zarr skips chunks
that hold only the fill value); :func:`read_store` checks that every one is still there, and
every chunk that cannot be decoded, whether read at once or streamed lazily, is a
:class:`~speckleml.errors.StoreError` naming the store, the array and the chunk, never data
silently read as the fill value.
Arrays carry zarr v3 ``dimension_names``. The three shared schemas of DESIGN §2 are
``frames``, ``states`` and ``c2``; a study registers its own with :func:`register_schema`.

Examples
--------
>>> write_frames("results/x/frames.zarr", frames, mask=mask, attrs={"dt": 0.1})  # doctest: +SKIP
>>> store = read_frames("results/x/frames.zarr")                                  # doctest: +SKIP
>>> store["frames"].shape, store.attrs["dt"]                                      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .atomic import atomic_output
from .errors import StoreError
from .provenance import _jsonable, make_provenance

log = logging.getLogger(__name__)

#: Attr holding, per array, the chunk keys the writer wrote (completeness check on read).
CHUNKS_ATTR = "chunks"
#: What zarr's codec pipeline raises for a chunk it cannot decode (zstd: RuntimeError;
#: wrong decoded size: ValueError; unreadable file: OSError).
CHUNK_ERRORS = (RuntimeError, ValueError, OSError, EOFError)

#: Sentinel dims entry: any number of trailing dimensions (e.g. real-space coordinates).
ELLIPSIS = "..."


@dataclass(frozen=True)
class ArraySpec:
    """Expected shape and type of one array in a store.

    Parameters
    ----------
    dims : tuple of str
        Dimension names; a final ``"..."`` admits any number of extra trailing dims.
    dtypes : tuple of str
        Accepted numpy dtype names (the first one is used when writing).
    required : bool
        Whether the array must be present.
    finite : bool
        Whether every value must be finite (checked on read and write).
    """

    dims: tuple[str, ...]
    dtypes: tuple[str, ...]
    required: bool = True
    finite: bool = False


@dataclass(frozen=True)
class StoreSchema:
    """Named, versioned set of :class:`ArraySpec` and required attrs."""

    name: str
    version: int
    arrays: Mapping[str, ArraySpec]
    required_attrs: tuple[str, ...] = ()
    description: str = ""


FLOATS = ("float32", "float64")

SCHEMAS: dict[str, StoreSchema] = {}


def register_schema(schema: StoreSchema) -> StoreSchema:
    """Register a store schema (idempotent for an identical schema)."""
    existing = SCHEMAS.get(schema.name)
    if existing is not None and existing != schema:
        raise ValueError(f"store schema {schema.name!r} is already registered differently")
    SCHEMAS[schema.name] = schema
    return schema


FRAMES = register_schema(StoreSchema(
    name="frames", version=1,
    description="speckle frames: intensities per series, time and detector pixel",
    arrays={
        "frames": ArraySpec(("series", "time", "y", "x"), ("float32",), finite=True),
        "mask": ArraySpec(("y", "x"), ("bool",)),
        "qx": ArraySpec(("x",), FLOATS),
        "qy": ArraySpec(("y",), FLOATS),
    },
))

STATES = register_schema(StoreSchema(
    name="states", version=1,
    description="real-space states per series and time",
    arrays={
        "states": ArraySpec(("series", "time", ELLIPSIS), FLOATS, finite=True),
        "t": ArraySpec(("time",), FLOATS, finite=True),
    },
    required_attrs=("system",),
))

C2 = register_schema(StoreSchema(
    name="c2", version=1,
    description="two-time correlation maps, one-time g2 and ROI definitions",
    arrays={
        "c2": ArraySpec(("series", "roi", "t1", "t2"), ("float32",)),
        "g2": ArraySpec(("series", "roi", "lag"), FLOATS),
        "g2_err": ArraySpec(("series", "roi", "lag"), FLOATS, required=False),
        "lag": ArraySpec(("lag",), FLOATS),
        "roi_q": ArraySpec(("roi",), FLOATS),
    },
    required_attrs=("normalization",),
))


@dataclass
class Store:
    """A validated store: its path, schema, attrs and arrays (numpy, or zarr when lazy)."""

    path: Path
    schema: StoreSchema
    attrs: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    @property
    def provenance(self) -> dict[str, Any]:
        return self.attrs.get("provenance", {})


def _fail(path, message: str) -> StoreError:
    return StoreError(f"{path}: {message}")


def _check_dims(path, name: str, spec: ArraySpec, shape, dims, sizes: dict[str, int]) -> None:
    expected = list(spec.dims)
    variadic = expected and expected[-1] == ELLIPSIS
    if variadic:
        expected = expected[:-1]
    ok = (len(dims) >= len(expected)) if variadic else (len(dims) == len(expected))
    if not ok or list(dims[: len(expected)]) != expected:
        want = ", ".join(spec.dims)
        raise _fail(path, f"array {name!r} has dims ({', '.join(map(str, dims))}), expected ({want})")
    for dim, size in zip(dims, shape):
        if dim in sizes and sizes[dim] != size:
            raise _fail(path, f"array {name!r} has {dim}={size} but another array has {dim}={sizes[dim]}")
        sizes[dim] = size


def _check_dtype(path, name: str, spec: ArraySpec, dtype) -> None:
    if np.dtype(dtype).name not in spec.dtypes:
        raise _fail(path, f"array {name!r} has dtype {np.dtype(dtype).name}, expected {' or '.join(spec.dtypes)}")


def _check_finite(path, name: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise _fail(path, f"array {name!r} has {int(bad.sum())} non-finite values (first at index {where})")


def _default_chunks(name: str, shape: tuple[int, ...], dims: tuple[str, ...]) -> tuple[int, ...]:
    """One series and up to 64 time points per chunk: C2 streams over time."""
    chunks = list(shape)
    for i, dim in enumerate(dims):
        if dim == "series":
            chunks[i] = 1
        elif dim in ("time", "t1") and shape[i] > 64:
            chunks[i] = 64
    return tuple(max(c, 1) for c in chunks)


def write_store(
    path: str | os.PathLike,
    schema: str | StoreSchema,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    chunks: Mapping[str, tuple[int, ...]] | None = None,
) -> Path:
    """Validate ``arrays`` against ``schema`` and write them atomically as a zarr v3 group.

    Parameters
    ----------
    path : path
        Destination ``*.zarr`` directory; replaced only once the new store is complete.
    schema : str or StoreSchema
        Schema name (see :data:`SCHEMAS`) or object.
    arrays : mapping of str to ndarray
        Arrays to write; they are cast to the schema's first dtype when it is a float and
        the input is another float (so float64 simulations land as float32 frames).
    attrs : mapping, optional
        Extra JSON-serialisable attrs (units, dt, geometry, system parameters, ...).
    provenance : mapping, optional
        Provenance record; a minimal one is created when omitted.
    dims : mapping, optional
        Explicit dimension names for arrays with ``...`` dims (default ``dim2, dim3...``).
    chunks : mapping, optional
        Chunk shapes per array (default: one series, 64 time points).

    Returns
    -------
    Path
        The final path.
    """
    import zarr

    schema = SCHEMAS[schema] if isinstance(schema, str) else schema
    path = Path(path)
    prepared = _prepare(path, schema, arrays, attrs, dims, sizes={})
    with atomic_output(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        _write_group(group, tmp, schema, prepared, attrs, provenance, chunks)
    return path


def _prepare(path, schema: StoreSchema, arrays, attrs, dims, sizes: dict[str, int],
             written: Mapping[str, Any] | None = None) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Validate ``arrays`` (and ``attrs``) against ``schema``; arrays in ``written`` already exist."""
    written = written or {}
    attrs = dict(attrs or {})
    for key in schema.required_attrs:
        if key not in attrs:
            raise _fail(path, f"missing required attr {key!r} for schema {schema.name!r}")
    unknown = set(arrays) - set(schema.arrays)
    if unknown:
        raise _fail(path, f"arrays {sorted(unknown)} are not part of schema {schema.name!r}")
    prepared: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
    for name, spec in schema.arrays.items():
        if name in written:
            continue
        if name not in arrays or arrays[name] is None:
            if spec.required:
                raise _fail(path, f"missing required array {name!r} for schema {schema.name!r}")
            continue
        value = np.asarray(arrays[name])
        if value.dtype.name not in spec.dtypes and value.dtype.kind == "f" and spec.dtypes[0].startswith("float"):
            value = value.astype(spec.dtypes[0])
        if value.dtype.name not in spec.dtypes and value.dtype.kind in "iu" and spec.dtypes[0].startswith("float"):
            value = value.astype(spec.dtypes[0])
        names = _dim_names(name, spec, value.ndim, dims)
        _check_dims(path, name, spec, value.shape, names, sizes)
        _check_dtype(path, name, spec, value.dtype)
        if spec.finite:
            _check_finite(path, name, value)
        prepared[name] = (value, names)
    return prepared


def _dim_names(name: str, spec: ArraySpec, ndim: int, dims) -> tuple[str, ...]:
    names = tuple((dims or {}).get(name, ()))
    if not names:
        fixed = [d for d in spec.dims if d != ELLIPSIS]
        names = tuple(fixed) + tuple(f"dim{i}" for i in range(len(fixed), ndim))
    return names


def _write_group(group, tmp: Path, schema: StoreSchema, prepared, attrs, provenance, chunks,
                 streamed: tuple[str, ...] = ()) -> None:
    """Write ``prepared`` arrays and the attrs, recording the chunk keys of every array (also
    the ``streamed`` ones already filled)."""
    for name, (value, names) in prepared.items():
        chunk = (chunks or {}).get(name) or _default_chunks(name, value.shape, names)
        array = group.create_array(
            name, shape=value.shape, dtype=value.dtype, chunks=chunk, dimension_names=list(names)
        )
        array[...] = value
    group.attrs.update(_jsonable({
        **dict(attrs or {}),
        "schema": {"name": schema.name, "version": schema.version},
        "provenance": dict(provenance) if provenance is not None else make_provenance(),
        CHUNKS_ATTR: {name: _chunk_keys(Path(tmp) / name) for name in (*streamed, *prepared)},
    }))


class StreamedStore:
    """A store being written whose large arrays are filled piece by piece (see :func:`streamed_store`).

    Attributes
    ----------
    arrays : dict of str to zarr.Array
        The large arrays, created empty; assign slices to fill them.
    """

    def __init__(self, path: Path, tmp: Path, schema: StoreSchema, group, arrays: dict, sizes: dict[str, int]):
        self.path, self.tmp, self.schema, self.group, self.arrays = path, tmp, schema, group, arrays
        self._sizes = sizes
        self.finished = False

    def finish(self, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None,
               provenance: Mapping[str, Any] | None = None, chunks: Mapping[str, tuple[int, ...]] | None = None) -> None:
        """Validate and write the remaining (small) arrays and the attrs, as :func:`write_store`."""
        prepared = _prepare(self.path, self.schema, arrays, attrs, None, self._sizes, written=self.arrays)
        _write_group(self.group, self.tmp, self.schema, prepared, attrs, provenance, chunks,
                     streamed=tuple(self.arrays))
        self.finished = True


@contextmanager
def streamed_store(path: str | os.PathLike, schema: str | StoreSchema, shapes: Mapping[str, tuple[int, ...]],
                   chunks: Mapping[str, tuple[int, ...]] | None = None):
    """Write a store atomically while its large arrays are computed piece by piece.

    Parameters
    ----------
    path : path
        Destination ``*.zarr``; replaced only when the block exits after :meth:`StreamedStore.finish`.
    schema : str or StoreSchema
        Schema name or object.
    shapes : mapping of str to tuple of int
        The large arrays to create empty (schema dtype, dims as in :func:`write_store`).
    chunks : mapping, optional
        Chunk shapes of the large arrays (default as :func:`write_store`).

    Yields
    ------
    StreamedStore
        Fill ``.arrays[name][...]``, then call ``.finish(arrays, attrs, provenance)``.

    Raises
    ------
    StoreError
        If a shape contradicts the schema or the other arrays, or ``finish`` was not called
        (nothing is written then).
    """
    import zarr

    schema = SCHEMAS[schema] if isinstance(schema, str) else schema
    path = Path(path)
    with atomic_output(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        sizes: dict[str, int] = {}
        arrays = {}
        for name, shape in shapes.items():
            if name not in schema.arrays:
                raise _fail(path, f"array {name!r} is not part of schema {schema.name!r}")
            spec = schema.arrays[name]
            names = _dim_names(name, spec, len(shape), None)
            _check_dims(path, name, spec, tuple(shape), names, sizes)
            chunk = (chunks or {}).get(name) or _default_chunks(name, tuple(shape), names)
            arrays[name] = group.create_array(name, shape=tuple(shape), dtype=spec.dtypes[0], chunks=chunk,
                                              dimension_names=list(names))
        writer = StreamedStore(path, Path(tmp), schema, group, arrays, sizes)
        yield writer
        if not writer.finished:
            raise _fail(path, "streamed store was not finished")


def _chunk_keys(array_dir: Path) -> list[str]:
    """Chunk keys (``c/0/1/0``) stored under one array directory, sorted."""
    root = array_dir / "c"
    if not root.is_dir():
        return []
    return sorted(p.relative_to(array_dir).as_posix() for p in root.rglob("*") if p.is_file())


def _check_chunks(path: Path, recorded: Mapping[str, Any] | None, name: str) -> None:
    """Every chunk the writer recorded for array ``name`` is present (missing ones are not zeros)."""
    if recorded is None:
        return
    expected = recorded.get(name)
    if expected is None:
        raise _fail(path, f"array {name!r} is not in the store's chunk record (store incomplete or altered)")
    present = set(_chunk_keys(path / name))
    missing = [key for key in expected if key not in present]
    if missing:
        raise _fail(path, f"array {name!r} is missing chunk {missing[0]} ({len(missing)} of "
                          f"{len(expected)} chunks missing; the store is incomplete)")


def _chunk_ranges(array, selection) -> list[range]:
    """Per dimension, the chunk indices a basic selection (ints, slices, Ellipsis) touches."""
    shape, chunks = array.shape, array.chunks
    every = [range(-(-n // c)) for n, c in zip(shape, chunks)]
    selection = selection if isinstance(selection, tuple) else (selection,)
    if Ellipsis in selection:
        at = selection.index(Ellipsis)
        selection = selection[:at] + (slice(None),) * (len(shape) - len(selection) + 1) + selection[at + 1:]
    ranges = list(every)
    for dim, item in enumerate(selection[: len(shape)]):
        if isinstance(item, (int, np.integer)):
            index = int(item) % shape[dim] if shape[dim] else 0
            ranges[dim] = range(index // chunks[dim], index // chunks[dim] + 1)
        elif isinstance(item, slice) and item.step in (None, 1):
            start, stop, _ = item.indices(shape[dim])
            if stop > start:
                ranges[dim] = range(start // chunks[dim], (stop - 1) // chunks[dim] + 1)
    return ranges


def _bad_chunk(array, selection) -> str:
    """Key of the first chunk of ``selection`` that zarr cannot decode (``?`` if none fails alone)."""
    import itertools

    try:
        ranges = _chunk_ranges(array, selection)
    except (TypeError, ValueError, ZeroDivisionError):
        ranges = [range(-(-n // c)) for n, c in zip(array.shape, array.chunks)]
    for index in itertools.product(*ranges):
        try:
            array.get_block_selection(index)
        except CHUNK_ERRORS:
            return "c/" + "/".join(map(str, index))
    return "?"


@functools.lru_cache(maxsize=None)
def _checked_array_class():
    import zarr

    class CheckedArray(zarr.Array):
        """A zarr array whose reads turn an undecodable chunk into a one-line StoreError."""

        store_path: Path = Path()
        name: str = ""

        def __getitem__(self, selection):
            try:
                return super().__getitem__(selection)
            except CHUNK_ERRORS as exc:
                key = _bad_chunk(self, selection)
                raise _fail(self.store_path, f"array {self.name!r} chunk {key} cannot be decoded (corrupt: "
                                             f"{' '.join(str(exc).split())})") from None

        def __array__(self, dtype=None, copy=None):
            value = self[...]
            return value if dtype is None else value.astype(dtype)

    CheckedArray.__module__, CheckedArray.__qualname__ = __name__, "CheckedArray"  # picklable by name
    return CheckedArray


def __getattr__(name: str):
    # ``speckleml.stores.CheckedArray`` is built on first use, so that zarr is imported lazily.
    if name == "CheckedArray":
        return _checked_array_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def checked_array(array, store_path: Path, name: str):
    """Wrap zarr ``array`` so that a corrupt chunk raises :class:`StoreError` naming it."""
    wrapped = _checked_array_class()(array._async_array)
    wrapped.store_path, wrapped.name = Path(store_path), name
    return wrapped


def read_store(
    path: str | os.PathLike,
    schema: str | StoreSchema,
    lazy: bool | tuple[str, ...] = False,
) -> Store:
    """Open ``path`` and check it against ``schema``; raise :class:`StoreError` if it does not fit.

    Parameters
    ----------
    path : path
        A zarr v3 group written by :func:`write_store` (or an equivalent tool).
    schema : str or StoreSchema
        Expected schema.
    lazy : bool or tuple of str
        ``True`` keeps every array as a zarr array (stream it chunk by chunk), a tuple keeps
        only those arrays lazy. Lazy arrays are checked for finiteness by their consumer.

    Returns
    -------
    Store
    """
    import zarr

    schema = SCHEMAS[schema] if isinstance(schema, str) else schema
    path = Path(path)
    if not path.exists():
        raise _fail(path, f"{schema.name} store does not exist")
    try:
        group = zarr.open_group(str(path), mode="r")
    except (ValueError, OSError) as exc:  # zarr's errors derive from these (BaseZarrError, NodeNotFoundError)
        raise _fail(path, f"not a readable zarr group ({type(exc).__name__})") from None
    attrs = dict(group.attrs)
    with warnings.catch_warnings():
        # Snakemake marks directory outputs with a .snakemake_timestamp file that zarr reports.
        warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
        present = set(group.array_keys())
    found = attrs.get("schema", {})
    if not isinstance(found, Mapping) or found.get("name") != schema.name:
        raise _fail(path, f"store schema is {found.get('name') if isinstance(found, Mapping) else found!r}, expected {schema.name!r}")
    if int(found.get("version", -1)) > schema.version:
        raise _fail(path, f"store schema version {found.get('version')} is newer than supported {schema.version}")
    for key in schema.required_attrs:
        if key not in attrs:
            raise _fail(path, f"missing required attr {key!r}")
    recorded = attrs.get(CHUNKS_ATTR)
    if not isinstance(recorded, Mapping):
        recorded = None
        log.warning("%s: store records no chunk list (written by an older or another tool); "
                    "its completeness cannot be verified", path)
    sizes: dict[str, int] = {}
    arrays: dict[str, Any] = {}
    for name, spec in schema.arrays.items():
        if name not in present:
            if spec.required:
                raise _fail(path, f"missing array {name!r}")
            continue
        array = checked_array(group[name], path, name)
        names = tuple(array.metadata.dimension_names or ())
        if not names:
            raise _fail(path, f"array {name!r} has no dimension names")
        _check_dims(path, name, spec, array.shape, names, sizes)
        _check_dtype(path, name, spec, array.dtype)
        _check_chunks(path, recorded, name)
        keep_lazy = lazy is True or (isinstance(lazy, tuple) and name in lazy)
        if keep_lazy:
            arrays[name] = array
        else:
            value = array[...]
            if spec.finite:
                _check_finite(path, name, value)
            arrays[name] = value
    return Store(path=path, schema=schema, attrs=attrs, arrays=arrays)


def write_frames(path, frames, mask=None, qx=None, qy=None, attrs=None, provenance=None) -> Path:
    """Write a frames store; ``frames`` is (series, time, y, x) or (time, y, x).

    ``mask`` defaults to all-valid, ``qx``/``qy`` to pixel indices centred on the middle.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4:
        raise _fail(path, f"frames must be (series, time, y, x), got shape {frames.shape}")
    ny, nx = frames.shape[-2:]
    mask = np.ones((ny, nx), bool) if mask is None else np.asarray(mask, bool)
    qx = np.arange(nx, dtype=np.float64) - nx // 2 if qx is None else np.asarray(qx, np.float64)
    qy = np.arange(ny, dtype=np.float64) - ny // 2 if qy is None else np.asarray(qy, np.float64)
    return write_store(path, FRAMES, {"frames": frames, "mask": mask, "qx": qx, "qy": qy},
                       attrs=attrs, provenance=provenance)


def read_frames(path, lazy: bool = False) -> Store:
    """Read and validate a frames store.

    Parameters
    ----------
    path : path
        A ``*.zarr`` store of schema ``frames``: ``frames`` (series, time, y, x) float32 counts,
        ``mask`` (y, x) bool (True = valid pixel), ``qx`` (x,) and ``qy`` (y,) in 1/Angstrom (or
        pixel offsets when no geometry was given; the ``units`` attr says which).
    lazy : bool
        Keep ``frames`` on disk (read by slices) instead of loading it.

    Returns
    -------
    Store
        Arrays, attrs and provenance.

    Raises
    ------
    StoreError
        Missing store, wrong schema or version, missing arrays, wrong dims or dtypes.
    """
    return read_store(path, FRAMES, lazy=("frames",) if lazy else False)


def write_states(path, states, t, system: str, attrs=None, provenance=None, dims=None) -> Path:
    """Write a states store (real-space states of a simulated or learned system).

    Parameters
    ----------
    path : path
        Destination ``*.zarr``; written atomically (:func:`write_store`).
    states : ndarray (series, time, ...)
        Finite states; the trailing dims are the system's (e.g. (n, n) phases, (particles, 2)).
    t : array (time,)
        Times of the states, in the system's time unit.
    system : str
        Name of the system (registry name, e.g. ``"kuramoto"``).
    attrs, provenance : mapping, optional
        Extra attrs (system parameters) and the provenance record.
    dims : tuple of str, optional
        Names of the trailing dims (default ``dim2, dim3, ...``).

    Returns
    -------
    Path
        The store written.

    Raises
    ------
    StoreError
        Non-finite states or times, a ``t`` whose length is not the time dim.
    """
    return write_store(path, STATES, {"states": states, "t": np.asarray(t, np.float64)},
                       attrs={"system": system, **(attrs or {})}, provenance=provenance,
                       dims={"states": dims} if dims else None)


def read_states(path) -> Store:
    """Read and validate a states store."""
    return read_store(path, STATES)


def write_c2(path, c2, g2, lag, roi_q, normalization: str, g2_err=None, attrs=None, provenance=None) -> Path:
    """Write a c2 store: two-time maps, one-time g2 and the ROIs they belong to.

    Parameters
    ----------
    path : path
        Destination ``*.zarr``; written atomically (:func:`write_store`).
    c2 : ndarray (series, roi, t1, t2)
        Two-time correlation maps (stored float32), normalised as ``normalization`` says.
    g2 : ndarray (series, roi, lag)
        One-time correlation at the lags ``lag``.
    lag : array (lag,)
        Lag times in seconds (or frames when the source has no frame time; attrs say).
    roi_q : array (roi,)
        Mean q of each ROI, 1/Angstrom (NaN where unknown).
    normalization : str
        Estimator the maps were computed with (:data:`speckleml.correlation.NORMALIZATIONS`).
    g2_err : ndarray (series, roi, lag), optional
        Standard error of ``g2``.
    attrs, provenance : mapping, optional
        Extra attrs (dt, geometry, ROI definitions) and the provenance record.

    Returns
    -------
    Path
        The store written.

    Raises
    ------
    StoreError
        Arrays whose dims disagree, wrong dtypes.
    """
    arrays = {"c2": c2, "g2": g2, "lag": np.asarray(lag, np.float64), "roi_q": np.asarray(roi_q, np.float64)}
    if g2_err is not None:
        arrays["g2_err"] = g2_err
    return write_store(path, C2, arrays, attrs={"normalization": normalization, **(attrs or {})},
                       provenance=provenance)


def read_c2(path, lazy: bool = False) -> Store:
    """Read and validate a c2 store (:func:`write_c2`).

    Parameters
    ----------
    path : path
        A ``*.zarr`` store of schema ``c2``.
    lazy : bool
        Keep ``c2`` on disk (read by slices) instead of loading it.

    Returns
    -------
    Store
        Arrays, attrs and provenance.

    Raises
    ------
    StoreError
        Missing store, wrong schema or version, missing arrays, wrong dims or dtypes.
    """
    return read_store(path, C2, lazy=("c2",) if lazy else False)
