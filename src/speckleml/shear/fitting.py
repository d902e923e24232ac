"""Stage logic of ``fit``, ``evaluate`` and ``invert`` (files in, files out)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

from ..atomic import atomic_output, write_csv
from ..errors import InputError
from ..stores import write_store
from .dataset import read_dataset
from .inversion import ANALYSIS, InversionModel, calibration, fit_target, lml_grid, pddf_acf, relative_error, \
    resample_feature, svd, train_test_split
from .system import PARAM_NAMES

log = logging.getLogger(__name__)

#: Paper's test errors (Fig. 7) and Table I hyperparameters (l, sigma) for the angular GPR.
PAPER = {"R_s": (0.06, 1.338e-1, 2.673e-3), "D2": (0.01, 2.419e-1, 2.717e-3), "gamma_L": (0.03, 1.405e-1, 1.927e-2)}
FEATURE_ARRAYS = {"angular": ("g_theta", "theta"), "radial": ("g_q", "q")}


def feature_matrix(store, features: str) -> tuple[np.ndarray, np.ndarray]:
    """``(draws, n)`` feature matrix and its axis for ``angular`` (g(theta)) or ``radial`` (g(q))."""
    values, axis = FEATURE_ARRAYS[features]
    return np.asarray(store[values], np.float64), np.asarray(store[axis], np.float64)


def fit_models(args, provenance) -> None:
    """Fit the GPRs of every feature set; write the pickle and the analysis store of the first set."""
    store = read_dataset(args.dataset)
    params = store["params"]
    columns = [PARAM_NAMES.index(t) for t in args.targets]
    targets = params[:, columns]
    train, test = train_test_split(len(params), args.train_fraction, args.seed)
    models = {}
    for features in args.features:
        x, axis = feature_matrix(store, features)
        model = InversionModel(features, axis, train_index=train, test_index=test)
        for k, name in enumerate(args.targets):
            model.targets[name] = fit_target(name, x[train], targets[train, k], args.restarts, args.seed)
            tm = model.targets[name]
            log.info("%s %s: l=%.4g sigma=%.4g LML=%.1f", features, name, tm.length_scale, tm.noise_level,
                     tm.log_marginal_likelihood)
        models[features] = model
    with atomic_output(args.model) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump({"models": models, "targets": list(args.targets), "main": args.features[0],
                         "dataset": str(args.dataset)}, handle)
    write_store(args.analysis, ANALYSIS, analysis_arrays(store, models[args.features[0]], targets, args),
                attrs={"targets": list(args.targets), "features": args.features[0]}, provenance=provenance)


def analysis_arrays(store, model: InversionModel, targets: np.ndarray, args) -> dict[str, np.ndarray]:
    """SVD (Fig. 4-5), PDDF/ACF and LML grids around the optimum (Fig. 6)."""
    x, axis = feature_matrix(store, model.features)
    values, vectors, projections = svd(x, args.components)
    rng = np.random.default_rng(np.random.SeedSequence([int(args.seed), 5]))
    pick = rng.permutation(len(x))[: args.pddf_points]
    z, pddf, acf = pddf_acf(x[pick], targets[pick], args.pddf_bins)
    optimum = np.array([[m.length_scale, m.noise_level] for m in model.targets.values()])
    lengths = np.logspace(np.log10(optimum[:, 0].min()) - 1, np.log10(optimum[:, 0].max()) + 1, args.lml_grid)
    noises = np.logspace(np.log10(optimum[:, 1].min()) - 1.5, np.log10(optimum[:, 1].max()) + 1.5, args.lml_grid)
    sub = rng.permutation(model.train_index)[: args.lml_points]
    grids = []
    for k, (name, tm) in enumerate(model.targets.items()):
        # LML on a subsample keeps the grid affordable at paper scale (O(n^3) per point)
        from copy import deepcopy

        gpr = deepcopy(tm.gpr)
        gpr.X_train_ = x[sub]
        gpr.y_train_ = (targets[sub, k] - tm.mean) / tm.std
        grids.append(lml_grid(type(tm)(name, gpr, tm.mean, tm.std), lengths, noises))
    return {"singular_values": values, "singular_vectors": vectors, "projections": projections, "axis": axis,
            "z": z, "pddf": pddf, "acf": acf, "lml": np.stack(grids), "length_grid": lengths,
            "noise_grid": noises, "optimum": optimum}


def load_models(path) -> dict:
    """Read the pickle written by ``fit`` (our own artifact)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            bundle = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise InputError(f"{path}: not a shear model file ({type(exc).__name__})") from None
    if not isinstance(bundle, dict) or "models" not in bundle:
        raise InputError(f"{path}: not a shear model file")
    return bundle


