"""Figures of the swarm case: Fig. 3 and Supp. Fig. 10 analogues (paper 000, Case study 2)."""

from __future__ import annotations

import numpy as np


def make_swarm_figures(evaluation, fig3, supp10) -> None:
    """Write the two figures from the evaluation store.

    Parameters
    ----------
    evaluation : path
        Store of :func:`speckleml.dynamics.swarm_evaluate.run_swarm_evaluation`.
    fig3 : path
        Output PNG: learned vs true cutoff function with the ensemble band, the true, ring (R0)
        and learned cutoff radii (a), C2 true (upper) vs ensemble-predicted (lower) (b),
        cluster-size distributions vs time true / predicted (c, d), positions of one test series
        at the last snapshot (e), the pair interaction F(1 - F) vs h(1 - h) (f).
    supp10 : path
        Output PNG: centre-of-mass MSE per member with the frozen-state baseline (a), MAE of
        the C2 rows vs t1 with the no-dynamics baseline and the agreement threshold (b), tau and
        the KWW exponent vs t1, true vs predicted, with the fitted delay range (c, d).
    """
    from ..plotting import plt, save_figure  # Agg backend; atomic saves

    from ..stores import read_store
    from .swarm_evaluate import SWARM_EVALUATION

    ev = read_store(evaluation, SWARM_EVALUATION)
    t, t_max, cutoff = ev["t"], float(ev.attrs["t_max"]), float(ev.attrs["cutoff"])
    r0, learned_r = float(ev.attrs["initial_cutoff"]), ev["cutoff_pred"]
    time_unit = "time units of eq. 4"
    fig, ax = plt.subplots(2, 3, figsize=(14, 8.5))
    r, f = ev["r"], ev["f_pred"]
    ax[0, 0].plot(r, ev["h_true"], "k-", label="true h(r) (eq. 5)")
    ax[0, 0].plot(r, f.mean(0), "o", ms=3, color="C1", label=f"ensemble mean F_NN ({len(f)} members)")
    ax[0, 0].fill_between(r, f.mean(0) - f.std(0), f.mean(0) + f.std(0), color="C1", alpha=0.3, label="±1 std")
    ax[0, 0].axvline(cutoff, color="k", ls=":", label=f"true R = {cutoff:.3g}")
    ax[0, 0].axvline(r0, color="grey", ls="--", label=f"R0 = {r0:.3g} (ring, start of training)")
    ax[0, 0].axvline(learned_r.mean(), color="C1", ls="-.", label=f"learned R = {learned_r.mean():.3g} (mean)")
    ax[0, 0].set(xlabel="r (length units, L = 5)", ylabel="cutoff function h, F_NN (dimensionless)", ylim=(0, 3),
                 title="a. cutoff function")
    ax[0, 0].legend(fontsize=7)
    c2 = np.triu(ev["c2_true"]) + np.tril(ev["c2_pred"], -1)
    extent = (t[0], t[-1], t[-1], t[0])
    im = ax[0, 1].imshow(c2, extent=extent, vmin=0, vmax=1, cmap="viridis")
    ax[0, 1].axvline(t_max, color="w", ls=":", lw=1)
    ax[0, 1].axhline(t_max, color="w", ls=":", lw=1)
    ax[0, 1].set(xlabel=f"t2 ({time_unit})", ylabel=f"t1 ({time_unit})",
                 title=f"b. C2 at Q = {float(ev.attrs['q_ring']):.2f} /length: true (upper), predicted (lower)")
    fig.colorbar(im, ax=ax[0, 1], fraction=0.046, label="C2 (Pearson, dimensionless)")
    n = ev["cluster_true"].shape[1]
    # Sizes in powers-of-two bins [1], [2], [3, 4], [5, 8], ...: per-size fractions are too noisy to read.
    edges = np.unique(np.concatenate(([0.5], 2.0 ** np.arange(0, np.ceil(np.log2(n)) + 1) + 0.5)))
    for k, (name, key) in enumerate((("true", "cluster_true"), ("predicted", "cluster_pred"))):
        a = ax[0, 2] if k == 0 else ax[1, 0]
        for i, ti in enumerate(ev["cluster_t"]):
            binned, _ = np.histogram(np.arange(1, n + 1), bins=edges, weights=ev[key][i])
            a.stairs(binned, edges, color=plt.cm.viridis(i / max(1, len(ev["cluster_t"]) - 1)), lw=1.5,
                     label=f"t = {ti:.3g}")
        a.set(xscale="log", xlabel="cluster size (particles, bins 1, 2, 3-4, 5-8, ...)",
              ylabel="fraction of particles", ylim=(0, 1),
              title=f"{'cd'[k]}. cluster sizes, {name} (edges <= d = {float(ev.attrs['d']):.3f})")
        a.legend(fontsize=7)
    for i, (key, name) in enumerate((("positions_true", "true"), ("positions_pred", "member 0"))):
        p = ev[key][-1]
        ax[1, 1].plot(p[:, 0], p[:, 1], ".", ms=3, color=f"C{i}", label=f"{name}, t = {ev['cluster_t'][-1]:.3g}")
    ax[1, 1].set(aspect="equal", xlabel="x (length units)", ylabel="y (length units)",
                 title="e. final positions (example series)")
    ax[1, 1].legend(fontsize=7)
    ax[1, 2].plot(r, ev["h_true"] * (1 - ev["h_true"]), "k-", label="true h(1-h)")
    ax[1, 2].plot(r, (f * (1 - f)).mean(0), "o", ms=3, color="C1", label="predicted F(1-F)")
    ax[1, 2].axhline(0, color="grey", lw=0.8)
    ax[1, 2].axvline(cutoff, color="k", ls=":", label=f"true R = {cutoff:.3g}")
    ax[1, 2].set(xlabel="r (length units, L = 5)", ylabel="pair interaction h(1-h) (dimensionless)", ylim=(-3, 0.5),
                 title="f. pair interaction of eq. 4 (< 0: repulsion)")
    ax[1, 2].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, fig3)

    fig, ax = plt.subplots(1, 4, figsize=(17, 3.8))
    for m, curve in enumerate(ev["com_mse"]):
        ax[0].plot(t, curve, lw=1, label=f"member {m}")
    ax[0].plot(t, ev["com_mse_frozen"], "k--", label="frozen initial state")
    ax[0].set(xlabel=f"t ({time_unit})", ylabel="centre-of-mass MSE (length units^2)", yscale="log",
              title="a. centre of mass\n(mean over test series)")
    for k, curve in enumerate(ev["c2_mae_series"]):
        ax[1].plot(t, curve, color="C0", lw=0.6, alpha=0.35, label="each test series" if k == 0 else None)
    ax[1].plot(t, np.median(ev["c2_mae_series"], axis=0), color="C0", lw=2, label="ensemble-predicted C2 (median)")
    ax[1].plot(t, ev["c2_mae"], color="C1", lw=1, label=f"example series {int(ev.attrs['example'])}")
    ax[1].plot(t, np.median(ev["c2_mae_static_series"], axis=0), "k--", label="no dynamics, C2 = 1 (median)")
    threshold = float(ev.attrs["agreement_mae"])
    ax[1].axhline(threshold, color="C3", ls=":", label=f"agreement threshold {threshold:g}")
    ax[1].set(xlabel=f"t1 ({time_unit})", ylabel="MAE of the C2 row (dimensionless)", yscale="log",
              title=f"b. C2 row error\nagreement time per series: median "
                    f"{np.median(ev['c2_agreement_series']):.3g} (range {np.min(ev['c2_agreement_series']):.3g}-"
                    f"{np.max(ev['c2_agreement_series']):.3g})")
    ax[1].legend(fontsize=7)
    lag_window = float(ev.attrs["lag_window"])
    for a, key, name in ((ax[2], "tau", f"tau ({time_unit})"), (ax[3], "gamma", "KWW exponent gamma")):
        a.plot(ev["fit_t1"], ev[f"{key}_true"], "k.-", label="true")
        a.plot(ev["fit_t1"], ev[f"{key}_pred"], "C1.-", label="predicted (ensemble C2)")
        a.set(xlabel=f"t1 ({time_unit})", ylabel=name,
              title=f"{'cd'[key == 'gamma']}. {key} vs age (example series {int(ev.attrs['example'])})")
    ax[2].axhline(lag_window, color="grey", ls="--", label=f"longest fitted delay {lag_window:g}:\ntau above it is extrapolated")
    ax[3].axhline(1, color="grey", ls="--", label="gamma = 1 (exponential)")
    fitted = np.isfinite(ev["tau_true"]) | np.isfinite(ev["tau_pred"])
    for a in ax[2:]:
        a.set_xlim(0, t[-1])
        a.legend(fontsize=7)
        if fitted.any() and ev["fit_t1"][fitted][-1] < t[-1] / 2:
            # Later slices hardly decay within the fitted delays (frozen clusters): no fit converges.
            a.text(0.97, 0.5, f"no fit beyond t1 = {ev['fit_t1'][fitted][-1]:.3g}:\nslices do not decay",
                   transform=a.transAxes, ha="right", fontsize=8, color="grey")
    for a in ax:
        a.axvline(t_max, color="grey", ls=":")
    ax[0].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, supp10)
