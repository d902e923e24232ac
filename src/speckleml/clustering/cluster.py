"""k-means classes of latent vectors with an automatic elbow, embeddings, scores, neighbours.

The paper runs k-means for k = 2..12 on the 64-d latents and picks k by the elbow of the
distortion curve (Supp. Fig. 3); here the elbow is found automatically as the point of the
normalised curve farthest below the chord from its first to its last point (the "kneedle"
rule). Clusters are renumbered by the median relaxation time of their members, slowest
first, so that - as in the paper - relaxation rates increase with the class number.

The paper clusters the latents as they are (``latent_transform="none"``). The latents are
ReLU outputs: non-negative, most near 0 and a long upper tail (median of the non-zero values
~0.5, maxima 4-7 on the simulated library), so squared Euclidean distances are dominated by the
few largest activations. ``"log1p"`` clusters ``log(1 + z)`` instead, which compresses that tail
(issue 19, ``benchmarks/clustering_seeds.py``: on 8 default autoencoders of the simulated
library, 6 data seeds, it moved the ARI at the elbow from 0.62 to 0.71 on average, the lowest from
0.55 to 0.68: higher in 6, within 0.01 in the other 2; README, clustering).
"""

from __future__ import annotations

import logging

import numpy as np

from ..stores import ArraySpec, StoreSchema, register_schema

log = logging.getLogger(__name__)

LATENTS = register_schema(StoreSchema(
    name="clustering_latents", version=2,
    description="autoencoder latent vector and reconstruction error of every C2 crop",
    arrays={
        "latent": ArraySpec(("item", "dim"), ("float32",), finite=True),
        "recon_l1": ArraySpec(("item",), ("float32",), finite=True),
        "label": ArraySpec(("item",), ("int64",)),
        "series": ArraySpec(("item",), ("int64",)),
        "sector": ArraySpec(("item",), ("int64",)),
        "start": ArraySpec(("item",), ("int64",)),
        "kww_tau": ArraySpec(("item",), ("float64",)),
        "kww_bound": ArraySpec(("item",), ("int8",)),
    },
    required_attrs=("classes", "dt"),
))


#: Transforms of the latents before k-means (:func:`transform_latents`).
LATENT_TRANSFORMS = ("none", "log1p")


def transform_latents(latents: np.ndarray, transform: str) -> np.ndarray:
    """The latents in the space that k-means, the elbow and the embedding work in.

    Parameters
    ----------
    latents : ndarray (N, d)
        Non-negative latent vectors (the autoencoder's bottleneck ReLU).
    transform : {"none", "log1p"}
        ``"none"``: as they are (paper 001); ``"log1p"``: ``log(1 + z)`` element-wise, which
        compresses the long upper tail of the ReLU activations (module docstring).

    Returns
    -------
    ndarray (N, d) float64

    Raises
    ------
    ValueError
        For an unknown transform, or ``"log1p"`` of latents with negative values (not ReLU outputs).
    """
    latents = np.asarray(latents, np.float64)
    if transform == "none":
        return latents
    if transform == "log1p":
        if latents.size and latents.min() < 0:
            raise ValueError(f"latent transform log1p needs non-negative (ReLU) latents; the smallest is "
                             f"{latents.min():.3g} (use --latent-transform none)")
        return np.log1p(latents)
    raise ValueError(f"unknown latent transform {transform!r} (known: {', '.join(LATENT_TRANSFORMS)})")


def latent_space(latents: np.ndarray, transform: str, source) -> np.ndarray:
    """:func:`transform_latents` of the latents read from ``source``, whose path names the error.

    Raises
    ------
    InputError
        When the transform does not fit the latents (one line naming ``source``).
    """
    from ..errors import InputError

    try:
        return transform_latents(latents, transform)
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None


def elbow_curve(latents: np.ndarray, ks, seed: int, n_init: int = 10) -> np.ndarray:
    """k-means distortion for each k (paper 001 Supp. Fig. 3).

    Parameters
    ----------
    latents : ndarray (N, d)
        Latent vectors.
    ks : sequence of int
        Numbers of clusters, each ``< N``.
    seed : int
        ``random_state`` of scikit-learn's KMeans.
    n_init : int
        k-means restarts per k (the best is kept).

    Returns
    -------
    ndarray (len(ks),) float64
        Inertia: summed squared Euclidean distance of the latents to their centroid.
    """
    from sklearn.cluster import KMeans

    return np.array([KMeans(n_clusters=int(k), n_init=n_init, random_state=seed).fit(latents).inertia_
                     for k in ks])


