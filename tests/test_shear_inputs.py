"""Shear study: bad options and inputs are refused in one line naming the option or file (exit 2),
and every store/model pairing is checked against the data set fingerprint the fit records."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402
from speckleml.errors import InputError  # noqa: E402
from speckleml.shear.system import PolarGrid, ShearSystem  # noqa: E402

torch.set_num_threads(1)
GRID = PolarGrid(n_q=6, n_theta=9)
RANGES = {"nL2": (100, 200), "R_s": (0, 0.3), "D2": (0.5, 3), "gamma_L": (5, 30)}
FIT = dict(features=["angular"], targets=["R_s", "D2", "gamma_L"], train_fraction=0.7, restarts=0, components=3,
           lml_grid=2, lml_points=10, pddf_points=10, pddf_bins=5, seed=0, provenance={}, input_components=3,
           feature_scale=0.003, plateau_scale=0.0)


def _dataset(path, seed, grid=GRID, draws=16):
    from speckleml.shear.dataset import simulate_chunk

    simulate_chunk(path, draws=draws, configs=1, grid=grid, ranges=RANGES, estimator="pairs",
                   nonaffine_scaling="paper", batch=8, dtype="float64", device="cpu", seed=seed, provenance={})
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Data sets of seeds 3 and 5 (same size) and one on another theta grid; a model fitted on seed 3."""
    from speckleml.shear.models import evaluate_models, fit_models

    tmp = tmp_path_factory.mktemp("shear_inputs")
    paths = {"ds": _dataset(tmp / "ds.zarr", 3), "ds5": _dataset(tmp / "ds5.zarr", 5),
             "ds7": _dataset(tmp / "ds7.zarr", 3, PolarGrid(n_q=6, n_theta=7)),
             "model": tmp / "gpr.pkl", "analysis": tmp / "ana.zarr", "pred": tmp / "p.csv", "table": tmp / "t.csv"}
    fit_models(paths["ds"], paths["model"], paths["analysis"], **FIT)
    evaluate_models(paths["ds"], paths["model"], paths["pred"], paths["table"])
    return tmp, paths


# ------------------------------------------------------------------------- options vs the schema

@pytest.mark.parametrize("args, option", [
    (["fit", "d.zarr", "m.pkl", "a.zarr", "--plateau-scale", "-1"], "--plateau-scale"),
    (["fit", "d.zarr", "m.pkl", "a.zarr", "--plateau-scale", "nan"], "--plateau-scale"),
    (["fit", "d.zarr", "m.pkl", "a.zarr", "--lml-points", "5"], "--lml-points"),
    (["dataset", "OUT", "--draws", "2"], "--draws"),
    (["dataset", "OUT", "--draws", "8", "--n-theta", "1"], "--n-theta"),
    (["dataset", "OUT", "--draws", "8", "--batch", "10000"], "--batch"),
    (["dataset", "OUT", "--draws", "8", "--range-d2", "1", "nan"], "--range-d2"),
    (["simulate", "OUT", "--sweep-d2", "1", "nan"], "--sweep-d2"),
])
def test_options_outside_the_schema_are_refused_before_any_work(tmp_path, args, option):
    out = tmp_path / "out.zarr"
    proc = run_cli("shear", *[str(out) if a == "OUT" else a for a in args])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"argument {option}:" in proc.stderr and not out.exists()


def test_library_names_the_option_the_schema_forbids(fitted):
    from speckleml.shear.models import fit_models

    tmp, paths = fitted
    for name, value in (("plateau_scale", -1.0), ("plateau_scale", float("nan")), ("lml_grid", 1),
                        ("features", ["angular", "angular"]), ("restarts", 1000)):
        flag = "--" + name.replace("_", "-")
        with pytest.raises(InputError, match=f"^{flag}: "):
            fit_models(paths["ds"], tmp / "x.pkl", tmp / "x.zarr", **{**FIT, name: value})
    assert not (tmp / "x.pkl").exists() and not (tmp / "x.zarr").exists()


