"""The inversion models as files (paper 003, Sec. III B-C): fit them on a data set (``fit``),
score them on its held-out draws (``evaluate``, Table I and Fig. 7), apply them to a measured
``g(theta)`` or ``g(q)`` (``invert``).

The model file (``gpr.pkl``, our own artifact) holds one :class:`~.inversion.InversionModel`
per feature set; the analysis store holds what Fig. 4-6 draw (SVD, PDDF/ACF, LML grids).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_output, write_csv
from ..errors import InputError
from ..stores import write_store
from .dataset import read_dataset
from ..schema import check_schema_value
from .inversion import (ANALYSIS, ARD_LENGTH_BOUNDS, LENGTH_BOUNDS, NOISE_BOUNDS, PAPER_RANK, TRANSFORMS,
                        InversionModel, feature_rank, fit_target,
                        lml_surface, outside_training_range, pddf_acf, resample_feature, score, svd,
                        train_test_split, undercovered)
from .system import PARAM_NAMES

log = logging.getLogger(__name__)

#: Paper's test errors (Fig. 7) and Table I hyperparameters (l, sigma) for the angular GPR.
PAPER = {"R_s": (0.06, 1.338e-1, 2.673e-3), "D2": (0.01, 2.419e-1, 2.717e-3), "gamma_L": (0.03, 1.405e-1, 1.927e-2)}
FEATURE_ARRAYS = {"angular": ("g_theta", "theta"), "radial": ("g_q", "q")}


def feature_matrix(store, features: str) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix of a data set store and its axis.

    Parameters
    ----------
    store : dataset store
    features : {"angular", "radial"}
        ``g(theta)`` (paper) or ``g(q)`` (reference code).

    Returns
    -------
    x : ndarray, (draws, n_theta) or (draws, n_q)
    axis : ndarray, (n_theta,) radians or (n_q,) 1/R0
    """
    values, axis = FEATURE_ARRAYS[features]
    return np.asarray(store[values], np.float64), np.asarray(store[axis], np.float64)


def dataset_digest(store) -> str:
    """Fingerprint of a data set store: SHA-256 of its draws, parameters and (q, theta) grid.

    Recorded by ``fit`` in the model file and the analysis store, and compared by ``evaluate``
    and ``figures``, so that a model is scored only on the draws it held out (a data set of
    another seed with the same size has other parameters, hence another digest).
    """
    import hashlib

    digest = hashlib.sha256()
    for name in ("draw_index", "params", "q", "theta"):
        digest.update(np.ascontiguousarray(np.asarray(store[name], np.float64)).tobytes())
    return digest.hexdigest()


def check_pairing(recorded: str | None, store, what, dataset) -> None:
    """Raise :class:`InputError` unless ``what`` (a model file or analysis store) records the digest of ``dataset``.

    Parameters
    ----------
    recorded : str or None
        The :func:`dataset_digest` ``what`` records (None: written before digests were recorded).
    store : dataset store
        Opened from ``dataset``.
    what, dataset : path
        For the message.
    """
    if recorded is None:
        raise InputError(f"{what}: records no data set fingerprint (written by an older version); refit")
    if recorded != dataset_digest(store):
        raise InputError(f"{what}: was fitted on another data set than {dataset} (draws, parameters or grid differ)")


