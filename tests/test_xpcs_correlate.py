"""correlate_frames: multi-tau g2 in the C2 pass, C2 written ROI by ROI, frame binning and windows."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from speckleml.correlation import g2_from_c2, q_ring_rois, ring_edges, two_time
from speckleml.errors import InputError
from speckleml.stores import read_c2, write_c2, write_frames
from speckleml.synthetic import ou_speckle
from speckleml.xpcs.correlate import correlate_frames
from speckleml.xpcs.fit import curves_from_store, lags_within
from speckleml.xpcs.multitau import multitau_g2, multitau_lags

RINGS = dict(q_first=3.0, q_width=3.0, q_step=3.0, n_rings=4)
OPTIONS = dict(n_sectors=1, min_pixel_mean=0.0, max_memory_mib=0, **RINGS)


def labels_of(size):
    yy, xx = np.indices((size, size)) - size // 2
    return q_ring_rois(np.hypot(yy, xx), ring_edges(RINGS["q_first"], RINGS["q_width"], RINGS["q_step"],
                                                    RINGS["n_rings"]))[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("correlate")
    frames = ou_speckle(1000, 32, 8.0, seed=3, mean_counts=5.0).astype(np.float32)
    write_frames(root / "f.zarr", frames, attrs={"dt": 0.5})
    return root, frames


@pytest.mark.parametrize("normalization", ["classical", "pixel_mean"])
def test_multitau_from_the_c2_pass_equals_a_separate_pass(stack, tmp_path, normalization):
    root, frames = stack
    correlate_frames(root / "f.zarr", tmp_path / "c2.zarr", normalization=normalization, **OPTIONS)
    store = read_c2(tmp_path / "c2.zarr")
    lag, g2, err = multitau_g2(frames, labels_of(32), dt=0.5)
    np.testing.assert_allclose(store["lag"], lag)
    np.testing.assert_allclose(store["g2"][0], g2, rtol=1e-12)
    np.testing.assert_allclose(store["g2_err"][0], err, rtol=1e-12)
    # the last lags have one pair of frames: no error estimate there
    single = multitau_lags(1000)[2] == 1
    assert single.any() and np.isnan(store["g2_err"][0][:, single]).all()
    assert store.attrs["g2_estimator"] == "multitau" and store.attrs["g2_offset"] == 1.0
    np.testing.assert_allclose(store["c2"][0], two_time(frames, labels_of(32), normalization), rtol=2e-6,
                               atol=2e-6)


def test_c2_written_roi_by_roi_equals_the_in_memory_path_within_the_memory_bound(stack, tmp_path):
    root, frames = stack
    roi_c2 = 4 * 1000 * 1000                            # bytes of one ROI's C2 (4 MB)
    options = {**OPTIONS, "max_memory_mib": roi_c2 / 2**20}   # one ROI at a time
    tracemalloc.start()
    correlate_frames(root / "f.zarr", tmp_path / "c2.zarr", normalization="classical", g2="diagonal", **options)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tracemalloc.start()
    expected = two_time(frames, labels_of(32), "classical")   # every ROI at once
    full_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store = read_c2(tmp_path / "c2.zarr")
    np.testing.assert_allclose(store["c2"][0], expected, rtol=2e-6, atol=2e-6)
    g2, err = g2_from_c2(expected)
    np.testing.assert_allclose(store["g2"][0], g2, rtol=1e-5)
    assert store.attrs["g2_offset"] == 1.0 and store["lag"].size == 1000
    # C2 of 4 ROIs is 16 MB; the streamed path holds one ROI's C2, panels within the same
    # budget, and one block of raw frames (64 x 32 x 32 float32) with zarr's decoding buffers
    assert expected.nbytes == 4 * roi_c2 and full_peak >= expected.nbytes
    assert peak < 2 * roi_c2, peak


def test_frame_bin_and_c2_window(stack, tmp_path):
    root, frames = stack
    correlate_frames(root / "f.zarr", tmp_path / "c2.zarr", normalization="pixel_mean", frame_bin=2,
                     c2_frames=(10, 90), **OPTIONS)
    store = read_c2(tmp_path / "c2.zarr")
    binned = frames.reshape(500, 2, 32, 32).mean(axis=1, dtype=np.float64).astype(np.float32)
    np.testing.assert_allclose(store["c2"][0], two_time(binned[10:90], labels_of(32), "pixel_mean"),
                               rtol=2e-6, atol=2e-6)
    lag, g2, _ = multitau_g2(binned, labels_of(32), dt=1.0)   # multi-tau over every binned frame
    np.testing.assert_allclose(store["lag"], lag)
    np.testing.assert_allclose(store["g2"][0], g2, rtol=1e-12)
    assert store.attrs["dt"] == 1.0 and store.attrs["c2_frames"] == [10, 90] and store.attrs["g2_frames"] == 500


@pytest.mark.parametrize("options, message", [
    ({"frame_bin": 0}, "frame_bin"), ({"c2_frames": (5, 1400)}, "frame window"),
    ({"c2_frames": (7, 8)}, "at least 2 frames"), ({"g2": "fast"}, "g2 must be"), ({"buffers": 3}, "buffers")])
def test_bad_options_are_input_errors(stack, tmp_path, options, message):
    root, _ = stack
    with pytest.raises(InputError, match=message):
        correlate_frames(root / "f.zarr", tmp_path / "c2.zarr", normalization="classical", **{**OPTIONS, **options})
    assert not (tmp_path / "c2.zarr").exists()


def test_fit_points_without_an_error_are_left_out(tmp_path):
    lag = np.array([0, 1, 2, 3, 4, 6, 8, 12, 16], float)
    g2 = 1 + np.exp(-lag / 4)[None, None].repeat(2, axis=1)
    err = np.full_like(g2, 0.01)
    err[0, 0, -2:] = np.nan                              # single-pair lags of ROI 0
    err[0, 1] = np.nan                                   # ROI 1: no error at all -> unweighted
    write_c2(tmp_path / "c2.zarr", np.zeros((1, 2, 17, 17), np.float32), g2, lag, [1.0, 2.0], "classical",
             g2_err=err, attrs={"dt": 1.0, "g2_offset": 1.0, "g2_frames": 17})
    curves = list(curves_from_store(tmp_path / "c2.zarr", max_lag_fraction=1.0))
    np.testing.assert_array_equal(curves[0][3], lag[:-2])
    assert np.isfinite(curves[0][5]).all()
    np.testing.assert_array_equal(curves[1][3], lag) and curves[1][5] is None
    assert curves[1][5] is None
    # the fraction is of the series (17 frames), not of the number of multi-tau lags
    np.testing.assert_array_equal(lags_within(lag, {"dt": 1.0, "g2_frames": 17}, 0.5), lag <= 8.5)


@pytest.mark.parametrize("suffix", [".npy", ".npy.zip"])
def test_import_frames_streams_the_stack(tmp_path, suffix):
    import zipfile

    from speckleml.stores import read_frames
    from speckleml.xpcs.ingest import import_frames

    data = np.random.default_rng(1).poisson(3.0, (1000, 64, 64)).astype(np.uint16)   # 8 MB
    data[700] = 0
    np.save(tmp_path / "s.npy", data)
    source = tmp_path / f"s{suffix}"
    if suffix == ".npy.zip":
        with zipfile.ZipFile(source, "w") as archive:
            archive.write(tmp_path / "s.npy", "s.npy")
    tracemalloc.start()
    import_frames(source, tmp_path / "f.zarr", dt=0.1, max_frames=900)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store = read_frames(tmp_path / "f.zarr")
    np.testing.assert_array_equal(store["frames"][0], data[:900].astype(np.float32))
    # the float32 copy of the stack would be 14.7 MB: blocks of 64 frames (1 MB each) are held
    # instead (a few at once: the block, its float32 copy, the encoder's buffer)
    assert peak < 6 * 64 * 64 * 64 * 4, peak


def test_import_frames_rejects_non_finite_frames_without_writing(tmp_path):
    from speckleml.xpcs.ingest import import_frames

    data = np.ones((200, 8, 8), np.float32)
    data[150, 2, 2] = np.nan
    np.save(tmp_path / "s.npy", data)
    with pytest.raises(InputError, match="NaN"):
        import_frames(tmp_path / "s.npy", tmp_path / "f.zarr", dt=0.1)
    assert not (tmp_path / "f.zarr").exists()


def test_frame_stack_reads_npy_blocks_in_any_order(tmp_path):
    from speckleml.xpcs.frames import open_frame_stack

    data = np.arange(2 * 5 * 3 * 4, dtype=np.int32).reshape(2, 5, 3, 4)
    np.save(tmp_path / "s.npy", data)
    with open_frame_stack(tmp_path / "s.npy") as stack:
        assert stack.shape == data.shape
        np.testing.assert_array_equal(stack[1, 2:5], data[1, 2:5])
        np.testing.assert_array_equal(stack[0, 0:2], data[0, 0:2])
    np.save(tmp_path / "f.npy", np.asfortranarray(data[0]))
    with open_frame_stack(tmp_path / "f.npy") as stack:
        np.testing.assert_array_equal(stack[1:3], data[0, 1:3])
