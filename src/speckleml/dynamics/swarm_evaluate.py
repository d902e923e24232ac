"""Evaluation of the swarm ensemble (paper 000 Case study 2: Fig. 3, Supp. Fig. 9-10).

On new initial conditions over ``extrapolation x`` the training window each member is
integrated and compared with the truth:

- centre-of-mass MSE vs time per member (Supp. Fig. 10a; baseline: the frozen initial state);
- cluster-size distributions vs time, true vs predicted (Fig. 3f): connected components of the
  graph with edges ``<= d``, ``d`` the first peak of the true pair-distance histogram at the end
  of the training window (:mod:`speckleml.metrics`);
- C2 (eq. 19, ``normalization="covariance"``) at one Q ring from the rendered frames of one
  series, true vs the mean of the members' C2 (Fig. 3c), the MAE of the C2 rows vs ``t1``
  (Supp. Fig. 10b) with the no-dynamics baseline (``C2 = 1``: frozen frames) and the agreement
  time (:func:`c2_agreement_time`, median over the test series; paper: until t ~ 25 of 50), and ``tau``, ``gamma`` of
  ``exp[-(dt/tau)^gamma]`` fitted to one-time slices vs ``t1`` (Supp. Fig. 10e,
  :func:`speckleml.fitting.fit_c2_slice`);
- the learned ``F_NN(r)`` vs the true ``h(r)`` with the ensemble band (Fig. 3b, Supp. Fig. 9a).
"""

from __future__ import annotations

import logging

import numpy as np

from ..stores import FLOATS, ArraySpec, StoreSchema, register_schema

log = logging.getLogger(__name__)

SWARM_EVALUATION = register_schema(StoreSchema(
    name="swarm_evaluation", version=2,
    description="swarm graph-NODE ensemble evaluated on test initial conditions",
    arrays={
        "t": ArraySpec(("time",), FLOATS, finite=True),
        "com_mse": ArraySpec(("member", "time"), FLOATS),
        "com_mse_frozen": ArraySpec(("time",), FLOATS, finite=True),
        "cluster_t": ArraySpec(("snapshot",), FLOATS, finite=True),
        "cluster_true": ArraySpec(("snapshot", "size"), FLOATS, finite=True),
        "cluster_pred": ArraySpec(("snapshot", "size"), FLOATS, finite=True),
        "c2_true": ArraySpec(("time", "time"), FLOATS),
        "c2_pred": ArraySpec(("time", "time"), FLOATS),
        "c2_mae": ArraySpec(("time",), FLOATS),
        "c2_mae_static": ArraySpec(("time",), FLOATS),
        "c2_mae_series": ArraySpec(("series", "time"), FLOATS),
        "c2_mae_static_series": ArraySpec(("series", "time"), FLOATS),
        "c2_agreement_series": ArraySpec(("series",), FLOATS),
        "fit_t1": ArraySpec(("age",), FLOATS, finite=True),
        "tau_true": ArraySpec(("age",), FLOATS), "gamma_true": ArraySpec(("age",), FLOATS),
        "tau_pred": ArraySpec(("age",), FLOATS), "gamma_pred": ArraySpec(("age",), FLOATS),
        "r": ArraySpec(("r",), FLOATS, finite=True),
        "h_true": ArraySpec(("r",), FLOATS, finite=True),
        "f_pred": ArraySpec(("member", "r"), FLOATS),
        "cutoff_pred": ArraySpec(("member",), FLOATS),
        "positions_true": ArraySpec(("snapshot", "particle", "xy"), FLOATS),
        "positions_pred": ArraySpec(("snapshot", "particle", "xy"), FLOATS),
    },
    required_attrs=("t_max", "d", "q_ring", "cutoff", "initial_cutoff", "agreement_mae", "lag_window"),
))


def centre_of_mass_mse(pred, true) -> np.ndarray:
    """MSE of the centres of mass ``(..., time)`` of positions ``(..., time, N, 2)`` (length units^2)."""
    diff = np.asarray(pred).mean(axis=-2) - np.asarray(true).mean(axis=-2)
    return (diff**2).sum(axis=-1)


