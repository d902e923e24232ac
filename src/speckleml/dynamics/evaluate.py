"""Evaluate a Kuramoto NODE ensemble: extrapolate on new initial conditions, score against truth.

For every member the learned kernel is compared with the true one, and the model is
integrated from the test initial conditions over the whole test window (paper: 5x the
training window, 50 new conditions). Scores: real-space MAE per frame, both plain (the paper's
Fig. 5 metric, :func:`plain_mae`) and sign-aligned (the ``phi -> -phi`` ambiguity of the
intensity removed per frame, :func:`orientation_mae`); order parameter ``r(t)`` and mean
orientation ``psi(t)`` (eq. 3) for truth and prediction. Two baselines put the MAE in scale:
"nothing moves" (``phi(t) = phi(0)``) and uniformly random phases (plain MAE pi/2 in
expectation). The evaluation store keeps what the figures need; the metrics table has one row
per member, the ensemble mean, min and max, and the two baselines.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError
from ..progress import progress
from ..stores import FLOATS, ArraySpec, StoreSchema, register_schema
from .systems.kuramoto import (MomentsSpeckle, aligned_prediction, circular_mean, order_parameter, orientation_mae,
                               plain_mae, random_phases, wrapped_difference)
from .c2 import c2_analysis
from .train import kernel_errors

log = logging.getLogger(__name__)

EVALUATION = register_schema(StoreSchema(
    name="dynamics_evaluation", version=1,
    description="Kuramoto NODE ensemble evaluated on test initial conditions",
    arrays={
        "t": ArraySpec(("time",), FLOATS, finite=True),
        "mae": ArraySpec(("member", "condition", "time"), FLOATS),
        "mae_plain": ArraySpec(("member", "condition", "time"), FLOATS, required=False),
        "baseline_frozen_mae": ArraySpec(("condition", "time"), FLOATS, required=False),
        "baseline_frozen_mae_plain": ArraySpec(("condition", "time"), FLOATS, required=False),
        "baseline_random_mae": ArraySpec(("condition", "time"), FLOATS, required=False),
        "baseline_random_mae_plain": ArraySpec(("condition", "time"), FLOATS, required=False),
        "r_true": ArraySpec(("condition", "time"), FLOATS, finite=True),
        "psi_true": ArraySpec(("condition", "time"), FLOATS, finite=True),
        "r_pred": ArraySpec(("member", "condition", "time"), FLOATS),
        "psi_pred": ArraySpec(("member", "condition", "time"), FLOATS),
        "snapshot_t": ArraySpec(("snapshot",), FLOATS, finite=True),
        "example_true": ArraySpec(("snapshot", "y", "x"), FLOATS, finite=True),
        "example_pred": ArraySpec(("member", "snapshot", "y", "x"), FLOATS),
        "final_true": ArraySpec(("condition", "y", "x"), FLOATS, finite=True),
        "final_pred": ArraySpec(("member", "condition", "y", "x"), FLOATS),
        "speckle_true": ArraySpec(("qy", "qx"), FLOATS, finite=True),
        "speckle_pred": ArraySpec(("member", "qy", "qx"), FLOATS),
        "mask": ArraySpec(("qy", "qx"), ("bool",)),
        "kernels": ArraySpec(("member", "ky", "kx"), FLOATS, finite=True),
        "true_kernel": ArraySpec(("ky", "kx"), FLOATS, finite=True),
        "c2_true": ArraySpec(("time", "time2"), FLOATS, required=False),
        "c2_pred": ArraySpec(("member", "time", "time2"), FLOATS, required=False),
        "c2_slice_mae": ArraySpec(("member_or_ensemble", "time"), FLOATS, required=False),
        "c2_t1": ArraySpec(("start",), FLOATS, required=False),
        "c2_tau_true": ArraySpec(("start",), FLOATS, required=False),
        "c2_gamma_true": ArraySpec(("start",), FLOATS, required=False),
        "c2_tau_pred": ArraySpec(("start",), FLOATS, required=False),
        "c2_gamma_pred": ArraySpec(("start",), FLOATS, required=False),
        "c2_ring": ArraySpec(("edge",), FLOATS, required=False),
    },
    required_attrs=("train_t_max", "example"),
))


def snapshot_indices(n_time: int, count: int = 6) -> np.ndarray:
    """``count`` time indices spread evenly from the first to the last frame.

    Returns
    -------
    ndarray (<= count,) int, sorted, unique (fewer when ``n_time < count``).
    """
    return np.unique(np.linspace(0, n_time - 1, count).round().astype(int))


def evaluate_members(models, test_states: np.ndarray, t: np.ndarray, true_kernel: np.ndarray, geometry,
                     train_t_max: float, example: int = 0, rtol: float = 1e-7, atol: float = 1e-9,
                     device="cpu", chunk: int = 8) -> tuple[dict, list[dict]]:
    """Score every model on the test states.

    Parameters
    ----------
    models : list of KuramotoRHS
        Trained members (eval mode).
    test_states : ndarray (condition, time, N, N)
        True test trajectories; their first frames are the initial conditions.
    t : ndarray (time,)
        Test times (0 .. extrapolation x training window).
    true_kernel : ndarray (k, k)
    geometry : SpeckleGeometry
        Scattering geometry for the example's speckle (the training frames' geometry).
    train_t_max : float
        End of the training window (for the per-member MAE there).
    example : int
        Test condition drawn in the figures.
    rtol, atol : float
        dopri5 tolerances of the extrapolation.

    Returns
    -------
    arrays : dict of ndarray, the evaluation store's arrays
    rows : list of dict, one metrics row per member
    """
    import torch

    from .training import predict_ode

    if not 0 <= example < test_states.shape[0]:
        raise InputError(f"--example {example} is outside the {test_states.shape[0]} test conditions")
    n_cond, n_time = test_states.shape[:2]
    snaps = snapshot_indices(n_time)
    forward = MomentsSpeckle(geometry, dtype=torch.float64, device=device)
    r_true, psi_true = order_parameter(test_states)
    y0 = torch.as_tensor(test_states[:, 0], dtype=torch.float64, device=device)
    tt = torch.as_tensor(t, dtype=torch.float64, device=device)
    i_train = int(np.argmin(np.abs(t - train_t_max)))
    arrays = {key: [] for key in ("mae", "mae_plain", "r_pred", "psi_pred", "example_pred", "final_pred",
                                  "speckle_pred", "kernels")}
    rows, example_speckle = [], []
    for member, model in enumerate(progress(models, desc="evaluate members")):
        pred = predict_ode(model, y0, tt, method="dopri5", rtol=rtol, atol=atol, chunk=chunk).cpu().numpy()
        mae = orientation_mae(pred, test_states)  # (condition, time)
        mae_plain = plain_mae(pred, test_states)
        r_pred, psi_pred = order_parameter(pred)
        kernel = model.kernel.detach().cpu().numpy().astype(np.float64)
        with torch.no_grad():
            example_speckle.append(forward(torch.as_tensor(pred[example], device=device)).cpu().numpy())
        speckle = example_speckle[-1][-1]
        arrays["mae"].append(mae)
        arrays["mae_plain"].append(mae_plain)
        arrays["r_pred"].append(r_pred)
        arrays["psi_pred"].append(psi_pred)
        arrays["example_pred"].append(aligned_prediction(pred[example, snaps], test_states[example, snaps]))
        arrays["final_pred"].append(aligned_prediction(pred[:, -1], test_states[:, -1]))
        arrays["speckle_pred"].append(speckle)
        arrays["kernels"].append(kernel)
        psi_err = np.minimum(np.abs(wrapped_difference(psi_pred, psi_true)), np.abs(wrapped_difference(-psi_pred, psi_true)))
        rows.append({
            "member": str(member),
            **kernel_errors(kernel, true_kernel),
            **_mae_columns(mae_plain, mae, i_train),
            "r_mae": float(np.nanmean(np.abs(r_pred - r_true))),
            "psi_mae": float(np.nanmean(psi_err)),
        })
    with torch.no_grad():
        speckle_series = forward(torch.as_tensor(test_states[example], device=device)).cpu().numpy()
    speckle_true = speckle_series[-1]
    out = {key: np.stack(value) for key, value in arrays.items()}
    qy, qx = forward.q_axes()
    # Fig. 2k: C2 at the ring of the structure-factor peak, two pixels wide
    out.update(c2_analysis(speckle_series, np.stack(example_speckle), np.asarray(t, np.float64),
                           np.hypot(qy[:, None], qx[None, :]), forward.mask.cpu().numpy(), 2 * geometry.dq))
    out.update(baselines(test_states))
    out.update({
        "t": np.asarray(t, np.float64), "r_true": r_true, "psi_true": psi_true,
        "snapshot_t": np.asarray(t)[snaps], "example_true": test_states[example, snaps],
        "final_true": test_states[:, -1], "speckle_true": speckle_true,
        "mask": forward.mask.cpu().numpy(), "true_kernel": true_kernel,
    })
    return out, rows


def baseline_rows(arrays: dict, train_t_max: float) -> list[dict]:
    """Metrics-table rows ``baseline_frozen`` and ``baseline_random`` from the evaluation arrays
    (:func:`baselines`); MAE columns only, radians."""
    i_train = int(np.argmin(np.abs(np.asarray(arrays["t"]) - train_t_max)))
    return [{"member": f"baseline_{kind}", **_mae_columns(arrays[f"baseline_{kind}_mae_plain"],
                                                          arrays[f"baseline_{kind}_mae"], i_train)}
            for kind in ("frozen", "random")]


def _mae_columns(plain: np.ndarray, aligned: np.ndarray, i_train: int) -> dict:
    """Metrics-table MAE columns (radians) of ``(condition, time)`` MAEs, plain and sign-aligned."""
    columns = {}
    for name, mae in (("plain", plain), ("sign_aligned", aligned)):
        columns.update({
            f"final_mae_{name}_mean": float(np.nanmean(mae[:, -1])),
            f"final_mae_{name}_std": float(np.nanstd(mae[:, -1])),
            f"train_end_mae_{name}_mean": float(np.nanmean(mae[:, i_train])),
            f"mae_{name}_mean_over_time": float(np.nanmean(mae)),
        })
    return columns


def baselines(test_states: np.ndarray, seed: int = 0) -> dict:
    """Per-frame MAEs ``(condition, time)`` of two reference predictions, plain and sign-aligned.

    ``frozen`` is "nothing moves", ``phi(t) = phi(0)``; ``random`` is independent uniformly
    random phases per frame (drawn with ``seed``; the plain MAE's expectation is pi / 2).

    Parameters
    ----------
    test_states : ndarray (condition, time, N, N), radians
    seed : int

    Returns
    -------
    dict of ndarray (condition, time), radians: ``baseline_frozen_mae``,
    ``baseline_frozen_mae_plain``, ``baseline_random_mae``, ``baseline_random_mae_plain``.
    """
    test_states = np.asarray(test_states, np.float64)
    n_cond, n_time, size = test_states.shape[0], test_states.shape[1], test_states.shape[-1]
    frozen = np.broadcast_to(test_states[:, :1], test_states.shape)
    rng = np.random.default_rng(seed)
    noise = random_phases(n_cond * n_time, size, rng).reshape(test_states.shape)
    return {
        "baseline_frozen_mae": orientation_mae(frozen, test_states),
        "baseline_frozen_mae_plain": plain_mae(frozen, test_states),
        "baseline_random_mae": orientation_mae(noise, test_states),
        "baseline_random_mae_plain": plain_mae(noise, test_states),
    }


def summarize(rows: list[dict], baseline_rows: list[dict] = ()):
    """Metrics table: member rows, the ensemble ``mean``, ``min`` and ``max`` of each column, then
    the baseline rows.

    Parameters
    ----------
    rows : list of dict
        One row per member (:func:`evaluate_members`): ``member`` and numeric columns.
    baseline_rows : list of dict
        Rows ``baseline_frozen``, ``baseline_random`` (:func:`baseline_rows`; MAE columns only,
        the others are left empty).

    Returns
    -------
    pandas.DataFrame, columns of ``rows``.
    """
    import pandas as pd

    table = pd.DataFrame(rows)
    numeric = table.drop(columns=["member"])
    summary = pd.DataFrame([
        {"member": "ensemble_mean", **numeric.mean().to_dict()},
        {"member": "ensemble_min", **numeric.min().to_dict()},
        {"member": "ensemble_max", **numeric.max().to_dict()},
        *baseline_rows,
    ], columns=table.columns)
    return pd.concat([table, summary], ignore_index=True)


def ensemble_psi(psi_pred: np.ndarray, psi_true: np.ndarray) -> np.ndarray:
    """Ensemble mean orientation ``(condition, time)``: the circular mean over members of each
    member's ``psi`` on the branch (``psi`` or ``-psi``, per condition) closest to the truth.

    Parameters
    ----------
    psi_pred : ndarray (member, condition, time), radians
    psi_true : ndarray (condition, time), radians
    """
    plus = np.nanmean(np.abs(wrapped_difference(psi_pred, psi_true)), axis=-1)
    minus = np.nanmean(np.abs(wrapped_difference(-psi_pred, psi_true)), axis=-1)
    aligned = np.where((minus < plus)[..., None], -psi_pred, psi_pred)
    return circular_mean(aligned, axis=0)


def per_frame_table(arrays: dict):
    """Per-frame table (radians; t in ODE time units).

    Columns: ``t``; plain and sign-aligned real-space MAE averaged over test conditions, the
    ensemble ``mean``, ``min`` and ``max`` over members; the baselines "nothing moves"
    (``baseline_frozen_*``) and uniformly random phases (``baseline_random_*``), averaged over
    conditions; order parameter ``r`` averaged over conditions, true and predicted (member
    mean); ``psi_ensemble_error``, the wrapped error of the ensemble's circular-mean ``psi``
    (:func:`ensemble_psi`) averaged over conditions.
    """
    import pandas as pd

    columns = {"t": arrays["t"]}
    for name, key in (("plain", "mae_plain"), ("sign_aligned", "mae")):
        mae = np.nanmean(arrays[key], axis=1)  # (member, time)
        columns.update({f"mae_{name}_mean": mae.mean(axis=0), f"mae_{name}_min": mae.min(axis=0),
                        f"mae_{name}_max": mae.max(axis=0)})
    for kind in ("frozen", "random"):
        columns[f"baseline_{kind}_mae_plain"] = arrays[f"baseline_{kind}_mae_plain"].mean(axis=0)
        columns[f"baseline_{kind}_mae_sign_aligned"] = arrays[f"baseline_{kind}_mae"].mean(axis=0)
    psi = ensemble_psi(arrays["psi_pred"], arrays["psi_true"])
    columns.update({
        "r_true": arrays["r_true"].mean(axis=0), "r_pred": np.nanmean(arrays["r_pred"], axis=(0, 1)),
        "psi_ensemble_error": np.nanmean(np.abs(wrapped_difference(psi, arrays["psi_true"])), axis=0),
    })
    return pd.DataFrame(columns)


def run_evaluation(*, test_states, train_states, frames, models, metrics, store, per_frame=None, example: int = 0,
                   rtol: float = 1e-7, atol: float = 1e-9, device: str = "auto",
                   run_config: dict | None = None) -> None:
    """The ``evaluate`` stage: extrapolate the members on the test truth, write metrics and store.

    Parameters
    ----------
    test_states : path
        True test trajectories (new initial conditions, ``extrapolation x`` the training window),
        with the true kernel in the ``kernel`` attr.
    train_states : path
        Training states store (the end of the training window, for the per-member MAE there).
    frames : path
        Training frames store (its scattering geometry draws the example's speckle).
    models : list of path
        Member model files (:func:`speckleml.dynamics.models.load_model`).
    metrics : path
        Output metrics CSV: one row per member, then the ensemble mean, min and max
        (:func:`summarize`); MAEs in radians.
    store : path
        Output evaluation store (:data:`EVALUATION`).
    per_frame : path, optional
        Output per-frame CSV (:func:`per_frame_table`).
    example : int
        Test condition drawn in the figures.
    rtol, atol : float
        dopri5 tolerances of the extrapolation.
    device : str
        ``auto``, ``cpu``, ``cuda``...
    run_config : dict, optional
        The stage's parameters, recorded in the provenance.

    Raises
    ------
    InputError
        Missing or inconsistent stores, a test store without the true kernel, ``example`` out of range.
    """
    from ..atomic import write_csv
    from ..provenance import make_provenance
    from ..runtime import resolve_device
    from ..stores import read_frames, read_states, write_store
    from .models import load_model
    from .train import geometry_from_attrs

    torch_device = resolve_device(device)
    test = read_states(test_states)
    train_t = read_states(train_states)["t"]
    observed = read_frames(frames, lazy=True)
    geometry = geometry_from_attrs(observed.attrs, frames)
    true_kernel = np.asarray(test.attrs.get("kernel"), np.float64)
    if true_kernel.ndim != 2:
        raise InputError(f"{test_states}: states store has no 'kernel' attr")
    loaded = [load_model(path, torch_device)[0] for path in models]
    train_t_max = float(train_t[-1])
    arrays, rows = evaluate_members(loaded, test["states"], test["t"], true_kernel, geometry, train_t_max,
                                    example=example, rtol=rtol, atol=atol, device=torch_device)
    provenance = make_provenance(config=run_config, seed=(run_config or {}).get("seed"),
                                 inputs=[test_states, train_states, frames, *models])
    dims = {"speckle_true": ("qy", "qx"), "speckle_pred": ("member", "qy", "qx"), "mask": ("qy", "qx")}
    write_store(store, EVALUATION, arrays,
                attrs={"train_t_max": train_t_max, "example": example, "geometry": geometry.as_attrs(),
                       "lambda_max": observed.attrs.get("lambda_max"), "models": [str(p) for p in models],
                       "mae_units": "radians; mae: phi -> -phi ambiguity removed per frame, mae_plain: plain "
                                    "(paper Fig. 5)"},
                provenance=provenance, dims=dims)
    write_csv(summarize(rows, baseline_rows(arrays, train_t_max)), metrics)
    if per_frame:
        write_csv(per_frame_table(arrays), per_frame)
