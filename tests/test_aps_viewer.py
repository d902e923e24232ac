"""Our APS export opened by the APS viewer itself: pyXpcsViewer's ``XpcsFile`` (PyPI ``xpcs-viewer``,
the ``test`` extra), offscreen. What it reads must equal what we computed: g2, delays in seconds,
q per bin (rings and q-phi sectors), C2 maps, the two-time g2, SAXS 1D/2D and intensity vs time."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")      # no display in CI

import numpy as np
import pytest

xpcs_file = pytest.importorskip(
    "pyxpcsviewer.core.xpcs_file",
    reason="pyXpcsViewer not installed (pip install -e '.[test]', or `make test`, installs xpcs-viewer)")

from speckleml.stores import read_c2, read_frames  # noqa: E402
from speckleml.synthetic import ou_speckle  # noqa: E402
from speckleml.xpcs.correlate import correlate_frames  # noqa: E402
from speckleml.xpcs.export import export_aps  # noqa: E402
from speckleml.xpcs.frames import Geometry  # noqa: E402
from speckleml.xpcs.ingest import import_frames  # noqa: E402

N_FRAMES, SIZE, DT = 40, 32, 0.02
#: rings in 1/Angstrom with a detector geometry (classical, as APS), and rings x sectors in
#: pixel units (pixel_mean: export shifts it to baseline 1)
CASES = {
    "rings": dict(geometry=Geometry(pixel_size=0.075, distance=4000.0, wavelength=1.2, center=(13.4, 17.8)),
                  rings=dict(q_first=2e-4, q_width=3e-4, q_step=3.5e-4, n_rings=4, n_sectors=1),
                  normalization="classical"),
    "sectors": dict(geometry=None, rings=dict(q_first=3, q_width=4, q_step=4, n_rings=3, n_sectors=4),
                    normalization="pixel_mean"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request, tmp_path_factory):
    """frames store -> c2 store -> APS file, through the library (the stage functions)."""
    case = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    np.save(root / "s.npy", ou_speckle(N_FRAMES, SIZE, tau=5.0, seed=3, mean_counts=30.0).astype(np.float32))
    import_frames(root / "s.npy", root / "f.zarr", dt=DT, geometry=case["geometry"])
    correlate_frames(root / "f.zarr", root / "c2.zarr", normalization=case["normalization"], min_pixel_mean=0.0,
                     max_memory_mib=0.0, **case["rings"])
    (path,) = export_aps(root / "c2.zarr", root / "aps.hdf", frames=root / "f.zarr")
    store = read_c2(root / "c2.zarr")
    frames = np.asarray(read_frames(root / "f.zarr")["frames"][0], np.float64)
    return case, store, frames, xpcs_file.XpcsFile(str(path))


def test_viewer_reads_both_analyses_and_the_frame_time(exported):
    _, store, _, xf = exported
    assert set(xf.atype) == {"Multitau", "Twotime"}
    assert xf.t0 == pytest.approx(DT) and xf.g2_t0 == pytest.approx(DT) and xf.c2_t0 == pytest.approx(DT)
    assert list(xf.c2_processed_bins) == list(range(1, store["roi_q"].size + 1))


def test_viewer_g2_delays_and_q_equal_ours(exported):
    _, store, _, xf = exported
    shift = 1 - store.attrs["g2_offset"]
    q, t_el, g2, g2_err, labels = xf.get_g2_data()
    np.testing.assert_allclose(t_el, store["lag"][1:], rtol=1e-12)            # frames x frame time = our lags (s)
    np.testing.assert_allclose(g2, store["g2"][0][:, 1:].T + shift, rtol=1e-12)
    np.testing.assert_allclose(q, store["roi_q"], rtol=1e-12)                 # every bin its own ring's q
    assert len(labels) == store["roi_q"].size


def test_viewer_labels_each_sector_with_its_ring_and_angle(exported):
    case, store, _, xf = exported
    rois = store.attrs["rois"]
    n_phi = rois["n_sectors"]
    for k, q in enumerate(store["roi_q"], start=1):
        label = xf.get_qbin_label(k)
        assert f"q={q:.5f}" in label
        if n_phi > 1:                   # the viewer's azimuth is -atan2(row - bcy, col - bcx)
            assert f"φ={-np.rad2deg(rois['phi_centres'][(k - 1) % n_phi]):.1f}" in label


def test_viewer_c2_maps_and_their_g2_equal_ours(exported):
    _, store, _, xf = exported
    shift = 1 - store.attrs["c2_offset"]          # the C2 form's baseline (g2 is multi-tau, baseline 1)
    c2 = store["c2"][0].astype(np.float64) + shift
    for k in range(c2.shape[0]):
        result = xf.get_twotime_c2(selection=k, correct_diag=False)
        np.testing.assert_allclose(result["c2_mat"], c2[k], rtol=1e-6)   # float32 maps
        assert result["delta_t"] == pytest.approx(DT)
        # independent: the mean of every diagonal of our C2; element i is lag i frames (lag 0 too:
        # the viewer plots element i at i x frame time)
        diagonal_means = [np.diagonal(c2[k], lag).mean() for lag in range(N_FRAMES)]
        np.testing.assert_allclose(result["g2_full"], diagonal_means, rtol=1e-10)
        length = result["g2_partial"].shape[1]
        assert length == N_FRAMES // result["g2_partial"].shape[0]
        last = slice(N_FRAMES - length - N_FRAMES % length, N_FRAMES - N_FRAMES % length)
        np.testing.assert_allclose(result["g2_partial"][-1], [np.diagonal(c2[k, last, last], lag).mean()
                                                              for lag in range(length)], rtol=1e-10)


def test_viewer_two_time_panel_shows_our_c2_offscreen(exported):
    """The viewer's own two-time plot (pyqtgraph widgets on an offscreen Qt) draws our map and g2."""
    pg = pytest.importorskip("pyqtgraph")
    from pyxpcsviewer.gui.control.plot.twotime import plot_twotime

    _, store, _, xf = exported
    app = pg.mkQApp()
    handles = {"saxs": pg.ImageView(), "dqmap": pg.ImageView(), "tt": pg.ImageView(), "c2g2": pg.PlotWidget()}
    k = store["roi_q"].size - 1
    plot_twotime(xf, handles, selection=k, correct_diag=False)
    app.processEvents()
    c2 = store["c2"][0, k].astype(np.float64) + 1 - store.attrs["c2_offset"]
    np.testing.assert_allclose(handles["tt"].image, c2, rtol=1e-6)
    full = handles["c2g2"].getPlotItem().listDataItems()[0]
    x, y = full.getOriginalDataset()
    np.testing.assert_allclose(x, np.arange(1, N_FRAMES) * DT, rtol=1e-12)            # seconds, every frame
    np.testing.assert_allclose(y, [np.diagonal(c2, lag).mean() for lag in range(1, N_FRAMES)], rtol=1e-10)