def elbow_point(ks, distortion) -> int:
    """The k at the elbow of a decreasing distortion curve (the "kneedle" rule).

    Both axes are scaled to [0, 1]; the chosen k maximises the distance between the chord from
    the first to the last point and the curve.

    Parameters
    ----------
    ks : sequence of int
        Increasing numbers of clusters.
    distortion : sequence of float
        Distortion at each k (:func:`elbow_curve`).

    Returns
    -------
    int
        The elbow k; the smallest k with fewer than three points or a flat curve.
    """
    ks = np.asarray(ks, np.float64)
    d = np.asarray(distortion, np.float64)
    if ks.size < 3 or not np.ptp(d) > 0:
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (d - d.min()) / np.ptp(d)
    chord = y[0] + (y[-1] - y[0]) * x
    return int(ks[int(np.argmax(chord - y))])


def order_by_relaxation(labels: np.ndarray, tau: np.ndarray, n_clusters: int,
                        bound: np.ndarray | None = None) -> np.ndarray:
    """Renumbering of clusters so that cluster 0 has the longest median relaxation time.

    Paper 001 orders its classes by relaxation rate (slow first). Only fits inside the
    resolvable range count: NaN times and times flagged at a fit bound (``bound != 0``, a
    limit rather than a measurement) are left out of the medians. A cluster with no such fit
    is placed by the bound most of its crops hit - above the range (slower than every
    measured cluster) first, below it (faster) after the measured ones - and a cluster
    without any fit last.

    Parameters
    ----------
    labels : ndarray (N,) int
        Cluster of each item, ``0..n_clusters-1``.
    tau : ndarray (N,) float
        Relaxation time of each item (any unit; compared in log).
    n_clusters : int
    bound : ndarray (N,) int, optional
        ``+1`` / ``-1`` where ``tau`` sits at the upper / lower fit bound, else 0
        (:func:`speckleml.clustering.crops.fit_crops_kww`); None: no flags.

    Returns
    -------
    ndarray (n_clusters,) int
        ``mapping[old] = new``.
    """
    tau = np.asarray(tau, np.float64)
    bound = np.zeros(tau.shape, np.int64) if bound is None else np.asarray(bound, np.int64)
    group, key = np.empty(n_clusters, np.int64), np.zeros(n_clusters)
    for c in range(n_clusters):
        fitted = (labels == c) & np.isfinite(tau)
        inside = fitted & (bound == 0)
        if inside.any():
            group[c], key[c] = 1, -np.median(np.log(tau[inside]))
        elif fitted.any():
            group[c] = 0 if bound[fitted].mean() > 0 else 2
        else:
            group[c] = 3
    order = np.lexsort((np.arange(n_clusters), key, group))
    mapping = np.empty(n_clusters, np.int64)
    mapping[order] = np.arange(n_clusters)
    return mapping


def fit_clusters(latents: np.ndarray, k: int, seed: int, tau: np.ndarray | None = None, n_init: int = 10,
                 bound: np.ndarray | None = None):
    """k-means with ``k`` clusters, numbered slowest first when ``tau`` is given.

    Parameters
    ----------
    latents : ndarray (N, d)
    k : int
        Number of clusters (``< N``).
    seed : int
        ``random_state`` of KMeans.
    tau : ndarray (N,), optional
        Relaxation time of each item for :func:`order_by_relaxation`.
    n_init : int
        k-means restarts.
    bound : ndarray (N,) int, optional
        Fit-bound flags of ``tau`` (left out of the ordering).

    Returns
    -------
    labels : ndarray (N,) int64
    centres : ndarray (k, d) float64
        Centroids in the order of the (renumbered) labels.
    """
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=int(k), n_init=n_init, random_state=seed).fit(latents)
    labels, centres = km.labels_.astype(np.int64), km.cluster_centers_
    if tau is not None:
        mapping = order_by_relaxation(labels, np.asarray(tau, np.float64), int(k), bound)
        labels = mapping[labels]
        centres = centres[np.argsort(mapping)]
    return labels, centres


