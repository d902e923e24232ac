"""Figures of the fluctuating-source case (paper 000 Fig. 4c-f, Supp. Figs. 13-14 analogues).

All figures read the evaluation store (:data:`~.lotka_volterra_evaluate.LV_EVALUATION`) and the
tidy metrics table; nothing is recomputed but spectra CDFs.
"""

from __future__ import annotations

import numpy as np


def _cdf(power):
    """Cumulative distribution of spectra ``(..., F)`` normalised to 1 (NaN rows stay NaN)."""
    total = power.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.cumsum(power, axis=-1) / total


def make_figures(evaluation, metrics, *, trajectories, spectra, emd, fields, example: int = 0) -> None:
    """Write the four PNG figures.

    Parameters
    ----------
    evaluation, metrics : path
        Evaluation store and tidy metrics CSV of :func:`~.lotka_volterra_evaluate.run_evaluation`.
    trajectories : path
        ``x(t)``, ``y(t)`` of test series ``example``: truth, members' min-max band, the ensemble
        model and the mean of solutions; ``V(t)`` below (Fig. 4c, Supp. Fig. 14).
    spectra : path
        Fourier spectra of ``x(t)`` and their CDFs: truth, ensemble model, untrained baseline (Supp. Fig. 13a-b).
    emd : path
        EMD per member and series, ensemble model, mean of solutions, untrained baseline; learned
        vs true period (Supp. Fig. 13c-d).
    fields : path
        Vector fields: truth, member 0, ensemble mean, ensemble standard deviation, with the true
        test orbit of ``example`` overlaid (Fig. 4d-f).

    Raises
    ------
    InputError
        Missing inputs or ``example`` out of range.
    """
    from ..plotting import plt, save_figure  # Agg backend; atomic saves
    import pandas as pd

    from ..errors import InputError
    from ..stores import read_store
    from .lotka_volterra_evaluate import LV_EVALUATION
    from .systems.lotka_volterra import conserved_quantity

    ev = read_store(evaluation, LV_EVALUATION)
    table = pd.read_csv(metrics)
    t, true = ev["t"], ev["true"]
    if not 0 <= example < true.shape[0]:
        raise InputError(f"example series {example} out of range (0..{true.shape[0] - 1})")
    members = ev["members"][:, example]
    ens, mean = ev["ensemble_rhs"][example], ev["ensemble_mean"][example]
    t_train = ev.attrs["train_t_max"]

    fig, axes = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True)
    for c, name in enumerate(("x", "y")):
        ax = axes[c]
        ax.fill_between(t, np.nanmin(members[..., c], 0), np.nanmax(members[..., c], 0), color="C0", alpha=0.3,
                        lw=0, label="members (min-max)")
        ax.plot(t, true[example, :, c], "k", lw=1.2, label="truth")
        ax.plot(t, ens[:, c], color="C1", lw=1, label="ensemble model (mean RHS)")
        ax.plot(t, mean[:, c], color="C2", lw=0.8, ls="--", label="mean of solutions")
        ax.axvspan(0, t_train, color="0.85", lw=0)
        lo, hi = true[example, :, c].min(), true[example, :, c].max()
        ax.set_ylim(lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo))  # a diverging member must not hide the orbit
        ax.set_ylabel(f"{name}(t) (length)")
    axes[0].legend(loc="upper right", fontsize=7, ncol=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        axes[2].plot(t, conserved_quantity(true[example]), "k", lw=1.2, label="truth")
        axes[2].plot(t, conserved_quantity(ens), color="C1", lw=1, label="ensemble model")
    v_true = conserved_quantity(true[example])
    axes[2].set_ylim(v_true.min() - 0.2 * abs(v_true.min()), v_true.max() + 0.2 * abs(v_true.max()))
    axes[2].set_ylabel("V(t)")
    axes[2].set_xlabel("time (grey: training window)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, trajectories)

    freqs = ev["freqs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    curves = [("truth", ev["spectrum_true"][example, :, 0], "k"),
              ("ensemble model", ev["spectrum_ensemble_rhs"][example, :, 0], "C1"),
              ("untrained MLP", ev["spectrum_random"][example, :, 0], "C3")]
    for label, power, color in curves:
        axes[0].semilogy(freqs[1:], power[1:], color=color, lw=1, label=label)
        axes[1].plot(freqs, _cdf(power), color=color, lw=1, label=label)
    axes[0].set_xlabel("frequency (1/time)")
    axes[0].set_ylabel("power of x(t) (length$^2$ time)")
    axes[1].set_xlabel("frequency (1/time)")
    axes[1].set_ylabel("CDF of the spectrum")
    axes[1].set_xlim(0, min(freqs[-1], 0.5))
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, spectra)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    groups = [(f"m{m}", ev["emd_members"][m]) for m in range(ev["emd_members"].shape[0])]
    groups += [("ens. RHS", ev["emd_ensemble_rhs"]), ("mean sol.", ev["emd_ensemble_mean"]),
               ("untrained", ev["emd_random"])]
    data = [g[~np.isnan(g)] for _, g in groups]
    axes[0].boxplot(data, showfliers=True)
    axes[0].set_xticks(range(1, len(groups) + 1), [name for name, _ in groups], rotation=45, fontsize=7)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("EMD of spectra (1/time)")
    periods = table[table.metric == "period"]
    names = ["truth", "member", "ensemble_rhs", "ensemble_mean", "random"]
    values = [periods[periods.model == n].value.dropna().to_numpy() for n in names]
    axes[1].boxplot([v if v.size else [np.nan] for v in values])
    axes[1].set_xticks(range(1, len(names) + 1), names, rotation=45, fontsize=7)
    axes[1].axhline(2 * np.pi / np.sqrt(0.5 / 3), color="0.5", ls=":", lw=1, label="small-orbit 15.39")
    axes[1].set_ylabel("period of x(t) (time)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, emd)

    grid, field_true, field_members = ev["grid"], ev["field_true"], ev["field_members"]
    panels = [("truth", field_true), ("member 0", field_members[0]), ("ensemble mean", field_members.mean(0))]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    for ax, (title, field) in zip(axes, panels):
        speed = np.linalg.norm(field, axis=-1)
        ax.quiver(grid[..., 0], grid[..., 1], field[..., 0], field[..., 1], speed, cmap="viridis")
        ax.set_title(title)
    std = np.linalg.norm(field_members.std(0), axis=-1)
    image = axes[3].pcolormesh(grid[..., 0], grid[..., 1], std, shading="auto", cmap="magma")
    fig.colorbar(image, ax=axes[3], label="ensemble std of |F| (length/time)")
    axes[3].set_title("ensemble std")
    for ax in axes:
        ax.plot(true[example, :, 0], true[example, :, 1], "r", lw=0.8)
        ax.set_xlabel("x (length)")
    axes[0].set_ylabel("y (length)")
    fig.tight_layout()
    save_figure(fig, fields)