def evaluate_models(dataset_path, model_path, predictions_path, table_path):
    """Predict the held-out draws of every feature set; write predictions and Table I."""
    import pandas as pd

    store = read_dataset(dataset_path)
    bundle = load_models(model_path)
    rows, table = [], []
    for features, model in bundle["models"].items():
        x, _ = feature_matrix(store, features)
        test = model.test_index
        if test.max() >= len(x):
            raise InputError(f"{model_path}: test indices exceed {dataset_path} ({len(x)} draws); refit")
        for name, tm in model.targets.items():
            true = store["params"][test, PARAM_NAMES.index(name)]
            mean, std = tm.predict(x[test])
            within1, within2 = calibration(true, mean, std)
            paper = PAPER.get(name, (np.nan, np.nan, np.nan))
            table.append({"features": features, "target": name, "length_scale": tm.length_scale,
                          "noise_level": tm.noise_level, "log_marginal_likelihood": tm.log_marginal_likelihood,
                          "err": relative_error(true, mean), "err_paper": paper[0],
                          "length_scale_paper": paper[1], "noise_level_paper": paper[2],
                          "within_1sigma": within1, "within_2sigma": within2,
                          "n_train": len(model.train_index), "n_test": len(test)})
            rows.append(pd.DataFrame({"features": features, "target": name, "draw": store["draw_index"][test],
                                      "true": true, "predicted": mean, "std": std}))
    write_csv(pd.concat(rows, ignore_index=True), predictions_path)
    frame = pd.DataFrame(table)
    write_csv(frame, table_path)
    return frame


def read_measurement(path) -> tuple[np.ndarray | None, np.ndarray]:
    """Measured feature from CSV (``theta,g`` / ``q,g`` columns or one column) or npy ((n,) or (n, 2))."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    elif path.suffix in (".csv", ".txt"):
        lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        try:
            float(lines[0].split(",")[0])
        except (ValueError, IndexError):
            lines = lines[1:]  # a header line
        try:
            data = np.array([[float(v) for v in line.split(",")] for line in lines])
        except ValueError:
            raise InputError(f"{path}: non-numeric values") from None
    else:
        raise InputError(f"{path}: expected .csv, .txt or .npy")
    data = np.asarray(data, np.float64)
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim == 1:
        axis, values = None, data
    elif data.ndim == 2 and data.shape[1] == 2:
        axis, values = data[:, 0], data[:, 1]
    else:
        raise InputError(f"{path}: expected one column g or two columns (axis, g), got shape {data.shape}")
    if not np.isfinite(values).all() or (axis is not None and not np.isfinite(axis).all()):
        raise InputError(f"{path}: NaN or infinite values")
    return axis, values


def invert_measurement(model_path, measured_path, features: str = "angular") -> dict[str, tuple[float, float]]:
    """Predict every fitted target (mean, 1-sigma) from a measured g(theta) or g(q)."""
    bundle = load_models(model_path)
    if features not in bundle["models"]:
        raise InputError(f"{model_path}: no {features} model (fitted: {sorted(bundle['models'])})")
    model = bundle["models"][features]
    axis, values = read_measurement(measured_path)
    if axis is None:
        if len(values) != len(model.axis):
            raise InputError(f"{measured_path}: {len(values)} values but the model expects {len(model.axis)} "
                             f"(give two columns axis,g to interpolate)")
    else:
        values = resample_feature(axis, values, model.axis)
    return {name: (float(m[0]), float(s[0])) for name, (m, s) in model.predict(values[None]).items()}
