"""Figures 1-7 of paper 003 from the shear stores and tables.

Every ``figN(..., path)`` draws one PNG from already-computed stores (no simulation or fitting
here) and returns the path written (:func:`speckleml.plotting.save_figure`, atomic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import figure, save_figure
from .dataset import read_dataset
from .cases import read_simulation
from .inversion import ANALYSIS
from .system import PARAM_LABELS, PARAM_NAMES, theory_g


def _polar_map(ax, q, theta, values, label, cmap="viridis", vmin=None, vmax=None):
    """Draw a (q, theta) map on the (qx, qy) plane, mirrored to theta + pi (I(q) = I(-q))."""
    full_theta = np.concatenate([theta, theta[1:] + np.pi])
    full = np.concatenate([values, values[:, 1:]], axis=1)
    qq, tt = np.meshgrid(q, full_theta, indexing="ij")
    mesh = ax.pcolormesh(qq * np.cos(tt), qq * np.sin(tt), full, shading="gouraud", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$q_x\ (1/R_0)$")
    ax.set_ylabel(r"$q_y\ (1/R_0)$")
    ax.figure.colorbar(mesh, ax=ax, label=label, shrink=0.8)


def _params_text(params) -> str:
    return ", ".join(f"{PARAM_LABELS[n]}={v:g}" for n, v in zip(PARAM_NAMES, params))


def fig1(sim, path):
    """Fig. 1: a configuration before/after the move (eq. 3), its two speckle patterns and their product.

    Parameters
    ----------
    sim : simulation store (:data:`~.cases.SIMULATION`)
    path : path of the PNG
    """
    fig, axes = figure(1, 4, width=3.3, height=3.0)
    before, after = sim["example_before"], sim["example_after"]
    beam = sim.attrs["grid"]["beam"]
    ax = axes[0, 0]
    ax.scatter(before[:, 0], before[:, 1], s=2, label=r"$\mathcal{S}$")
    ax.scatter(after[:, 0], after[:, 1], s=2, label=r"$\Gamma(\mathcal{S})$")
    ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
        (-beam / 2, -beam / 2), beam, beam, fill=False, color="k"))
    ax.set_aspect("equal")
    ax.set_xlabel(r"$x\ (R_0)$")
    ax.set_ylabel(r"$y\ (R_0)$")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title("(a) " + _params_text(sim.attrs["example_params"]), fontsize=7)
    q, theta = sim["q"], sim["theta"]
    i0, i1 = sim["example_intensity"]
    for ax, values, label, title in ((axes[0, 1], i0, r"$I(\mathbf{q};\mathcal{S})$", "(b) before"),
                                     (axes[0, 2], i1, r"$I(\mathbf{q};\Gamma(\mathcal{S}))$", "(c) after"),
                                     (axes[0, 3], i0 * i1, r"$I\,I'$", "(d) product")):
        _polar_map(ax, q, theta, np.log10(np.maximum(values, 1e-12)), "log10 " + label)
        ax.set_title(title)
    return save_figure(fig, path)


def _case_indices(sim, group):
    return [k for k, c in enumerate(sim.attrs["cases"]) if c["group"] == group]


def fig2(sim, path):
    """Fig. 2: averaged ``<I>``, ``g(q)`` from the configured estimator (and the speckle one) and eq. 5.

    Parameters
    ----------
    sim : simulation store
    path : path of the PNG
    """
    q, theta = sim["q"], sim["theta"]
    main = _case_indices(sim, "fig2")[0]
    speckle = _case_indices(sim, "fig2_speckle")
    params = sim["params"][main]
    cases = sim.attrs["cases"]
    panels = [(np.log10(sim["mean_i"][main]), r"log10 $\langle I\rangle$", "(a) <I>", None),
              (sim["g"][main], r"$g(\mathbf{q})$", f"(b) MC, {cases[main]['estimator']}, "
                                                   f"{cases[main]['configs']} configs", "g")]
    if speckle:
        k = speckle[0]
        panels.append((sim["g"][k], r"$g(\mathbf{q})$", f"MC, speckle, {cases[k]['configs']} configs", "g"))
    panels.append((theory_g(q, theta, params[2], params[3]), r"$g(\mathbf{q})$", "(c) eq. 5", "g"))
    fig, axes = figure(1, len(panels), width=3.3, height=3.0)
    for ax, (values, label, title, kind) in zip(axes[0], panels):
        limits = dict(vmin=1.0, vmax=2.0) if kind == "g" else {}
        _polar_map(ax, q, theta, values, label, **limits)
        ax.set_title(title, fontsize=8)
    fig.suptitle(_params_text(params), fontsize=8)
    return save_figure(fig, path)


def fig3(sim, path):
    """Fig. 3: ``g(q)`` and ``g(theta)`` around the baseline for R_s, D2, gamma L (and the other scaling).

    Parameters
    ----------
    sim : simulation store
    path : path of the PNG
    """
    groups = [("R_s", 1), ("D2", 2), ("gamma_L", 3)]
    extra = [g for g in ("R_s_reference", "R_s_paper") if _case_indices(sim, g)]
    fig, axes = figure(len(groups) + len(extra), 2, width=3.4, height=2.5)
    q, theta = sim["q"], sim["theta"]
    rows = [(g, i, g) for g, i in groups] + [(g, 1, g) for g in extra]
    for row, (group, index, title) in enumerate(rows):
        indices = _case_indices(sim, group)
        colors = __import__("matplotlib").colormaps["viridis"](np.linspace(0, 0.9, max(len(indices), 1)))
        for color, k in zip(colors, indices):
            label = f"{PARAM_LABELS[PARAM_NAMES[index]]}={sim['params'][k][index]:g}"
            g = sim["g"][k]
            axes[row, 0].semilogx(q, g.mean(axis=1), color=color, label=label)
            axes[row, 1].plot(theta / np.pi, g.mean(axis=0), color=color, label=label)
        _log_q_ticks(axes[row, 0], q)
        axes[row, 0].set_xlabel(r"$q\ (1/R_0)$")
        axes[row, 0].set_ylabel(r"$g(q)$")
        axes[row, 1].set_xlabel(r"$\theta/\pi$")
        axes[row, 1].set_ylabel(r"$g(\theta)$")
        axes[row, 1].legend(fontsize=6)
        scaling = "" if group in dict(groups) else " (other non-affine scaling)"
        axes[row, 0].set_title(f"vary {PARAM_LABELS[PARAM_NAMES[index]]}{scaling}", fontsize=8)
    base = _case_indices(sim, "R_s") or [0]
    fig.suptitle("baseline " + _params_text(sim["params"][base[0]]), fontsize=8)
    return save_figure(fig, path)


def _log_q_ticks(ax, q):
    """Labels at 1-2-5 values only on a log q axis (the default labels every minor tick of a
    one-decade range, and they overlap)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if q.min() <= t <= q.max()]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _sparse_log_ticks(axis, low, high):
    """At most ~4 labelled ticks on a log axis from ``low`` to ``high`` (no minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if np.log10(high / low) >= 1.5:
        axis.set_major_locator(LogLocator(base=10, numticks=5))
    else:  # less than ~one decade: three rounded values inside
        axis.set_major_locator(FixedLocator([float(f"{v:.1g}") for v in np.geomspace(low, high, 5)[1:4]]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1g}"))
    axis.set_minor_formatter(NullFormatter())


def fig4(analysis, path, features):
    """Fig. 4: singular values (the rank chosen by profile likelihood marked) and the top singular vectors.

    Parameters
    ----------
    analysis : analysis store (:data:`~.inversion.ANALYSIS`)
    path : path of the PNG
    features : {"angular", "radial"}
        Feature set of the analysis (sets the axis of the vectors).
    """
    fig, axes = figure(1, 2, width=3.4, height=2.8)
    values = analysis["singular_values"]
    ax = axes[0, 0]
    ax.semilogy(np.arange(1, len(values) + 1), values, "o--", mfc="none", ms=3)
    top = len(analysis["singular_vectors"])
    ax.semilogy(np.arange(1, top + 1), values[:top], "o", mfc="none", mec="red", ms=8, label=f"top {top} shown")
    rank = analysis.attrs["rank"]
    ax.axvline(rank + 0.5, color="k", ls=":", lw=1,
               label=f"rank {rank} by profile likelihood (paper {analysis.attrs['rank_paper']})")
    ax.legend(fontsize=6)
    ax.set_xlabel("singular value rank")
    ax.set_ylabel(r"$\Sigma$")
    ax.set_title("(a) singular values")
    axis = analysis["axis"]
    x = axis / np.pi if features == "angular" else axis
    for k, vector in enumerate(analysis["singular_vectors"]):
        axes[0, 1].plot(x, vector, label=f"V{k + 1}")
    axes[0, 1].set_xlabel(r"$\theta/\pi$" if features == "angular" else r"$q\ (1/R_0)$")
    axes[0, 1].set_ylabel("singular vector")
    axes[0, 1].legend()
    axes[0, 1].set_title("(b) top singular vectors")
    return save_figure(fig, path)


def fig5(analysis, dataset, path):
    """Fig. 5: every draw in the space of its projections (FV0, FV1, FV2), coloured by each parameter.

    Parameters
    ----------
    analysis : analysis store
    dataset : dataset store (its ``params``, in the order of the projections)
    path : path of the PNG
    """
    import matplotlib.pyplot as plt

    from ..plotting import use_style

    use_style()
    proj = analysis["projections"]
    fig = plt.figure(figsize=(13, 3.4), constrained_layout=True)
    for k, name in enumerate(PARAM_NAMES):
        ax = fig.add_subplot(1, 4, k + 1, projection="3d" if proj.shape[1] >= 3 else None)
        coords = [proj[:, i] for i in range(min(3, proj.shape[1]))]
        points = ax.scatter(*coords, c=dataset["params"][:, k], s=3, cmap="viridis")
        ax.set_xlabel("FV0")
        ax.set_ylabel("FV1")
        if len(coords) == 3:
            ax.set_zlabel("FV2")
            ax.view_init(elev=10.0, azim=-30)
        fig.colorbar(points, ax=ax, shrink=0.6, label=PARAM_LABELS[name])
        ax.set_title(f"({'abcd'[k]}) {PARAM_LABELS[name]}")
    return save_figure(fig, path)


def fig6(analysis, path):
    """Fig. 6: PDDF and ACF of the features (eq. 7-8); LML in (l, sigma) around the optimum of each target.

    Parameters
    ----------
    analysis : analysis store
    path : path of the PNG
    """
    targets = analysis.attrs["targets"]
    fig, axes = figure(1, 1 + len(targets), width=3.3, height=2.9)
    z = analysis["z"]
    ax = axes[0, 0]
    ax.plot(z, analysis["pddf"] / analysis["pddf"].max(), "k", label="p(z)/max")
    for name, acf in zip(targets, analysis["acf"]):
        ax.plot(z, acf, label=f"ACF {PARAM_LABELS[name]}")  # NaN (gaps) where a bin has < 1 % of the pairs
    ax.set_xlabel("z (feature distance)")
    ax.legend(fontsize=6)
    ax.set_title("(a) PDDF and ACF")
    for k, name in enumerate(targets):
        ax = axes[0, k + 1]
        lengths, noises, lml = analysis["length_grid"][k], analysis["noise_grid"][k], analysis["lml"][k]
        # levels below the grid's maximum: closed curves around it (likelihood-ratio spacing)
        top = np.nanmax(lml)
        drops = np.array([0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000])
        levels = np.sort(top - drops[drops < top - np.nanmin(lml)]) if np.isfinite(top) else 10
        contour = ax.contourf(lengths, noises, lml, levels=levels if len(np.atleast_1d(levels)) > 1 else 10,
                              cmap="viridis", extend="both")
        fig.colorbar(contour, ax=ax, label="LML", shrink=0.8)
        a, b = np.unravel_index(np.nanargmax(lml), lml.shape)
        ax.plot([lengths[b]], [noises[a]], "k+", ms=9, mew=2, label="grid maximum (subsample)")
        l_opt, s_opt = analysis["optimum"][k]
        ax.plot([l_opt], [s_opt], "rx", ms=9, mew=2, label=f"fit: l={l_opt:.3g}, σ={s_opt:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _sparse_log_ticks(ax.xaxis, lengths[0], lengths[-1])
        _sparse_log_ticks(ax.yaxis, noises[0], noises[-1])
        ax.set_xlabel("l")
        ax.set_ylabel(r"$\sigma$")
        ax.legend(fontsize=6)
        ax.set_title(f"({'bcd'[k] if k < 3 else k}) LML {PARAM_LABELS[name]}")
    return save_figure(fig, path)


def fig7(predictions, table, path):
    """Fig. 7: predicted vs true on the test set with Err beside the paper's, one row per feature set.

    Parameters
    ----------
    predictions, table : pandas.DataFrame
        As written by :func:`~.models.evaluate_models`.
    path : path of the PNG
    """
    feature_sets = list(dict.fromkeys(predictions["features"]))
    targets = list(dict.fromkeys(predictions["target"]))
    fig, axes = figure(len(feature_sets), len(targets), width=3.0, height=2.9)
    for row, features in enumerate(feature_sets):
        for col, name in enumerate(targets):
            ax = axes[row, col]
            part = predictions[(predictions["features"] == features) & (predictions["target"] == name)]
            info = table[(table["features"] == features) & (table["target"] == name)].iloc[0]
            ax.errorbar(part["true"], part["predicted"], yerr=part["std"], fmt="o", ms=2, mfc="none",
                        elinewidth=0.5, alpha=0.7)
            lo, hi = part["true"].min(), part["true"].max()
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.set_xlabel(f"MC {PARAM_LABELS[name]}")
            ax.set_ylabel(f"GPR {PARAM_LABELS[name]}")
            paper = "" if np.isnan(info["err_paper"]) else f" (paper {info['err_paper']:.0%})"
            ax.set_title(f"{features}: Err={info['err']:.1%}{paper}\n"
                         f"within 1σ/2σ: {info['within_1sigma']:.0%}/{info['within_2sigma']:.0%}", fontsize=7)
    return save_figure(fig, path)


def draw_all(simulation, dataset, analysis, predictions, table, outdir) -> list[Path]:
    """The ``figures`` stage: write fig1.png ... fig7.png into ``outdir``.

    Parameters
    ----------
    simulation, dataset, analysis : paths of the stores
    predictions, table : paths of the CSVs of :func:`~.models.evaluate_models`
    outdir : path of the directory (created when missing)

    Returns
    -------
    list of Path
        The seven PNGs.

    Raises
    ------
    InputError
        When a store is missing or not of its schema, the analysis store was not made from
        ``dataset``, or a CSV lacks a column, holds a non-numeric value or other draws
        (:func:`read_table`, :func:`check_predictions`); before any figure is written.
    """

    from ..stores import read_store

    from .models import check_pairing

    outdir = Path(outdir)
    sim = read_simulation(simulation)
    data = read_dataset(dataset)
    ana = read_store(analysis, ANALYSIS)
    check_pairing(ana.attrs.get("dataset_digest"), data, analysis, dataset)
    pred = read_table(predictions, PREDICTION_COLUMNS)
    tab = read_table(table, TABLE_COLUMNS)
    check_predictions(pred, tab, data, predictions, table, dataset)
    return [fig1(sim, outdir / "fig1.png"), fig2(sim, outdir / "fig2.png"), fig3(sim, outdir / "fig3.png"),
            fig4(ana, outdir / "fig4.png", ana.attrs["features"]), fig5(ana, data, outdir / "fig5.png"),
            fig6(ana, outdir / "fig6.png"), fig7(pred, tab, outdir / "fig7.png")]


#: Columns of the CSVs of :func:`~.models.evaluate_models` that Fig. 7 reads (True: numeric).
PREDICTION_COLUMNS = {"features": False, "target": False, "draw": True, "true": True, "predicted": True, "std": True}
TABLE_COLUMNS = {"features": False, "target": False, "err": True, "err_paper": True, "within_1sigma": True,
                 "within_2sigma": True}
EMPTY_ALLOWED = ("err_paper",)  # no paper value for nL2


def read_table(path, columns: dict[str, bool]):
    """Read a CSV and check it has ``columns`` (numeric where True) and at least one row.

    Parameters
    ----------
    path : path
    columns : dict ``{name: numeric}``

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        One line naming the file and the first missing column or non-numeric value.
    """
    import pandas as pd

    from ..errors import InputError, reading

    with reading(path):
        frame = pd.read_csv(path)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise InputError(f"{path}: no rows")
    for name, numeric in columns.items():
        if numeric:
            values = pd.to_numeric(frame[name], errors="coerce")
            # empty is allowed only where no paper value exists; text never
            bad = values.isna() & (frame[name].notna() | (name not in EMPTY_ALLOWED))
            if bad.any():
                raise InputError(f"{path}: column {name} holds a non-numeric or empty value "
                                 f"(data row {int(bad.to_numpy().argmax()) + 1})")
            frame[name] = values
    return frame


def check_predictions(pred, tab, data, predictions, table, dataset) -> None:
    """Check that the predictions are of ``dataset``'s draws and that Table I has a row for each of their pairs.

    Parameters
    ----------
    pred, tab : pandas.DataFrame
        From :func:`read_table`.
    data : dataset store
    predictions, table, dataset : path
        For the messages.

    Raises
    ------
    InputError
        A draw not in the data set, a true value that is not its parameter, or a (features,
        target) pair of the predictions missing from the table.
    """
    from ..errors import InputError

    draws = np.asarray(data["draw_index"])
    where = {int(d): k for k, d in enumerate(draws)}
    unknown = [d for d in pred["draw"] if d not in where]
    if unknown:
        raise InputError(f"{predictions}: draw {unknown[0]:g} is not in {dataset}")
    unknown_targets = sorted(set(pred["target"]) - set(PARAM_NAMES), key=str)
    if unknown_targets:
        raise InputError(f"{predictions}: unknown target {unknown_targets[0]!r}")
    for target in (t for t in PARAM_NAMES if t in set(pred["target"])):  # fixed order: the same target named every run
        part = pred[pred["target"] == target]
        true = data["params"][[where[int(d)] for d in part["draw"]], PARAM_NAMES.index(target)]
        if not np.allclose(part["true"], true, rtol=1e-9, atol=0):
            raise InputError(f"{predictions}: true {target} values are not those of {dataset}")
    pairs = set(zip(tab["features"], tab["target"]))
    missing = sorted(set(zip(pred["features"], pred["target"])) - pairs)
    if missing:
        raise InputError(f"{table}: no row for {missing[0][0]} {missing[0][1]} of {predictions}")
