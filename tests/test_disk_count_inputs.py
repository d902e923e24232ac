"""disk_count bad inputs (fresh-user report): every file and option the study reads is checked,
with one line naming the file or option, exit 2 and nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speckleml.cli import main
from speckleml.disk_count import simulate

torch = pytest.importorskip("torch")


def run(capsys, *args) -> tuple[int, str]:
    """``speckleml ARGS`` in this process: exit code and stderr (argparse errors exit too)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()


def assert_refused(capsys, args, *words, output=None):
    code, err = run(capsys, *args)
    assert code == 2, err
    assert "Traceback" not in err and sum("error:" in line for line in err.splitlines()) == 1, err
    assert err.splitlines()[-1].startswith("speckleml") and "error:" in err.splitlines()[-1], err
    for word in words:
        assert word in err.splitlines()[-1], err
    if output is not None:
        assert not output.exists()


@pytest.fixture(scope="module")
def quadrant_model(tmp_path_factory):
    """An untrained 3-class model for 33x33 quadrant patterns, and one disk pattern on its grid."""
    from speckleml.disk_count.model import build_resnet, save_model

    root = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    meta = {"arch": "resnet18", "classes": [2, 6, 20], "block": 5, "bin": 1, "source_size": 33,
            "k_grid": "quadrant"}
    save_model(root / "m.pt", build_resnet("resnet18", 3), meta)
    pattern = simulate.disk_speckle([simulate.random_system(6, "mono", np.random.default_rng(0))], 33)[0]
    return root / "m.pt", pattern


@pytest.mark.parametrize("case,words", [
    ("centred", ["not on the model's quadrant k grid", "(16, 16)"]),   # fftshifted pattern, quadrant model
    ("zero", ["I(k = 0) = 0"]),
    ("complex", ["real-valued", "complex"]),
    ("small", ["20x20", "smaller than the model's 33x33"]),
    ("empty", ["no patterns"]),
    ("nan", ["NaN"]),
])
def test_predict_refuses_patterns_the_model_cannot_classify(tmp_path, capsys, quadrant_model, case, words):
    """Off-grid, all-zero, complex, smaller-than-training, empty and NaN patterns: one line naming
    the file, exit 2, no CSV; the same pattern on the model's grid is classified."""
    model, pattern = quadrant_model
    system = simulate.random_system(6, "mono", np.random.default_rng(0))
    bad = {"centred": simulate.disk_speckle([system], 33, grid="centred")[0],
           "zero": np.zeros((33, 33)), "complex": pattern.astype(complex), "small": pattern[:20, :20],
           "empty": np.zeros((0, 33, 33)), "nan": np.where(np.eye(33, dtype=bool), np.nan, pattern)}[case]
    np.save(tmp_path / "p.npy", bad)
    assert_refused(capsys, ["disk-count", "predict", model, tmp_path / "p.npy", "--device", "cpu",
                            "--output", tmp_path / "out.csv"], "p.npy", *words, output=tmp_path / "out.csv")
    np.save(tmp_path / "good.npy", pattern)
    code, err = run(capsys, "disk-count", "predict", model, tmp_path / "good.npy", "--device", "cpu")
    assert code == 0, err


def test_k_grid_check_is_the_k0_maximum_of_disk_speckle():
    """|F(k)| <= F(0) for disk speckle: simulated patterns of both grids pass, a shifted one fails."""
    from speckleml.disk_count.predict import check_k_grid
    from speckleml.errors import InputError

    rng = np.random.default_rng(4)
    systems = [simulate.random_system(n, "poly", rng) for n in (2, 9, 20)]
    for grid in ("quadrant", "centred"):
        patterns = np.concatenate([simulate.disk_speckle([s], 31, grid=grid) for s in systems])
        check_k_grid(patterns, grid, "x.npy")
        with pytest.raises(InputError, match="x.npy: pattern 0"):
            check_k_grid(np.roll(patterns, 3, axis=-1), grid, "x.npy")
    masked = np.ones((31, 31), bool)
    masked[0, 0] = False  # a beamstop over k = 0: nothing to check against
    check_k_grid(np.roll(patterns, 3, axis=-1), "quadrant", "x.npy", masked)


