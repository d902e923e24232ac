"""Evaluate a Lotka-Volterra NODE ensemble on new objects (paper 000 Fig. 4c-f, Supp. Figs. 12-14).

From each test series' initial state the members, the ensemble model (the members' mean
right-hand side integrated as one ODE, :class:`~speckleml.dynamics.systems.lotka_volterra.EnsembleRHS`),
the mean of the members' solutions and an untrained MLP (the random-model baseline) are
integrated over the long test horizon. Scores (:func:`trajectory_scores`): the Earth Mover's
Distance between the Fourier spectra of true and predicted ``x(t)``, ``y(t)``
(:func:`speckleml.metrics.spectral_emd`), the oscillation period
(:func:`speckleml.metrics.oscillation_period`), the time up to which the prediction stays
within a tolerance of the truth, and the drift of the conserved quantity ``V``. Vector fields
(:func:`vector_fields`): learned right-hand sides on a grid over the test orbits vs the truth.
The metrics table is tidy: one row per (model, member, series, metric).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError
from ..stores import FLOATS, ArraySpec, StoreSchema, register_schema

log = logging.getLogger(__name__)

LV_EVALUATION = register_schema(StoreSchema(
    name="lotka_volterra_evaluation", version=1,
    description="Lotka-Volterra NODE ensemble evaluated on new objects (trajectories, spectra, EMD, fields)",
    arrays={
        "t": ArraySpec(("time",), FLOATS, finite=True),
        "true": ArraySpec(("series", "time", "coordinate"), FLOATS, finite=True),
        "members": ArraySpec(("member", "series", "time", "coordinate"), FLOATS),
        "ensemble_rhs": ArraySpec(("series", "time", "coordinate"), FLOATS),
        "ensemble_mean": ArraySpec(("series", "time", "coordinate"), FLOATS),
        "random": ArraySpec(("series", "time", "coordinate"), FLOATS),
        "freqs": ArraySpec(("frequency",), FLOATS, finite=True),
        "spectrum_true": ArraySpec(("series", "frequency", "coordinate"), FLOATS, finite=True),
        "spectrum_members": ArraySpec(("member", "series", "frequency", "coordinate"), FLOATS),
        "spectrum_ensemble_rhs": ArraySpec(("series", "frequency", "coordinate"), FLOATS),
        "spectrum_random": ArraySpec(("series", "frequency", "coordinate"), FLOATS),
        "emd_members": ArraySpec(("member", "series"), FLOATS),
        "emd_ensemble_rhs": ArraySpec(("series",), FLOATS),
        "emd_ensemble_mean": ArraySpec(("series",), FLOATS),
        "emd_random": ArraySpec(("series",), FLOATS),
        "grid": ArraySpec(("gy", "gx", "coordinate"), FLOATS, finite=True),
        "field_true": ArraySpec(("gy", "gx", "coordinate"), FLOATS, finite=True),
        "field_members": ArraySpec(("member", "gy", "gx", "coordinate"), FLOATS, finite=True),
    },
    required_attrs=("train_t_max", "period_true"),
))


def _emd_xy(spec_true, spec_pred, freqs) -> np.ndarray:
    """Mean over ``x`` and ``y`` of the spectral EMD, ``(..., F, 2)`` -> ``(...)``; NaN where undefined."""
    from ..metrics import spectral_emd

    out = np.full(spec_true.shape[:-2], np.nan)
    for index in np.ndindex(out.shape):
        a, b = spec_true[index], spec_pred[index]
        if np.all(np.isfinite(b)) and np.all(b.sum(axis=0) > 0):
            out[index] = float(np.mean(spectral_emd(a.T, b.T, freqs)))
    return out


def agreement_time(t, true, pred, tolerance: float) -> float:
    """First time at which ``|pred - true|`` (Euclidean, over the last axis) exceeds ``tolerance``.

    Parameters
    ----------
    t : ndarray (T,)
    true, pred : ndarray (T, 2)
        Trajectories, length units.
    tolerance : float
        Distance (length units) up to which the two agree.

    Returns
    -------
    float
        ``t[-1]`` when they agree throughout; non-finite predictions count as disagreement.
    """
    distance = np.linalg.norm(np.asarray(pred) - np.asarray(true), axis=-1)
    bad = ~(distance <= tolerance)
    return float(t[np.argmax(bad)]) if bad.any() else float(t[-1])


def safe_period(t, x) -> float:
    """:func:`speckleml.metrics.oscillation_period` of ``x(t)``, NaN when it has no two crossings."""
    from ..metrics import oscillation_period

    if not np.all(np.isfinite(x)):
        return float("nan")
    try:
        return oscillation_period(t, x)
    except InputError:
        return float("nan")


def trajectory_scores(t, true, pred, freqs, spec_true, spec_pred, tolerance: float) -> dict:
    """Scores of one predicted series against the truth.

    Parameters
    ----------
    t : ndarray (T,)
    true, pred : ndarray (T, 2)
    freqs, spec_true, spec_pred : ndarray (F,), (F, 2), (F, 2)
        Spectra of ``true`` and ``pred`` (:func:`speckleml.metrics.spectrum`).
    tolerance : float
        Of :func:`agreement_time`.

    Returns
    -------
    dict: ``emd`` (1 / time, mean over x and y), ``period`` (time, from ``x``),
    ``agreement_time`` (time), ``V_drift`` (max |V - V(0)|; NaN where the state leaves x, y > 0).
    """
    from .systems.lotka_volterra import conserved_quantity

    with np.errstate(invalid="ignore", divide="ignore"):
        v = conserved_quantity(pred)
    finite = np.all(np.isfinite(pred))
    return {
        "emd": float(_emd_xy(spec_true[None], spec_pred[None], freqs)[0]),
        "period": safe_period(t, pred[:, 0]),
        "agreement_time": agreement_time(t, true, pred, tolerance),
        "V_drift": float(np.max(np.abs(v - v[0]))) if finite and np.all(np.isfinite(v)) else float("nan"),
    }


def vector_fields(models, true_orbits, n: int, margin: float = 0.1):
    """Learned and true right-hand sides on an ``n x n`` grid around the test orbits (Fig. 4d-f).

    Parameters
    ----------
    models : sequence of nn.Module
        Members ``model(t, y)``.
    true_orbits : ndarray (S, T, 2)
        The grid spans their bounding box widened by ``margin`` of its size on each side.
    n : int
        Grid points per side.

    Returns
    -------
    grid : (n, n, 2)
    field_true : (n, n, 2)
    field_members : (M, n, n, 2)
    """
    import torch

    from .systems.lotka_volterra import LotkaVolterraRHS, vector_field_grid

    lo, hi = true_orbits.reshape(-1, 2).min(0), true_orbits.reshape(-1, 2).max(0)
    pad = margin * (hi - lo)
    lo = np.maximum(lo - pad, 1e-3)  # x, y > 0 (populations)
    hi = hi + pad
    grid = vector_field_grid((lo[0], hi[0]), (lo[1], hi[1]), n)
    g = torch.as_tensor(grid, dtype=torch.float64)
    with torch.no_grad():
        field_true = LotkaVolterraRHS()(0.0, g).numpy()
        fields = np.stack([m(0.0, g.to(next(m.parameters()).dtype)).double().numpy() for m in models])
    return grid, field_true, fields


def field_error(field, field_true, inside) -> float:
    """Relative vector-field error ``sum |F - F_true| / sum |F_true|`` over the grid points ``inside``."""
    diff = np.linalg.norm(field - field_true, axis=-1)[inside]
    return float(diff.sum() / np.linalg.norm(field_true, axis=-1)[inside].sum())


def _predict(model, y0, t, rtol, atol):
    """Integrate ``model``; NaN where the solver fails (a model may blow up over a long horizon)."""
    import torch

    from .training import predict_ode

    try:  # all series at once; one by one only when the batch fails
        return predict_ode(model, y0, t, rtol=rtol, atol=atol, chunk=y0.shape[0]).numpy().astype(np.float64)
    except AssertionError:
        pass
    out = []
    for i in range(y0.shape[0]):
        try:
            out.append(predict_ode(model, y0[i:i + 1], t, rtol=rtol, atol=atol)[0].numpy())
        except AssertionError as exc:  # torchdiffeq: step-size underflow or step budget
            log.warning("prediction of series %d failed (%s): NaN", i, exc)
            out.append(np.full((t.shape[0], 2), np.nan))
    return np.stack(out).astype(np.float64) if out else np.zeros((0, t.shape[0], 2))


def run_evaluation(*, test_states, train_states, models, metrics, store, grid_points: int,
                   agreement_tolerance: float, rtol: float, atol: float, seed: int,
                   run_config: dict | None = None) -> None:
    """The ``evaluate`` stage: extrapolate the ensemble on new objects; metrics table and store.

    Parameters
    ----------
    test_states, train_states : path
        True test trajectories (new objects, long horizon) and the training states (window).
    models : list of path
        Member model files (:func:`speckleml.dynamics.models.save_model`).
    metrics : path
        Output tidy CSV: ``model, member, series, metric, value, unit``; models ``member``,
        ``ensemble_rhs``, ``ensemble_mean`` (mean of solutions), ``random`` (untrained MLP,
        the baseline) and ``truth``.
    store : path
        Output evaluation store (:data:`LV_EVALUATION`).
    grid_points : int
        Vector-field grid points per side.
    agreement_tolerance : float
        Distance (length units) of :func:`agreement_time`.
    rtol, atol : float
        dopri5 tolerances of the predictions.
    seed : int
        Seeds the untrained baseline MLP (``seed + 1000``, not any member's seed).
    run_config : dict, optional
        The stage's parameters, recorded in the provenance.

    Raises
    ------
    InputError
        Missing stores or models, or stores of another case.
    """
    import pandas as pd
    import torch

    from ..metrics import spectrum
    from ..provenance import make_provenance
    from ..stores import read_states, write_store
    from .models import load_model
    from .systems.lotka_volterra import SYSTEM, EnsembleRHS, conserved_quantity

    test = read_states(test_states)
    train = read_states(train_states)
    for path, s in ((test_states, test), (train_states, train)):
        if s.attrs.get("system") != SYSTEM:
            raise InputError(f"{path}: states store is of system {s.attrs.get('system')!r}, expected {SYSTEM!r}")
    true, t = np.asarray(test["states"], np.float64), np.asarray(test["t"], np.float64)
    if len(t) < 8:
        raise InputError(f"{test_states}: need at least 8 test times for spectra, got {len(t)}")
    dt = float(t[1] - t[0])
    nets = [load_model(path)[0] for path in models]
    y0 = torch.as_tensor(true[:, 0], dtype=torch.float64)
    tt = torch.as_tensor(t, dtype=torch.float64)
    members = np.stack([_predict(net, y0, tt, rtol, atol) for net in nets])
    ensemble_rhs = _predict(EnsembleRHS(nets), y0, tt, rtol, atol)
    ensemble_mean = members.mean(axis=0)
    random_pred = _predict(build_model_seeded(seed + 1000), y0, tt, rtol, atol)

    def spec(x):
        return spectrum(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), dt, axis=-2)[1]

    freqs, spec_true = spectrum(true, dt, axis=-2)
    predictions = {"ensemble_rhs": ensemble_rhs, "ensemble_mean": ensemble_mean, "random": random_pred}
    rows = []
    period_true = np.array([safe_period(t, x) for x in true[..., 0]])
    for i, p in enumerate(period_true):
        rows.append(("truth", -1, i, "period", p, "time"))
    scores = {}
    for name, pred_m in [*((f"member{m}", members[m]) for m in range(len(nets))), *predictions.items()]:
        spec_pred = spec(pred_m)
        spec_pred[~np.isfinite(pred_m).all(axis=(1, 2))] = np.nan
        model, member = (("member", int(name[6:])) if name.startswith("member") else (name, -1))
        per_series = [trajectory_scores(t, true[i], pred_m[i], freqs, spec_true[i], spec_pred[i],
                                        agreement_tolerance) for i in range(len(true))]
        scores[name] = (spec_pred, np.array([s["emd"] for s in per_series]))
        units = {"emd": "1/time", "period": "time", "agreement_time": "time", "V_drift": "V units"}
        for i, s in enumerate(per_series):
            rows.extend((model, member, i, key, value, units[key]) for key, value in s.items())
    grid, field_true, field_members = vector_fields(nets, true, grid_points)
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = conserved_quantity(grid) <= np.nanmax(conserved_quantity(true[:, 0]))
    if not inside.any():
        inside = np.ones(grid.shape[:2], bool)
    for m in range(len(nets)):
        rows.append(("member", m, -1, "field_error", field_error(field_members[m], field_true, inside), "relative"))
    rows.append(("ensemble_rhs", -1, -1, "field_error", field_error(field_members.mean(0), field_true, inside),
                 "relative"))
    _, _, field_random = vector_fields([build_model_seeded(seed + 1000)], true, grid_points)
    rows.append(("random", -1, -1, "field_error", field_error(field_random[0], field_true, inside), "relative"))
    table = pd.DataFrame(rows, columns=["model", "member", "series", "metric", "value", "unit"])
    table.to_csv(metrics, index=False)
    arrays = {
        "t": t, "true": true, "members": members, "ensemble_rhs": ensemble_rhs, "ensemble_mean": ensemble_mean,
        "random": random_pred, "freqs": freqs, "spectrum_true": spec_true,
        "spectrum_members": np.stack([scores[f"member{m}"][0] for m in range(len(nets))]),
        "spectrum_ensemble_rhs": scores["ensemble_rhs"][0], "spectrum_random": scores["random"][0],
        "emd_members": np.stack([scores[f"member{m}"][1] for m in range(len(nets))]),
        "emd_ensemble_rhs": scores["ensemble_rhs"][1], "emd_ensemble_mean": scores["ensemble_mean"][1],
        "emd_random": scores["random"][1], "grid": grid, "field_true": field_true, "field_members": field_members,
    }
    write_store(store, LV_EVALUATION, arrays,
                attrs={"train_t_max": float(train["t"][-1]), "period_true": float(np.nanmean(period_true)),
                       "agreement_tolerance": agreement_tolerance, "units": "length; time; frequency 1/time"},
                provenance=make_provenance(config=run_config, seed=seed, inputs=[test_states, train_states, *models]))
    summary = table[table.series >= 0].groupby(["model", "metric"])["value"].median()
    log.info("median scores:\n%s", summary.to_string())


def build_model_seeded(seed: int):
    """An untrained :func:`~speckleml.dynamics.systems.lotka_volterra.build_model` from torch seed ``seed``."""
    from ..runtime import seed_everything
    from .systems.lotka_volterra import build_model

    seed_everything(seed)
    return build_model().eval().requires_grad_(False)