def cluster_distribution(positions, d: float, n_particles: int) -> np.ndarray:
    """Fraction of particles in clusters of each size ``1..N`` (index ``s - 1``), pooled over series.

    Parameters
    ----------
    positions : array (series, N, 2)
    d : float
        Largest edge length (:func:`speckleml.metrics.cluster_sizes`).
    n_particles : int

    Returns
    -------
    ndarray (N,), sums to 1.
    """
    from ..metrics import cluster_sizes

    weights = np.zeros(n_particles)
    for config in np.asarray(positions):
        sizes = cluster_sizes(config, d)
        np.add.at(weights, sizes - 1, sizes)
    return weights / weights.sum()


def c2_row_mae(c2_true, c2_pred) -> np.ndarray:
    """MAE of the C2 rows ``t1`` (mean over ``t2`` of ``|C2_true - C2_pred|``), ``(time,)``."""
    return np.nanmean(np.abs(np.asarray(c2_true) - np.asarray(c2_pred)), axis=1)


def c2_agreement_time(t, c2_mae, threshold: float) -> float:
    """Last time before the row MAE of C2 first exceeds ``threshold`` (``t[-1]`` if it never does).

    The analogue of the paper's "excellent agreement until approximately t = 25" (Fig. 3c lower
    panel, the MAE of C2 slices vs time). Non-finite MAEs count as disagreement; a first row
    already above ``threshold`` gives ``t[0]``.

    Parameters
    ----------
    t : array (time,)
    c2_mae : array (time,)
        :func:`c2_row_mae` (C2 is dimensionless, 1 on the diagonal).
    threshold : float
        Largest row MAE that counts as agreement.
    """
    t, mae = np.asarray(t, np.float64), np.asarray(c2_mae, np.float64)
    bad = ~(np.isfinite(mae) & (mae <= threshold))
    if not bad.any():
        return float(t[-1])
    first = int(np.argmax(bad))
    return float(t[max(first - 1, 0)])


def kww_vs_age(c2, dt: float, ages, n_lags: int) -> tuple[np.ndarray, np.ndarray]:
    """``tau`` and ``gamma`` of ``exp[-(dt/tau)^gamma]`` fitted to the one-time slice at each age.

    The slice at ``t1`` is ``C2[t1, t1 + k]``, ``k = 1..n_lags`` (delays perpendicular to the
    diagonal, paper Methods). Failed fits are NaN.
    """
    from ..fitting import fit_c2_slice

    tau, gamma = np.full(len(ages), np.nan), np.full(len(ages), np.nan)
    for i, a in enumerate(ages):
        row = np.asarray(c2[a, a + 1:a + 1 + n_lags], np.float64)
        if row.size < 4 or not np.all(np.isfinite(row)):
            continue
        fit = fit_c2_slice(np.arange(1, row.size + 1) * dt, row)
        if fit.success:
            tau[i], gamma[i] = fit["tau"], fit["gamma"]
    return tau, gamma


def _c2(positions, forward, labels):
    import torch

    from ..correlation import two_time

    with torch.no_grad():
        frames = forward(torch.as_tensor(positions)).cpu().numpy()
    return two_time(frames, labels, normalization="covariance", desc="c2")[0].astype(np.float64)


