"""Bad input to the clustering stages: one line naming the file or option, exit 2, nothing written.

Each test reproduces an item of the fresh-user trial (2026-11-30) that was accepted silently.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli
from test_clustering import _toy_library
from speckleml.clustering.model import AutoencoderConfig, C2Autoencoder, save_model


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speckleml: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _similar(tmp_path, *extra, model="model.pt", crops="crops.zarr"):
    return run_cli("clustering", "similar", tmp_path / model, tmp_path / "latents.zarr", "--crops", tmp_path / crops,
                   "--query-class", "toy1", "--device", "cpu", "--out", tmp_path / "nn.csv", *extra)


def _toy_two_classes(tmp_path):
    return _toy_library(tmp_path, labels=np.repeat([0, 1], 6), series=np.repeat(np.arange(6), 2))


def test_similar_refuses_a_crops_store_the_latents_were_not_made_from(tmp_path):
    _toy_two_classes(tmp_path)
    # the same crops with other labels: item numbers match, classes do not (the trial's crops2.zarr)
    from speckleml.clustering.crops import CROPS
    from speckleml.stores import read_store, write_store

    store = read_store(tmp_path / "crops.zarr", CROPS)
    arrays = dict(store.arrays)
    arrays["label"] = arrays["label"][::-1].copy()
    write_store(tmp_path / "crops2.zarr", CROPS, arrays, attrs=dict(store.attrs))
    proc = _similar(tmp_path, "-k", "2", "--n-queries", "2", crops="crops2.zarr")
    _one_line_error(proc, "crops2.zarr: not the crops store", "latents.zarr")
    assert not (tmp_path / "nn.csv").exists()
    # the recorded store itself passes
    assert _similar(tmp_path, "-k", "2", "--n-queries", "2").returncode == 0


def test_similar_refuses_another_model_of_the_same_latent_size(tmp_path):
    _toy_two_classes(tmp_path)
    torch.manual_seed(1)
    save_model(tmp_path / "model2.pt", C2Autoencoder(AutoencoderConfig(crop=64, latent=8)).eval())
    proc = _similar(tmp_path, "-k", "2", "--n-queries", "2", model="model2.pt")
    _one_line_error(proc, "model2.pt: not the model", "latents.zarr")
    assert not (tmp_path / "nn.csv").exists()


def test_similar_refuses_more_neighbours_or_queries_than_exist(tmp_path):
    _toy_two_classes(tmp_path)      # 12 crops, 6 of class toy1, 2 per series
    # 12 crops - the 2 of the query's own series = 10 allowed; 11 was silently cut to 10
    _one_line_error(_similar(tmp_path, "-k", "11", "--n-queries", "1", "--exclude-series"), "-k/--neighbours 11")
    assert _similar(tmp_path, "-k", "10", "--n-queries", "1", "--exclude-series").returncode == 0
    (tmp_path / "nn.csv").unlink()
    # 7 queries of a 6-crop class were silently cut to 6
    _one_line_error(_similar(tmp_path, "-k", "2", "--n-queries", "7"), "--n-queries 7", "only 6 crops")
    assert not (tmp_path / "nn.csv").exists()


@pytest.mark.parametrize("argv, needle", [
    (("similar", "m.pt", "l.zarr", "q.npy", "--out", "o.csv", "-k", "1000"), "argument -k/--neighbours: must be <= 100"),
    (("similar", "m.pt", "l.zarr", "--n-queries", "500", "--out", "o.csv"), "argument --n-queries: must be <= 100"),
    (("cluster", "l.zarr", "--n-neighbors", "1", "--assignments", "a", "--elbow", "e", "--scores", "s"),
     "argument --n-neighbors: must be >= 2"),
    (("cluster", "l.zarr", "--min-dist", "1.5", "--assignments", "a", "--elbow", "e", "--scores", "s"),
     "argument --min-dist: must be <= 1"),
    (("crops", "f.zarr", "c.zarr", "--crop", "100"), "argument --crop: must be one of [64, 128"),
    (("crops", "f.zarr", "c.zarr", "--per-map", "1001"), "argument --per-map: must be <= 1000"),
    (("simulate", "a.zarr", "b.zarr", "--size", "3"), "argument --size: must be >= 8"),
    (("train", "c.zarr", "m.pt", "--val-fraction", "1"), "argument --val-fraction: must be < 1"),
    (("train", "c.zarr", "m.pt", "--pools", "4", "0", "2"), "argument --pools: must be an integer >= 1"),
    (("cluster", "l.zarr", "--latent-transform", "log", "--assignments", "a", "--elbow", "e", "--scores", "s"),
     "argument --latent-transform: invalid choice: 'log'"),
])
def test_options_outside_the_schema_bounds_are_refused_naming_the_option(tmp_path, argv, needle):
    proc = run_cli("clustering", *argv, cwd=tmp_path)
    _one_line_error(proc, needle)
    assert list(tmp_path.iterdir()) == []


def test_option_bounds_are_read_from_the_schema():
    import argparse

    from speckleml.cli_types import schema_type
    from speckleml.schema import schema_node

    check = schema_type(int, "clustering.similar.neighbours")
    top = schema_node("clustering.similar.neighbours")["maximum"]
    assert check(str(top)) == top
    with pytest.raises(argparse.ArgumentTypeError, match=f"<= {top}"):
        check(str(top + 1))


@pytest.fixture(scope="module")
def library_128(tmp_path_factory):
    """A 6-series library of 128 frames simulated for a 64 x 1-frame crop window."""
    path = tmp_path_factory.mktemp("lib")
    run_cli("-q", "clustering", "simulate", path / "lib.zarr", path / "drive.zarr", "--per-class", "1",
            "--frames", "128", "--drive-frames", "128", "--segment", "64", "--crop", "64", "--crop-bin", "1",
            "--size", "16", "--q-inner", "0.15", "--q-outer", "0.45", check=True)
    return path / "lib.zarr"


def test_crops_refuse_another_window_than_the_library_was_simulated_for(library_128, tmp_path):
    proc = run_cli("clustering", "crops", library_128, tmp_path / "crops.zarr", "--crop", "64", "--crop-bin", "2",
                   "--sectors", "2", "--per-map", "1")
    _one_line_error(proc, "lib.zarr: simulated for a 64 x 1-frame crop window", "--crop/--crop-bin give 64 x 2")
    assert not (tmp_path / "crops.zarr").exists()


def test_train_refuses_pools_that_do_not_divide_the_crop(library_128, tmp_path):
    run_cli("-q", "clustering", "crops", library_128, tmp_path / "crops.zarr", "--crop", "64", "--crop-bin", "1",
            "--sectors", "2", "--per-map", "1", check=True)
    proc = run_cli("clustering", "train", tmp_path / "crops.zarr", tmp_path / "model.pt", "--pools", "4", "4", "8",
                   "--epochs", "1")
    _one_line_error(proc, "crop 64 must be divisible by the product of the pools 4x4x8 = 128")
    assert not (tmp_path / "model.pt").exists()


def test_crops_refuse_more_windows_per_map_than_distinct_ones(library_128, tmp_path):
    # 128 frames, 64-frame windows: 65 distinct starts
    proc = run_cli("clustering", "crops", library_128, tmp_path / "crops.zarr", "--crop", "64", "--crop-bin", "1",
                   "--sectors", "2", "--per-map", "66")
    _one_line_error(proc, "--per-map 66", "only 65 distinct")
    assert not (tmp_path / "crops.zarr").exists()


def test_cluster_apply_refuses_latents_of_another_model(tmp_path):
    from speckleml.clustering.cluster import LATENTS
    from speckleml.stores import read_store, write_store

    _toy_two_classes(tmp_path)
    store = read_store(tmp_path / "latents.zarr", LATENTS)
    arrays = {k: store[k] for k in ("latent", "recon_l1", "label", "series", "sector", "start", "kww_tau", "kww_bound")}
    write_store(tmp_path / "other.zarr", LATENTS, arrays,
                attrs={**dict(store.attrs), "model": "model2.pt", "model_checksum": "sha256:" + "0" * 64})
    out = {name: tmp_path / f"{name}.csv" for name in ("a", "e", "s", "d")}
    proc = run_cli("clustering", "cluster", tmp_path / "latents.zarr", "--k-max", "4", "--embedding", "pca",
                   "--assignments", out["a"], "--elbow", out["e"], "--scores", out["s"],
                   "--apply", tmp_path / "other.zarr", "--apply-out", out["d"])
    _one_line_error(proc, "other.zarr: encoded by another model")
    assert not any(path.exists() for path in out.values())


def _figure_inputs(tmp_path):
    """Valid figure CSVs for the toy library (12 crops)."""
    n = 12
    paths = {name: tmp_path / f"{name}.csv" for name in ("clusters", "elbow", "scores", "drive", "nn")}
    pd.DataFrame({"item": range(n), "label": 0, "cluster": np.arange(n) % 2, "kww_tau": 5.0, "kww_bound": 0,
                  "embed_x": np.arange(n, dtype=float), "embed_y": 0.0}).to_csv(paths["clusters"], index=False)
    pd.DataFrame({"k": [2, 3], "distortion": [2.0, 1.0], "chosen": [True, False]}).to_csv(paths["elbow"], index=False)
    pd.DataFrame({"metric": ["k"], "value": [2.0]}).to_csv(paths["scores"], index=False)
    pd.DataFrame({"t_start": [0.0, 32.0], "cluster": [0, 1]}).to_csv(paths["drive"], index=False)
    pd.DataFrame({"query": 0, "query_item": -1, "rank": [1, 2], "item": [3, 4], "distance": [0.1, 0.2],
                  "label": 0}).to_csv(paths["nn"], index=False)
    return paths


def _figures(tmp_path, paths, drive):
    return run_cli("clustering", "figures", "--crops", tmp_path / "crops.zarr", "--clusters", paths["clusters"],
                   "--elbow", paths["elbow"], "--scores", paths["scores"], "--drive-frames", drive,
                   "--drive-clusters", paths["drive"], "--neighbours", paths["nn"], "--out-dir", tmp_path / "figs")


@pytest.mark.parametrize("name, change, needle", [
    ("elbow", lambda t: t.drop(columns="distortion"), "elbow.csv: missing column(s) distortion"),
    ("nn", lambda t: t.drop(columns=["rank", "item"]), "nn.csv: missing column(s) rank, item"),
    ("clusters", lambda t: t.assign(cluster="a"), "clusters.csv: column cluster must hold whole numbers"),
    ("drive", lambda t: t.assign(t_start=["x", "y"]), "drive.csv: column t_start must hold numbers"),
    ("scores", lambda t: t.iloc[:0], "scores.csv: no rows"),
    ("nn", lambda t: t.assign(item=[3, 99]), "nn.csv: items outside the 12 crops"),
    ("clusters", lambda t: t.iloc[::-1], "clusters.csv: items are not the 12 crops"),
])
def test_figures_validate_every_csv_before_drawing(tmp_path, library_128, name, change, needle):
    _toy_library(tmp_path)
    paths = _figure_inputs(tmp_path)
    change(pd.read_csv(paths[name])).to_csv(paths[name], index=False)
    proc = _figures(tmp_path, paths, library_128.with_name("drive.zarr"))
    _one_line_error(proc, needle)
    assert not (tmp_path / "figs").exists()


def test_figures_refuse_a_driven_run_of_other_classes(tmp_path, library_128):
    _toy_library(tmp_path)          # classes toy0, not the simulator's six
    proc = _figures(tmp_path, _figure_inputs(tmp_path), library_128.with_name("drive.zarr"))
    _one_line_error(proc, "drive.zarr: classes", "crops.zarr")
    assert not (tmp_path / "figs").exists()


def test_figures_accept_the_valid_toy_inputs(tmp_path, library_128):
    """The control of the tests above: the same inputs unchanged draw every figure."""
    from speckleml.clustering.crops import CROPS
    from speckleml.clustering.simulate import CLASSES
    from speckleml.stores import read_store, write_store

    _toy_library(tmp_path)
    store = read_store(tmp_path / "crops.zarr", CROPS)
    shutil.rmtree(tmp_path / "crops.zarr")
    write_store(tmp_path / "crops.zarr", CROPS, dict(store.arrays), attrs={**store.attrs, "classes": list(CLASSES)})
    proc = _figures(tmp_path, _figure_inputs(tmp_path), library_128.with_name("drive.zarr"))
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "figs").iterdir()} >= {"fig2.png", "fig3.png", "fig4.png", "supp_fig3.png"}


def test_checkpoints_whose_config_does_not_fit_their_weights_are_one_line_errors(tmp_path):
    from speckleml.errors import InputError
    from speckleml.clustering.model import load_model

    save_model(tmp_path / "good.pt", C2Autoencoder(AutoencoderConfig(crop=64, latent=8, pools=(4, 2, 2))).eval())
    checkpoint = torch.load(tmp_path / "good.pt", weights_only=True)
    broken = {
        "edited_pool": {**checkpoint["config"], "pool": 4},                 # both pool and pools
        "old_pool_wrong_weights": {k: v for k, v in {**checkpoint["config"], "pool": 4}.items() if k != "pools"},
        "pools_none": {**checkpoint["config"], "pools": None},
        "pools_short": {**checkpoint["config"], "pools": [4, 2]},
    }
    for name, config in broken.items():
        torch.save({**checkpoint, "config": config}, tmp_path / f"{name}.pt")
        with pytest.raises(InputError, match=f"{name}.pt: not a checkpoint of the C2 autoencoder"):
            load_model(tmp_path / f"{name}.pt")
    assert load_model(tmp_path / "good.pt")[0].config.pools == (4, 2, 2)
