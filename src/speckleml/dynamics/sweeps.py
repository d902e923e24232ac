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


def gather_sweeps(conditions, reference_path, table_path, plot_path, level_stores=None) -> None:
    """Write the sweep table (one row per level) and the plot.

    The final-frame MAE is the plain real-space MAE (paper 000 Fig. 5), in radians; ``models``
    is the number of trained models behind each level (its metrics table's member rows).

    Parameters
    ----------
    conditions : list of (param, value, metrics_csv)
        One entry per sweep level.
    reference_path : path
        Metrics CSV of the noise-free ensemble (rows ``ensemble_min``/``ensemble_max``).
    table_path, plot_path : path
        Outputs (CSV, PNG).
    level_stores : list of path, optional
        Evaluation store of each level, in the order of ``conditions``: its learned kernel is
        drawn as a thumbnail per level (Supp. Fig. 15-16 style).

    Raises
    ------
    InputError
        Unknown parameter, missing or incomplete metrics, ``level_stores`` of another length.
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
        n_models = int((~metrics["member"].str.startswith(("ensemble_", "baseline_"))).sum())
        rows.append({
            "parameter": param, "value": float(value), "models": n_models,
            "final_mae_plain_mean": mean["final_mae_plain_mean"], "final_mae_plain_std": mean["final_mae_plain_std"],
            "kernel_mae": mean["kernel_mae"], "kernel_rel_error": mean["kernel_rel_error"],
            "reference_final_mae_plain_min": ref_min["final_mae_plain_mean"],
            "reference_final_mae_plain_max": ref_max["final_mae_plain_mean"],
            "reference_kernel_mae_min": ref_min["kernel_mae"], "reference_kernel_mae_max": ref_max["kernel_mae"],
            "final_mae_plain_within_reference": bool(mean["final_mae_plain_mean"] <= ref_max["final_mae_plain_mean"]),
            "kernel_mae_within_reference": bool(mean["kernel_mae"] <= ref_max["kernel_mae"]),
        })
    columns = ["parameter", "value", "models", "final_mae_plain_mean", "final_mae_plain_std", "kernel_mae", "kernel_rel_error",
               "reference_final_mae_plain_min", "reference_final_mae_plain_max", "reference_kernel_mae_min",
               "reference_kernel_mae_max", "final_mae_plain_within_reference", "kernel_mae_within_reference"]
    if level_stores is not None and len(level_stores) != len(conditions):
        raise InputError(f"{len(level_stores)} level stores for {len(conditions)} sweep conditions")
    kernels = _level_kernels(level_stores) if level_stores else None
    table = pd.DataFrame(rows, columns=columns)
    table["kernel"] = range(len(table))  # row of ``kernels`` (before sorting)
    table = table.sort_values(["parameter", "value"], kind="stable")
    write_csv(table.drop(columns="kernel"), table_path)
    sweep_plot(table, ref_min, ref_max, plot_path, kernels=kernels)


def _level_kernels(paths) -> dict:
    """Learned kernel (member 0) of each level's evaluation store, and the true kernel."""
    import numpy as np

    from ..stores import read_store
    from .evaluate import EVALUATION

    learned, true = [], None
    for path in paths:
        if not Path(path).exists():
            raise InputError(f"{path}: evaluation store does not exist")
        store = read_store(path, EVALUATION)
        learned.append(np.asarray(store["kernels"][0]))
        true = np.asarray(store["true_kernel"])
    return {"learned": learned, "true": true}


def sweep_plot(table, ref_min: dict, ref_max: dict, path, kernels: dict | None = None) -> None:
    """Final-frame MAE (mean +- std over test conditions) and kernel MAE vs each swept condition,
    and the learned kernel of each level next to the true one (``kernels``, optional)."""
    params = list(dict.fromkeys(table["parameter"])) or ["(no sweep configured)"]
    fig, axes = figure(len(params), 3 if kernels else 2, width=3.2, height=2.4)
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
        if kernels:
            _kernel_strip(axes[row, 2], sub, kernels, label)
    models = sorted(set(table["models"])) if len(table) else []
    fig.suptitle("Robustness of the learned Kuramoto dynamics (paper 000 Fig. 5, 6, Supp. Fig. 15-16 analogues; "
                 f"models per level: {', '.join(map(str, models)) or '-'})")
    save_figure(fig, path)


def level_value(param: str, value) -> float:
    """Validate one sweep level's value (a finite number > 0; delta may be 0)."""
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and param != "delta"):
        raise InputError(f"dynamics sweeps.{param}: invalid level {value!r}")
    return value




def _kernel_strip(ax, sub, kernels: dict, label: str) -> None:
    """Thumbnails of the learned kernel of each level (left to right) and the true kernel (last)."""
    import numpy as np

    ax.axis("off")
    images = [kernels["learned"][i] for i in sub["kernel"]] + [kernels["true"]]
    titles = [f"{v:g}" for v in sub["value"]] + ["true"]
    vmax = float(max(np.abs(k).max() for k in images)) or 1.0
    width = 1.0 / max(len(images), 1)
    for i, (image, title) in enumerate(zip(images, titles)):
        inset = ax.inset_axes([i * width, 0.25, width * 0.92, 0.6])
        inset.imshow(image, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        inset.set_xticks([])
        inset.set_yticks([])
        inset.set_title(title, fontsize=6)
    ax.set_title(f"learned kernel per level ({label})", fontsize=7)
