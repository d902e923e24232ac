"""The speckleml command line: help, import-frames, one-line errors with exit code 2."""

from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest

from conftest import real_file, run_cli
from speckleml.xpcs.frames import Geometry
from speckleml.stores import read_frames


def test_help_lists_every_stage():
    proc = run_cli("--help", check=True)
    for command in ("import-frames", "synthetic-frames", "dynamics", "clustering", "disk-count", "shear"):
        assert f"speckleml {command}" in proc.stdout


@pytest.mark.parametrize("suffix", [".npy", ".npy.zip", ".h5", ".zarr"])
def test_import_frames_formats(tmp_path, suffix):
    data = np.random.default_rng(0).integers(0, 5, (6, 10, 12)).astype(np.uint16)
    src = tmp_path / f"stack{suffix}"
    if suffix == ".npy":
        np.save(src, data)
    elif suffix == ".npy.zip":
        np.save(tmp_path / "inner.npy", data)
        with zipfile.ZipFile(src, "w") as archive:
            archive.write(tmp_path / "inner.npy", "inner.npy")
    elif suffix == ".h5":
        with h5py.File(src, "w") as handle:
            handle["/entry/data/data"] = data
    else:
        import zarr

        zarr.save_array(str(src), data)
    out = tmp_path / "frames.zarr"
    run_cli("import-frames", src, out, "--dt", "0.01", check=True)
    store = read_frames(out)
    np.testing.assert_array_equal(store["frames"][0], data.astype(np.float32))
    assert store.attrs["dt"] == 0.01
    assert store.provenance["inputs"]


def test_import_frames_geometry_gives_q(tmp_path):
    data = np.ones((2, 5, 7), np.float32)
    np.save(tmp_path / "s.npy", data)
    run_cli("import-frames", tmp_path / "s.npy", tmp_path / "f.zarr", "--pixel-size", "0.1",
            "--distance", "1000", "--wavelength", "1.0", "--center", "2", "3", check=True)
    store = read_frames(tmp_path / "f.zarr")
    # small-angle check: q = 4 pi / lambda sin(atan(r/d) / 2) ~ 2 pi r / (lambda d)
    expected = 2 * np.pi * (np.arange(7) - 3) * 0.1 / (1.0 * 1000)
    np.testing.assert_allclose(store["qx"], expected, rtol=1e-6)
    assert store["qy"][2] == 0
    assert store.attrs["geometry"]["center"] == [2.0, 3.0]


def test_geometry_q_map_matches_axis_q():
    geometry = Geometry(0.075, 5000.0, 1.2, (10.0, 20.0))
    q_map = geometry.q_map((30, 40))
    np.testing.assert_allclose(q_map[10], np.abs(geometry.axis_q(40, 1)), rtol=1e-12)
    np.testing.assert_allclose(q_map[:, 20], np.abs(geometry.axis_q(30, 0)), rtol=1e-12)


def test_import_real_skbeam_stack(tmp_path):
    src = real_file("skbeam_speckle_stack", "img_stack5301_5401.npy.zip")
    run_cli("import-frames", src, tmp_path / "f.zarr", "--pixel-size", "0.108", "--distance", "2230",
            "--wavelength", "1.546", "--center", "143", "123", "--dt", "1.30068e-3", check=True)
    store = read_frames(tmp_path / "f.zarr")
    assert store["frames"].shape == (1, 100, 256, 256)
    # PROVENANCE.md: mean 0.67 counts per pixel
    assert store["frames"].mean() == pytest.approx(0.67, abs=0.01)


@pytest.mark.parametrize("args, words", [
    (["import-frames", "{tmp}/missing.npy", "{tmp}/o.zarr"], ["missing.npy", "does not exist"]),
    (["import-frames", "{tmp}/bad.txt", "{tmp}/o.zarr"], ["bad.txt", "unknown frame format"]),
    (["import-frames", "{tmp}/flat.npy", "{tmp}/o.zarr"], ["flat.npy", "3 (time, y, x)"]),
    (["import-frames", "{tmp}/nan.npy", "{tmp}/o.zarr"], ["nan.npy", "NaN"]),
    (["import-frames", "{tmp}/ok.npy", "{tmp}/o.zarr", "--distance", "3"], ["geometry needs all"]),
    (["import-frames", "{tmp}/ok.h5", "{tmp}/o.zarr"], ["ok.h5", "/entry/data/data"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    (tmp_path / "bad.txt").write_text("x")
    np.save(tmp_path / "flat.npy", np.ones((4, 4)))
    nan = np.ones((2, 4, 4))
    nan[1, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "ok.npy", np.ones((2, 4, 4)))
    with h5py.File(tmp_path / "ok.h5", "w") as handle:
        handle["other"] = np.ones((2, 4, 4))
    proc = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speckleml: error:"), proc.stderr
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_debug_shows_traceback(tmp_path):
    proc = run_cli("--debug", "import-frames", tmp_path / "missing.npy", tmp_path / "o.zarr")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_synthetic_frames_have_the_stated_correlation(tmp_path):
    """Independent check of the synthetic generator: per-pixel g2 - 1 = exp(-2 lag / tau)."""
    run_cli("synthetic-frames", tmp_path / "f.zarr", "--frames", "400", "--size", "32", "--tau", "5",
            "--seed", "1", check=True)
    frames = read_frames(tmp_path / "f.zarr")["frames"][0].reshape(400, -1).astype(np.float64)
    mean = frames.mean()
    for lag in (1, 3, 6):
        g2 = (frames[:-lag] * frames[lag:]).mean() / mean**2
        assert g2 - 1 == pytest.approx(np.exp(-2 * lag / 5), abs=0.06)
