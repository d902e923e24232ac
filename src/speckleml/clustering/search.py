"""Similarity search in the latent space (paper 001 Fig. 4): the crops nearest to a query C2.

A query is either a C2 map of the user's own (a square ``.npy``; one window of
``crop x crop_bin`` frames along its diagonal is block-averaged and min-max scaled like the
training crops) or crops of one true class drawn from a crops
store; it is encoded with the trained autoencoder and its nearest latents (Euclidean) are
listed with their class and origin.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def load_query(path, crop: int, start: int) -> np.ndarray:
    """A square C2 map from ``path`` (``.npy``) cut to one crop along its diagonal.

    Parameters
    ----------
    path : path
        A 2-D (after squeezing) square array ``C2(t1, t2)``.
    crop : int
        Crop side (frames): the model's input side.
    start : int
        First frame of the crop on both time axes.

    Returns
    -------
    ndarray, float32, (crop, crop)
        ``C2[start:start + crop, start:start + crop]``, not yet normalised.

    Raises
    ------
    InputError
        When the file is not a readable array, not a square 2-D map, too small for the crop
        from ``start``, or the crop holds NaN or infinite values.
    FileNotFoundError
        When ``path`` does not exist.
    """
    from ..errors import InputError

    try:
        c2 = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{path}: not a readable .npy array ({type(exc).__name__})") from None
    c2 = np.squeeze(c2)
    if c2.ndim != 2 or c2.shape[0] != c2.shape[1]:
        raise InputError(f"{path}: query must be a square 2-D C2 map, got shape {c2.shape}")
    if start < 0 or start + crop > c2.shape[0]:
        raise InputError(f"{path}: a {crop}-frame crop from --query-start {start} does not fit a {c2.shape[0]}-frame map")
    c2 = c2[start:start + crop, start:start + crop].astype(np.float32)
    if not np.isfinite(c2).all():
        raise InputError(f"{path}: query crop contains NaN or infinite values")
    return c2


def class_queries(crops_path, query_class: str, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_queries`` random crops of the true class ``query_class`` from a crops store.

    Parameters
    ----------
    crops_path : path
        Crops store (schema :data:`~speckleml.clustering.crops.CROPS`) with a ``classes`` attr.
    query_class : str
        One of the store's classes.
    n_queries : int
        Queries wanted (at most the class's crops).
    seed : int
        Seeds the draw (without replacement).

    Returns
    -------
    items : ndarray (n,) int
        Sorted item indices of the queries in the store.
    crops : ndarray (n, crop, crop) float32
        The (already min-max scaled) crops.

    Raises
    ------
    InputError
        When ``n_queries < 1``, the class is unknown or has fewer than ``n_queries`` crops.
    """
    from ..errors import InputError
    from ..stores import read_store
    from .crops import CROPS

    if n_queries < 1:
        raise InputError(f"--n-queries must be >= 1, got {n_queries}")
    store = read_store(crops_path, CROPS)
    classes = list(store.attrs.get("classes", []))
    if query_class not in classes:
        raise InputError(f"--query-class {query_class!r} is not one of {classes}")
    candidates = np.flatnonzero(store["label"] == classes.index(query_class))
    if candidates.size < n_queries:
        raise InputError(f"--n-queries {n_queries}: {crops_path} has only {candidates.size} crops of class {query_class!r}")
    rng = np.random.default_rng(seed)
    items = np.sort(rng.choice(candidates, size=n_queries, replace=False))
    return items, store["crops"][items]