def assign(latents: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nearest-centroid cluster of each latent (the k-means prediction).

    Parameters
    ----------
    latents : ndarray (N, d)
    centres : ndarray (k, d)

    Returns
    -------
    ndarray (N,) int64
    """
    return np.argmin(pairwise_distances(latents, centres), axis=1).astype(np.int64)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between two sets of vectors, in float64.

    Parameters
    ----------
    a : ndarray (n, d)
    b : ndarray (m, d)

    Returns
    -------
    ndarray (n, m) float64
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def nearest_neighbours(queries: np.ndarray, latents: np.ndarray, k: int, exclude: np.ndarray | None = None,
                       mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest latents (Euclidean) of each query (paper 001 Fig. 4).

    Parameters
    ----------
    queries : ndarray (n_queries, d)
    latents : ndarray (N, d)
    k : int
        Neighbours wanted; fewer when fewer latents are allowed for some query.
    exclude : ndarray of int, optional
        Latent indices that no query may return (e.g. the queries themselves).
    mask : ndarray (n_queries, N) bool, optional
        True where a latent may not be returned for that query (e.g. the query's own series).

    Returns
    -------
    index : ndarray (n_queries, k) int
        Latent indices, nearest first (ties in index order).
    distance : ndarray (n_queries, k) float64

    Raises
    ------
    ValueError
        When ``mask`` does not have the shape ``(n_queries, N)``.
    """
    distances = pairwise_distances(queries, latents)
    if exclude is not None and len(exclude):
        distances[:, np.asarray(exclude)] = np.inf
    if mask is not None:
        if np.shape(mask) != distances.shape:
            raise ValueError(f"mask must have shape {distances.shape}, got {np.shape(mask)}")
        distances[np.asarray(mask, bool)] = np.inf
    k = min(int(k), int(np.isfinite(distances).sum(axis=1).min()))
    index = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return index, np.take_along_axis(distances, index, axis=1)


def neighbour_precision(latents: np.ndarray, labels: np.ndarray, series: np.ndarray, k: int,
                        exclude_series: bool, chunk: int = 1024) -> dict[int, tuple[int, float]]:
    """Per-class precision of the ``k`` nearest neighbours, every item a query in turn.

    The precision of one query is the fraction of its ``k`` nearest latents (itself excluded,
    and with ``exclude_series`` every item of its own series: crops of one series in other
    sectors or windows are near-duplicates, not similar dynamics found elsewhere) that share
    its true class; the class precision is its mean over the class's items.

    Parameters
    ----------
    latents : ndarray (N, d)
    labels : ndarray (N,) int
        True class; items with a negative label are neither scored nor skipped as neighbours.
    series : ndarray (N,) int
        Series of each item.
    k : int
        Neighbours per query, >= 1.
    exclude_series : bool
        Leave the query's own series out of its neighbours.
    chunk : int
        Queries per block of the distance matrix (memory ``chunk * N`` doubles).

    Returns
    -------
    dict
        ``{class: (queries, precision)}`` for every class with a scored query.

    Raises
    ------
    ValueError
        When ``k < 1`` or a query has fewer than ``k`` allowed neighbours.
    """
    labels = np.asarray(labels)
    series = np.asarray(series)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scored = np.flatnonzero(labels >= 0)
    hits = np.empty(scored.size)
    for start in range(0, scored.size, chunk):
        rows = scored[start:start + chunk]
        mask = (series[None, :] == series[rows, None]) if exclude_series else np.zeros((rows.size, labels.size), bool)
        mask[np.arange(rows.size), rows] = True
        index, _ = nearest_neighbours(latents[rows], latents, k, mask=mask)
        if index.shape[1] < k:
            raise ValueError(f"some items have fewer than {k} neighbours outside their own series")
        hits[start:start + rows.size] = (labels[index] == labels[rows, None]).mean(axis=1)
    return {int(c): (int((labels[scored] == c).sum()), float(hits[labels[scored] == c].mean()))
            for c in np.unique(labels[scored])}


def embed(latents: np.ndarray, method: str, seed: int, n_neighbors: int = 5, min_dist: float = 0.25) -> np.ndarray:
    """2-D embedding of latents for display.

    Parameters
    ----------
    latents : ndarray (N, d)
    method : {"umap", "pca"}
        UMAP with the paper's settings, or the first two principal components (fast).
    seed : int
        UMAP ``random_state``.
    n_neighbors, min_dist
        UMAP settings (paper 001: 5 and 0.25).

    Returns
    -------
    ndarray (N, 2) float

    Raises
    ------
    ValueError
        For an unknown ``method``.
    """
    latents = np.asarray(latents, np.float64)
    if method == "pca":
        centred = latents - latents.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = centred @ vt[:2].T
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))) if out.shape[1] < 2 else out
    if method == "umap":
        import umap

        reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(latents) - 1), min_dist=min_dist,
                            n_components=2, random_state=seed)
        return reducer.fit_transform(latents)
    raise ValueError(f"unknown embedding {method!r} (use umap or pca)")