def fit_models(dataset, model, analysis, *, features: Sequence[str], targets: Sequence[str],
               train_fraction: float, restarts: int, components: int, lml_grid: int, lml_points: int,
               pddf_points: int, pddf_bins: int, seed: int, provenance: dict, input_components: int = 0,
               transforms: dict[str, str] | None = None, feature_scale: float = 0.0,
               plateau_scale: float = 0.0) -> dict[str, InversionModel]:
    """The ``fit`` stage: one GPR per target and feature set; write the model file and the analysis store.

    Parameters
    ----------
    dataset : path
        Merged :data:`~.dataset.DATASET` store.
    model : path
        Model file to write (pickle, atomically; :func:`save_models`).
    analysis : path
        :data:`~.inversion.ANALYSIS` store to write, for the first (main) feature set.
    features : sequence of {"angular", "radial"}
        Feature sets; the first is the main one (paper: angular ``g(theta)``).
    targets : sequence of parameter names
        Parameters inverted (paper: ``R_s``, ``D2``, ``gamma_L``).
    train_fraction : float
        Training share in (0, 1) (paper: 0.7).
    restarts : int
        Optimiser restarts of the log marginal likelihood (>= 0).
    components : int
        Singular vectors stored for Fig. 4-5 (>= 1).
    lml_grid, lml_points : int
        Points per axis of the LML contours (>= 2) and training points they use (subsample).
    pddf_points, pddf_bins : int
        Points (subsample) and bins of the PDDF and ACF (eq. 7-8).
    seed : int
        Seeds the split, the optimiser restarts and the subsamples.
    provenance : dict
        Written into the analysis store.
    input_components : int
        GPR inputs: 0 = the full feature vectors with one RBF length (paper); ``k`` = the top
        ``k`` standardised centred SVD projections of the training features, one length each (ARD).
    transforms : dict ``{target: "identity" | "log"}``, optional
        Space in which each target is learned (default identity).
    feature_scale : float
        The GPRs learn from ``asinh((g - 1) / feature_scale)`` (:func:`~.inversion.contrast`;
        0 = ``g`` itself, the paper's).
    plateau_scale : float
        > 0: the angular GPRs also get the eq. 5 fit of each ``g(theta)`` (plateau, gamma L, D2;
        :mod:`~.plateau`), the plateau as ``asinh(P / plateau_scale)``; needs
        ``input_components >= 1``. Not used for ``g(q)``. 0: none (the paper's).

    Returns
    -------
    dict ``{features: InversionModel}``

    Raises
    ------
    InputError
        A value outside its schema bound (``"--<option>: ..."``, :func:`speckleml.schema.check_schema_value`),
        ``plateau_scale > 0`` without input components or angular features, unknown feature
        sets or targets, or too few draws for the split.
    """
    transforms = dict(transforms or {})
    bad = {t: v for t, v in transforms.items() if t not in targets or v not in TRANSFORMS}
    if bad:
        raise InputError(f"transforms {bad}: need fitted targets and one of {TRANSFORMS}")
    values = {"features": list(features), "targets": list(targets), "train_fraction": train_fraction,
              "restarts": restarts, "input_components": input_components, "components": components,
              "lml_grid": lml_grid, "lml_points": lml_points, "pddf_points": pddf_points, "pddf_bins": pddf_bins,
              "feature_scale": feature_scale, "plateau_scale": plateau_scale}
    for name, value in values.items():  # the schema's bounds, one line naming the option
        check_schema_value("--" + name.replace("_", "-"), f"shear.fit.{name}", value)
    if plateau_scale > 0 and input_components < 1:
        raise InputError(f"--plateau-scale {plateau_scale:g} needs --input-components >= 1 (or --plateau-scale 0)")
    if plateau_scale > 0 and "angular" not in features:
        raise InputError(f"--plateau-scale {plateau_scale:g} applies to angular features only; with --features "
                         f"{' '.join(features)} pass --plateau-scale 0")
    unknown = [f for f in features if f not in FEATURE_ARRAYS] + [t for t in targets if t not in PARAM_NAMES]
    if unknown or not features or not targets:
        raise InputError(f"unknown or missing feature sets / targets: {unknown}")
    store = read_dataset(dataset)
    params = store["params"]
    values = params[:, [PARAM_NAMES.index(t) for t in targets]]
    try:
        train, test = train_test_split(len(params), train_fraction, seed)
    except ValueError as exc:
        raise InputError(f"{dataset}: {exc}") from None
    if input_components > min(len(train), store["g_q"].shape[1], store["g_theta"].shape[1]):
        raise InputError(f"input_components {input_components} exceeds the training draws or the feature length")
    if any(v == "log" and (values[:, k] <= 0).any() for k, (t, v) in enumerate(
            (t, transforms.get(t, "identity")) for t in targets)):
        raise InputError(f"log transform of a target with values <= 0 in {dataset}")
    models = {}
    for name in features:
        x, axis = feature_matrix(store, name)
        fitted = InversionModel(name, axis, train_index=train, test_index=test, rank=feature_rank(x)[0],
                                feature_range=(x[train].min(axis=0), x[train].max(axis=0)))
        log.info("%s: SVD rank %d by profile likelihood (paper %d)", name, fitted.rank, PAPER_RANK)
        for k, target in enumerate(targets):
            tm = fitted.targets[target] = fit_target(target, x[train], values[train, k], restarts, seed,
                                                     input_components, transforms.get(target, "identity"),
                                                     feature_scale, plateau_scale if name == "angular" else 0.0,
                                                     (np.asarray(store["q"], np.float64), axis))
            scores = score(tm, x[test], values[test, k])
            fitted.scores[target] = {key: scores[key] for key in ("err", "within_1sigma", "within_2sigma", "n_test")}
            log.info("%s %s: l=%.4g sigma=%.4g LML=%.1f; held out: Err %.3f, within 1/2 sigma %.2f/%.2f", name,
                     target, tm.length_scale, tm.noise_level, tm.log_marginal_likelihood, scores["err"],
                     scores["within_1sigma"], scores["within_2sigma"])
        models[name] = fitted
    digest = dataset_digest(store)
    save_models(model, models, targets=targets, main=features[0], dataset=dataset, dataset_digest=digest)
    arrays = analysis_arrays(store, models[features[0]], values, components=components, lml_grid=lml_grid,
                             lml_points=lml_points, pddf_points=pddf_points, pddf_bins=pddf_bins, seed=seed)
    write_store(analysis, ANALYSIS, arrays, provenance=provenance,
                attrs={"targets": list(targets), "features": features[0], "rank": models[features[0]].rank,
                       "rank_paper": PAPER_RANK, "dataset_digest": digest})
    return models