def test_plateau_scale_with_radial_features_only_is_refused(fitted):
    from speckleml.shear.models import fit_models

    tmp, paths = fitted
    with pytest.raises(InputError, match="--plateau-scale 0.0003 applies to angular features only"):
        fit_models(paths["ds"], tmp / "x.pkl", tmp / "x.zarr", **{**FIT, "features": ["radial"],
                                                                   "plateau_scale": 3e-4})


def test_non_finite_system_parameters_are_refused():
    from speckleml.shear.cases import figure_cases

    with pytest.raises(ValueError, match="finite"):
        ShearSystem(150, float("nan"), 1, 10)
    base = ShearSystem(150, 0, 1, 10)
    with pytest.raises(InputError, match="D2=nan"):
        figure_cases(base, base, {"D2": [float("nan")]}, configs=1, estimator="pairs", nonaffine_scaling="paper")


# ------------------------------------------------------------------------- model / data set pairing

def test_evaluate_refuses_a_data_set_the_model_was_not_fitted_on(fitted):
    from speckleml.shear.models import evaluate_models

    tmp, paths = fitted
    # same size, other seed: the held-out indices exist but were never held out for this model
    with pytest.raises(InputError, match="fitted on another data set than .*ds5.zarr"):
        evaluate_models(paths["ds5"], paths["model"], tmp / "x.csv", tmp / "y.csv")
    with pytest.raises(InputError, match="9 points per curve, .*ds7.zarr 7"):
        evaluate_models(paths["ds7"], paths["model"], tmp / "x.csv", tmp / "y.csv")
    bundle = pickle.loads(paths["model"].read_bytes())
    bundle.pop("dataset_digest")
    (tmp / "old.pkl").write_bytes(pickle.dumps(bundle))
    with pytest.raises(InputError, match="records no data set fingerprint"):
        evaluate_models(paths["ds"], tmp / "old.pkl", tmp / "x.csv", tmp / "y.csv")
    assert not (tmp / "x.csv").exists() and not (tmp / "y.csv").exists()


# ------------------------------------------------------------------------- invert

def _measurement(path, theta, g):
    np.savetxt(path, np.column_stack([theta, g]), delimiter=",", header="theta,g", comments="")
    return path


def test_invert_refuses_degrees_g_minus_one_and_negative_g(fitted):
    from speckleml.shear.models import invert_measurement

    tmp, paths = fitted
    model = pickle.loads(paths["model"].read_bytes())["models"]["angular"]
    theta, g = model.axis, 0.5 * (model.feature_range[0] + model.feature_range[1])  # a curve inside the training range
    result = invert_measurement(paths["model"], _measurement(tmp / "ok.csv", theta, g))
    assert set(result["parameters"]) == {"R_s", "D2", "gamma_L"}
    with pytest.raises(InputError, match=r"deg.csv: theta must be radians in \[0, pi\], got \[0, 180\] \(degrees\?\)"):
        invert_measurement(paths["model"], _measurement(tmp / "deg.csv", np.degrees(theta), g))
    with pytest.raises(InputError, match="gm1.csv: .*outside the training range.*9 of 9 points"):
        invert_measurement(paths["model"], _measurement(tmp / "gm1.csv", theta, g - 1))
    bad = g.copy()
    bad[3] = -2
    with pytest.raises(InputError, match=r"neg.csv: g = -2 at .*\(1 of 9 points"):
        invert_measurement(paths["model"], _measurement(tmp / "neg.csv", theta, bad))
    with pytest.raises(InputError, match="^.*short.csv: measured axis"):
        invert_measurement(paths["model"], _measurement(tmp / "short.csv", theta[:5], g[:5]))
    for end in (3.14159, 3.1416):  # pi written to 5 digits, rounded either way, is accepted (re-check of the trial)
        rounded = np.r_[theta[:-1], end]
        assert invert_measurement(paths["model"], _measurement(tmp / "pi5.csv", rounded, g))["parameters"] == \
            result["parameters"]


