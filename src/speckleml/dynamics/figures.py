"""Figures of the Kuramoto case (paper 000 Fig. 2 and Supp. Fig. 2-4 analogues)."""

from __future__ import annotations

import logging
import math

import numpy as np
from matplotlib.ticker import NullFormatter

from ..plotting import figure, save_figure
from ..stores import read_store
from .training import HISTORY
from .evaluate import EVALUATION
from .systems.kuramoto import circular_mean, vorticity, wrapped_difference

log = logging.getLogger(__name__)

PHASE_CMAP = "twilight"    # cyclic: phi and phi + 2 pi look the same
DIFF_CMAP = "RdBu_r"
KERNEL_CMAP = "RdBu_r"


def _kernel_limits(*kernels) -> float:
    return float(max(np.abs(k).max() for k in kernels)) or 1.0


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _show_phase(ax, phi, title):
    im = ax.imshow(np.mod(phi, 2 * math.pi), cmap=PHASE_CMAP, vmin=0, vmax=2 * math.pi, origin="lower")
    ax.set_title(title)
    _off(ax)
    return im


def _snapshot_picks(iterations: np.ndarray, count: int) -> list[int]:
    """Indices of ``count`` snapshots spread roughly logarithmically over training (as Fig. 2b)."""
    if len(iterations) <= count:
        return list(range(len(iterations)))
    last = max(int(iterations[-1]), 1)
    targets = np.unique(np.geomspace(max(1, last / 100), last, count).round())
    picks = [int(np.argmin(np.abs(iterations - t))) for t in targets]
    return sorted(set(picks))


def fig2_figure(evaluation, history, path) -> None:
    """Kernel evolution (b), true/predicted/difference real space (c-e), psi and r (f-g), speckle (h-j)."""
    ev = evaluation
    true_kernel = ev["true_kernel"]
    snaps = history["snapshots"] if "snapshots" in history else np.empty((0, *true_kernel.shape))
    picks = _snapshot_picks(history["snapshot_iteration"], 5)
    fig, axes = figure(5, 6, width=1.75, height=1.75)
    vmax = _kernel_limits(true_kernel, *(snaps[i] for i in picks))
    for col in range(6):
        ax = axes[0, col]
        if col < len(picks):
            i = picks[col]
            im_k = ax.imshow(snaps[i], cmap=KERNEL_CMAP, vmin=-vmax, vmax=vmax)
            ax.set_title(f"iteration {int(history['snapshot_iteration'][i])}")
        elif col == 5:
            im_k = ax.imshow(true_kernel, cmap=KERNEL_CMAP, vmin=-vmax, vmax=vmax)
            ax.set_title("true kernel")
        else:
            ax.axis("off")
        _off(ax)
    fig.colorbar(im_k, ax=axes[0, :], shrink=0.8, label="coupling a")
    n_snap = len(ev["snapshot_t"])
    for col in range(6):
        for row in (1, 2, 3):
            if col >= n_snap:
                axes[row, col].axis("off")
        if col >= n_snap:
            continue
        t = ev["snapshot_t"][col]
        im_p = _show_phase(axes[1, col], ev["example_true"][col], f"t = {t:g}")
        _show_phase(axes[2, col], ev["example_pred"][0, col], f"t = {t:g}")
        diff = wrapped_difference(ev["example_pred"][0, col], ev["example_true"][col])
        im_d = axes[3, col].imshow(diff, cmap=DIFF_CMAP, vmin=-math.pi, vmax=math.pi, origin="lower")
        axes[3, col].set_title(f"t = {t:g}")
        _off(axes[3, col])
    for row, label in ((1, "true"), (2, "predicted"), (3, "difference")):
        axes[row, 0].set_ylabel(label)
    fig.colorbar(im_p, ax=axes[1:3, :], shrink=0.6, label=r"$\varphi$ mod $2\pi$ (rad)")
    fig.colorbar(im_d, ax=axes[3, :], shrink=0.8, label=r"$\Delta\varphi$ (rad)")
    example = int(ev.attrs["example"])
    t = ev["t"]
    train_end = float(ev.attrs["train_t_max"])
    for ax, key, label in ((axes[4, 0], "psi", r"$\psi$ (rad)"), (axes[4, 1], "r", "r")):
        true = ev[f"{key}_true"][example]
        pred = ev[f"{key}_pred"][:, example]
        if key == "psi":  # intensity is even in phi: show the predicted branch closest to the truth
            flip = np.abs(wrapped_difference(-pred, true)).mean(axis=1) < np.abs(wrapped_difference(pred, true)).mean(axis=1)
            pred = np.where(flip[:, None], -pred, pred)
        if key == "psi":  # angles: circular mean and circular standard deviation sqrt(-2 ln R)
            mean = circular_mean(pred, axis=0)
            resultant = np.abs(np.nanmean(np.exp(1j * pred), axis=0))
            std = np.sqrt(-2 * np.log(np.clip(resultant, 1e-12, 1)))
        else:
            mean, std = np.nanmean(pred, axis=0), np.nanstd(pred, axis=0)
        ax.plot(t, true, color="k", lw=1, label="true")
        ax.plot(t, mean, color="C1", lw=1, label="ensemble mean")
        ax.fill_between(t, mean - std, mean + std, color="C1", alpha=0.3, lw=0)
        ax.axvline(train_end, color="k", ls=":", lw=0.8)
        ax.set_xlabel("t")
        ax.set_ylabel(label)
    axes[4, 0].legend(loc="best", fontsize=6)
    mask = ev["mask"]
    true_s = np.where(mask, ev["speckle_true"], np.nan)
    pred_s = np.where(mask, ev["speckle_pred"][0], np.nan)
    positive = true_s[np.isfinite(true_s) & (true_s > 0)]
    lo, hi = (np.percentile(positive, 1), positive.max()) if positive.size else (1e-3, 1)
    from matplotlib.colors import LogNorm

    norm = LogNorm(vmin=max(lo, hi * 1e-6), vmax=hi)
    im_s = axes[4, 2].imshow(true_s, norm=norm, cmap="magma", origin="lower")
    axes[4, 2].set_title(f"true I, t = {t[-1]:g}")
    axes[4, 3].imshow(pred_s, norm=norm, cmap="magma", origin="lower")
    axes[4, 3].set_title("predicted I")
    dmax = np.nanmax(np.abs(pred_s - true_s)) or 1.0
    im_sd = axes[4, 4].imshow(pred_s - true_s, cmap=DIFF_CMAP, vmin=-dmax, vmax=dmax, origin="lower")
    axes[4, 4].set_title("difference")
    for ax in axes[4, 2:5]:
        _off(ax)
    # colorbars in the free last panel: a colorbar attached to some columns would shift them
    axes[4, 5].axis("off")
    fig.colorbar(im_s, cax=axes[4, 5].inset_axes([0.05, 0.1, 0.1, 0.8]), label="intensity")
    fig.colorbar(im_sd, cax=axes[4, 5].inset_axes([0.65, 0.1, 0.1, 0.8]), label="I difference")
    fig.suptitle("Kuramoto moments learned through speckle (paper 000 Fig. 2 analogue; "
                 "dotted line: end of the training window)")
    save_figure(fig, path)