def write_csvs(root):
    pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6],
                  "train_accuracy": [0.4, 0.7], "val_accuracy": [0.3, 0.6]}).to_csv(root / "history.csv", index=False)
    pd.DataFrame([[3, 1], [0, 4]], index=pd.Index([2, 6], name="true"), columns=["2", "6"]).to_csv(
        root / "confusion.csv")
    pd.DataFrame({"n_disks": [2, 6], "raw": [1.0, 2.0], "shifted": [1.0, 2.0], "absolute": [1.0, 2.0],
                  "normalized": [1.0, 2.0]}).to_csv(root / "moments.csv", index=False)
    pd.DataFrame({"class": ["Disks_02"], "precision": [1.0], "recall": [1.0], "f1": [1.0],
                  "support": [3]}).to_csv(root / "metrics.csv", index=False)
    (root / "header.csv").write_text("epoch,train_loss,val_loss,train_accuracy,val_accuracy\n")
    (root / "header_confusion.csv").write_text("true,2,6\n")
    (root / "text.csv").write_text("epoch,train_loss,val_loss,train_accuracy,val_accuracy\n1,a,b,c,d\n")


@pytest.mark.parametrize("kind,source,words", [
    ("confusion", "history.csv", ["not a confusion matrix"]),
    ("confusion", "metrics.csv", ["not a confusion matrix"]),
    ("confusion", "header_confusion.csv", ["not a confusion matrix"]),
    ("history", "confusion.csv", ["missing column(s) epoch"]),
    ("history", "header.csv", ["no rows"]),
    ("history", "text.csv", ["train_loss", "finite numbers"]),
    ("moments", "confusion.csv", ["missing column(s) n_disks"]),
    ("moments", "history.csv", ["missing column(s) n_disks"]),
])
def test_figures_check_every_csv_they_read(tmp_path, capsys, kind, source, words):
    """Each CSV figure names the file and what is missing, exit 2, no image; the right CSV draws."""
    write_csvs(tmp_path)
    assert_refused(capsys, ["disk-count", "figures", kind, tmp_path / source, tmp_path / "f.png"], source, *words,
                   output=tmp_path / "f.png")
    code, err = run(capsys, "disk-count", "figures", kind, tmp_path / f"{kind}.csv", tmp_path / "f.png")
    assert code == 0 and (tmp_path / "f.png").exists(), err


def test_gradcam_is_blocky_at_its_layer_resolution():
    """A 2x2 layer4 map upsampled by nearest: at most 4 values per pattern, each on one quadrant block."""
    from speckleml.disk_count.interpret import gradcam_maps
    from speckleml.disk_count.model import build_resnet

    torch.manual_seed(1)
    model = build_resnet("resnet18", 3)
    x = np.random.default_rng(0).normal(size=(2, 45, 45)).astype(np.float32)
    cam = gradcam_maps(model, x, np.array([0, 1]), "cpu")
    for sample in cam:
        assert len(np.unique(sample)) <= 4
        for block in (sample[:22, :22], sample[23:, :22], sample[:22, 23:], sample[23:, 23:]):
            assert np.ptp(block) == 0


@pytest.mark.parametrize("option,words", [
    (["--n-disks", "6"], ["--n-disks 6", "at least 2 values"]),
    (["--n-disks", "2", "500"], ["--n-disks", "must be <= 200, got 500"]),
    (["--n-disks", "2", "2"], ["--n-disks 2 2", "values must differ"]),
    (["--size", "3"], ["--size", "must be >= 5, got 3"]),
    (["--per-class", "0"], ["--per-class", "got 0"]),  # 1 and 2 are fine: simulate also makes transfer sets
    (["--box", "0"], ["--box", "0"]),
])
def test_simulate_refuses_values_the_schema_forbids(tmp_path, capsys, option, words):
    """The CLI applies the schema's own bounds (read from it, not restated): one line naming the option."""
    from speckleml.schema import schema_node

    assert schema_node("disk_count.n_disks")["items"]["maximum"] == 200
    assert_refused(capsys, ["disk-count", "simulate", tmp_path / "p.zarr", "--device", "cpu", *option], *words,
                   output=tmp_path / "p.zarr")


def test_schema_bounds_are_read_from_the_schema(monkeypatch):
    """Changing the schema's bound changes what is refused: the bound has one home."""
    from speckleml.disk_count.options import check_options
    from speckleml.errors import InputError
    from speckleml.schema import schema_node

    check_options({"--size": ("disk_count.size", 4097)})
    monkeypatch.setitem(schema_node("disk_count.size"), "maximum", 1000)
    with pytest.raises(InputError, match="--size 4097: must be <= 1000, got 4097"):
        check_options({"--size": ("disk_count.size", 4097)})


@pytest.mark.parametrize("split,empty", [(["0.9", "0.1", "0"], "test"), (["0.9", "0", "0.1"], "val"),
                                         (["0.99", "0.005", "0.005"], "val and test")])