def test_invert_refuses_a_model_without_its_training_range(fitted):
    """A model file from before the range was recorded cannot check the curve: refit, as evaluate says."""
    from speckleml.shear.models import invert_measurement

    tmp, paths = fitted
    bundle = pickle.loads(paths["model"].read_bytes())
    model = bundle["models"]["angular"]
    g = 0.5 * (model.feature_range[0] + model.feature_range[1])
    del model.feature_range
    (tmp / "old.pkl").write_bytes(pickle.dumps(bundle))
    with pytest.raises(InputError, match="old.pkl: model file predates the recorded training range; refit"):
        invert_measurement(tmp / "old.pkl", _measurement(tmp / "g.csv", model.axis, g))


def test_invert_warns_when_the_held_out_coverage_is_poor():
    from speckleml.shear.inversion import undercovered
    from speckleml.shear.models import format_inversion

    assert undercovered(0.08, 12) and not undercovered(0.67, 12) and not undercovered(0.5, 12)
    held = {"err": 0.27, "within_1sigma": 0.08, "within_2sigma": 0.58, "n_test": 12}
    text = format_inversion({"parameters": {"R_s": {"mean": 0.07, "std": 1e-4}},
                             "model": {"features": "angular", "rank": 3, "rank_paper": 3, "n_train": 28,
                                       "held_out": {"R_s": held, "D2": {**held, "within_1sigma": 0.92}}}})
    assert "warning: R_s's +/- is too small: it covered 8%" in text and "D2's" not in text


# ------------------------------------------------------------------------- figures inputs

def test_figures_check_csv_columns_types_and_pairings(fitted):
    import pandas as pd

    from speckleml.shear.figures import PREDICTION_COLUMNS, TABLE_COLUMNS, check_predictions, read_table
    from speckleml.shear.dataset import read_dataset
    from speckleml.shear.models import check_pairing
    from speckleml.stores import read_store
    from speckleml.shear.inversion import ANALYSIS

    tmp, paths = fitted
    pred = read_table(paths["pred"], PREDICTION_COLUMNS)
    tab = read_table(paths["table"], TABLE_COLUMNS)
    data, data5 = read_dataset(paths["ds"]), read_dataset(paths["ds5"])
    check_predictions(pred, tab, data, paths["pred"], paths["table"], paths["ds"])
    with pytest.raises(InputError, match="p.csv: true R_s values are not those of .*ds5.zarr"):
        check_predictions(pred, tab, data5, paths["pred"], paths["table"], paths["ds5"])
    with pytest.raises(InputError, match="t.csv: no row for angular R_s"):
        check_predictions(pred, tab[tab["target"] != "R_s"], data, paths["pred"], paths["table"], paths["ds"])
    raw = pd.read_csv(paths["pred"])
    raw.drop(columns="std").to_csv(tmp / "nostd.csv", index=False)
    with pytest.raises(InputError, match="nostd.csv: missing column.s. std"):
        read_table(tmp / "nostd.csv", PREDICTION_COLUMNS)
    raw.assign(true=["x"] + list(raw["true"][1:])).to_csv(tmp / "text.csv", index=False)
    with pytest.raises(InputError, match="text.csv: column true holds a non-numeric or empty value .data row 1."):
        read_table(tmp / "text.csv", PREDICTION_COLUMNS)
    raw.iloc[:0].to_csv(tmp / "header.csv", index=False)
    with pytest.raises(InputError, match="header.csv: no rows"):
        read_table(tmp / "header.csv", PREDICTION_COLUMNS)
    ana = read_store(paths["analysis"], ANALYSIS)
    check_pairing(ana.attrs["dataset_digest"], data, paths["analysis"], paths["ds"])
    with pytest.raises(InputError, match="ana.zarr: was fitted on another data set than .*ds5.zarr"):
        check_pairing(ana.attrs["dataset_digest"], data5, paths["analysis"], paths["ds5"])
