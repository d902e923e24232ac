"""Classification scores of the disk-count classifier (paper 002, Table 1, Fig. 3-5).

Precision, recall and F1 per class (Table 1 layout) plus the macro averages that the paper
calls "cross-class", overall accuracy, error counts, and the confusion matrix.
"""

from __future__ import annotations

import numpy as np


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
    """Confusion matrix as a DataFrame: rows = true disk number, columns = predicted."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(true, predicted, labels=classes)
    return pd.DataFrame(matrix, index=pd.Index(classes, name="true"), columns=[str(c) for c in classes])


def error_bands(true: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """Counts of correct predictions and errors by 1, 2 and more than 2 disks (paper Fig. 5)."""
    offset = np.abs(np.asarray(predicted) - np.asarray(true))
    return {"n": int(offset.size), "correct": int((offset == 0).sum()), "off_by_1": int((offset == 1).sum()),
            "off_by_2": int((offset == 2).sum()), "off_by_more": int((offset > 2).sum())}
