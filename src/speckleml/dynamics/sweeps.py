"""Robustness sweeps of the Kuramoto case (paper 000 Fig. 5, Fig. 6, Supp. Fig. 16).

Each sweep level is one scattering condition (noise ``lambda_max``, detector sampling
``dq_factor`` in pi/L, probe ``probe_sigma`` in L, coherence ``sigma_coh`` in L, form-factor
perturbation ``delta``); the workflow trains and evaluates a model per level. This module
gathers their metrics into one table and one plot of the final-frame MAE and the kernel MAE
vs condition, with the noise-free ensemble's min-max band as reference.
"""

from __future__ import annotations

import math
from pathlib import Path



from ..atomic import write_csv
from ..errors import InputError
from ..plotting import figure, save_figure

#: Sweep parameters: config key -> (CLI option of ``speckle``, axis label, log x axis).
SWEEP_PARAMETERS = {
    "lambda_max": ("--lambda-max", r"$\lambda_{max}$ (counts)", True),
    "dq_factor": ("--dq-factor", r"$\Delta Q$ ($\pi/L$)", False),
    "probe_sigma": ("--probe-sigma", r"$\sigma_p$ ($L$)", False),
    "sigma_coh": ("--sigma-coh", r"$\sigma_{coh}$ ($L$)", True),
    "delta": ("--delta", r"form-factor perturbation $\delta$", False),
}


def _read_metrics(path):
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: metrics table does not exist")
    table = pd.read_csv(path, dtype={"member": str})
    needed = {"member", "kernel_mae", "kernel_rel_error", "final_mae_plain_mean", "final_mae_plain_std"}
    missing = needed - set(table.columns)
    if missing:
        raise InputError(f"{path}: metrics table lacks columns {sorted(missing)}")
    return table


def _row(table, member: str, path) -> dict:
    rows = table[table["member"] == member]
    if rows.empty:
        raise InputError(f"{path}: metrics table has no row {member!r}")
    return rows.iloc[0].to_dict()


def gather_sweeps(conditions, reference_path, table_path, plot_path) -> None:
    """Write the sweep table (one row per level) and the plot.

    The final-frame MAE is the plain real-space MAE (paper 000 Fig. 5), in radians.

    Parameters
    ----------
    conditions : list of (param, value, metrics_csv)
        One entry per sweep level.
    reference_path : path
        Metrics CSV of the noise-free ensemble (rows ``ensemble_min``/``ensemble_max``).
    table_path, plot_path : path
        Outputs (CSV, PNG).
    """
    import pandas as pd

    reference = _read_metrics(reference_path)
    ref_min, ref_max = _row(reference, "ensemble_min", reference_path), _row(reference, "ensemble_max", reference_path)
    rows = []
    for param, value, metrics_path in conditions:
        if param not in SWEEP_PARAMETERS:
            raise InputError(f"--condition: unknown sweep parameter {param!r} (use one of {sorted(SWEEP_PARAMETERS)})")
        metrics = _read_metrics(metrics_path)
        mean = _row(metrics, "ensemble_mean", metrics_path)
        rows.append({
            "parameter": param, "value": float(value),
            "final_mae_plain_mean": mean["final_mae_plain_mean"], "final_mae_plain_std": mean["final_mae_plain_std"],
            "kernel_mae": mean["kernel_mae"], "kernel_rel_error": mean["kernel_rel_error"],
            "reference_final_mae_plain_min": ref_min["final_mae_plain_mean"],
            "reference_final_mae_plain_max": ref_max["final_mae_plain_mean"],
            "reference_kernel_mae_min": ref_min["kernel_mae"], "reference_kernel_mae_max": ref_max["kernel_mae"],
            "final_mae_plain_within_reference": bool(mean["final_mae_plain_mean"] <= ref_max["final_mae_plain_mean"]),
            "kernel_mae_within_reference": bool(mean["kernel_mae"] <= ref_max["kernel_mae"]),
        })
    columns = ["parameter", "value", "final_mae_plain_mean", "final_mae_plain_std", "kernel_mae", "kernel_rel_error",
               "reference_final_mae_plain_min", "reference_final_mae_plain_max", "reference_kernel_mae_min",
               "reference_kernel_mae_max", "final_mae_plain_within_reference", "kernel_mae_within_reference"]
    table = pd.DataFrame(rows, columns=columns).sort_values(["parameter", "value"], kind="stable")
    write_csv(table, table_path)
    sweep_plot(table, ref_min, ref_max, plot_path)


def sweep_plot(table, ref_min: dict, ref_max: dict, path) -> None:
    """Final-frame MAE (mean +- std over test conditions) and kernel MAE vs each swept condition."""
    params = list(dict.fromkeys(table["parameter"])) or ["(no sweep configured)"]
    fig, axes = figure(len(params), 2, width=3.2, height=2.4)
    for row, param in enumerate(params):
        sub = table[table["parameter"] == param]
        label, logx = SWEEP_PARAMETERS.get(param, (None, param, False))[1:]
        for col, (key, err, ylabel) in enumerate((("final_mae_plain_mean", "final_mae_plain_std",
                                                    "plain real-space MAE, last frame (rad)"),
                                                   ("kernel_mae", None, "kernel MAE"))):
            ax = axes[row, col]
            lo, hi = ref_min[key], ref_max[key]
            ax.axhspan(lo, hi, color="0.85", zorder=0, label="noise-free ensemble min-max")
            ax.axhline(lo, color="0.5", ls="--", lw=0.8)
            ax.axhline(hi, color="0.5", ls="--", lw=0.8)
            if len(sub):
                ax.errorbar(sub["value"], sub[key], yerr=None if err is None else sub[err], fmt="o-", ms=4,
                            capsize=2, color="C0", label="sweep level")
            if logx and len(sub) and (sub["value"] > 0).all():
                ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel(ylabel)
            if row == 0:
                ax.legend(loc="best", fontsize=6)
    fig.suptitle("Robustness of the learned Kuramoto dynamics (paper 000 Fig. 5, 6, Supp. Fig. 16 analogues)")
    save_figure(fig, path)


def level_value(param: str, value) -> float:
    """Validate one sweep level's value (a finite number > 0; delta may be 0)."""
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and param != "delta"):
        raise InputError(f"dynamics sweeps.{param}: invalid level {value!r}")
    return value


