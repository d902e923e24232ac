"""Figures of the clustering study: the paper's Fig. 2-4 and Supp. Fig. 2-3, and the checks
beyond the paper (agreement with the simulator's classes, relaxation time per class)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Columns each CSV of the figures must have: "int" (whole numbers), "float" (numbers, NaN
#: allowed), "bool" (True/False or 0/1), "str"; the stage that writes it, for the message.
TABLES = {
    "clusters": ({"item": "int", "label": "int", "cluster": "int", "kww_tau": "float", "kww_bound": "int",
                  "embed_x": "float", "embed_y": "float"}, "clustering cluster --assignments"),
    "elbow": ({"k": "int", "distortion": "float", "chosen": "bool"}, "clustering cluster --elbow"),
    "scores": ({"metric": "str", "value": "float"}, "clustering cluster --scores"),
    "drive_clusters": ({"t_start": "float", "cluster": "int"}, "clustering cluster --apply-out"),
    "neighbours": ({"query": "int", "query_item": "int", "rank": "int", "item": "int", "distance": "float",
                    "label": "int"}, "clustering similar --out"),
}


def read_table(path, kind: str):
    """A CSV of the figures stage, checked against :data:`TABLES` ``[kind]`` before any figure.

    Parameters
    ----------
    path : path
        The CSV.
    kind : str
        A key of :data:`TABLES`.

    Returns
    -------
    pandas.DataFrame
        At least one row, with every required column of the required type.

    Raises
    ------
    InputError
        One line naming ``path``: unreadable, no rows, the missing columns, or a column whose
        values are not of its type.
    FileNotFoundError
        When ``path`` does not exist.
    """
    import pandas as pd

    from ..errors import InputError, reading

    columns, writer = TABLES[kind]
    with reading(path, f"CSV; expected the output of `{writer}`"):
        table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected the output of `{writer}`")
    if table.empty:
        raise InputError(f"{path}: no rows; expected the output of `{writer}`")
    for name, kind_ in columns.items():
        values = table[name]
        if kind_ == "bool":
            ok = values.astype(str).str.lower().isin(("true", "false", "1", "0")).all()
        elif kind_ == "str":
            ok = values.notna().all()
        else:
            ok = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
            if ok and kind_ == "int":
                ok = bool(np.isfinite(values).all() and (values == np.round(values)).all())
        if not ok:
            what = {"int": "whole numbers", "float": "numbers", "bool": "True/False", "str": "text"}[kind_]
            raise InputError(f"{path}: column {name} must hold {what}; expected the output of `{writer}`")
    if kind == "elbow":
        table["chosen"] = table["chosen"].astype(str).str.lower().isin(("true", "1"))
    return table


#: Colours of clusters/classes (tab10 is colour-blind-friendlier than the default cycle).
CMAP = "tab10"


#: Colours of the simulator's true classes: another palette, so that a class is never
#: mistaken for the cluster that happens to share its index.
CLASS_CMAP = "Dark2"


def _colour(i: int):
    import matplotlib

    return matplotlib.colormaps[CMAP](int(i) % 10)


def _class_colour(i: int):
    import matplotlib

    return matplotlib.colormaps[CLASS_CMAP](int(i) % 8)


def _show_crop(ax, crop, title: str | None = None) -> None:
    ax.imshow(crop, origin="lower", cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def latent_sweep(sweep: list[dict], path) -> None:
    """Supp. Fig. 2: held-out reconstruction error against latent size.

    Parameters
    ----------
    sweep : list of dict
        Train metrics (``latent``, ``val_l1``, ``val_mse``) of each sweep model.
    path : path
        PNG to write.
    """
    from ..plotting import figure, save_figure

    rows = sorted(sweep, key=lambda r: r["latent"])
    fig, axes = figure(1, 1, 3.6, 2.8)
    ax = axes[0, 0]
    sizes = [r["latent"] for r in rows]
    ax.plot(sizes, [r["val_mse"] for r in rows], "o-", label="MSE")
    ax.plot(sizes, [r["val_l1"] for r in rows], "s--", label="L1")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("latent size")
    ax.set_ylabel("held-out reconstruction error")
    ax.set_title("Supp. Fig. 2: error vs latent size")
    ax.legend()
    save_figure(fig, path)


def elbow(elbow_table, path, title: str = "Supp. Fig. 3: elbow of k-means") -> None:
    """Supp. Fig. 3: k-means distortion against k, the chosen elbow marked.

    Parameters
    ----------
    elbow_table : pandas.DataFrame
        ``k``, ``distortion``, ``chosen`` (one True row).
    path : path
        PNG to write.
    title : str
    """
    from ..plotting import figure, save_figure

    fig, axes = figure(1, 1, 3.6, 2.8)
    ax = axes[0, 0]
    ax.plot(elbow_table["k"], elbow_table["distortion"], "o-", color="0.3")
    chosen = elbow_table[elbow_table["chosen"].astype(bool)]
    ax.plot(chosen["k"], chosen["distortion"], "o", ms=11, mfc="none", mec="C3", mew=2,
            label=f"elbow: k = {int(chosen['k'].iloc[0])}")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("distortion (sum of squared distances)")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)


def _scatter(ax, table, column: str, names: list[str], title: str, colour=_colour) -> None:
    for value in sorted(table[column].unique()):
        part = table[table[column] == value]
        ax.scatter(part["embed_x"], part["embed_y"], s=6, color=colour(value), label=names[value])
    ax.set_xlabel("embedding 1")
    ax.set_ylabel("embedding 2")
    ax.set_title(title)
    ax.legend(fontsize=6, markerscale=2, loc="best")


def fig2(table, crops, classes: list[str], path, seed: int, n_samples: int = 4) -> None:
    """Fig. 2: embedding coloured by cluster (and by true class), sample crops per cluster.

    Parameters
    ----------
    table : pandas.DataFrame
        Cluster table of :func:`~speckleml.clustering.cluster.latent_table` with the embedding.
    crops : ndarray (N, n, n)
        The crops of the table's items.
    classes : list of str
        Names of the true classes.
    path : path
        PNG to write.
    seed : int
        Seeds the sample crops.
    n_samples : int
        Crops shown per cluster.
    """
    import matplotlib.pyplot as plt

    from ..plotting import save_figure, use_style

    use_style()
    k = int(table["cluster"].max()) + 1
    fig = plt.figure(figsize=(9.5, max(4.5, 1.1 * k)), constrained_layout=True)
    left, right = fig.subfigures(1, 2, width_ratios=[1.1, 1])
    axes = left.subplots(2, 1)
    _scatter(axes[0], table, "cluster", [f"cluster {i}" for i in range(k)], "A: k-means clusters")
    if (table["label"] >= 0).all():
        _scatter(axes[1], table, "label", classes, "A': simulator's true classes", colour=_class_colour)
    rng = np.random.default_rng(seed)
    grid = right.subplots(k, n_samples, squeeze=False)
    right.suptitle("B: random crops of each cluster (slowest first)", fontsize=9)
    for c in range(k):
        members = np.flatnonzero(table["cluster"].to_numpy() == c)
        picks = rng.choice(members, size=min(n_samples, members.size), replace=False) if members.size else []
        for j in range(n_samples):
            ax = grid[c, j]
            if j < len(picks):
                _show_crop(ax, crops[picks[j]])
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(f"cluster {c}", color=_colour(c), fontsize=8)
    save_figure(fig, path)


def stacked_fractions(ax, times, fractions, width: float) -> None:
    """Stacked bars of cluster fractions at each time on ``ax``.

    Parameters
    ----------
    ax : matplotlib Axes
    times : ndarray (n_t,)
        Left edge of each bar.
    fractions : ndarray (n_t, k)
    width : float
        Bar width (units of ``times``).
    """
    bottom = np.zeros(len(times))
    for c in range(fractions.shape[1]):
        ax.bar(times, fractions[:, c], width=width, bottom=bottom, color=_colour(c), label=f"cluster {c}",
               align="edge", linewidth=0)
        bottom += fractions[:, c]
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of sectors")


def fig3(drive_table, drive_attrs: dict, crop: int, dt: float, classes: list[str], path) -> None:
    """Fig. 3: cluster fractions per crop window across sectors, beside the truth and the stress.

    Parameters
    ----------
    drive_table : pandas.DataFrame
        Cluster table of the driven run's crops (``t_start`` in s, ``cluster``).
    drive_attrs : dict
        Attributes of the driven-run frames store (``truth.frame_class``, ``drive``).
    crop : int
        Crop side (frames).
    dt : float
        Frame time (s).
    classes : list of str
    path : path
        PNG to write.
    """
    from ..plotting import figure, save_figure
    from .cluster import class_fractions

    k = int(drive_table["cluster"].max()) + 1
    starts, fractions = class_fractions(drive_table["t_start"].to_numpy(), drive_table["cluster"].to_numpy(), k)
    width = float(np.min(np.diff(starts))) if starts.size > 1 else crop * dt
    times = starts + 0.5 * (crop * dt - width)   # each bar centred on its crop's window
    fig, axes = figure(3, 1, 7.0, 1.9, sharex=True)
    stacked_fractions(axes[0, 0], times, fractions, width)
    axes[0, 0].set_title("A: cluster fractions over the 18 sectors per crop window")
    axes[0, 0].legend(fontsize=6, ncol=min(k, 6), loc="upper right")
    frame_class = np.asarray(drive_attrs["truth"]["frame_class"][0])
    t = np.arange(frame_class.size) * dt
    ax = axes[1, 0]
    for c in np.unique(frame_class):
        ax.fill_between(t, 0, 1, where=frame_class == c, color=_class_colour(c), step="post", label=classes[c])
    ax.set_yticks([])
    ax.set_title("simulated dynamics class (truth)")
    ax.legend(fontsize=6, ncol=5, loc="upper right")
    stress = np.asarray(drive_attrs["drive"]["values"][0])
    ax = axes[2, 0]
    ax.plot(t, stress, color="k", lw=1)
    ax.set_ylabel(f"{drive_attrs['drive']['name']}\n({drive_attrs['drive']['units']})", fontsize=7)
    ax.set_xlabel("time (s); each bar is centred on its crop window")
    ax.set_title("B: driving signal")
    save_figure(fig, path)


def fig4(neighbours, table, crops, classes: list[str], path) -> None:
    """Fig. 4: query crops and their nearest neighbours (latent distance), and where they lie.

    Parameters
    ----------
    neighbours : pandas.DataFrame
        Rows of :func:`~speckleml.clustering.search.similarity_search`.
    table : pandas.DataFrame
        Library cluster table with the embedding.
    crops : ndarray (N, n, n)
    classes : list of str
    path : path
        PNG to write.
    """
    import matplotlib.pyplot as plt

    from ..plotting import save_figure, use_style

    use_style()
    queries = sorted(neighbours["query"].unique())
    k = int(neighbours["rank"].max())
    fig = plt.figure(figsize=(3.2 + 1.3 * (k + 1), max(3.2, 1.35 * len(queries))), constrained_layout=True)
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 0.32 * (k + 1)])
    ax = left.subplots(1, 1)
    ax.scatter(table["embed_x"], table["embed_y"], s=4, color="0.8", label="all crops")
    grid = right.subplots(len(queries), k + 1, squeeze=False)
    for row, q in enumerate(queries):
        part = neighbours[neighbours["query"] == q].sort_values("rank")
        item = int(part["query_item"].iloc[0])
        colour = _colour(row)
        if item >= 0:
            ax.scatter(table["embed_x"].iloc[item], table["embed_y"].iloc[item], s=120, facecolors="none",
                       edgecolors=[colour], linewidths=2, label=f"query {row + 1}")
            _show_crop(grid[row, 0], crops[item], f"query {row + 1}")
        else:
            grid[row, 0].axis("off")
        idx = part["item"].to_numpy()
        ax.scatter(table["embed_x"].iloc[idx], table["embed_y"].iloc[idx], s=16, color=[colour])
        for j, (i, d, lab) in enumerate(zip(idx, part["distance"], part["label"]), start=1):
            name = classes[lab] if 0 <= lab < len(classes) else "?"
            _show_crop(grid[row, j], crops[i], f"d={d:.3g}\n{name}")
    ax.set_xlabel("embedding 1")
    ax.set_ylabel("embedding 2")
    ax.set_title("A: queries (open) and neighbours (solid)")
    ax.legend(fontsize=6, loc="best")
    same = (f" ({int(neighbours['same_class'].sum())}/{len(neighbours)} of the query's class)"
            if "same_class" in neighbours and (neighbours["query_item"] >= 0).all() else "")
    right.suptitle(f"B: query and nearest neighbours by latent distance{same}", fontsize=9)
    save_figure(fig, path)


def relaxation(table, scores, classes: list[str], dt: float, path) -> None:
    """Beyond the paper: KWW relaxation time per true class and per cluster (fits inside the
    crop's lag range; the bound hits counted), and the contingency of clusters against true
    classes with ARI/NMI.

    Parameters
    ----------
    table : pandas.DataFrame
        Library cluster table (``label``, ``cluster``, ``kww_tau`` in frames, ``kww_bound``).
    scores : pandas.DataFrame
        ``metric, value`` rows (``ari``, ``nmi``).
    classes : list of str
    dt : float
        Frame time (s): converts ``kww_tau`` to seconds.
    path : path
        PNG to write.
    """
    import pandas as pd

    from ..plotting import figure, save_figure

    fig, axes = figure(1, 3, 3.4, 3.0)
    fitted = table[np.isfinite(table["kww_tau"])]
    inside = fitted[fitted["kww_bound"] == 0]
    for ax, column, names, title in (
        (axes[0, 0], "label", classes, "per true class"),
        (axes[0, 1], "cluster", [f"c{i}" for i in range(int(table["cluster"].max()) + 1)], "per cluster"),
    ):
        values = sorted(fitted[column].unique())
        # fits at a bound are limits, not times: counted under the box, not drawn in it
        data = [np.log10(inside.loc[inside[column] == v, "kww_tau"] * dt) for v in values]
        ax.boxplot([d if len(d) else [np.nan] for d in data], showfliers=False)
        hits = [(int((fitted.loc[fitted[column] == v, "kww_bound"] > 0).sum()),
                 int((fitted.loc[fitted[column] == v, "kww_bound"] < 0).sum())) for v in values]
        ax.set_xticks(range(1, len(values) + 1), [f"{names[v]}\n>{up} <{down}" for v, (up, down) in zip(values, hits)],
                      rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("log10 KWW relaxation time (s)")
        ax.set_title(f"relaxation time {title}\n(>n / <n: fits above / below the crop's lags)", fontsize=8)
    ax = axes[0, 2]
    contingency = pd.crosstab(table["label"], table["cluster"])
    image = ax.imshow(contingency.to_numpy(), cmap="Blues")
    ax.set_xticks(range(contingency.shape[1]), [f"c{c}" for c in contingency.columns], fontsize=7)
    ax.set_yticks(range(contingency.shape[0]), [classes[i] for i in contingency.index], fontsize=7)
    for (i, j), value in np.ndenumerate(contingency.to_numpy()):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="crops")
    score = dict(zip(scores["metric"], scores["value"]))
    ax.set_title(f"clusters vs truth: ARI {score.get('ari', np.nan):.2f}, NMI {score.get('nmi', np.nan):.2f}")
    ax.set_xlabel("cluster")
    save_figure(fig, path)


def make_figures(*, crops_path, clusters_path, elbow_path, scores_path, drive_frames_path, drive_clusters_path,
                 neighbours_path, sweep_paths, out_dir, seed: int) -> None:
    """The ``figures`` stage: the paper's Fig. 2-4, Supp. Fig. 2-3 and the relaxation check.

    Parameters
    ----------
    crops_path : path
        Library crops store (the crops shown, the classes and the frame time ``dt``).
    clusters_path, elbow_path, scores_path : path
        CSVs of :func:`~speckleml.clustering.cluster.cluster_store` for the library.
    drive_frames_path, drive_clusters_path : path
        Frames store of the driven run (truth and stress) and its cluster CSV (Fig. 3).
    neighbours_path : path
        CSV of :func:`~speckleml.clustering.search.similarity_search` (Fig. 4).
    sweep_paths : sequence of path
        Train metrics JSONs of the latent-size sweep (Supp. Fig. 2; skipped when empty).
    out_dir : path
        Directory of the PNGs ``supp_fig2, supp_fig3, fig2, fig3, fig4, relaxation``.
    seed : int
        Seeds the sample crops of Fig. 2.

    Raises
    ------
    InputError
        When a CSV lacks a column or has values of the wrong type (:func:`read_table`), the
        cluster table and the crops store disagree, the driven run has other classes, a neighbour is not a crop of the store, or
        a sweep JSON is unreadable; checked before any figure is written.
    """
    from ..errors import InputError
    from ..stores import read_frames, read_store
    from .crops import CROPS

    out = Path(out_dir)
    crops_store = read_store(crops_path, CROPS)
    classes = list(crops_store.attrs["classes"])
    dt = float(crops_store.attrs["dt"])
    table = read_table(clusters_path, "clusters")
    n_crops = crops_store["crops"].shape[0]
    if len(table) != n_crops or (table["item"].to_numpy() != np.arange(n_crops)).any():
        raise InputError(f"{clusters_path}: items are not the {n_crops} crops of {crops_path} in order")
    tables = {kind: read_table(path, kind) for kind, path in (("elbow", elbow_path), ("scores", scores_path),
              ("drive_clusters", drive_clusters_path), ("neighbours", neighbours_path))}
    neighbours = tables["neighbours"]
    if not (neighbours["item"].between(0, n_crops - 1).all() and neighbours["query_item"].between(-1, n_crops - 1).all()):
        raise InputError(f"{neighbours_path}: items outside the {n_crops} crops of {crops_path}")
    if (table["cluster"] < 0).any() or (tables["drive_clusters"]["cluster"] < 0).any():
        raise InputError(f"{clusters_path} or {drive_clusters_path}: negative cluster numbers")
    sweep = []
    for path in sweep_paths or ():
        try:
            sweep.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable metrics JSON ({type(exc).__name__})") from None
        entry = sweep[-1]
        bad = [key for key in ("latent", "val_mse", "val_l1")
               if not isinstance(entry, dict) or not isinstance(entry.get(key), (int, float))]
        if bad:
            raise InputError(f"{path}: no number {', '.join(bad)}; expected the --metrics JSON of `clustering train`")
    drive = read_frames(drive_frames_path, lazy=True)
    if "frame_class" not in drive.attrs.get("truth", {}) or "values" not in drive.attrs.get("drive", {}):
        raise InputError(f"{drive_frames_path}: no truth.frame_class and drive attrs; expected the driven run of "
                         "`clustering simulate`")
    if list(drive.attrs["truth"].get("classes", classes)) != classes:
        raise InputError(f"{drive_frames_path}: classes {drive.attrs['truth'].get('classes')} differ from the "
                         f"classes {classes} of {crops_path}")
    out.mkdir(parents=True, exist_ok=True)
    if sweep:
        latent_sweep(sweep, out / "supp_fig2.png")
    elbow(tables["elbow"], out / "supp_fig3.png")
    fig2(table, crops_store["crops"], classes, out / "fig2.png", seed)
    fig3(tables["drive_clusters"], drive.attrs, int(crops_store.attrs["crop"]) * int(crops_store.attrs.get("crop_bin", 1)),
         float(drive.attrs.get("dt", 1.0)), classes, out / "fig3.png")
    fig4(neighbours, table, crops_store["crops"], classes, out / "fig4.png")
    relaxation(table, tables["scores"], classes, dt, out / "relaxation.png")
    log.info("wrote figures to %s", out)