def test_preprocess_refuses_a_split_that_leaves_a_set_empty(tmp_path, capsys, split, empty):
    """A split with no test (or validation) patterns is refused at preprocess, not at evaluate."""
    code, err = run(capsys, "disk-count", "simulate", tmp_path / "p.zarr", "--n-disks", "2", "4", "--per-class", "10",
                    "--size", "15", "--device", "cpu")
    assert code == 0, err
    assert_refused(capsys, ["disk-count", "preprocess", tmp_path / "p.zarr", tmp_path / "in.zarr", "--block", "3",
                            "--bin", "1", "--split", *split], "--split", f"the {empty} split empty",
                   output=tmp_path / "in.zarr")


def test_evaluate_checks_the_model_store_pairing(tmp_path, capsys):
    """A model records its training patterns and split: the same patterns re-split (its "test" set
    may be training data) and another k grid are refused; fresh patterns are evaluated."""
    def cli(*args):
        code, err = run(capsys, *args)
        assert code == 0, err

    common = ["--n-disks", "2", "8", "--per-class", "10", "--size", "15", "--device", "cpu"]
    cli("disk-count", "simulate", tmp_path / "p.zarr", *common, "--seed", "1")
    cli("disk-count", "simulate", tmp_path / "fresh.zarr", *common, "--seed", "2")
    cli("disk-count", "simulate", tmp_path / "centred.zarr", *common, "--seed", "2", "--k-grid", "centred")
    for name, source, seed in (("a", "p", 0), ("b", "p", 1), ("fresh", "fresh", 0), ("centred", "centred", 0)):
        cli("disk-count", "preprocess", tmp_path / f"{source}.zarr", tmp_path / f"in_{name}.zarr", "--block", "3",
            "--bin", "1", "--split", "0.6", "0.2", "0.2", "--seed", str(seed))
    cli("disk-count", "train", tmp_path / "in_a.zarr", tmp_path / "m.pt", "--history", tmp_path / "h.csv",
        "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--threads", "1")
    outputs = ["--metrics", tmp_path / "m.csv", "--confusion", tmp_path / "c.csv", "--predictions", tmp_path / "p.csv"]
    for name in ("a", "fresh"):
        cli("disk-count", "evaluate", tmp_path / "m.pt", tmp_path / f"in_{name}.zarr", *outputs, "--device", "cpu")
    for path in (tmp_path / "m.csv", tmp_path / "c.csv", tmp_path / "p.csv"):
        path.unlink()
    assert_refused(capsys, ["disk-count", "evaluate", tmp_path / "m.pt", tmp_path / "in_b.zarr", *outputs,
                            "--device", "cpu"], "in_b.zarr", "another split", output=tmp_path / "m.csv")
    assert_refused(capsys, ["disk-count", "interpret", tmp_path / "m.pt", tmp_path / "in_b.zarr",
                            tmp_path / "maps.zarr", "--device", "cpu"], "another split", output=tmp_path / "maps.zarr")
    assert_refused(capsys, ["disk-count", "evaluate", tmp_path / "m.pt", tmp_path / "in_centred.zarr", *outputs,
                            "--device", "cpu"], "in_centred.zarr", "k grid centred", output=tmp_path / "m.csv")


def test_moments_and_systems_refuse_what_the_store_lacks(tmp_path, capsys):
    """No silent clamping: more moment samples than a class holds, or a --show disk number that was
    not simulated, are refused naming the option; values the store has are used as given."""
    code, err = run(capsys, "disk-count", "simulate", tmp_path / "p.zarr", "--n-disks", "2", "4", "--per-class", "4",
                    "--size", "15", "--device", "cpu")
    assert code == 0, err
    assert_refused(capsys, ["disk-count", "moments", tmp_path / "p.zarr", tmp_path / "m.csv", "--block", "3",
                            "--per-class", "5"], "--per-class 5", "only 4 patterns", output=tmp_path / "m.csv")
    code, err = run(capsys, "disk-count", "moments", tmp_path / "p.zarr", tmp_path / "m.csv", "--block", "3",
                    "--per-class", "4")
    assert code == 0 and len(pd.read_csv(tmp_path / "m.csv")) == 8, err
    assert_refused(capsys, ["disk-count", "figures", "systems", tmp_path / "p.zarr", tmp_path / "f.png",
                            "--show", "2", "6"], "--show 2 6", "[6]", output=tmp_path / "f.png")