def analysis_arrays(store, model: InversionModel, targets: np.ndarray, *, components: int, lml_grid: int,
                    lml_points: int, pddf_points: int, pddf_bins: int, seed: int) -> dict[str, np.ndarray]:
    """What Fig. 4-6 draw: SVD of the features and its rank, PDDF/ACF (eq. 7-8), LML grids around each optimum.

    The LML grid of a target spans 1.5 decades of ``l`` and 2 of ``sigma`` either side of its
    fitted optimum (clipped to the kernel bounds), so its contours close around the maximum.

    Parameters
    ----------
    store : dataset store
    model : InversionModel
        Fitted model of one feature set (its targets in the column order of ``targets``).
    targets : ndarray, (draws, n_targets)
        Values of the fitted targets for every draw.
    components, lml_grid, lml_points, pddf_points, pddf_bins, seed
        See :func:`fit_models`.

    Returns
    -------
    dict of arrays of the :data:`~.inversion.ANALYSIS` store.
    """
    from copy import deepcopy

    x, axis = feature_matrix(store, model.features)
    values, vectors, projections = svd(x, components)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5]))
    pick = rng.permutation(len(x))[:pddf_points]
    z, pddf, acf = pddf_acf(x[pick], targets[pick], pddf_bins)
    optimum = np.array([[m.length_scale, m.noise_level] for m in model.targets.values()])
    sub = rng.permutation(model.train_index)[:lml_points]
    grids, lengths, noises = [], [], []
    for k, (name, tm) in enumerate(model.targets.items()):
        bounds = LENGTH_BOUNDS if tm.projection is None else ARD_LENGTH_BOUNDS
        lengths.append(_log_axis(optimum[k, 0], 1.5, bounds, lml_grid))
        noises.append(_log_axis(optimum[k, 1], 2.0, NOISE_BOUNDS, lml_grid))
        # LML on a subsample keeps the grid affordable at paper scale (O(n^3) per point)
        sub_model = deepcopy(tm)
        sub_model.gpr.X_train_ = tm.inputs(x[sub])
        value = np.log(targets[sub, k]) if tm.transform == "log" else targets[sub, k]
        sub_model.gpr.y_train_ = (value - tm.mean) / tm.std
        grids.append(lml_surface(sub_model, lengths[-1], noises[-1]))
    return {"singular_values": values, "profile_log_likelihood": feature_rank(x)[1], "singular_vectors": vectors,
            "projections": projections, "axis": axis, "z": z, "pddf": pddf, "acf": acf, "lml": np.stack(grids),
            "length_grid": np.stack(lengths), "noise_grid": np.stack(noises), "optimum": optimum}


def _log_axis(centre: float, decades: float, bounds: tuple[float, float], points: int) -> np.ndarray:
    """``points`` log-spaced values ``decades`` either side of ``centre``, inside ``bounds``."""
    low = max(np.log10(centre) - decades, np.log10(bounds[0]))
    high = min(np.log10(centre) + decades, np.log10(bounds[1]))
    return np.logspace(low, high, points)


