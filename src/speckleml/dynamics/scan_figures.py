"""Figures of the scan case: Fig. 7 and Supp. Fig. 17 analogues (paper 000, proof-of-concept)."""

from __future__ import annotations

import numpy as np


def make_scan_figures(evaluation, fig7, supp17, supp18=None) -> None:
    """Write the two figures from the evaluation store.

    Parameters
    ----------
    evaluation : path
        Store of :func:`speckleml.dynamics.scan_evaluate.run_scan_evaluation`.
    fig7 : path
        Output PNG: object phase with the true and predicted trajectories (a); the object's phase
        in the lit frame at the true and predicted point at the end of the training window and
        the modulus of the difference of object x probe (b-d); the patterns there (log scale) and their difference (e-g);
        x(t), y(t) true and predicted and their difference, training window dotted (i); the
        paths with the angular lag at the last point (j).
    supp17 : path
        Output PNG: Fourier spectra and their CDFs, true vs predicted (b); C2 at three Q rings,
        true (upper triangle) vs predicted (lower) (c-e); a pattern with the three rings (f).
    supp18 : path, optional
        Output PNG: the object's phase in the frame along the true (a) and predicted (b) paths
        and their difference (c); the patterns (log10) along both (d, e) and their difference (f).
    """
    from ..plotting import plt, save_figure  # Agg backend; atomic saves

    from ..stores import read_store
    from .scan_evaluate import SCAN_EVALUATION

    ev = read_store(evaluation, SCAN_EVALUATION)
    t, window = ev["t"] - ev["t"][0], int(ev.attrs["window"])
    r_true, r_pred, r_ens = ev["r_true"], ev["r_pred"], ev["r_ensemble"]
    phase = ev["object_phase"]
    h, w = phase.shape
    extent = (-(w - 1) / 2, (w - 1) / 2, -(h - 1) / 2, (h - 1) / 2)  # y up, as panel k

    fig = plt.figure(figsize=(16, 9))
    grid = fig.add_gridspec(3, 5)
    a = fig.add_subplot(grid[0:2, 0:2])
    im = a.imshow(phase, extent=extent, origin="lower", cmap="cividis")
    fig.colorbar(im, ax=a, fraction=0.046, label="object phase (rad)")
    a.plot(*r_true[:window + 1].T, "w-", lw=1.5, label="true, training window")
    a.plot(*r_true[window:].T, "w:", lw=1, label="true, extrapolation")
    a.plot(*r_ens.T, "C1-", lw=1, label="predicted (ensemble mean)")
    a.plot(*r_true[min(window, len(t) - 1)], "wo", mfc="none", ms=9)
    a.set(title="a. object phase (rad) and scan trajectory", xlabel="x (object px)", ylabel="y (object px)")
    a.legend(fontsize=7, loc="lower right")
    wt, wp = ev["wave_true"][0], ev["wave_pred"][0]
    pt, pp = ev["pattern_true"][0], ev["pattern_pred"][0]
    at_t = float(ev["frame_time"][0])
    wt, wp = wt[..., 0] + 1j * wt[..., 1], wp[..., 0] + 1j * wp[..., 1]
    ot, op = (ev[key][0][..., 0] + 1j * ev[key][0][..., 1] for key in ("patch_true", "patch_pred"))
    lit = np.abs(wt) > 0.05 * np.abs(wt).max()  # the object's phase where the probe lights it
    panels = [(np.where(lit, np.angle(ot), np.nan), f"b. lit object, true position, t - t0 = {at_t:.0f}", "cividis",
               "object phase (rad)"),
              (np.where(lit, np.angle(op), np.nan), "c. lit object, predicted position", "cividis",
               "object phase (rad)"),
              (np.abs(wt - wp), "d. |difference| of object x probe", "magma", "|exit-wave difference| (a.u.)"),
              (np.log10(pt + 1e-8), "e. true pattern", "viridis", "log10 intensity (a.u.)"),
              (np.log10(pp + 1e-8), "f. predicted pattern", "viridis", "log10 intensity (a.u.)"),
              (pt - pp, "g. true - predicted pattern", "RdBu_r", "intensity difference (a.u.)")]
    for k, (img, title, cmap, unit) in enumerate(panels):
        ax = fig.add_subplot(grid[k // 3, 2 + k % 3])
        lim = np.nanmax(np.abs(img)) if cmap == "RdBu_r" else None
        vmin, vmax = (-lim, lim) if lim else ((np.nanmin(phase), np.nanmax(phase)) if cmap == "cividis" else (None, None))
        im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set(title=title, xticks=[], yticks=[], facecolor="white")
        ax.title.set_fontsize(9)
        fig.colorbar(im, ax=ax, fraction=0.046, label=unit)
    for k, (name, idx) in enumerate((("x", 0), ("y", 1))):
        ax = fig.add_subplot(grid[2, k])
        ax.plot(t, r_true[:, idx], "k-", label="true (eq. 9)")
        for m, r in enumerate(r_pred):
            ax.plot(t, r[:, idx], lw=0.6, alpha=0.6, color="C1", label="members" if m == 0 else None)
        ax.plot(t, r_ens[:, idx], "C1--", label="ensemble mean")
        ax.axvline(t[window - 1], color="grey", ls=":")
        ax.set(xlabel="t - t0 (scan points)", ylabel=f"{name} (object px)", title=f"{'hi'[k]}. {name}(t)")
        ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[2, 2])
    ax.plot(t, r_ens[:, 0] - r_true[:, 0], label="x")
    ax.plot(t, r_ens[:, 1] - r_true[:, 1], label="y")
    ax.axvline(t[window - 1], color="grey", ls=":")
    ax.set(xlabel="t - t0 (scan points)", ylabel="predicted - true (object px)", title="j. ensemble mean - true")
    ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[2, 3])
    ax.plot(*r_true.T, "k-", lw=1, label="true")
    ax.plot(*r_ens.T, "C1-", lw=1, label="predicted")
    for r, c in ((r_true, "k"), (r_ens, "C1")):
        ax.plot([0, r[-1, 0]], [0, r[-1, 1]], c + ":", lw=1)
    ax.set(aspect="equal", title=f"k. lag at the end: {float(ev.attrs['angular_lag_pi']):.2f} pi "
           "(paper 0.11 pi)", xlabel="x (object px)", ylabel="y (object px)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, fig7)

    fig, ax = plt.subplots(1, 5, figsize=(20, 4))
    freqs = ev["freqs"]
    twin = ax[0].inset_axes([0.55, 0.35, 0.42, 0.5])
    for idx, name in enumerate("xy"):
        ax[0].plot(freqs, ev["spec_true"][idx], "-", color=f"C{idx}", label=f"{name} true")
        ax[0].plot(freqs, ev["spec_pred"][idx], "--", color=f"C{idx}", label=f"{name} predicted")
        for key, ls in (("spec_true", "-"), ("spec_pred", "--")):
            s = ev[key][idx]
            twin.plot(freqs, np.cumsum(s) / s.sum(), ls, color=f"C{idx}", lw=0.8)
    twin.set(xlim=(0, 0.05), xticks=[0, 0.025, 0.05], ylabel="CDF")
    twin.tick_params(labelsize=6)
    ax[0].axvline(1 / window, color="k", ls=":", lw=0.8)
    ax[0].set(xlim=(0, 0.1), xlabel="frequency (1/scan point)", ylabel="power (object px$^2$)",
              title="b. spectra of x(t), y(t)")
    ax[0].legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.55, 0.3))
    for k in range(3):
        c2 = np.triu(ev["c2_true"][k]) + np.tril(ev["c2_pred"][k], -1)
        im = ax[1 + k].imshow(c2, extent=(t[0], t[-1], t[-1], t[0]), cmap="viridis")
        lo, hi = ev["q_rings"][k]
        ax[1 + k].set(title=f"{'cde'[k]}. C2, Q = {(lo + hi) / 2:.1f} px\ntrue (upper), predicted (lower)",
                      xlabel="t2 - t0 (scan points)", ylabel="t1 - t0 (scan points)")
        fig.colorbar(im, ax=ax[1 + k], fraction=0.046, label="C2 (Pearson)")
    pattern = ev["pattern_true"][0]
    n = pattern.shape[0]
    ax[4].imshow(np.log10(pattern + 1e-8), cmap="gray", extent=(-n // 2, n - n // 2, n - n // 2, -n // 2))
    for k, (lo, hi) in enumerate(ev["q_rings"]):
        ax[4].add_patch(plt.Circle((0, 0), (lo + hi) / 2, fill=False, ls="--", lw=1.5, color=("c", "y", "r")[k]))
    ax[4].set(title="f. pattern and the C2 rings", xlabel="qx (px)", ylabel="qy (px)")
    fig.tight_layout()
    save_figure(fig, supp17)
    if supp18 is not None:
        _series_figure(ev, supp18, plt)


def _series_figure(ev, path, plt) -> None:
    """Supp. Fig. 18 analogue: frames and patterns along the true and predicted paths."""
    from ..plotting import save_figure

    times = ev["series_time"]
    pt, pp = (ev[k][..., 0] + 1j * ev[k][..., 1] for k in ("series_patch_true", "series_patch_pred"))
    qt, qp = np.log10(ev["series_pattern_true"] + 1e-8), np.log10(ev["series_pattern_pred"] + 1e-8)
    rows = [(np.angle(pt), "a. true: object phase", "cividis"), (np.angle(pp), "b. predicted", "cividis"),
            (np.angle(pt) - np.angle(pp), "c. difference", "RdBu_r"), (qt, "d. true pattern (log10)", "viridis"),
            (qp, "e. predicted pattern (log10)", "viridis"), (qt - qp, "f. difference (log10 ratio)", "RdBu_r")]
    fig, ax = plt.subplots(len(rows), len(times), figsize=(1.6 * len(times) + 1, 1.6 * len(rows) + 0.4),
                           squeeze=False)
    for i, (stack, label, cmap) in enumerate(rows):
        lim = np.nanmax(np.abs(stack)) if cmap == "RdBu_r" else None
        vmin, vmax = (-lim, lim) if lim else (np.nanmin(stack), np.nanmax(stack))
        for j, img in enumerate(stack):
            im = ax[i, j].imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
            ax[i, j].set(xticks=[], yticks=[])
            if i == 0:
                ax[i, j].set_title(f"t - t0 = {times[j]:.0f}", fontsize=8)
        ax[i, 0].set_ylabel(label, fontsize=7)
        # one scale per row (shared vmin/vmax)
        fig.colorbar(im, ax=ax[i, -1], fraction=0.046, label="rad" if i < 3 else "log10 I (a.u.)")
    fig.tight_layout()
    save_figure(fig, path)
