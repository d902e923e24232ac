"""Bad numbers, files and configs of the xpcs chain (issue 11): one line, exit 2, nothing written."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_cli
from speckleml.xpcs import fit

RINGS = ("--q-first", "1", "--q-width", "2", "--q-step", "2", "--n-rings", "3")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A small synthetic frames store, its c2 store and a g2 stack on disk."""
    root = tmp_path_factory.mktemp("xpcs_err")
    run_cli("synthetic-frames", root / "f.zarr", "--frames", "24", "--size", "16", "--tau", "4",
            "--mean-counts", "5", check=True)
    run_cli("correlate", root / "f.zarr", root / "c2.zarr", *RINGS, check=True)
    np.save(root / "g.npy", np.random.default_rng(0).poisson(3, (6, 8, 8)).astype(np.float32))
    return root


def assert_error(proc, output, *words):
    """Exit 2, the last stderr line is the error and names every word, nothing at ``output``."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "error" in last, last
    for word in words:
        assert word in last, (word, last)
    assert not output.exists()
    assert not list(output.parent.glob(f"{output.name}.tmp-*"))


@pytest.mark.parametrize("command, words", [
    (["import-frames", "{root}/g.npy", "{out}", "--dt", "0"], ["--dt", "> 0"]),
    (["import-frames", "{root}/g.npy", "{out}", "--dt", "-1"], ["--dt", "> 0"]),
    (["import-frames", "{root}/g.npy", "{out}", "--dt", "nan"], ["--dt", "finite"]),
    (["import-frames", "{root}/g.npy", "{out}", "--dt", "inf"], ["--dt", "finite"]),
    (["synthetic-frames", "{out}", "--frames", "8", "--size", "8", "--dt", "-1"], ["--dt", "> 0"]),
    (["synthetic-frames", "{out}", "--frames", "1"], ["--frames", ">= 2"]),
    (["import-frames", "{root}/g.npy", "{out}", "--max-frames", "-1"], ["--max-frames", ">= 1"]),
    (["import-frames", "{root}/g.npy", "{out}", "--max-frames", "0"], ["--max-frames", ">= 1"]),
    (["import-frames", "{root}/g.npy", "{out}", "--pixel-size", "0.1", "--distance", "1000", "--wavelength", "1",
      "--center", "nan", "nan"], ["--center", "finite"]),
    (["import-frames", "{root}/g.npy", "{out}", "--pixel-size", "-0.1", "--distance", "1000", "--wavelength", "1",
      "--center", "1", "1"], ["--pixel-size", "> 0"]),
    (["fit-g2", "{root}/c2.zarr", "{out}", "--fix-gamma", "0"], ["--fix-gamma", "[0.2, 4]"]),
    (["fit-g2", "{root}/c2.zarr", "{out}", "--fix-gamma", "-1"], ["--fix-gamma", "[0.2, 4]"]),
    (["fit-g2", "{root}/c2.zarr", "{out}", "--fix-gamma", "5"], ["--fix-gamma", "[0.2, 4]"]),
    (["fit-g2", "{root}/c2.zarr", "{out}", "--max-lag-fraction", "0"], ["--max-lag-fraction", "(0, 1]"]),
    (["correlate", "{root}/f.zarr", "{out}", *RINGS, "--max-memory", "nan"], ["--max-memory", "finite"]),
    (["correlate", "{root}/f.zarr", "{out}", *RINGS, "--max-memory", "-5"], ["--max-memory", ">= 0"]),
    (["correlate", "{root}/f.zarr", "{out}", "--q-first", "1", "--q-width", "nan", "--q-step", "2",
      "--n-rings", "3"], ["--q-width", "finite"]),
    (["correlate", "{root}/f.zarr", "{out}", *RINGS, "--n-sectors", "0"], ["--n-sectors", ">= 1"]),
    (["import-c2", "{root}/g.npy", "{out}", "--dt", "nan"], ["--dt", "finite"]),
    (["plot-g2", "{root}/c2.zarr", "{root}/x.csv", "{out}", "--roi", "-1"], ["--roi", ">= 0"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] in ("import-frames", "synthetic-frames",
                                                                         "fit-g2", "correlate", "import-c2",
                                                                         "plot-g2") else None)
def test_numbers_are_validated_where_they_enter(chain, tmp_path, command, words):
    out = tmp_path / "out.zarr"
    proc = run_cli(*[w.format(root=chain, out=out) for w in command])
    assert_error(proc, out, *words)


def test_fix_gamma_holds_the_value_given(chain, tmp_path):
    """A held gamma is the one given, at the bounds too (it was `or 1.0`: 0 became 1)."""
    for gamma in ("0.2", "4"):
        run_cli("fit-g2", chain / "c2.zarr", tmp_path / "fits.csv", "--fix-gamma", gamma, check=True)
        fits = pd.read_csv(tmp_path / "fits.csv")
        np.testing.assert_allclose(fits["gamma"], float(gamma), rtol=1e-9)


def test_zero_frames_are_an_error_not_a_nan_c2(tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((20, 16, 16), np.uint16))
    proc = run_cli("import-frames", tmp_path / "z.npy", tmp_path / "z.zarr", check=True)
    assert "all zero" in proc.stderr                                   # the import warns, naming frames
    proc = run_cli("correlate", tmp_path / "z.zarr", tmp_path / "c2.zarr", *RINGS)
    assert_error(proc, tmp_path / "c2.zarr", "z.zarr", "C2 undefined")


def test_negative_counts_warn_naming_the_frames(tmp_path):
    data = np.ones((5, 8, 8), np.float32)
    data[3, 2, 2] = -1
    np.save(tmp_path / "neg.npy", data)
    proc = run_cli("import-frames", tmp_path / "neg.npy", tmp_path / "neg.zarr", check=True)
    assert "negative counts (first: [3])" in proc.stderr


def test_mask_that_is_not_an_array_names_the_file(chain, tmp_path):
    (tmp_path / "m.npy").write_text("1 0\n")
    out = tmp_path / "o.zarr"
    assert_error(run_cli("import-frames", chain / "g.npy", out, "--mask", tmp_path / "m.npy"), out, "m.npy", "mask")


def test_complex_c2_is_rejected(tmp_path):
    np.save(tmp_path / "cx.npy", np.ones((8, 8)) * (1 + 1j))
    out = tmp_path / "cx.zarr"
    assert_error(run_cli("import-c2", tmp_path / "cx.npy", out, "--normalization", "classical"), out,
                 "cx.npy", "must be real")


def test_empty_frame_time_names_the_dataset(tmp_path):
    with h5py.File(tmp_path / "ft.hdf", "w") as handle:
        handle["/xpcs/twotime/correlation_map/c2_00001"] = np.triu(np.ones((8, 8)))
        handle["/entry/instrument/detector_1/frame_time"] = np.zeros(0)
    out = tmp_path / "x.zarr"
    assert_error(run_cli("import-c2", tmp_path / "ft.hdf", out), out, "ft.hdf", "frame_time", "empty")


def test_npy_c2_needs_its_normalisation_stated(tmp_path):
    np.save(tmp_path / "c.npy", np.eye(8) + 1)
    out = tmp_path / "c.zarr"
    assert_error(run_cli("import-c2", tmp_path / "c.npy", out), out, "c.npy", "--normalization")


def test_header_only_g2_table_is_an_error(tmp_path):
    (tmp_path / "h.csv").write_text("lag,g2\n")
    out = tmp_path / "fits.csv"
    assert_error(run_cli("fit-g2", tmp_path / "h.csv", out), out, "h.csv", "no rows")


def test_fit_table_without_its_columns_names_the_file(chain, tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    out = tmp_path / "x.png"
    assert_error(run_cli("plot-g2", chain / "c2.zarr", tmp_path / "bad.csv", out), out, "bad.csv", "lacks column")


def test_export_with_frames_of_another_detector_is_an_error(chain, tmp_path):
    np.save(tmp_path / "w.npy", np.ones((5, 12, 20), np.float32))
    run_cli("import-frames", tmp_path / "w.npy", tmp_path / "wide.zarr", check=True)
    out = tmp_path / "g.hdf"
    assert_error(run_cli("export-aps", chain / "c2.zarr", out, "--frames", tmp_path / "wide.zarr"), out,
                 "wide.zarr", "(12, 20)", "(16, 16)")


def test_export_writes_the_incident_energy_before_the_rename(tmp_path, monkeypatch):
    """With geometry, the file is complete when it appears at its final path (it used to be
    reopened after the rename to add the energy)."""
    import os

    from speckleml import atomic
    from speckleml.xpcs.aps import HC_KEV_ANGSTROM
    from speckleml.xpcs.export import export_aps

    frames = np.random.default_rng(1).poisson(4, (12, 24, 24)).astype(np.float32)
    np.save(tmp_path / "s.npy", frames)
    run_cli("import-frames", tmp_path / "s.npy", tmp_path / "f.zarr", "--pixel-size", "0.1", "--distance", "1000",
            "--wavelength", "1.5", "--center", "12", "12", "--dt", "0.1", check=True)
    run_cli("correlate", tmp_path / "f.zarr", tmp_path / "c2.zarr", "--q-first", "8e-4", "--q-width", "1e-3",
            "--q-step", "1e-3", "--n-rings", "2", check=True)
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        with h5py.File(src, "r") as handle:
            seen.append(float(handle["/entry/instrument/incident_beam/incident_energy"][()]))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    export_aps(tmp_path / "c2.zarr", tmp_path / "o.hdf", frames=tmp_path / "f.zarr")
    assert seen == [pytest.approx(HC_KEV_ANGSTROM / 1.5)]
    with h5py.File(tmp_path / "o.hdf", "r") as handle:
        assert handle["/xpcs/qmap/dynamic_roi_map"].shape == (24, 24)


# --------------------------------------------------------------------------- workflow config


@pytest.mark.parametrize("xpcs, key, words", [
    ({"frames": "no/such/stack.npy"}, "xpcs.frames", ["no/such/stack.npy", "does not exist"]),
    ({"frames": None, "synthetic": {"rois": {"q_first": 4, "q_width": 3, "q_step": 2, "n_rings": 2}}},
     "xpcs.synthetic.rois.q_step", ["overlap"]),
    ({"rois": {"q_width": 3.0e-4, "q_step": 2.0e-4}}, "xpcs.rois.q_step", ["overlap"]),
    ({"fit": {"fix_gamma": 0}}, "xpcs.fit.fix_gamma", ["minimum"]),
    ({"fit": {"fix_gamma": 5}}, "xpcs.fit.fix_gamma", ["maximum"]),
    ({"dt": float("nan")}, "xpcs.dt", ["finite"]),
    ({"frames": None, "geometry": {"center": [float("nan"), 1.0]}}, "xpcs.geometry.center", ["finite"]),
])
def test_bad_xpcs_config_names_the_key(tmp_path, xpcs, key, words):
    from test_workflow import snakemake

    config = {"studies": ["xpcs"], "xpcs": xpcs}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "c.yaml"))
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("invalid config:")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    assert lines[0].startswith(f"invalid config: {key}:"), lines[0]
    for word in words:
        assert word in lines[0]


# --------------------------------------------------------------------------- APS layouts met in practice


def _truth(k, n=6):
    i, j = np.indices((n, n))
    return 1 + 0.3 * np.exp(-np.abs(i - j) / (1 + k))


@pytest.mark.parametrize("layout", ["triu", "tril", "triu_nan", "unpadded", "qphi"])
def test_import_c2_reads_the_aps_layout_variants(tmp_path, layout):
    n_maps = 11 if layout == "unpadded" else 6 if layout == "qphi" else 3
    with h5py.File(tmp_path / "a.hdf", "w") as handle:
        handle["/entry/instrument/detector_1/frame_time"] = 0.5
        for k in range(n_maps):
            full = _truth(k)
            stored = {"tril": np.tril(full), "triu_nan": np.where(np.tri(6, k=-1, dtype=bool), np.nan, full)}.get(
                layout, np.triu(full))
            name = f"c2_{k + 1}" if layout == "unpadded" else f"c2_{k + 1:05d}"
            handle[f"/xpcs/twotime/correlation_map/{name}"] = stored
        if layout == "qphi":                                   # 3 q x 2 phi, bin k -> ring k // 2
            handle["/xpcs/qmap/dynamic_v_list_dim0"] = [0.002, 0.004, 0.006]
            handle["/xpcs/qmap/dynamic_num_pts"] = [3, 2]
            handle["/xpcs/twotime/processed_bins"] = np.arange(1, 7)
        else:
            handle["/xpcs/qmap/dynamic_v_list_dim0"] = 0.001 * np.arange(1, n_maps + 1)
    run_cli("import-c2", tmp_path / "a.hdf", tmp_path / "c2.zarr", check=True)
    from speckleml.stores import read_c2

    store = read_c2(tmp_path / "c2.zarr")
    np.testing.assert_allclose(store["c2"][0], [_truth(k) for k in range(n_maps)], rtol=1e-6)
    expected_q = [0.002, 0.002, 0.004, 0.004, 0.006, 0.006] if layout == "qphi" else 0.001 * np.arange(1, n_maps + 1)
    np.testing.assert_allclose(store["roi_q"], expected_q)
    assert store.attrs["normalization"] == "classical" and store.attrs["dt"] == 0.5


def test_export_of_rings_and_sectors_reads_back_each_bins_ring(tmp_path):
    np.save(tmp_path / "s.npy", np.random.default_rng(2).poisson(5, (30, 40, 40)).astype(np.float32))
    run_cli("import-frames", tmp_path / "s.npy", tmp_path / "f.zarr", "--dt", "0.1", check=True)
    run_cli("correlate", tmp_path / "f.zarr", tmp_path / "c2.zarr", "--q-first", "4", "--q-width", "4",
            "--q-step", "4", "--n-rings", "3", "--n-sectors", "4", check=True)
    run_cli("export-aps", tmp_path / "c2.zarr", tmp_path / "o.hdf", "--frames", tmp_path / "f.zarr", check=True)
    with h5py.File(tmp_path / "o.hdf", "r") as handle:
        np.testing.assert_allclose(handle["/xpcs/qmap/dynamic_v_list_dim0"][()], [6, 10, 14])
        np.testing.assert_array_equal(handle["/xpcs/qmap/dynamic_num_pts"][()], [3, 4])
        # sector centres -135, -45, 45, 135 deg of atan2(row, col), written in the APS readers'
        # convention phi = -atan2(row - bcy, col - bcx)
        np.testing.assert_allclose(handle["/xpcs/qmap/dynamic_v_list_dim1"][()], [135, 45, -45, -135])
    run_cli("import-c2", tmp_path / "o.hdf", tmp_path / "back.zarr", check=True)
    from speckleml.stores import read_c2

    np.testing.assert_allclose(read_c2(tmp_path / "back.zarr")["roi_q"], np.repeat([6, 10, 14], 4))


def test_unreadable_user_files_name_the_file(tmp_path):
    (tmp_path / "e.npy").write_bytes(b"")
    out = tmp_path / "o.zarr"
    assert_error(run_cli("import-frames", tmp_path / "e.npy", out), out, "e.npy", "cannot read frames")
    (tmp_path / "n.csv").write_text("lag,g2\n1,abc\n2,1.2\n3,1.1\n4,1.0\n5,1.0\n")
    out = tmp_path / "fits.csv"
    assert_error(run_cli("fit-g2", tmp_path / "n.csv", out), out, "n.csv", "'g2'", "not a number")


def test_cli_schema_and_library_state_the_same_ranges_and_names():
    """The CLI keeps literal copies (its module imports no numpy); they must not drift."""
    from speckleml import correlation
    from speckleml.schema import load_schema
    from speckleml.xpcs import cli, fit

    schema = load_schema("xpcs")["properties"]
    gamma = schema["fit"]["properties"]["fix_gamma"]
    assert cli.GAMMA_RANGE == fit.GAMMA_RANGE == (gamma["minimum"], gamma["maximum"])
    assert cli.NORMALIZATIONS == correlation.NORMALIZATIONS
    assert tuple(schema["correlate"]["properties"]["normalization"]["enum"]) == correlation.NORMALIZATIONS
    clustering = load_schema("clustering")["properties"]["normalization"]["enum"]
    assert set(clustering) == set(correlation.NORMALIZATIONS)


def test_a_held_gamma_outside_the_fit_bounds_is_refused_by_the_library(tmp_path):
    from speckleml.errors import InputError

    (tmp_path / "g.csv").write_text("lag,g2\n" + "".join(f"{t},{1 + 0.3 * np.exp(-2 * t)}\n" for t in (0.1, 0.3, 1, 3)))
    for gamma in (0.0, 0.1, 4.5):
        with pytest.raises(InputError, match="fix_gamma"):
            fit.fit_g2_curves(tmp_path / "g.csv", tmp_path / "f.csv", max_lag_fraction=0.5, fix_gamma=gamma)
    assert not (tmp_path / "f.csv").exists()