def save_models(path, models: dict[str, InversionModel], *, targets: Sequence[str], main: str, dataset,
                dataset_digest: str | None = None) -> None:
    """Write the model file (pickle, atomically) read by :func:`load_models`.

    Parameters
    ----------
    path : path
    models : dict ``{features: InversionModel}``
    targets : sequence of str
        Target names, in fit order.
    main : str
        The main feature set (that of the analysis store).
    dataset : path
        The data set the models were fitted on (recorded, not read).
    dataset_digest : str, optional
        Its :func:`dataset_digest`, which ``evaluate`` checks.
    """
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump({"models": models, "targets": list(targets), "main": main, "dataset": str(dataset),
                         "dataset_digest": dataset_digest}, handle)


def load_models(path) -> dict:
    """Read the model file written by :func:`save_models` (our own artifact; pickle).

    Returns
    -------
    dict
        ``models`` ({features: InversionModel}), ``targets``, ``main``, ``dataset``.

    Raises
    ------
    InputError
        When the file is not a shear model file.
    """
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
    """The ``evaluate`` stage: predict the held-out draws of every feature set; write predictions and Table I.

    Err is the paper's relative error (Sec. III C, Fig. 7); the calibration columns are the
    shares of test draws within 1 and 2 predictive standard deviations.

    Parameters
    ----------
    dataset_path : path
        The data set the models were fitted on.
    model_path : path
        Model file from :func:`fit_models`.
    predictions_path, table_path : path
        CSVs to write: one row per (feature set, target, test draw); Table I, one row per
        (feature set, target) with our Err, l, sigma and SVD rank each beside the paper's.

    Returns
    -------
    pandas.DataFrame
        Table I as written.

    Raises
    ------
    InputError
        When the model was not fitted on this data set (its recorded :func:`dataset_digest` differs).
    """
    import pandas as pd

    store = read_dataset(dataset_path)
    bundle = load_models(model_path)
    for features, model in bundle["models"].items():
        if len(model.axis) != len(feature_matrix(store, features)[1]):
            raise InputError(f"{model_path}: {features} model has {len(model.axis)} points per curve, "
                             f"{dataset_path} {len(feature_matrix(store, features)[1])}; refit on it")
    check_pairing(bundle.get("dataset_digest"), store, model_path, dataset_path)
    rows, table = [], []
    for features, model in bundle["models"].items():
        x, _ = feature_matrix(store, features)
        test = model.test_index
        for name, tm in model.targets.items():
            true = store["params"][test, PARAM_NAMES.index(name)]
            scores = score(tm, x[test], true)
            paper = PAPER.get(name, (np.nan, np.nan, np.nan))
            # each of our values beside the paper's (Table I and Fig. 7)
            table.append({"features": features, "target": name, "err": scores["err"], "err_paper": paper[0],
                          "length_scale": tm.length_scale, "length_scale_paper": paper[1],
                          "noise_level": tm.noise_level, "noise_level_paper": paper[2],
                          "rank": getattr(model, "rank", None), "rank_paper": PAPER_RANK,
                          "log_marginal_likelihood": tm.log_marginal_likelihood,
                          "within_1sigma": scores["within_1sigma"], "within_2sigma": scores["within_2sigma"],
                          "n_train": len(model.train_index), "n_test": len(test)})
            rows.append(pd.DataFrame({"features": features, "target": name, "draw": store["draw_index"][test],
                                      "true": true, "predicted": scores["mean"], "std": scores["std"]}))
    write_csv(pd.concat(rows, ignore_index=True), predictions_path)
    frame = pd.DataFrame(table)
    write_csv(frame, table_path)
    return frame


def read_measurement(path) -> tuple[np.ndarray | None, np.ndarray]:
    """Read a measured ``g(theta)`` or ``g(q)``.

    Parameters
    ----------
    path : path
        CSV/TXT with columns ``axis,g`` (an optional header line) or one column ``g``, or
        ``.npy`` of shape (n,) or (n, 2).

    Returns
    -------
    axis : ndarray (n,) or None
        ``theta`` (radians) or ``q`` (1/R0) when given.
    values : ndarray (n,)

    Raises
    ------
    InputError
        Missing file, unknown suffix, non-numeric or non-finite values, wrong shape.
    """
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


