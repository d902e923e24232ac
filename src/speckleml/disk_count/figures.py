"""Figures of the disk_count study (paper 002, Fig. 2-6 and the SI maps)."""

from __future__ import annotations

import logging
import textwrap

import numpy as np

log = logging.getLogger(__name__)

#: Figure kinds of :func:`figure_from_outputs`.
KINDS = ("systems", "confusion", "moments", "maps", "history")

from ..plotting import figure


def plot_systems(patterns: np.ndarray, disks: np.ndarray, n_disks: np.ndarray, box: float, kx: np.ndarray,
                 ky: np.ndarray, show: list[int]):
    """Fig. 2: real-space disks and their speckle (log intensity) for selected disk numbers.

    Parameters
    ----------
    patterns : ndarray, shape (pattern, ky, kx)
    disks : ndarray, shape (pattern, disk, 3)
        x, y, r in box units, zero-radius padding.
    n_disks : ndarray of int, shape (pattern,)
    box : float
        Box side (box units).
    kx, ky : ndarray
        k axes of the patterns (1 / box units; the paper's quadrant 0 .. k_max or centred).
    show : list of int
        Disk numbers to show (the first pattern of each).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputError
        A disk number of ``show`` that no pattern has (named with ``--show``).
    """
    from matplotlib.patches import Circle

    from ..errors import InputError

    missing = [n for n in show if not (n_disks == n).any()]
    if missing or not len(show):
        raise InputError(f"--show {' '.join(map(str, show))}: disk number(s) {missing} not in the patterns store "
                         f"(it holds {' '.join(map(str, np.unique(n_disks)))})")
    chosen = [int(np.flatnonzero(n_disks == n)[0]) for n in show]
    fig, axes = figure(2, len(chosen), width=2.3, height=2.3)
    step_x, step_y = kx[1] - kx[0], ky[1] - ky[0]
    extent = (kx[0] - step_x / 2, kx[-1] + step_x / 2, ky[0] - step_y / 2, ky[-1] + step_y / 2)
    for column, index in enumerate(chosen):
        ax = axes[0, column]
        for x, y, r in disks[index]:
            if r > 0:
                ax.add_patch(Circle((x, y), r, color="k"))
        ax.set(xlim=(0, box), ylim=(0, box), aspect="equal", title=f"n = {n_disks[index]}")
        ax.set_xlabel("x")
        ax = axes[1, column]
        image = ax.imshow(np.log10(patterns[index] + 1e-12 * patterns[index].max()), origin="lower",
                          extent=extent, cmap="magma")
        ax.set_xlabel(r"$k_x$")
        fig.colorbar(image, ax=ax, shrink=0.8, label=r"$\log_{10} I$" if column == len(chosen) - 1 else None)
    axes[0, 0].set_ylabel("y (box units)")
    axes[1, 0].set_ylabel(r"$k_y$ (1/box units)")
    return fig


#: Paper 002 Fig. 5 colour code of an error, by its size in disks (not class indices).
ERROR_COLOURS = {2: "tab:red"}
LARGE_ERROR_COLOUR = "tab:orange"
BAND_COLOUR = "tab:green"


def error_colour(offset: int) -> str | None:
    """Colour of a confusion-matrix cell whose prediction is ``offset`` disks off (paper 002 Fig. 5).

    Parameters
    ----------
    offset : int
        ``|predicted - true|`` in disks.

    Returns
    -------
    str or None
        ``None`` within the +/-1-disk band (no circle), red for exactly 2 disks, orange for
        more than 2.
    """
    offset = abs(int(offset))
    if offset <= 1:
        return None
    return ERROR_COLOURS.get(offset, LARGE_ERROR_COLOUR)


