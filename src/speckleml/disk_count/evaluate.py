"""Classification scores of the disk-count classifier (paper 002, Table 1, Fig. 3-5).

Precision, recall and F1 per class (Table 1 layout) plus the macro averages that the paper
calls "cross-class", overall accuracy, error counts, and the confusion matrix.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def classification_table(true: np.ndarray, predicted: np.ndarray, classes: list[int]):
    """Per-class precision, recall, F1 and support, then ``macro avg`` and ``accuracy`` rows.

    Parameters
    ----------
    true, predicted : ndarray of int
        Disk numbers (not class indices).
    classes : list of int
        Disk numbers in display order.

    Returns
    -------
    pandas.DataFrame
        Columns ``class, precision, recall, f1, support``; a class never predicted has
        precision 0 (sklearn's ``zero_division=0``).
    """
    import pandas as pd
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=classes, zero_division=0)
    rows = pd.DataFrame({"class": [f"Disks_{c:02d}" for c in classes], "precision": precision,
                         "recall": recall, "f1": f1, "support": support})
    macro = precision_recall_fscore_support(true, predicted, labels=classes, average="macro", zero_division=0)
    summary = pd.DataFrame({
        "class": ["macro avg", "accuracy"],
        "precision": [macro[0], np.nan], "recall": [macro[1], np.nan],
        "f1": [macro[2], accuracy_score(true, predicted)], "support": [len(true), len(true)],
    })
    return pd.concat([rows, summary], ignore_index=True)


def confusion_table(true: np.ndarray, predicted: np.ndarray, classes: list[int]):
    """Confusion matrix (paper 002 Fig. 3-5) as a DataFrame.

    Parameters
    ----------
    true, predicted : ndarray of int
        Disk numbers.
    classes : list of int
        Disk numbers in display order.

    Returns
    -------
    pandas.DataFrame, shape (classes, classes)
        Counts; rows = true disk number (index ``true``), columns = predicted (as strings).
    """
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(true, predicted, labels=classes)
    return pd.DataFrame(matrix, index=pd.Index(classes, name="true"), columns=[str(c) for c in classes])


def error_bands(true: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """Counts of correct predictions and errors by 1, 2 and more than 2 disks (paper 002 Fig. 5).

    Parameters
    ----------
    true, predicted : ndarray of int
        Disk numbers (the offsets are counted in disks, not class indices).

    Returns
    -------
    dict
        ``n``, ``correct``, ``off_by_1``, ``off_by_2``, ``off_by_more``.
    """
    offset = np.abs(np.asarray(predicted) - np.asarray(true))
    return {"n": int(offset.size), "correct": int((offset == 0).sum()), "off_by_1": int((offset == 1).sum()),
            "off_by_2": int((offset == 2).sum()), "off_by_more": int((offset > 2).sum())}


def evaluate_store(model_path, source, *, metrics, confusion, predictions, device: str):
    """Classify the test split of an inputs store; write scores, confusion matrix, predictions.

    Paper 002 §2 (precision, recall, F1, confusion matrix) and §3: Table 1, Fig. 3-5.

    Parameters
    ----------
    model_path : path
        Model file (:func:`~speckleml.disk_count.model.save_model`).
    source : path
        Inputs store; its test split is classified (a transfer store is all test).
    metrics : path
        CSV to write, :func:`classification_table` layout.
    confusion : path
        CSV to write, :func:`confusion_table` (rows true, columns predicted disk numbers).
    predictions : path
        CSV to write: ``pattern, true, predicted, probability, correct``, one row per test pattern.
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    dict
        :func:`error_bands` of the test split.

    Raises
    ------
    InputError
        Unreadable model or store, preprocessing unlike the model's, no test patterns.
    """
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..runtime import resolve_device
    from ..stores import read_store
    from .data import INPUTS, SPLITS
    from .model import check_compatible, load_model, predict_proba

    torch_device = resolve_device(device)
    model, metadata = load_model(model_path, torch_device)
    store = read_store(source, INPUTS)
    check_compatible(metadata, store.attrs, source, store["split"])
    rows = np.flatnonzero(store["split"] == SPLITS["test"])
    if rows.size == 0:
        raise InputError(f"{source}: no test patterns")
    classes = [int(c) for c in metadata["classes"]]
    true = store["n_disks"][rows]
    probability = predict_proba(model, store["inputs"][rows], torch_device)
    predicted = np.asarray(classes)[probability.argmax(1)]
    table = pd.DataFrame({"pattern": rows, "true": true, "predicted": predicted,
                          "probability": probability.max(1), "correct": predicted == true})
    shown = sorted(set(classes) | {int(c) for c in np.unique(true)})
    scores = classification_table(true, predicted, shown)
    write_csv(table, predictions)
    write_csv(scores, metrics)
    write_csv(confusion_table(true, predicted, shown), confusion, index=True)
    bands = error_bands(true, predicted)
    log.info("%s: accuracy %.4f (%d errors of %d; off by 1: %d, by 2: %d, by more: %d), macro F1 %.3f",
             source, bands["correct"] / bands["n"], bands["n"] - bands["correct"], bands["n"],
             bands["off_by_1"], bands["off_by_2"], bands["off_by_more"],
             float(scores.loc[scores["class"] == "macro avg", "f1"].iloc[0]))
    return bands