def invert_measurement(model_path, measured_path, features: str | None = None) -> dict:
    """The ``invert`` stage: every fitted target (mean, 1-sigma) from a measured g(theta) or g(q).

    Paper 003 Sec. IV: a measurement on another grid is interpolated onto the model's. The
    result also says which model answered: its SVD rank (chosen by the data, beside the
    paper's 3) and its calibration on the held-out draws of its data set.

    Parameters
    ----------
    model_path : path
        Model file from :func:`fit_models`.
    measured_path : path
        See :func:`read_measurement`.
    features : {"angular", "radial"}, optional
        What the measurement is; default the model's main feature set.

    Returns
    -------
    dict
        ``parameters``: ``{target: {"mean", "std"}}`` in the target's units (R0 for D2 and
        gamma L); ``model``: ``features``, ``rank``, ``rank_paper``, ``n_train`` and
        ``held_out`` (``{target: {"err", "within_1sigma", "within_2sigma", "n_test"}}``).

    Raises
    ------
    InputError
        No model for ``features``, a measurement of the wrong length without an axis, an
        angular axis outside [0, pi] (degrees), an axis that does not cover the model's, or a
        curve far outside the training range (:func:`~.inversion.outside_training_range`);
        each message names ``measured_path``.
    """
    bundle = load_models(model_path)
    features = features or bundle["main"]
    if features not in bundle["models"]:
        raise InputError(f"{model_path}: no {features} model (fitted: {sorted(bundle['models'])})")
    model = bundle["models"][features]
    axis, values = read_measurement(measured_path)
    if axis is None:
        if len(values) != len(model.axis):
            raise InputError(f"{measured_path}: {len(values)} values but the model expects {len(model.axis)} "
                             f"(give two columns axis,g to interpolate)")
    else:
        if features == "angular" and (axis.min() < -1e-4 or axis.max() > np.pi + 1e-4):  # pi to 5 digits
            raise InputError(f"{measured_path}: theta must be radians in [0, pi], got [{axis.min():.4g}, "
                             f"{axis.max():.4g}]" + (" (degrees?)" if axis.max() > 2 * np.pi else ""))
        try:
            values = resample_feature(axis, values, model.axis)
        except InputError as exc:
            raise InputError(f"{measured_path}: {exc}") from None
    feature_range = getattr(model, "feature_range", None)  # None in model files written before it was recorded
    if feature_range is None:  # the range check cannot run: refuse, as evaluate does, rather than answer unchecked
        raise InputError(f"{model_path}: model file predates the recorded training range; refit it with "
                         "speckleml shear fit")
    outside = outside_training_range(values, *feature_range)
    if len(outside):
        k = outside[0]
        raise InputError(f"{measured_path}: g = {values[k]:.4g} at {model.axis[k]:.4g} is far outside the "
                         f"training range [{feature_range[0][k]:.4g}, {feature_range[1][k]:.4g}] "
                         f"({len(outside)} of {len(values)} points; is it g, not g - 1?)")
    parameters = {name: {"mean": float(m[0]), "std": float(s[0])}
                  for name, (m, s) in model.predict(values[None]).items()}
    rank = getattr(model, "rank", None)  # None for model files written before ranks were recorded
    return {"parameters": parameters,
            "model": {"features": features, "rank": rank, "rank_paper": PAPER_RANK,
                      "n_train": len(model.train_index), "held_out": getattr(model, "scores", {})}}


def format_inversion(result: dict) -> str:
    """Human-readable lines of an :func:`invert_measurement` result (parameters, then the model)."""
    lines = [f"{name} = {p['mean']:.4g} +/- {p['std']:.2g}" for name, p in result["parameters"].items()]
    model = result["model"]
    rank = "not recorded" if model["rank"] is None else str(model["rank"])
    lines.append(f"model: {model['features']} features, {model['n_train']} training draws, SVD rank {rank} by "
                 f"profile likelihood (paper {model['rank_paper']})")
    for name, held in model["held_out"].items():
        lines.append(f"  {name} on {held['n_test']} held-out draws: Err {held['err']:.1%}, within 1/2 sigma "
                     f"{held['within_1sigma']:.0%}/{held['within_2sigma']:.0%} (ideal 68%/95%)")
        if undercovered(held["within_1sigma"], held["n_test"]):
            lines.append(f"  warning: {name}'s +/- is too small: it covered {held['within_1sigma']:.0%} of the "
                         f"held-out draws, a calibrated 1 sigma covers 68%")
    return "\n".join(lines)