def run_swarm_evaluation(*, test_states, frames, models, metrics, store, example: int, snapshots: int,
                         n_lags: int, agreement_mae: float, rtol: float, atol: float, device: str = "auto",
                         run_config: dict | None = None) -> dict:
    """The swarm ``evaluate`` stage: metrics CSV (tidy: metric, member, value) and evaluation store.

    Parameters
    ----------
    test_states : path
        True test trajectories (new initial conditions, ``extrapolation x t_max``).
    frames : path
        Training frames store (its geometry and training window).
    models : list of path
        Member model files.
    metrics, store : path
        Output metrics CSV and evaluation store.
    example : int
        Test series of the C2 maps, the KWW fits and the position snapshots.
    snapshots : int
        Times of the cluster-size distributions and position snapshots (evenly spaced).
    n_lags : int
        Delays of each one-time slice of the KWW fits.
    agreement_mae : float
        Row MAE of C2 up to which true and predicted C2 agree (:func:`c2_agreement_time`).
    rtol, atol : float
        dopri5 tolerances of the predictions.
    device : str

    Returns
    -------
    dict of the ensemble metrics.

    Raises
    ------
    InputError
        Missing or inconsistent inputs, ``example`` out of range.
    """
    import pandas as pd
    import torch

    from ..correlation import q_ring_rois
    from ..errors import InputError
    from ..metrics import first_peak, pair_distance_histogram
    from ..provenance import make_provenance
    from ..runtime import resolve_device
    from ..stores import read_frames, read_states, write_store
    from .models import load_model
    from .swarm_run import initial_cutoff_from_frames
    from .systems.swarm import SwarmGeometry, SwarmSpeckle, cutoff_function, equilibrium_distance
    from .training import predict_ode

    torch_device = resolve_device(device)
    truth = read_states(test_states)
    if truth.attrs.get("system") != "swarm":
        raise InputError(f"{test_states}: not a swarm states store")
    frame_store = read_frames(frames, lazy=True)
    geometry = SwarmGeometry(**frame_store.attrs["geometry"])
    true_states, t = np.asarray(truth["states"]), np.asarray(truth["t"])
    if not 0 <= example < true_states.shape[0]:
        raise InputError(f"--example {example} is out of range (test series: {true_states.shape[0]})")
    t_max = float(frame_store.attrs["t"][-1])
    k_max = int(np.argmin(np.abs(t - t_max)))
    cutoff, n_particles = float(truth.attrs["cutoff"]), true_states.shape[2]

    y0 = torch.as_tensor(true_states[:, 0], device=torch_device)
    tt = torch.as_tensor(t, device=torch_device)
    preds, f_pred, r_pred = [], [], []
    r = np.linspace(0.02, 1.4, 120) * cutoff
    for path in models:
        model, _ = load_model(path, device=torch_device)
        preds.append(predict_ode(model, y0, tt, method="dopri5", rtol=rtol, atol=atol, chunk=4).cpu().numpy())
        f_pred.append(model.cutoff_function(torch.as_tensor(r, device=torch_device)).cpu().numpy())
        r_pred.append(float(model.cutoff))
    preds, f_pred = np.stack(preds), np.stack(f_pred)
    h_true = cutoff_function(torch.as_tensor(r), cutoff).numpy()

    com = centre_of_mass_mse(preds, true_states[None]).mean(axis=1)              # (member, time)
    com_frozen = centre_of_mass_mse(true_states[:, :1], true_states).mean(axis=0)

    counts, edges = pair_distance_histogram(true_states[example, k_max], bins=80, range=(0, 2 * cutoff))
    d = first_peak(counts, edges)
    snap = np.unique(np.linspace(0, len(t) - 1, snapshots).round().astype(int))
    cl_true = np.stack([cluster_distribution(true_states[:, k], d, n_particles) for k in snap])
    cl_pred = np.stack([cluster_distribution(preds[:, :, k].reshape(-1, n_particles, 2), d, n_particles)
                        for k in snap])
    sizes = np.arange(1, n_particles + 1)

    forward = SwarmSpeckle(geometry, dtype=torch.float64, device=torch_device)
    q_ring = 2 * np.pi / initial_cutoff_from_frames(frames)  # the bright ring (Fig. 3g dashed circle)
    labels, _ = q_ring_rois(forward.q_map(), [q_ring - geometry.dq, q_ring + geometry.dq],
                            mask=forward.mask.cpu().numpy())
    # C2 of every test series (one ring of ~80 particles is noisy, so the agreement time is a
    # median over series); the example's maps are stored.
    mae_series, static_series = [], []
    for s in range(true_states.shape[0]):
        c2_t = _c2(true_states[s], forward, labels)
        c2_p = np.mean([_c2(p[s], forward, labels) for p in preds], axis=0)
        mae_series.append(c2_row_mae(c2_t, c2_p))
        static_series.append(c2_row_mae(c2_t, np.ones_like(c2_t)))  # baseline: no dynamics, frozen frames
        if s == example:
            c2_true, c2_pred = c2_t, c2_p
    mae_series, static_series = np.stack(mae_series), np.stack(static_series)
    c2_mae, c2_mae_static = mae_series[example], static_series[example]
    agreement = np.array([c2_agreement_time(t, m, agreement_mae) for m in mae_series])
    agreement_static = np.array([c2_agreement_time(t, m, agreement_mae) for m in static_series])
    dt = float(t[1] - t[0])
    ages = np.arange(0, len(t) - n_lags - 1, max(1, (len(t) - n_lags) // 25))
    tau_true, gamma_true = kww_vs_age(c2_true, dt, ages, n_lags)
    tau_pred, gamma_pred = kww_vs_age(c2_pred, dt, ages, n_lags)

    both = np.isfinite(tau_true) & np.isfinite(tau_pred)
    r0 = 2 * np.pi / q_ring
    band = (r >= equilibrium_distance(cutoff)) & (r <= cutoff)
    f_mean = f_pred.mean(axis=0)
    g_true, g_pred = h_true * (1 - h_true), f_mean * (1 - f_mean)
    summary = {
        "cutoff_rmse": float(np.sqrt(np.mean((f_mean[band] - h_true[band]) ** 2))),
        "cutoff_rel_error": float(np.linalg.norm(f_mean[band] - h_true[band]) / np.linalg.norm(h_true[band])),
        "interaction_rmse": float(np.sqrt(np.mean((g_pred[band] - g_true[band]) ** 2))),
        "learned_R_mean": float(np.mean(r_pred)),
        "com_mse_final": float(com[:, -1].mean()), "com_mse_frozen_final": float(com_frozen[-1]),
        "c2_mae_window": float(np.nanmean(c2_mae[:k_max + 1])), "c2_mae_all": float(np.nanmean(c2_mae)),
        "c2_mae_max": float(np.nanmax(c2_mae)), "c2_mae_static_all": float(np.nanmean(c2_mae_static)),
        "c2_agreement_time": float(np.median(agreement)),  # median over test series
        "c2_agreement_time_min": float(agreement.min()), "c2_agreement_time_max": float(agreement.max()),
        "c2_agreement_time_example": float(agreement[example]),
        "c2_agreement_time_static": float(np.median(agreement_static)),  # baseline: no dynamics
        "kww_fits": int(both.sum()),
        "tau_rel_error_median": float(np.median(np.abs(tau_pred[both] / tau_true[both] - 1))) if both.any()
        else float("nan"),
        "gamma_abs_error_median": float(np.median(np.abs(gamma_pred[both] - gamma_true[both]))) if both.any()
        else float("nan"),
        "mean_cluster_true_final": float((cl_true[-1] * sizes).sum()),
        "mean_cluster_pred_final": float((cl_pred[-1] * sizes).sum()),
        "mean_cluster_initial": float((cl_true[0] * sizes).sum()),
        "d": d, "q_ring": float(q_ring), "initial_cutoff": float(r0),
    }
    rows = [{"metric": k, "member": "ensemble", "value": v} for k, v in summary.items()]
    for m in range(len(models)):
        rows += [{"metric": "com_mse_final", "member": m, "value": float(com[m, -1])},
                 {"metric": "learned_R", "member": m, "value": r_pred[m]},
                 {"metric": "cutoff_rmse", "member": m,
                  "value": float(np.sqrt(np.mean((f_pred[m, band] - h_true[band]) ** 2)))}]
    provenance = make_provenance(config=run_config, inputs=[test_states, frames, *models])
    write_store(store, SWARM_EVALUATION, {
        "t": t, "com_mse": com, "com_mse_frozen": com_frozen, "cluster_t": t[snap], "cluster_true": cl_true,
        "cluster_pred": cl_pred, "c2_true": c2_true, "c2_pred": c2_pred, "c2_mae": c2_mae,
        "c2_mae_static": c2_mae_static,
        "c2_mae_series": mae_series, "c2_mae_static_series": static_series, "c2_agreement_series": agreement,
        "fit_t1": t[ages],
        "tau_true": tau_true, "gamma_true": gamma_true, "tau_pred": tau_pred, "gamma_pred": gamma_pred,
        "r": r, "h_true": h_true, "f_pred": f_pred, "cutoff_pred": np.asarray(r_pred),
        "positions_true": true_states[example, snap], "positions_pred": preds[0, example, snap],
    }, attrs={"t_max": t_max, "d": d, "q_ring": float(q_ring), "cutoff": cutoff, "example": example,
              "initial_cutoff": float(r0), "agreement_mae": float(agreement_mae), "lag_window": n_lags * dt},
        provenance=provenance)
    pd.DataFrame(rows).to_csv(metrics, index=False)
    return summary
