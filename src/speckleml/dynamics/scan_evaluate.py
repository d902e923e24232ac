"""Evaluation of the scan ensemble (paper 000 Fig. 7, Supp. Fig. 17-18).

Each member is integrated from the true ``r(t0)`` over the test window (``extrapolation x``
the training window; paper: 2x) and compared with eq. 9's trajectory:

- the trajectories ``x(t)``, ``y(t)`` and their difference (Fig. 7i); the **angular lag** at
  the last point, ``(theta_true - theta_pred) / pi`` of the unwrapped polar angles about the
  spiral centre (positive: the prediction lags behind; paper: about 0.11 pi), and the radius
  ratio there (the paper's "slight dilation");
- position errors (object pixels) in the training window and beyond it;
- Fourier spectra of ``x(t)`` and ``y(t)`` over the test window and the EMD between the true
  and predicted spectra as distributions over frequency (:func:`speckleml.metrics.spectrum`,
  :func:`speckleml.metrics.spectral_emd`, shared with the Lotka-Volterra case; Supp. Fig. 17b);
- C2 (eq. 19) of the true and predicted patterns at three Q rings (Supp. Fig. 17c-e), and the
  MAE between the maps off the diagonal;
- the real-space frames (object x probe, and the object patch) and patterns at the true and
  predicted points at the end of the training window and at the last point (Fig. 7b-g), and
  the object patches and patterns at ``SERIES_STEPS`` times along both paths (Supp. Fig. 18).

The ensemble prediction is the mean of the members' trajectories.
"""

from __future__ import annotations

import logging

import numpy as np

from ..stores import FLOATS, ArraySpec, StoreSchema, register_schema

log = logging.getLogger(__name__)

#: Times along the test window at which Supp. Fig. 18's series of frames is stored.
SERIES_STEPS = 8

SCAN_EVALUATION = register_schema(StoreSchema(
    name="scan_evaluation", version=1,
    description="scan NODE ensemble evaluated over the extrapolation window",
    arrays={
        "t": ArraySpec(("time",), FLOATS, finite=True),
        "r_true": ArraySpec(("time", "xy"), FLOATS, finite=True),
        "r_pred": ArraySpec(("member", "time", "xy"), FLOATS),
        "r_ensemble": ArraySpec(("time", "xy"), FLOATS),
        "freqs": ArraySpec(("frequency",), FLOATS, finite=True),
        "spec_true": ArraySpec(("xy", "frequency"), FLOATS),
        "spec_pred": ArraySpec(("xy", "frequency"), FLOATS),
        "q_rings": ArraySpec(("ring", "edge"), FLOATS, finite=True),
        "c2_true": ArraySpec(("ring", "time", "time"), FLOATS),
        "c2_pred": ArraySpec(("ring", "time", "time"), FLOATS),
        "object_phase": ArraySpec(("oy", "ox"), FLOATS, finite=True),
        "frame_time": ArraySpec(("shown",), FLOATS, finite=True),
        "wave_true": ArraySpec(("shown", "py", "px", "part"), FLOATS, finite=True),
        "wave_pred": ArraySpec(("shown", "py", "px", "part"), FLOATS),
        "patch_true": ArraySpec(("shown", "py", "px", "part"), FLOATS, finite=True),
        "patch_pred": ArraySpec(("shown", "py", "px", "part"), FLOATS),
        "pattern_true": ArraySpec(("shown", "py", "px"), FLOATS, finite=True),
        "pattern_pred": ArraySpec(("shown", "py", "px"), FLOATS),
        "series_time": ArraySpec(("step",), FLOATS, finite=True),
        "series_patch_true": ArraySpec(("step", "py", "px", "part"), FLOATS, finite=True),
        "series_patch_pred": ArraySpec(("step", "py", "px", "part"), FLOATS),
        "series_pattern_true": ArraySpec(("step", "py", "px"), FLOATS, finite=True),
        "series_pattern_pred": ArraySpec(("step", "py", "px"), FLOATS),
    },
    required_attrs=("window", "t0", "angular_lag_pi"),
))


def polar_angle(r) -> np.ndarray:
    """Unwrapped polar angle (radians) of ``r (..., time, 2)`` about the origin, along time."""
    r = np.asarray(r, np.float64)
    return np.unwrap(np.arctan2(r[..., 1], r[..., 0]), axis=-1)


def angular_lag(r_true, r_pred) -> float:
    """``(theta_true - theta_pred) / pi`` at the last point of two trajectories ``(time, 2)``.

    Both angles are unwrapped from their common start, so whole turns gained or lost count.
    """
    return float((polar_angle(r_true)[-1] - polar_angle(r_pred)[-1]) / np.pi)


