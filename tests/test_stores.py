"""Stores: round trips, provenance, validation errors and atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

from speckleml.errors import StoreError
from speckleml.provenance import checksum
from speckleml.stores import (
    read_c2, read_frames, read_states, read_store, write_c2, write_frames, write_states,
)


def _frames(shape=(2, 5, 8, 6), seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_frames_round_trip_with_provenance(tmp_path):
    data = _frames()
    mask = np.ones((8, 6), bool)
    mask[0, 0] = False
    source = tmp_path / "input.npy"
    np.save(source, data)
    from speckleml.provenance import make_provenance

    prov = make_provenance({"a": 1, "path": tmp_path}, seed=3, inputs=[source])
    path = write_frames(tmp_path / "f.zarr", data, mask=mask, attrs={"dt": 0.5}, provenance=prov)
    store = read_frames(path)
    np.testing.assert_array_equal(store["frames"], data)
    np.testing.assert_array_equal(store["mask"], mask)
    assert store.attrs["dt"] == 0.5
    assert store.provenance["seed"] == 3
    assert store.provenance["config"]["a"] == 1
    assert store.provenance["inputs"][str(source)] == checksum(source)
    assert store.provenance["version"] and store.provenance["git_commit"]
    assert zarr.open_group(str(path), mode="r")["frames"].metadata.dimension_names == ("series", "time", "y", "x")


def test_float64_frames_are_stored_as_float32(tmp_path):
    data = _frames().astype(np.float64)
    store = read_frames(write_frames(tmp_path / "f.zarr", data))
    assert store["frames"].dtype == np.float32


def test_lazy_frames_stream_from_disk(tmp_path):
    data = _frames((1, 100, 4, 4))
    store = read_frames(write_frames(tmp_path / "f.zarr", data), lazy=True)
    assert isinstance(store["frames"], zarr.Array)
    assert store["frames"].chunks[:2] == (1, 64)
    np.testing.assert_array_equal(store["frames"][0, 64:70], data[0, 64:70])


def test_states_and_c2_round_trip(tmp_path):
    states = np.random.default_rng(1).random((3, 4, 5, 2))
    path = write_states(tmp_path / "s.zarr", states, t=np.arange(4.0), system="swarm",
                        dims=("series", "time", "particle", "xy"))
    store = read_states(path)
    np.testing.assert_array_equal(store["states"], states)
    assert store.attrs["system"] == "swarm"
    c2 = np.random.default_rng(2).random((1, 2, 6, 6), dtype=np.float32)
    g2 = np.ones((1, 2, 6))
    store = read_c2(write_c2(tmp_path / "c.zarr", c2, g2, lag=np.arange(6.0), roi_q=[0.1, 0.2],
                             normalization="classical"))
    np.testing.assert_array_equal(store["c2"], c2)
    assert store.attrs["normalization"] == "classical"


def test_overwrite_replaces_existing_store(tmp_path):
    path = tmp_path / "f.zarr"
    write_frames(path, _frames(seed=1))
    data = _frames(seed=2)
    write_frames(path, data)
    np.testing.assert_array_equal(read_frames(path)["frames"], data)
    assert [p.name for p in tmp_path.iterdir()] == ["f.zarr"]


# --- validation: each failure is one line naming the file and the problem ---------------

def _one_line(exc_info, *words):
    message = str(exc_info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_missing_store(tmp_path):
    with pytest.raises(StoreError) as exc:
        read_frames(tmp_path / "nope.zarr")
    _one_line(exc, "nope.zarr", "does not exist")


def test_wrong_schema(tmp_path):
    path = write_frames(tmp_path / "f.zarr", _frames())
    with pytest.raises(StoreError) as exc:
        read_states(path)
    _one_line(exc, "f.zarr", "schema is 'frames'", "expected 'states'")


def _tamper(path, name, value, dims):
    group = zarr.open_group(str(path), mode="a")
    del group[name]
    if value is not None:
        array = group.create_array(name, shape=value.shape, dtype=value.dtype, dimension_names=dims)
        array[...] = value
        # An equivalent tool records the chunks it wrote, so the schema checks are reached.
        from speckleml.stores import CHUNKS_ATTR, _chunk_keys

        group.attrs[CHUNKS_ATTR] = {**group.attrs[CHUNKS_ATTR], name: _chunk_keys(path / name)}


def test_missing_array(tmp_path):
    path = write_frames(tmp_path / "f.zarr", _frames())
    _tamper(path, "mask", None, None)
    with pytest.raises(StoreError) as exc:
        read_frames(path)
    _one_line(exc, "f.zarr", "missing array 'mask'")


def test_wrong_dims(tmp_path):
    path = write_frames(tmp_path / "f.zarr", _frames())
    _tamper(path, "frames", _frames()[0], ["time", "y", "x"])
    with pytest.raises(StoreError) as exc:
        read_frames(path)
    _one_line(exc, "f.zarr", "'frames'", "dims (time, y, x)", "expected (series, time, y, x)")


def test_inconsistent_dim_sizes(tmp_path):
    path = write_frames(tmp_path / "f.zarr", _frames())
    _tamper(path, "mask", np.ones((3, 3), bool), ["y", "x"])
    with pytest.raises(StoreError) as exc:
        read_frames(path)
    _one_line(exc, "'mask'", "y=3", "y=8")


def test_wrong_dtype(tmp_path):
    path = write_frames(tmp_path / "f.zarr", _frames())
    _tamper(path, "frames", _frames().astype(np.float64), ["series", "time", "y", "x"])
    with pytest.raises(StoreError) as exc:
        read_frames(path)
    _one_line(exc, "f.zarr", "dtype float64", "expected float32")


def test_nan_frames_rejected_on_read_and_write(tmp_path):
    bad = _frames()
    bad[1, 2, 3, 4] = np.nan
    with pytest.raises(StoreError) as exc:
        write_frames(tmp_path / "w.zarr", bad)
    _one_line(exc, "w.zarr", "non-finite", "(1, 2, 3, 4)")
    assert not (tmp_path / "w.zarr").exists()
    path = write_frames(tmp_path / "f.zarr", _frames())
    _tamper(path, "frames", bad, ["series", "time", "y", "x"])
    with pytest.raises(StoreError) as exc:
        read_frames(path)
    _one_line(exc, "f.zarr", "non-finite")


def test_not_a_store(tmp_path):
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(StoreError) as exc:
        read_store(tmp_path / "x.zarr", "frames")
    _one_line(exc, "x.zarr")


def test_writer_killed_midway_leaves_nothing(tmp_path):
    """SIGKILL during a slow write: the final path never appears, only the temporary one."""
    final = tmp_path / "big.zarr"
    script = textwrap.dedent(f"""
        import numpy as np
        from speckleml.stores import write_store, FRAMES
        frames = np.ones((1, 4000, 32, 32), np.float32)
        write_store({str(final)!r}, FRAMES, {{"frames": frames, "mask": np.ones((32, 32), bool),
                    "qx": np.arange(32.0), "qy": np.arange(32.0)}}, chunks={{"frames": (1, 1, 32, 32)}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    tmp = final.with_name(f"{final.name}.tmp-{proc.pid}")
    deadline = time.monotonic() + 60
    while not (tmp / "frames").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "writer finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tmp.exists()
    assert not final.exists()