def similarity_search(model_path, latents_path, out_path, *, neighbours: int, seed: int, device: str,
                      exclude_series: bool, query_path=None, query_start: int = 0, crops_path=None,
                      query_class: str | None = None, n_queries: int = 1, precision_path=None) -> None:
    """The ``similar`` stage: nearest latents of each query, one CSV row per neighbour.

    Give either ``query_path`` (a C2 of your own, :func:`load_query`) or ``query_class`` with
    ``crops_path`` (:func:`class_queries`; the queries themselves are never returned, and
    with ``exclude_series`` no crop of the query's own series either).

    Parameters
    ----------
    model_path : path
        Checkpoint whose encoder made the latents store.
    latents_path : path
        Latents store to search (schema :data:`~speckleml.clustering.cluster.LATENTS`).
    out_path : path
        CSV to write: ``query, query_name, query_item (-1 for a file), query_label,
        query_series, rank, item, distance, label, series, sector, start, same_class``.
    neighbours : int
        Neighbours per query (>= 1).
    seed : int
        Seeds the draw of class queries.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    exclude_series : bool
        Leave out the crops of each query's own series (other sectors and windows of the same
        measurement). Applies to queries from the store and to the precision table; a query
        file has no series in the store.
    query_path, query_start
        A query ``.npy`` and the first frame of its crop window (``crop x crop_bin`` frames,
        ``crop_bin`` from the latents store; binned as the library's crops).
    crops_path, query_class, n_queries
        The crops store the latents were made from, the true class and number of queries.
    precision_path : path, optional
        CSV of the per-class precision of the neighbours (:func:`precision_table`).

    Raises
    ------
    InputError
        When both or neither query kinds are given, the model or the crops store is not the
        one the latents store records (:func:`~speckleml.clustering.train.check_made_from`),
        fewer than ``neighbours`` latents are allowed for some query, or a query is bad.
    """
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..runtime import resolve_device
    from ..stores import read_store
    from .cluster import LATENTS, nearest_neighbours
    from .crops import bin_crops, minmax_normalise
    from .model import load_model
    from .train import check_made_from, encode_crops

    if neighbours < 1:
        raise InputError(f"-k/--neighbours must be >= 1, got {neighbours}")
    store = read_store(latents_path, LATENTS)
    check_made_from(store, latents_path, model=model_path, crops=crops_path if query_path is None else None)
    model, _ = load_model(model_path)
    series, labels = store["series"], store["label"]
    if query_path is not None:
        if query_class:
            raise InputError("give either a query file or --query-class, not both")
        crop_bin = int(store.attrs.get("crop_bin", 1))   # the library's frames per crop pixel
        query = bin_crops(load_query(query_path, model.config.crop * crop_bin, query_start), crop_bin)
        queries, names = minmax_normalise(query[None])[0], [str(query_path)]
        query_items, exclude, mask = np.array([-1]), None, None
    else:
        if not query_class or not crops_path:
            raise InputError("give a query .npy file, or --query-class with --crops")
        query_items, queries = class_queries(crops_path, query_class, n_queries, seed)
        names = [f"item {i}" for i in query_items]
        exclude = query_items
        mask = series[None, :] == series[query_items, None] if exclude_series else None
    allowed = series.size - (0 if exclude is None else len(exclude))
    if mask is not None:
        allowed = int((~mask).sum(axis=1).min())   # the queries themselves lie in their own series
    if neighbours > allowed:
        raise InputError(f"-k/--neighbours {neighbours}: only {allowed} latents of {latents_path} may be returned "
                         "for some query" + (" (--exclude-series)" if mask is not None else ""))
    latents_q, _ = encode_crops(model, queries, resolve_device(device))
    index, distance = nearest_neighbours(latents_q, store["latent"], neighbours, exclude=exclude, mask=mask)
    rows = []
    for q, (name, item) in enumerate(zip(names, query_items)):
        query_label = int(labels[item]) if item >= 0 else -1
        for rank in range(index.shape[1]):
            i = int(index[q, rank])
            rows.append({"query": q, "query_name": name, "query_item": int(item), "query_label": query_label,
                         "query_series": int(series[item]) if item >= 0 else -1, "rank": rank + 1,
                         "item": i, "distance": float(distance[q, rank]), "label": int(labels[i]),
                         "series": int(series[i]), "sector": int(store["sector"][i]),
                         "start": int(store["start"][i]), "same_class": bool(item >= 0 and labels[i] == query_label)})
    table = pd.DataFrame(rows)
    if precision_path is not None:
        try:
            precision = precision_table(table, store, neighbours, exclude_series)
        except ValueError as exc:
            raise InputError(f"{latents_path}: {exc}") from None
        write_csv(precision, precision_path)
    write_csv(table, out_path)
    log.info("wrote %s: %d queries x %d neighbours, %d of them of the query's class", out_path, len(names),
             index.shape[1], int(table["same_class"].sum()))


def precision_table(neighbours_table, store, k: int, exclude_series: bool):
    """Per-class precision of the neighbours: of the drawn queries and of every library crop.

    Parameters
    ----------
    neighbours_table : pandas.DataFrame
        Rows of :func:`similarity_search` (``query_label``, ``same_class``).
    store : Store
        The latents store searched (``latent``, ``label``, ``series``, attr ``classes``).
    k : int
        Neighbours per query.
    exclude_series : bool
        Whether each query's own series was left out.

    Returns
    -------
    pandas.DataFrame
        Columns ``scope`` (``queries``: the drawn queries; ``library``: every crop of the
        store as a query, :func:`~speckleml.clustering.cluster.neighbour_precision`),
        ``class``, ``queries``, ``neighbours``, ``exclude_series``, ``precision`` (mean
        fraction of a query's neighbours of its own true class).

    Raises
    ------
    ValueError
        When some crop has fewer than ``k`` allowed neighbours.
    """
    import pandas as pd

    from .cluster import neighbour_precision

    classes = list(store.attrs.get("classes", []))

    def name(label: int) -> str:
        return classes[label] if 0 <= label < len(classes) else str(label)

    rows = []
    drawn = neighbours_table[neighbours_table["query_label"] >= 0]
    for label, part in drawn.groupby("query_label"):
        rows.append({"scope": "queries", "class": name(int(label)), "queries": int(part["query"].nunique()),
                     "neighbours": k, "exclude_series": exclude_series, "precision": float(part["same_class"].mean())})
    per_class = neighbour_precision(store["latent"], store["label"], store["series"], k, exclude_series)
    for label, (count, precision) in per_class.items():
        rows.append({"scope": "library", "class": name(label), "queries": count, "neighbours": k,
                     "exclude_series": exclude_series, "precision": precision})
    return pd.DataFrame(rows, columns=["scope", "class", "queries", "neighbours", "exclude_series", "precision"])
