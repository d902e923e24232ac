"""CXI ptychography import (issue 16, real data door): round trip, the real PETRA III P25 scan,
one-line errors for missing or inconsistent datasets, the scan figure."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import real_file, run_cli
from speckleml.errors import InputError
from speckleml.stores import read_frames
from speckleml.xpcs import cxi, cxi_figures

#: CODATA: photon energy (keV) x wavelength (Angstrom), independent of the module's h c.
KEV_ANGSTROM = 12.398419843320026
KEV = 1.602176634e-16  # J
REAL = ("petra_p25_ptycho", "PETRAIII_P25_Near_Field_Ptycho.cxi")
#: Mask bits and the validity CXI gives them: bit 12 (0x1000) is "signal above background".
MASK_BITS = np.array([0, 1, 0x1000, 0x1001, 4, 0x80000000], np.uint32)
MASK_VALID = np.array([True, False, True, False, False, False])


def small_scan(n: int = 5, ny: int = 8, nx: int = 6, seed: int = 0):
    """Random counts (n, ny, nx) int32, positions (n, 3) float32 in m, a bit-field mask."""
    rng = np.random.default_rng(seed)
    frames = rng.poisson(20, (n, ny, nx)).astype(np.int32)
    positions = (rng.uniform(-10e-6, 10e-6, (n, 3)) * [1, 1, 0]).astype(np.float32)
    mask = np.zeros((ny, nx), np.uint32)
    mask.ravel()[: MASK_BITS.size] = MASK_BITS
    return frames, positions, mask


@pytest.fixture
def cxi_file(tmp_path):
    frames, positions, mask = small_scan()
    path = cxi.write_cxi(tmp_path / "scan.cxi", frames, positions, distance=2.5, x_pixel_size=75e-6,
                         energy=np.float32(8 * KEV), mask=mask)
    return path, frames, positions, mask


def test_round_trip_frames_mask_units_positions(cxi_file, tmp_path):
    path, frames, positions, mask = cxi_file
    out = cxi.import_cxi(path, tmp_path / "f.zarr")
    store = read_frames(out)
    np.testing.assert_array_equal(store["frames"], frames[None].astype(np.float32))
    valid = np.ones(mask.shape, bool)
    valid.ravel()[: MASK_VALID.size] = MASK_VALID
    np.testing.assert_array_equal(store["mask"], valid)
    geometry = store.attrs["geometry"]
    assert geometry["pixel_size"] == 0.075 and geometry["distance"] == 2500.0
    assert geometry["units"] == {"pixel_size": "mm", "distance": "mm", "wavelength": "Angstrom", "q": "1/Angstrom"}
    assert geometry["wavelength"] == pytest.approx(KEV_ANGSTROM / 8, rel=1e-6)  # float32 energy
    assert geometry["center"] == [4.0, 3.0]
    # Small-angle q by hand: zero at the centre column, 4 pi / lambda sin(atan(p / L) / 2) one pixel off.
    assert store["qx"][3] == 0
    one = 4 * np.pi / geometry["wavelength"] * np.sin(np.arctan(0.075 / 2500) / 2)
    assert store["qx"][4] == pytest.approx(one, rel=1e-12) and store["qy"][5] == pytest.approx(one, rel=1e-12)
    scan = store.attrs["scan"]
    assert scan["units"] == "m" and store.attrs["units"]["positions"] == "m"
    np.testing.assert_array_equal(np.asarray(scan["positions"], np.float32), positions)  # bit for bit
    assert store.attrs["units"]["t"] == "scan point" and "dt" not in store.attrs
    assert store.attrs["cxi"]["distance_m"] == 2.5 and store.attrs["cxi"]["x_pixel_size_m"] == 75e-6
    assert store.provenance  # a record is written even without one passed in


def test_data_and_translation_through_data_1_and_wavelength_only(tmp_path):
    """Frames and positions only under entry_1/data_1 (no detector copy); wavelength without energy."""
    frames, positions, _ = small_scan(n=4)
    path = tmp_path / "linked.cxi"
    with h5py.File(path, "w") as handle:
        handle["entry_1/data_1/data"] = frames
        handle["entry_1/data_1/translation"] = positions
        detector = handle.create_group(cxi.DETECTOR)
        detector["distance"], detector["x_pixel_size"], detector["y_pixel_size"] = 0.5, 1e-4, 1e-4
        handle[cxi.WAVELENGTH_PATH] = 1.5e-10
    scan = cxi.read_cxi(path)
    assert scan.paths["data"] == "entry_1/data_1/data" and scan.paths["positions"] == "entry_1/data_1/translation"
    np.testing.assert_array_equal(scan.frames, frames)
    np.testing.assert_array_equal(scan.positions, positions)
    assert scan.valid.all() and scan.paths["mask"] is None  # no mask in the file: no flagged pixel
    assert scan.energy is None and scan.geometry().wavelength == pytest.approx(1.5)
    assert scan.geometry().distance == 500.0 and scan.geometry().pixel_size == 0.1


def test_write_cxi_links_data_1_to_the_detector(cxi_file):
    path, frames, positions, _ = cxi_file
    with h5py.File(path, "r") as handle:
        assert handle.get("entry_1/data_1/data", getlink=True).path == "/" + cxi.DATA_PATHS[0]
        np.testing.assert_array_equal(handle["entry_1/data_1/translation"][()], positions)
        assert handle[cxi.ENERGY_PATH][()] == np.float32(8 * KEV)


@pytest.mark.realdata
def test_real_petra_scan_reads_exactly(tmp_path):
    """PETRA III P25 near-field scan (PROVENANCE.md): 200 frames of 100x100, 1.12 m, 55 um pixels."""
    path = real_file(*REAL)
    with h5py.File(path, "r") as handle:
        data = handle["entry_1/instrument_1/detector_1/data"][()]
        translation = handle["entry_1/sample_1/geometry_1/translation"][()]
        bits = handle["entry_1/instrument_1/detector_1/mask"][()]
        wavelength = float(handle["entry_1/instrument_1/source_1/wavelength"][()])
    scan = cxi.read_cxi(path)
    assert scan.frames.shape == (200, 100, 100) and scan.positions.shape == (200, 3)
    np.testing.assert_array_equal(scan.frames, data)
    np.testing.assert_array_equal(scan.positions, translation)
    assert scan.positions.dtype == np.float32
    assert scan.distance == 1.12 and scan.x_pixel_size == scan.y_pixel_size == 55e-6
    assert scan.wavelength == pytest.approx(wavelength, rel=1e-6)  # from the energy in J
    assert (~scan.valid).sum() == np.count_nonzero(bits) == 5
    span_um = np.ptp(scan.positions, axis=0) * 1e6
    assert 19.5 < span_um[0] < 20.5 and 18.5 < span_um[1] < 19.5 and span_um[2] == 0  # "about 20 x 19 um"

    out = tmp_path / "petra.zarr"
    proc = run_cli("import-cxi", path, out, "--figure", tmp_path / "petra.png")
    assert proc.returncode == 0, proc.stderr
    store = read_frames(out)
    assert store["frames"].shape == (1, 200, 100, 100)
    np.testing.assert_array_equal(store["frames"][0], data.astype(np.float32))
    assert data.max() < 2 ** 24  # so the float32 store holds every count exactly
    np.testing.assert_array_equal(np.asarray(store.attrs["scan"]["positions"], np.float32), translation)
    geometry = store.attrs["geometry"]
    assert (geometry["pixel_size"], geometry["distance"]) == (0.055, 1120.0)
    assert geometry["wavelength"] == pytest.approx(wavelength * 1e10, rel=1e-6)
    assert store.provenance["inputs"]
    assert (tmp_path / "petra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _delete(path, *names):
    with h5py.File(path, "a") as handle:
        for name in names:
            del handle[name]


def _replace(path, name, value):
    with h5py.File(path, "a") as handle:
        del handle[name]
        handle[name] = value


@pytest.mark.parametrize("edit, words", [
    (lambda p: _delete(p, "entry_1/data_1/data", cxi.DATA_PATHS[0]), [cxi.DATA_PATHS[0], "not found"]),
    (lambda p: _delete(p, cxi.DATA_PATHS[0]), [cxi.DATA_PATHS[0], "not found"]),  # data_1 link left dangling
    (lambda p: _delete(p, cxi.DISTANCE_PATH), [cxi.DISTANCE_PATH, "not found"]),
    (lambda p: _delete(p, cxi.X_PIXEL_PATH), [cxi.X_PIXEL_PATH, "not found"]),
    (lambda p: _delete(p, cxi.Y_PIXEL_PATH), [cxi.Y_PIXEL_PATH, "not found"]),
    (lambda p: _delete(p, cxi.ENERGY_PATH), [cxi.ENERGY_PATH, cxi.WAVELENGTH_PATH, "not found"]),
    (lambda p: _delete(p, "entry_1/data_1/translation", cxi.TRANSLATION_PATHS[0]),
     [cxi.TRANSLATION_PATHS[0], "not found"]),
    (lambda p: _replace(p, cxi.TRANSLATION_PATHS[0], np.zeros((4, 3))), ["4 positions", "5 frames"]),
    (lambda p: _replace(p, cxi.TRANSLATION_PATHS[0], np.zeros((5, 2))), [cxi.TRANSLATION_PATHS[0], "(n, 3)"]),
    (lambda p: _replace(p, cxi.TRANSLATION_PATHS[0], np.full((5, 3), np.nan)), ["translation", "non-finite"]),
    (lambda p: _replace(p, cxi.DATA_PATHS[0], np.full((5, 8, 6), np.inf)), [cxi.DATA_PATHS[0], "non-finite"]),
    (lambda p: _replace(p, cxi.DATA_PATHS[0], np.zeros((8, 6))), [cxi.DATA_PATHS[0], "(n, ny, nx)"]),
    (lambda p: _replace(p, cxi.MASK_PATH, np.zeros((6, 8), np.uint32)), [cxi.MASK_PATH, "(8, 6)"]),
    (lambda p: _replace(p, cxi.DISTANCE_PATH, -1.0), [cxi.DISTANCE_PATH, "> 0"]),
    (lambda p: _replace(p, cxi.ENERGY_PATH, np.nan), [cxi.ENERGY_PATH, "finite"]),
    (lambda p: _replace(p, cxi.Y_PIXEL_PATH, 172e-6), ["non-square pixels"]),
    (lambda p: _replace(p, cxi.ENERGY_PATH, np.linspace(1e-15, 2e-15, 5)), [cxi.ENERGY_PATH, "varies"]),
])
def test_bad_cxi_exits_2_with_one_line(cxi_file, tmp_path, edit, words):
    path = cxi_file[0]
    edit(path)
    out = tmp_path / "out.zarr"
    proc = run_cli("import-cxi", path, out)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speckleml: error: ") and str(path) in lines[0], proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists() and not list(tmp_path.glob("out.zarr*"))


@pytest.mark.parametrize("figure, zero, words", [
    ("scan.xyz", False, ["scan.xyz", ".png"]),
    ("scan.png", True, ["no positive value"]),
])
def test_bad_figure_writes_nothing(cxi_file, tmp_path, figure, zero, words):
    """The figure is checked before the store is written: a failure leaves neither behind."""
    path = cxi_file[0]
    if zero:
        _replace(path, cxi.DATA_PATHS[0], np.zeros((5, 8, 6), np.int32))
    out, fig = tmp_path / "out.zarr", tmp_path / figure
    proc = run_cli("import-cxi", path, out, "--figure", fig)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and all(w in line for w in words), proc.stderr
    assert not out.exists() and not fig.exists()


def test_energy_and_wavelength_must_agree(tmp_path):
    frames, positions, _ = small_scan()
    path = cxi.write_cxi(tmp_path / "s.cxi", frames, positions, distance=1, x_pixel_size=1e-4,
                         energy=8 * KEV, wavelength=1e-10)  # 8 keV is 1.55 A
    with pytest.raises(InputError, match="disagree"):
        cxi.read_cxi(path)


@pytest.mark.parametrize("make", ["missing", "text"])
def test_missing_or_non_hdf5_file(tmp_path, make):
    path = tmp_path / "scan.cxi"
    if make == "text":
        path.write_text("not hdf5\n")
    with pytest.raises(InputError, match="does not exist" if make == "missing" else "not a readable HDF5"):
        cxi.read_cxi(path)


def test_figure_shows_positions_in_um_and_the_log_mean_pattern(cxi_file, tmp_path, monkeypatch):
    path, frames, positions, mask = cxi_file
    store = cxi.import_cxi(path, tmp_path / "f.zarr")
    seen = {}
    save = cxi_figures.save_figure

    def capture(fig, output):
        seen["axes"] = fig.axes
        return save(fig, output)

    monkeypatch.setattr(cxi_figures, "save_figure", capture)
    out = cxi_figures.plot_cxi_scan(store, tmp_path / "scan.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scan_ax, pattern_ax, *colourbars = seen["axes"]
    assert (scan_ax.get_xlabel(), scan_ax.get_ylabel()) == ("x (µm)", "y (µm)")
    assert (pattern_ax.get_xlabel(), pattern_ax.get_ylabel()) == ("column (pixel)", "row (pixel)")
    assert [c.get_ylabel() for c in colourbars] == ["scan point", "mean intensity (counts)"]
    np.testing.assert_allclose(scan_ax.collections[0].get_offsets(), positions[:, :2].astype(np.float64) * 1e6)
    image = pattern_ax.images[0]
    assert image.norm.__class__.__name__ == "LogNorm"
    shown = np.ma.filled(image.get_array().astype(np.float64), np.nan)
    expected = frames.mean(axis=0)
    expected[cxi.cxi_valid_pixels(mask) == 0] = np.nan
    np.testing.assert_allclose(shown, expected, rtol=1e-6, equal_nan=True)


def test_figure_needs_scan_positions(tmp_path):
    from speckleml.stores import write_frames

    store = write_frames(tmp_path / "plain.zarr", np.ones((1, 3, 4, 4), np.float32))
    with pytest.raises(InputError, match="no scan positions"):
        cxi_figures.plot_cxi_scan(store, tmp_path / "x.png")