def test_viewer_saxs_and_intensity_equal_the_frames(exported):
    _, store, frames, xf = exported
    mean = frames.mean(axis=0)
    np.testing.assert_allclose(xf.saxs_2d, mean, rtol=1e-6)
    bins = xf.dqmap
    per_bin = np.array([mean[bins == k].mean() for k in range(1, store["roi_q"].size + 1)])
    n_phi = store.attrs["rois"]["n_sectors"]
    rings = per_bin.reshape(-1, n_phi)
    np.testing.assert_allclose(xf.saxs_1d["q"], store["roi_q"][::n_phi], rtol=1e-12)
    np.testing.assert_allclose(xf.saxs_1d["Iq"][0], rings.mean(axis=1), rtol=1e-10)   # average over sectors
    if n_phi > 1:
        np.testing.assert_allclose(xf.saxs_1d["Iq"][1:], rings.T, rtol=1e-10)          # one line per sector
    np.testing.assert_allclose(xf.Int_t[1], frames[:, xf.mask > 0].mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(xf.Int_t[0], np.arange(N_FRAMES))
    # the segments average back to the whole-series SAXS 1D (equal spans of 8 frames)
    np.testing.assert_allclose(np.nanmean(xf.Iqp, axis=0), rings.mean(axis=1), rtol=1e-10)