def kernel_history_figure(histories, true_kernel, path) -> None:
    """Per member: kernel snapshots over training, kernel MAE and loss vs iteration (Supp. Fig. 2)."""
    n = len(histories)
    fig, axes = figure(n, 6, width=1.7, height=1.7)
    keep = np.ones(true_kernel.shape, bool)
    keep[true_kernel.shape[0] // 2, true_kernel.shape[1] // 2] = False
    vmax = _kernel_limits(true_kernel)
    for row, hist in enumerate(histories):
        its, snaps = hist["snapshot_iteration"], hist["snapshots"]
        picks = np.unique(np.linspace(0, len(its) - 1, 4).round().astype(int))
        for col in range(4):
            ax = axes[row, col]
            if col < len(picks):
                im = ax.imshow(snaps[picks[col]], cmap=KERNEL_CMAP, vmin=-vmax, vmax=vmax)
                ax.set_title(f"member {row}, it {int(its[picks[col]])}")
            else:
                ax.axis("off")
            _off(ax)
        mae = np.abs(snaps[:, keep] - true_kernel[keep]).mean(axis=1)
        axes[row, 4].plot(its, mae, color="C0")
        axes[row, 4].set_xlabel("iteration")
        axes[row, 4].set_ylabel("kernel MAE")
        loss = np.asarray(hist["loss"])
        axes[row, 5].semilogy(np.arange(1, len(loss) + 1), loss, color="C2", lw=0.7)
        axes[row, 5].yaxis.set_minor_formatter(NullFormatter())
        rolled = np.flatnonzero(np.asarray(hist["rolled_back"]))
        for r in rolled:
            axes[row, 5].axvline(r + 1, color="C3", lw=0.6, ls="--")
        axes[row, 5].set_xlabel("iteration")
        axes[row, 5].set_ylabel("loss (red: rollback)")
    fig.colorbar(im, ax=axes[:, :4], shrink=0.6, label="coupling a")
    fig.suptitle("Training history of the coupling kernel per member (Supp. Fig. 2 analogue)")
    save_figure(fig, path)


def _binned(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``y`` in quantile bins of ``x`` (bin centres, means)."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    centers, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (x >= lo) & (x <= hi)
        if sel.any():
            centers.append(0.5 * (lo + hi))
            means.append(y[sel].mean())
    return np.asarray(centers), np.asarray(means)


def vorticity_figure(evaluation, path, bins: int = 10) -> None:
    """Real-space error vs vorticity of the true state (Supp. Fig. 3 a-d).

    Panels: the example's true state at a middle snapshot with contours of its highest
    vorticity, member 0's absolute error there, the error binned by |vorticity| at every
    snapshot time (all members), and the distribution of signed errors at that snapshot.
    """
    ev = evaluation
    true = ev["example_true"]                     # (snapshot, y, x)
    pred = ev["example_pred"]                     # (member, snapshot, y, x), aligned
    times = ev["snapshot_t"]
    err = np.abs(wrapped_difference(pred, true[None]))
    vort = np.abs(vorticity(true))
    mid = len(times) // 2
    level = np.quantile(vort[mid], 0.9)
    fig, axes = figure(1, 4, width=2.6, height=2.4)
    _show_phase(axes[0, 0], true[mid], f"true state, t = {times[mid]:g}")
    axes[0, 0].contour(vort[mid], levels=[level], colors="w", linewidths=0.6)
    im = axes[0, 1].imshow(err[0, mid], cmap="viridis", vmin=0, vmax=math.pi, origin="lower")
    axes[0, 1].contour(vort[mid], levels=[level], colors="w", linewidths=0.6)
    axes[0, 1].set_title("|error| (white: top-10 % vorticity)")
    _off(axes[0, 1])
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8, label="rad")
    colors = __import__("matplotlib").colormaps["viridis"](np.linspace(0, 0.9, len(times)))
    for k in range(1, len(times)):
        x = np.broadcast_to(vort[k][None], err[:, k].shape).ravel()
        centers, means = _binned(x, err[:, k].ravel(), bins)
        axes[0, 2].plot(centers, means, "o-", ms=3, color=colors[k], label=f"t = {times[k]:g}")
    axes[0, 2].set_xlabel("|vorticity| of the true state (1/site)")
    axes[0, 2].set_ylabel("mean |error| (rad)")
    axes[0, 2].legend(fontsize=6)
    signed = wrapped_difference(pred[:, mid], true[mid][None]).ravel()
    axes[0, 3].hist(signed, bins=40, color="C0")
    axes[0, 3].set_xlabel(r"$\hat\varphi - \varphi$ (rad), t = " + f"{times[mid]:g}")
    axes[0, 3].set_ylabel("sites (all members)")
    fig.suptitle("Real-space errors and vorticity curl(cos phi, sin phi) (Supp. Fig. 3 analogue)")
    save_figure(fig, path)


def spread_figure(evaluation, path) -> None:
    """Final-frame MAE per member over test conditions (Supp. Fig. 4a) and MAE vs time (Supp. Fig. 3e)."""
    ev = evaluation
    mae = ev["mae"]                               # (member, condition, time)
    final = mae[:, :, -1]
    fig, axes = figure(1, 2, width=3.4, height=2.6)
    ax = axes[0, 0]
    ax.boxplot([row[np.isfinite(row)] for row in final], showfliers=False)
    rng = np.random.default_rng(0)  # jitter only
    for m, row in enumerate(final):
        ax.scatter(m + 1 + rng.uniform(-0.15, 0.15, len(row)), row, s=6, color="0.6", zorder=3)
        ax.scatter([m + 1], [row[int(ev.attrs["example"])]], s=18, color="w", edgecolor="k", zorder=4)
    ax.set_xlabel("ensemble member")
    ax.set_ylabel(f"real-space MAE at t = {ev['t'][-1]:g} (rad)")
    ax.set_title("per-condition spread (white: Fig. 2 example)")
    mae_time_panel(axes[0, 1], ev)
    save_figure(fig, path)


def mae_time_panel(ax, ev) -> None:
    """Plain real-space MAE vs time: ensemble (member mean, min-max band) and the two baselines.

    Averages over test conditions; the baselines are "nothing moves" (``phi(t) = phi(0)``) and
    uniformly random phases; the dashed line ends the training window.
    """
    t = ev["t"]
    per_member = np.nanmean(ev["mae_plain"] if "mae_plain" in ev else ev["mae"], axis=1)  # (member, time)
    ax.fill_between(t, per_member.min(axis=0), per_member.max(axis=0), color="C0", alpha=0.3, lw=0,
                    label=f"members min-max ({len(per_member)})")
    ax.plot(t, per_member.mean(axis=0), color="C0", label="ensemble (member mean)")
    for key, color, label in (("baseline_frozen_mae_plain", "C3", '"nothing moves"'),
                              ("baseline_random_mae_plain", "0.5", "random phases")):
        if key in ev:
            ax.plot(t, np.nanmean(ev[key], axis=0), color=color, ls="-." if color == "C3" else ":", label=label)
    ax.axhline(math.pi / 4, color="k", lw=0.5, alpha=0.5)
    ax.axvline(float(ev.attrs["train_t_max"]), color="k", ls="--", lw=0.8)
    ax.set_xlabel("t")
    ax.set_ylabel("plain real-space MAE (rad)")
    ax.set_title("MAE vs time (dashed: training window; thin: pi/4)")
    ax.legend(loc="best", fontsize=6)


def c2_figure(evaluation, path) -> None:
    """C2 true (upper triangle) vs ensemble-mean predicted (lower), slice MAE, tau and gamma vs t1
    (paper 000 Fig. 2k, Supp. Fig. 4d)."""
    ev = evaluation
    t, train_end = ev["t"], float(ev.attrs["train_t_max"])
    fig, axes = figure(1, 4, width=2.8, height=2.6)
    if "c2_true" not in ev:
        for ax in axes[0]:
            ax.axis("off")
        axes[0, 0].text(0.5, 0.5, "no C2 in this evaluation store", ha="center")
        save_figure(fig, path)
        return
    true, pred = ev["c2_true"], ev["c2_pred"].mean(axis=0)
    # row = t2 (y, origin lower), column = t1: the upper triangle of the image is t2 >= t1, i.e. tril
    combined = np.where(np.tril(np.ones_like(true, bool)), true, pred)
    ax = axes[0, 0]
    im = ax.imshow(combined, origin="lower", extent=(t[0], t[-1], t[0], t[-1]), cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("t1")
    ax.set_ylabel("t2")
    inner, outer = ev["c2_ring"]
    ax.set_title(f"C2, |Q| in [{inner:.2g}, {outer:.2g}): true upper, predicted lower", fontsize=7)
    for line in (ax.axvline, ax.axhline):
        line(train_end, color="w", ls=":", lw=0.8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[0, 1]
    slices = ev["c2_slice_mae"]
    for member in slices[:-1]:
        ax.plot(t, member, color="0.7", lw=0.6)
    ax.plot(t, slices[-1], color="C1", label="ensemble-mean C2")
    ax.axvline(train_end, color="k", ls=":", lw=0.8)
    ax.set_xlabel("t1")
    ax.set_ylabel("MAE of C2(t1, t1 + dt) slices")
    ax.legend(loc="best", fontsize=6)
    for ax, key, label in ((axes[0, 2], "tau", "tau"), (axes[0, 3], "gamma", "KWW exponent gamma")):
        ax.plot(ev["c2_t1"], ev[f"c2_{key}_true"], "o-", ms=3, color="C0", label="true")
        ax.plot(ev["c2_t1"], ev[f"c2_{key}_pred"], "s-", ms=3, color="C1", label="predicted (ensemble C2)")
        ax.axvline(train_end, color="k", ls=":", lw=0.8)
        ax.set_xlabel("t1")
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize=6)
    axes[0, 2].set_yscale("log")
    fig.suptitle("Two-time correlation of true vs predicted speckle (paper 000 Fig. 2k, Supp. Fig. 4d analogue)")
    save_figure(fig, path)


def make_figures(evaluation_path, history_paths, metrics_path, fig2: str, kernels: str, vorticity: str,
                 spread: str, c2: str | None = None) -> None:
    """Draw the Kuramoto case's figures (paper 000 Fig. 2, Supp. Figs. 2-4) from its stores.

    Parameters
    ----------
    evaluation_path : path
        ``dynamics_evaluation`` store written by the evaluate stage.
    history_paths : sequence of path
        ``training_history`` store of every ensemble member (member 0 is the one Fig. 2b shows).
    metrics_path : path
        The metrics table the figures accompany (logged only).
    fig2, kernels, vorticity, spread : path
        Outputs: Fig. 2 (:func:`fig2_figure`), kernel histories (:func:`kernel_history_figure`),
        error vs vorticity (:func:`vorticity_figure`), error spread (:func:`spread_figure`);
        ``.png``, ``.pdf`` or ``.svg``.
    c2 : path, optional
        Fig. 2k, the C2 comparison (:func:`c2_figure`); not drawn when None.

    Raises
    ------
    StoreError
        A store missing or of the wrong schema.
    """
    ev = read_store(evaluation_path, EVALUATION)
    histories = [read_store(p, HISTORY) for p in history_paths]
    fig2_figure(ev, histories[0], fig2)
    kernel_history_figure(histories, ev["true_kernel"], kernels)
    vorticity_figure(ev, vorticity)
    spread_figure(ev, spread)
    if c2:
        c2_figure(ev, c2)
    log.info("figures written: %s, %s, %s, %s (metrics: %s)", fig2, kernels, vorticity, spread, metrics_path)