def agreement_scores(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Adjusted Rand index and normalised mutual information of clusters against the truth.

    Parameters
    ----------
    truth : ndarray (N,) int
        True class; negative values (unknown) are left out.
    labels : ndarray (N,) int
        Clusters.

    Returns
    -------
    dict
        ``{"ari": float, "nmi": float}`` (1 = identical partitions, ARI ~0 by chance).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    known = truth >= 0
    return {"ari": float(adjusted_rand_score(truth[known], labels[known])),
            "nmi": float(normalized_mutual_info_score(truth[known], labels[known]))}


def class_fractions(times: np.ndarray, labels: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of the items in each cluster at each distinct time (paper 001 Fig. 3).

    Parameters
    ----------
    times : ndarray (N,)
        Time of each item (e.g. crop start, s).
    labels : ndarray (N,) int
        Cluster of each item, ``0..n_clusters-1``.
    n_clusters : int

    Returns
    -------
    times : ndarray (n_t,)
        The distinct times, sorted.
    fractions : ndarray (n_t, n_clusters) float64
        Rows sum to 1.
    """
    unique = np.unique(times)
    fractions = np.zeros((unique.size, n_clusters))
    for i, t in enumerate(unique):
        counts = np.bincount(labels[times == t], minlength=n_clusters)
        fractions[i] = counts / max(counts.sum(), 1)
    return unique, fractions


def latent_table(store, labels: np.ndarray, embedding: np.ndarray | None = None):
    """One row per crop of a latents store: origin, true class, relaxation time, cluster.

    Parameters
    ----------
    store : Store
        Latents store (schema :data:`LATENTS`).
    labels : ndarray (N,) int
        Cluster of each crop.
    embedding : ndarray (N, 2), optional
        2-D embedding coordinates (``embed_x``, ``embed_y``).

    Returns
    -------
    pandas.DataFrame
        Columns ``item, series, sector, start, label, kww_tau (frames), kww_bound, recon_l1,
        class, t_start (s), cluster`` (+ ``embed_x, embed_y``).
    """
    import pandas as pd

    table = pd.DataFrame({k: store[k] for k in ("series", "sector", "start", "label", "kww_tau", "kww_bound",
                                                  "recon_l1")})
    table.insert(0, "item", range(len(table)))
    classes = store.attrs.get("classes", [])
    table["class"] = [classes[i] if 0 <= i < len(classes) else "" for i in table["label"]]
    table["t_start"] = table["start"] * float(store.attrs.get("dt", 1.0))
    table["cluster"] = labels
    if embedding is not None:
        table["embed_x"], table["embed_y"] = embedding[:, 0], embedding[:, 1]
    return table


def cluster_store(latents_path, *, k_min: int, k_max: int, embedding: str, n_neighbors: int, min_dist: float,
                  seed: int, assignments_path, elbow_path, scores_path, k: int | None = None,
                  apply_path=None, apply_out_path=None, latent_transform: str) -> dict:
    """The ``cluster`` stage: elbow scan, k-means, embedding and agreement with the truth.

    k-means is run for ``k = k_min..k_max`` on the latents (after ``latent_transform``, which
    the embedding and ``--apply`` use too); ``k`` is the elbow of the
    distortion (:func:`elbow_point`, paper 001 Supp. Fig. 3) unless given. Clusters are
    numbered slowest first by the median KWW time of their crops, fits at a bound left out
(:func:`order_by_relaxation`).

    Parameters
    ----------
    latents_path : path
        Latents store (schema :data:`LATENTS`).
    k_min, k_max : int
        Range of the elbow scan, ``1 <= k_min < k_max < N``.
    embedding : {"umap", "pca"}
        2-D embedding for display (:func:`embed`).
    n_neighbors, min_dist
        UMAP settings (paper: 5 and 0.25).
    seed : int
        Seeds k-means and UMAP.
    assignments_path, elbow_path, scores_path : path
        CSVs to write: one row per crop (:func:`latent_table`); distortion per k with the
        chosen one; ``metric, value`` rows (k, and ARI/NMI against the true classes, also at
        the true number of classes, when the store has labels).
    k : int, optional
        Use this k instead of the elbow.
    apply_path, apply_out_path : path, optional
        Another latents store to assign to the same centroids, and the CSV of its table.
    latent_transform : {"none", "log1p"}
        Space of the clustering (:func:`transform_latents`; paper 001: ``"none"``).

    Returns
    -------
    dict
        The scores (``k``, ``ari``, ``nmi``, ...).

    Raises
    ------
    InputError
        When the k range does not fit the number of crops, only one of ``apply_path`` and
        ``apply_out_path`` is given, the two stores were not encoded by the same model (their
        recorded ``model_checksum``), or the transform does not fit the latents.
    """
    import pandas as pd

    from ..atomic import write_csv
    from ..errors import InputError
    from ..stores import read_store

    store = read_store(latents_path, LATENTS)
    latents = latent_space(store["latent"], latent_transform, latents_path)
    n = latents.shape[0]
    if not 1 <= k_min < k_max or k_max >= n:
        raise InputError(f"--k-min/--k-max: need 1 <= k_min < k_max < number of crops of {latents_path} ({n}), "
                         f"got {k_min}..{k_max}")
    if k is not None and not 1 <= k <= n:
        raise InputError(f"--k {k}: need 1 <= k <= number of crops of {latents_path} ({n})")
    if (apply_path is None) != (apply_out_path is None):
        raise InputError("apply_path and apply_out_path (--apply, --apply-out) go together")
    other = read_store(apply_path, LATENTS) if apply_path else None
    if other is not None:
        # the centroids live in one model's latent space: the other store must come from the same model
        mine, theirs = store.attrs.get("model_checksum"), other.attrs.get("model_checksum")
        if mine is None or theirs is None:
            raise InputError(f"{apply_path if theirs is None else latents_path}: records no checksum of its model; "
                             "re-run `speckleml clustering encode`")
        if mine != theirs:
            raise InputError(f"{apply_path}: encoded by another model ({other.attrs.get('model', '?')}) than "
                             f"{latents_path} ({store.attrs.get('model', '?')})")
        other_latents = latent_space(other["latent"], latent_transform, apply_path)
    ks = np.arange(k_min, k_max + 1)
    distortion = elbow_curve(latents, ks, seed)
    k = k or elbow_point(ks, distortion)
    labels, centres = fit_clusters(latents, k, seed, tau=store["kww_tau"], bound=store["kww_bound"])
    table = latent_table(store, labels, embed(latents, embedding, seed, n_neighbors, min_dist))
    write_csv(table, assignments_path)
    write_csv(pd.DataFrame({"k": ks, "distortion": distortion, "chosen": ks == k}), elbow_path)
    truth = store["label"]
    rows = [{"metric": "k", "value": k}]
    if (truth >= 0).any():
        for name, value in agreement_scores(truth, labels).items():
            rows.append({"metric": name, "value": value})
        n_classes = int(truth.max()) + 1
        for name, value in agreement_scores(truth, fit_clusters(latents, n_classes, seed)[0]).items():
            rows.append({"metric": f"{name}_at_true_k", "value": value})
    write_csv(pd.DataFrame(rows), scores_path)
    log.info("k = %d (elbow of k=%d..%d, latents %s); %s", k, k_min, k_max, latent_transform,
             ", ".join(f"{r['metric']}={r['value']:.3f}" for r in rows[1:]))
    if other is not None:
        write_csv(latent_table(other, assign(other_latents, centres)), apply_out_path)
    return {row["metric"]: row["value"] for row in rows}