def plot_confusion(matrix: np.ndarray, classes: list[int], title: str, bands: bool = False):
    """Fig. 3-5: confusion matrix (counts, log colour) with the paper's colour code, in disks.

    Parameters
    ----------
    matrix : ndarray of int, shape (classes, classes)
        Counts; rows true, columns predicted.
    classes : list of int
        Disk numbers of the rows/columns.
    title : str
    bands : bool
        Mark the errors (paper Fig. 5): a green outline around the cells within +/-1 disk of
        the true number (with classes spaced by 2 that is the diagonal alone), red circles on
        errors of exactly 2 disks, orange circles on errors of more than 2 (:func:`error_colour`),
        and a legend. Offsets are counted in disks, not class indices.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, Rectangle

    n = len(classes)
    values = np.asarray(classes)
    fig, axes = figure(1, 1, width=max(0.28 * n + 2.2, 4.2), height=0.28 * n + (2.0 if bands else 1.6))
    ax = axes[0, 0]
    shown = np.where(matrix > 0, matrix, np.nan)
    image = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(int(matrix.max()), 2)))
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if matrix[i, j] > 0.5 * matrix.max() else "black")
    if bands:
        for i in range(n):
            near = np.flatnonzero(np.abs(values - values[i]) <= 1)
            ax.add_patch(Rectangle((near.min() - 0.5, i - 0.5), near.max() - near.min() + 1, 1, fill=False,
                                   edgecolor=BAND_COLOUR, lw=1))
            for j in range(n):
                colour = error_colour(values[j] - values[i])
                if matrix[i, j] and colour:
                    ax.add_patch(Circle((j, i), 0.45, fill=False, edgecolor=colour, lw=1.2))
        handles = [Line2D([], [], color=BAND_COLOUR, lw=1, label="within 1 disk"),
                   Line2D([], [], ls="", marker="o", mfc="none", mec=ERROR_COLOURS[2], label="2 disks off"),
                   Line2D([], [], ls="", marker="o", mfc="none", mec=LARGE_ERROR_COLOUR, label="> 2 disks off")]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    ax.set_xticks(range(n), [str(c) for c in classes], fontsize=7)
    ax.set_yticks(range(n), [str(c) for c in classes], fontsize=7)
    ax.set(xlabel="predicted number of disks", ylabel="true number of disks", title=title)
    fig.colorbar(image, ax=ax, shrink=0.8, label="test patterns")
    return fig


def plot_first_moments(moments, labels: np.ndarray):
    """Fig. 6: first moment vs disk number, four definitions; samples (left) and means (right).

    Parameters
    ----------
    moments : mapping or DataFrame
        Columns ``raw, shifted, absolute, normalized`` (:func:`~.moments.first_moments`), k pixels.
    labels : ndarray of int, shape (pattern,)
        Disk number of each row.

    Returns
    -------
    matplotlib.figure.Figure
        Means carry the standard error of the mean.
    """
    names = {"raw": "raw intensity", "shifted": "shifted standardised",
             "absolute": "absolute standardised", "normalized": "normalised standardised"}
    fig, axes = figure(len(names), 2, width=3.0, height=2.0)
    classes = np.unique(labels)
    for row, (key, title) in enumerate(names.items()):
        values = np.asarray(moments[key])
        axes[row, 0].scatter(labels, values, s=6, alpha=0.6)
        means = [values[labels == c].mean() for c in classes]
        sems = [values[labels == c].std(ddof=1) / np.sqrt((labels == c).sum()) if (labels == c).sum() > 1 else 0
                for c in classes]
        axes[row, 1].errorbar(classes, means, yerr=sems, marker="o", ms=3, capsize=2)
        for ax in axes[row]:
            ax.set_ylabel("first moment (k pixels)")
            ax.set_title(title)
    for ax in axes[-1]:
        ax.set_xlabel("number of disks")
    return fig


def plot_maps(inputs: np.ndarray, saliency: np.ndarray, gradcam: np.ndarray, n_disks: np.ndarray,
              predicted: np.ndarray, feature_map: tuple[int, int] | None = None):
    """SI maps: input, saliency and Grad-CAM overlay for one test pattern per class.

    Parameters
    ----------
    inputs, saliency, gradcam : ndarray, shape (sample, y, x)
        Standardised input, ``|d logit / d input|``, Grad-CAM in [0, 1].
    n_disks, predicted : ndarray of int, shape (sample,)
    feature_map : (int, int), optional
        Size of the layer Grad-CAM is computed on. At 1 x 1 the Grad-CAM row is left out, and
        the figure says why: the map would be one value per pattern (a constant), and an
        input tinted by a constant looks like evidence while it is none.

    Returns
    -------
    matplotlib.figure.Figure
    """
    count = len(inputs)
    constant_cam = feature_map is not None and tuple(feature_map) == (1, 1)
    rows = 2 if constant_cam else 3
    fig, axes = figure(rows, count, width=1.5, height=1.5)
    for column in range(count):
        axes[0, column].imshow(inputs[column], origin="lower", cmap="magma")
        axes[0, column].set_title(f"n={n_disks[column]} pred {predicted[column]}", fontsize=7)
        axes[1, column].imshow(saliency[column], origin="lower", cmap="inferno")
        if not constant_cam:
            axes[2, column].imshow(inputs[column], origin="lower", cmap="gray")
            axes[2, column].imshow(gradcam[column], origin="lower", cmap="jet", alpha=0.45, vmin=0, vmax=1,
                                   interpolation="nearest")  # blocky: the map's true resolution
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input (standardised)")
    axes[1, 0].set_ylabel("saliency |dS/dx|")
    if constant_cam:
        note = (f"Grad-CAM row omitted: layer4's output is 1 x 1 for {inputs.shape[-2]} x {inputs.shape[-1]} "
                "inputs, so Grad-CAM is one value per pattern (a constant map), not a spatial map.")
        # supxlabel: constrained layout reserves its space below the panels; wrapped to the figure width
        fig.supxlabel(textwrap.fill(note, max(int(fig.get_figwidth() * 15), 20)), fontsize=7)
    else:
        axes[2, 0].set_ylabel("Grad-CAM (layer4)")
    return fig


def plot_history(history):
    """Training curves: loss and accuracy per epoch, train and validation.

    Parameters
    ----------
    history : DataFrame
        Columns ``epoch, train_loss, val_loss, train_accuracy, val_accuracy``
        (:func:`~.train.train_classifier`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = figure(1, 2, width=3.2, height=2.4)
    axes[0, 0].plot(history["epoch"], history["train_loss"], label="train")
    axes[0, 0].plot(history["epoch"], history["val_loss"], label="validation")
    axes[0, 0].set(xlabel="epoch", ylabel="cross-entropy", yscale="log")
    axes[0, 1].plot(history["epoch"], history["train_accuracy"], label="train")
    axes[0, 1].plot(history["epoch"], history["val_accuracy"], label="validation")
    axes[0, 1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    axes[0, 1].legend()
    return fig


def read_csv(path, **kwargs):
    """``pandas.read_csv(path, **kwargs)`` with a one-line error for unreadable files.

    Parameters
    ----------
    path : path
    **kwargs
        Passed to :func:`pandas.read_csv`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        A file that is not a CSV, or empty.
    """
    import pandas as pd

    from ..errors import reading

    with reading(path, "CSV"):
        return pd.read_csv(path, **kwargs)


#: Columns each CSV figure reads (all numeric), by figure kind.
CSV_COLUMNS = {"history": ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"),
               "moments": ("n_disks", "raw", "shifted", "absolute", "normalized")}


def check_columns(table, path, columns) -> None:
    """Check that ``table`` has at least one row and numeric, finite ``columns``.

    Raises
    ------
    InputError
        Naming ``path`` and the missing or non-numeric columns, or an empty table.
    """
    import pandas as pd

    from ..errors import InputError

    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (needs {', '.join(columns)})")
    if table.empty:
        raise InputError(f"{path}: no rows")
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(table[c]) or not np.isfinite(table[c]).all()]
    if bad:
        raise InputError(f"{path}: column(s) {', '.join(bad)} must hold finite numbers")


def read_confusion(path):
    """Confusion matrix and disk numbers from a :func:`~.evaluate.confusion_table` CSV.

    Returns
    -------
    matrix : ndarray of int, shape (classes, classes)
    classes : list of int

    Raises
    ------
    InputError
        Naming ``path``: no rows, column or row labels that are not the same integer disk
        numbers, or counts that are not non-negative integers.
    """
    from ..errors import InputError

    table = read_csv(path, index_col=0)
    try:
        classes = [int(c) for c in table.columns]
        rows = [int(c) for c in table.index]
    except (TypeError, ValueError):
        raise InputError(f"{path}: not a confusion matrix (header and first column must be disk numbers, "
                         f"got {list(table.columns)[:4]})") from None
    if not classes or rows != classes:
        raise InputError(f"{path}: not a confusion matrix (rows {rows[:4]} must equal columns {classes[:4]})")
    values = table.to_numpy()
    if values.dtype.kind not in "iu" or (values < 0).any():
        raise InputError(f"{path}: confusion counts must be non-negative integers")
    return values, classes


def figure_from_outputs(kind: str, source, output, *, title: str = "", bands: bool = False,
                        show: list[int] = ()):
    """Draw one figure of the study from a stage output and save it.

    Parameters
    ----------
    kind : {"systems", "confusion", "moments", "maps", "history"}
        ``systems``: Fig. 2 from a patterns store; ``confusion``: Fig. 3-5 from a confusion
        CSV; ``moments``: Fig. 6 from the first-moments CSV; ``maps``: SI maps from a maps
        store; ``history``: training curves from a history CSV.
    source : path
        The stage output the figure shows.
    output : path
        Image to write (.png, .pdf, .svg), atomically.
    title : str
        Title of a confusion matrix.
    bands : bool
        Confusion matrix: the paper's Fig. 5 marks (see :func:`plot_confusion`).
    show : list of int
        Systems figure: disk numbers shown (those simulated).

    Returns
    -------
    pathlib.Path
        ``output``.

    Raises
    ------
    InputError
        Unknown ``kind``, unreadable store, a CSV that is unreadable or lacks the columns
        (numeric) the figure reads (:data:`CSV_COLUMNS`, :func:`read_confusion`).
    """
    from ..errors import InputError
    from ..plotting import save_figure
    from ..stores import read_store
    from .data import MAPS, PATTERNS

    if kind == "systems":
        store = read_store(source, PATTERNS)
        figure_ = plot_systems(store["patterns"], store["disks"], store["n_disks"], float(store.attrs["box"]),
                               store["kx"], store["ky"], list(show))
    elif kind == "confusion":
        matrix, classes = read_confusion(source)
        figure_ = plot_confusion(matrix, classes, title, bands=bands)
    elif kind == "moments":
        table = read_csv(source)
        check_columns(table, source, CSV_COLUMNS["moments"])
        figure_ = plot_first_moments(table, table["n_disks"].to_numpy())
    elif kind == "maps":
        store = read_store(source, MAPS)
        figure_ = plot_maps(store["inputs"], store["saliency"], store["gradcam"], store["n_disks"],
                            store["predicted"], store.attrs.get("feature_map"))
    elif kind == "history":
        table = read_csv(source)
        check_columns(table, source, CSV_COLUMNS["history"])
        figure_ = plot_history(table)
    else:
        raise InputError(f"figure kind must be one of {KINDS}, got {kind!r}")
    path = save_figure(figure_, output)
    log.info("wrote %s", output)
    return path