def spectra_emd(t, r_true, r_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spectra of ``x`` and ``y`` (:func:`speckleml.metrics.spectrum`) and their EMD per coordinate.

    Returns
    -------
    freqs (F,), spec_true (2, F), spec_pred (2, F), emd (2,) in cycles per scan point.
    """
    from ..metrics import spectral_emd, spectrum

    dt = float(t[1] - t[0])
    freqs, spec_true = spectrum(np.asarray(r_true).T, dt)
    _, spec_pred = spectrum(np.asarray(r_pred).T, dt)
    return freqs, spec_true, spec_pred, np.asarray(spectral_emd(spec_true, spec_pred, freqs))


def ring_labels(detector: int, radius: float, width: float, mask) -> np.ndarray:
    """Labels ``(n, n)`` int32: 1 on pixels with ``|q - radius| < width / 2`` (pixels) and ``mask``."""
    axis = np.arange(detector) - detector // 2
    q = np.hypot(axis[None, :], axis[:, None])
    return ((np.abs(q - radius) < width / 2) & np.asarray(mask, bool)).astype(np.int32)


def off_diagonal_mae(a, b) -> float:
    """Mean ``|a - b|`` over ``t1 != t2`` of two ``(time, time)`` maps (the diagonal is 1 in both)."""
    off = ~np.eye(a.shape[0], dtype=bool)
    return float(np.nanmean(np.abs(np.asarray(a) - np.asarray(b))[off]))


def run_scan_evaluation(*, test_states, frames, models, metrics, store, q_fractions, ring_width: float,
                        rtol: float, atol: float, device: str = "auto", run_config: dict | None = None) -> dict:
    """The scan ``evaluate`` stage: metrics CSV (tidy: metric, member, value) and evaluation store.

    Parameters
    ----------
    test_states : path
        True trajectory over the test window (``scan`` states store).
    frames : path
        Training frames store (its geometry names the sample store).
    models : list of path
        Member model files.
    metrics, store : path
        Output metrics CSV and evaluation store.
    q_fractions : sequence of 3 floats
        Radii of the C2 rings as fractions of the detector half-width (in (0, 1)).
    ring_width : float
        Ring width in pixels.
    rtol, atol : float
        dopri5 tolerances of the predictions.
    device : str

    Returns
    -------
    dict of the ensemble metrics.

    Raises
    ------
    InputError
        Missing or inconsistent inputs, ring fractions outside (0, 1).
    """
    import pandas as pd
    import torch

    from ..errors import InputError
    from ..provenance import make_provenance
    from ..runtime import resolve_device
    from ..stores import read_frames, read_states, write_store
    from .c2 import ring_c2
    from .models import load_model
    from .systems.scan import training_forward_model
    from .train import geometry_from_attrs
    from .training import predict_ode

    q_fractions = [float(q) for q in q_fractions]
    if len(q_fractions) != 3 or not all(0 < q < 1 for q in q_fractions) or ring_width <= 0:
        raise InputError(f"need three C2 ring fractions in (0, 1) and a ring width > 0, got {q_fractions}, "
                         f"{ring_width}")
    torch_device = resolve_device(device)
    truth = read_states(test_states)
    if truth.attrs.get("system") != "scan":
        raise InputError(f"{test_states}: not a scan states store")
    frame_store = read_frames(frames, lazy=True)
    geometry = geometry_from_attrs(frame_store.attrs, frames, "scan")
    if "t" not in frame_store.attrs:
        raise InputError(f"{frames}: frames store has no 't' attr (the scan points of the training window)")
    forward = training_forward_model(geometry, dtype=torch.float64, device=torch_device)
    true_states, t = np.asarray(truth["states"]), np.asarray(truth["t"])
    window = len(frame_store.attrs["t"])

    y0 = torch.as_tensor(true_states[:, 0], device=torch_device)
    tt = torch.as_tensor(t - t[0], device=torch_device)
    preds = np.stack([predict_ode(load_model(path, device=torch_device)[0], y0, tt, method="dopri5", rtol=rtol,
                                  atol=atol)[0].cpu().numpy() for path in models])
    r_true, r_pred = true_states[0, :, :2], preds[..., :2]
    r_ens = r_pred.mean(axis=0)

    def scores(r):
        err = np.hypot(*(r - r_true).T)
        _, _, _, emd = spectra_emd(t, r_true, r) if np.all(np.isfinite(r)) else (0, 0, 0, np.full(2, np.nan))
        return {"angular_lag_pi": angular_lag(r_true, r),
                "radius_ratio_end": float(np.hypot(*r[-1]) / np.hypot(*r_true[-1])),
                "position_mae_window": float(err[:window].mean()), "position_mae_extrapolation": float(err[window:].mean()),
                "position_error_end": float(err[-1]), "emd_x": float(emd[0]), "emd_y": float(emd[1]),
                "emd_mean": float(emd.mean())}

    summary = scores(r_ens)
    freqs, spec_true, spec_pred, _ = spectra_emd(t, r_true, r_ens)

    def patterns(r):
        with torch.no_grad():
            return forward(torch.as_tensor(r, device=torch_device)).cpu().numpy()

    mask = geometry.mask()
    n = geometry.detector
    rings = np.array([[q * n / 2 - ring_width / 2, q * n / 2 + ring_width / 2] for q in q_fractions])
    speckle_true = patterns(r_true)
    speckle_pred = [patterns(r) for r in r_pred]
    c2_true, c2_pred = [], []
    for k, q in enumerate(q_fractions):
        labels = ring_labels(n, q * n / 2, ring_width, mask)
        c2_true.append(ring_c2(speckle_true, labels))
        c2_pred.append(np.mean([ring_c2(s, labels) for s in speckle_pred], axis=0))
        summary[f"c2_mae_q{k + 1}"] = off_diagonal_mae(c2_true[-1], c2_pred[-1])

    shown = np.array([min(window, len(t) - 1), len(t) - 1])
    with torch.no_grad():
        waves = [forward.exit_waves(torch.as_tensor(r[shown], device=torch_device)).cpu().numpy()
                 for r in (r_true, r_ens)]
        patches = [forward.patches(torch.as_tensor(r[shown], device=torch_device)).cpu().numpy()
                   for r in (r_true, r_ens)]
        pats = [forward(torch.as_tensor(r[shown], device=torch_device)).cpu().numpy() for r in (r_true, r_ens)]
    obj = forward.obj[0].cpu().numpy()
    steps = np.unique(np.linspace(0, len(t) - 1, SERIES_STEPS).round().astype(int))
    with torch.no_grad():
        series_patch = [forward.patches(torch.as_tensor(r[steps], device=torch_device)).cpu().numpy()
                        for r in (r_true, r_ens)]
    series_pattern = [speckle_true[steps], patterns(r_ens[steps])]

    rows = [{"metric": k, "member": "ensemble", "value": v} for k, v in summary.items()]
    for m in range(len(models)):
        rows += [{"metric": k, "member": m, "value": v} for k, v in scores(r_pred[m]).items()
                 if not k.startswith("c2")]
    rows.append({"metric": "paper_angular_lag_pi", "member": "paper", "value": 0.11})
    provenance = make_provenance(config=run_config, inputs=[test_states, frames, *models])
    write_store(store, SCAN_EVALUATION, {
        "t": t, "r_true": r_true, "r_pred": r_pred, "r_ensemble": r_ens, "freqs": freqs, "spec_true": spec_true,
        "spec_pred": spec_pred, "q_rings": rings, "c2_true": np.stack(c2_true), "c2_pred": np.stack(c2_pred),
        "object_phase": np.angle(obj[0] + 1j * obj[1]), "frame_time": t[shown] - t[0],
        "wave_true": np.stack([waves[0].real, waves[0].imag], axis=-1),
        "wave_pred": np.stack([waves[1].real, waves[1].imag], axis=-1),
        "patch_true": np.stack([patches[0].real, patches[0].imag], axis=-1),
        "patch_pred": np.stack([patches[1].real, patches[1].imag], axis=-1),
        "pattern_true": pats[0], "pattern_pred": pats[1], "series_time": t[steps] - t[0],
        "series_patch_true": np.stack([series_patch[0].real, series_patch[0].imag], axis=-1),
        "series_patch_pred": np.stack([series_patch[1].real, series_patch[1].imag], axis=-1),
        "series_pattern_true": series_pattern[0], "series_pattern_pred": series_pattern[1],
    }, attrs={"window": int(window), "t0": float(t[0]), "angular_lag_pi": summary["angular_lag_pi"],
              "members": len(models), "units": "positions: object pixels; t: scan points; freqs: 1/scan point"},
        provenance=provenance)
    pd.DataFrame(rows).to_csv(metrics, index=False)
    log.info("scan: angular lag %.3f pi, EMD %.4g, position MAE window %.3g px", summary["angular_lag_pi"],
             summary["emd_mean"], summary["position_mae_window"])
    return summary
