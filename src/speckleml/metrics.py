"""Evaluation metrics shared by the studies: spectra, Earth Mover's Distance, clusters, pair distances.

* :func:`spectrum` and :func:`spectral_emd`: the Fourier power spectrum of trajectories and the
  Earth Mover's Distance (EMD, 1-Wasserstein distance) between two spectra taken as
  distributions over frequency (paper 000, Case study 3: "the absolute difference between the
  cumulative distribution functions (CDFs) of the Fourier spectra"; Supp. Fig. 13).
* :func:`oscillation_period`: the period of an oscillating trajectory from its mean crossings
  (the learned vs the true Lotka-Volterra period, paper 000 eq. 7, ``2 pi / sqrt(alpha gamma)``).
* :func:`cluster_sizes`, :func:`pair_distances`, :func:`pair_distance_histogram`,
  :func:`first_peak`: cluster-size distributions as connected components of the graph whose
  edges join particles closer than ``d``, with ``d`` at the first peak of the pair-distance
  histogram (paper 000 Case study 2, Fig. 3f, Supp. Fig. 8c).

Everything here is NumPy / SciPy (evaluation, not training): inputs are array-likes, outputs
``ndarray`` or ``float``. Bad input raises :class:`speckleml.errors.InputError`.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist
from scipy.stats import wasserstein_distance

from .errors import InputError

__all__ = [
    "spectrum",
    "spectral_emd",
    "oscillation_period",
    "pair_distances",
    "pair_distance_histogram",
    "first_peak",
    "cluster_sizes",
]


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------
# spectra
# ----------------------------------------------------------------------------------------


def spectrum(x, dt: float, *, axis: int = -1, detrend: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Fourier power spectrum of uniformly sampled trajectories.

    ``P_k = c_k |X_k|^2 dt / T`` with ``X = rfft(x)`` along ``axis``, ``T`` samples, ``c_k = 2``
    except at zero frequency and (even ``T``) the Nyquist frequency, where ``c_k = 1``. With
    this normalisation ``sum_k P_k df = mean(x^2)`` (Parseval; ``df = 1 / (T dt)``), so ``P``
    is a power spectral density in ``x``-units squared per unit frequency.

    Parameters
    ----------
    x : array-like, real, (..., T, ...)
        Trajectories sampled every ``dt``; time along ``axis``. Paper 000 Case study 3: the
        centre-of-mass coordinates ``x(t)``, ``y(t)`` to ``t = 500``.
    dt : float
        Sampling interval (time units of the trajectory), > 0.
    axis : int
        Time axis of ``x``.
    detrend : bool
        Subtract the time mean first (default), so the zero-frequency bin carries no weight and
        the spectrum of an oscillation is its peaks only; the EMD then compares frequencies of
        oscillation, not mean positions.

    Returns
    -------
    freqs : ndarray, (T // 2 + 1,)
        Frequencies in cycles per unit time (``1 / time``), ``0 ... 1 / (2 dt)``.
    power : ndarray, float64, ``x``'s shape with ``axis`` of length ``T // 2 + 1``
        Power spectral density at ``freqs`` (``>= 0``).

    Raises
    ------
    InputError
        ``dt`` not > 0, fewer than 2 samples, or non-finite values.
    """
    dt = _positive(dt, "dt")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[axis] < 2:
        raise InputError(f"spectrum needs at least 2 samples along axis {axis}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("spectrum: trajectories contain NaN or inf")
    n = x.shape[axis]
    if detrend:
        x = x - x.mean(axis=axis, keepdims=True)
    transform = np.fft.rfft(x, axis=axis)
    power = np.abs(transform) ** 2 * (dt / n)
    weights = np.full(n // 2 + 1, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    shape = [1] * power.ndim
    shape[axis] = weights.size
    return np.fft.rfftfreq(n, dt), power * weights.reshape(shape)


def spectral_emd(spec_a, spec_b, freqs):
    """Earth Mover's Distance between two spectra taken as distributions over frequency.

    ``EMD = integral |CDF_a(f) - CDF_b(f)| df``, the CDFs of the spectra normalised to unit
    total weight (paper 000 Case study 3 and Supp. Fig. 13); computed by
    ``scipy.stats.wasserstein_distance(freqs, freqs, spec_a, spec_b)``. Two single spikes at
    ``f1`` and ``f2`` are ``|f1 - f2|`` apart; the result is in the units of ``freqs``.

    Parameters
    ----------
    spec_a, spec_b : array-like, (..., F)
        Non-negative spectra (e.g. ``power`` from :func:`spectrum`) on the common frequency
        grid; leading dimensions are paired element by element (same shape).
    freqs : array-like, (F,)
        Frequencies of the last axis (cycles per unit time).

    Returns
    -------
    float, or ndarray of shape ``spec_a.shape[:-1]`` when there are leading dimensions.

    Raises
    ------
    InputError
        Shapes that differ or do not end with ``len(freqs)``, negative or non-finite values, or
        a spectrum with zero total weight (no distribution to compare).
    """
    a = np.asarray(spec_a, dtype=np.float64)
    b = np.asarray(spec_b, dtype=np.float64)
    f = np.asarray(freqs, dtype=np.float64)
    if f.ndim != 1 or a.shape != b.shape or a.ndim == 0 or a.shape[-1] != f.size:
        raise InputError(f"spectral_emd needs spectra of equal shape (..., F) and freqs (F,); got "
                         f"{a.shape}, {b.shape} and {f.shape}")
    for name, s in (("spec_a", a), ("spec_b", b)):
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise InputError(f"spectral_emd: {name} must be finite and >= 0")
        if np.any(s.sum(axis=-1) <= 0):
            raise InputError(f"spectral_emd: {name} has a spectrum with zero total weight")
    flat_a, flat_b = a.reshape(-1, f.size), b.reshape(-1, f.size)
    out = np.array([wasserstein_distance(f, f, u, v) for u, v in zip(flat_a, flat_b)])
    return float(out[0]) if a.ndim == 1 else out.reshape(a.shape[:-1])


def oscillation_period(t, x) -> float:
    """Mean period of an oscillating trajectory from its upward crossings of the time mean.

    Crossing times are located by linear interpolation between samples; the period is the
    mean spacing of consecutive upward crossings (``(t_last - t_first) / (n - 1)``). For the
    Lotka-Volterra truth (paper 000 eq. 7) a small orbit about the fixed point has the period
    ``2 pi / sqrt(alpha gamma) ~ 15.39``; larger orbits are slower.

    Parameters
    ----------
    t : array-like, (T,)
        Increasing sample times.
    x : array-like, (T,)
        One coordinate of the trajectory.

    Returns
    -------
    float
        Period in the units of ``t``.

    Raises
    ------
    InputError
        Mismatched shapes, non-increasing times, or fewer than two upward crossings.
    """
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if t.ndim != 1 or x.shape != t.shape or t.size < 3:
        raise InputError(f"oscillation_period needs 1-D t and x of equal length >= 3, got {t.shape}, {x.shape}")
    if np.any(np.diff(t) <= 0):
        raise InputError("oscillation_period: times must be strictly increasing")
    u = x - x.mean()
    up = np.nonzero((u[:-1] < 0) & (u[1:] >= 0))[0]
    if up.size < 2:
        raise InputError("oscillation_period: fewer than two upward mean crossings; use a longer trajectory")
    crossings = t[up] - u[up] * (t[up + 1] - t[up]) / (u[up + 1] - u[up])
    return float((crossings[-1] - crossings[0]) / (crossings.size - 1))


# ----------------------------------------------------------------------------------------
# pair distances and clusters
# ----------------------------------------------------------------------------------------


def _points(positions, box) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``(N, d)`` positions; wrap them into ``[0, box)`` when a periodic box is given."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise InputError(f"positions must be (N, d) with N >= 1, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InputError("positions contain NaN or inf")
    if box is None:
        return p, None
    boxsize = np.broadcast_to(np.asarray(box, dtype=np.float64), (p.shape[1],)).copy()
    if np.any(~np.isfinite(boxsize)) or np.any(boxsize <= 0):
        raise InputError(f"box must be > 0 (one length or one per axis), got {box!r}")
    wrapped = np.mod(p, boxsize)
    # np.mod(-tiny, L) rounds to L itself, which cKDTree's periodic box rejects
    return np.where(wrapped >= boxsize, 0.0, wrapped), boxsize


def pair_distances(positions, box=None) -> np.ndarray:
    """Distances of all ``N (N - 1) / 2`` unordered particle pairs (condensed, as ``pdist``).

    Parameters
    ----------
    positions : array-like, (N, d)
        Particle positions (length units).
    box : float or (d,) array-like, optional
        Side lengths of a periodic box (minimum-image distances); None = open space.

    Returns
    -------
    ndarray, (N (N - 1) / 2,)
    """
    p, boxsize = _points(positions, box)
    if boxsize is None:
        return pdist(p)
    i, j = np.triu_indices(p.shape[0], k=1)
    delta = p[j] - p[i]
    delta -= boxsize * np.round(delta / boxsize)
    return np.sqrt((delta**2).sum(axis=-1))


def pair_distance_histogram(positions, bins=50, range=None, box=None) -> tuple[np.ndarray, np.ndarray]:  # noqa: A002
    """Histogram of all pairwise particle distances (paper 000 Supp. Fig. 8c).

    Parameters
    ----------
    positions : array-like, (N, d)
        Particle positions (length units).
    bins : int or array-like
        Bin count or bin edges, as ``numpy.histogram``.
    range : (float, float), optional
        Lower and upper distance, as ``numpy.histogram`` (default: min and max distance).
    box : float or (d,) array-like, optional
        Periodic box (minimum-image distances); None = open space.

    Returns
    -------
    counts : ndarray, int, (n_bins,)
        Number of unordered pairs per bin.
    edges : ndarray, float, (n_bins + 1,)

    Raises
    ------
    InputError
        Fewer than two particles, or bad positions / box.
    """
    p, _ = _points(positions, box)
    if p.shape[0] < 2:
        raise InputError("pair_distance_histogram needs at least two particles")
    return np.histogram(pair_distances(p, box), bins=bins, range=range)


def first_peak(counts, edges) -> float:
    """Centre of the first local maximum of a histogram (the first peak of Supp. Fig. 8c).

    A bin is a peak when its count is > 0, >= the previous bin's and > the next bin's (the
    last bin counts as a peak when it is >= the previous one). Used for the cluster-edge
    length ``d`` of :func:`cluster_sizes` (issue 14: edges ``<= d``, ``d`` at the first peak).

    Parameters
    ----------
    counts : array-like, (n,)
    edges : array-like, (n + 1,)

    Returns
    -------
    float
        ``(edges[k] + edges[k + 1]) / 2`` of the first peak bin ``k``.

    Raises
    ------
    InputError
        Mismatched lengths or an empty histogram.
    """
    c = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if c.ndim != 1 or e.shape != (c.size + 1,) or c.size == 0:
        raise InputError(f"first_peak needs counts (n,) and edges (n + 1,), got {c.shape} and {e.shape}")
    if not np.any(c > 0):
        raise InputError("first_peak: the histogram is empty")
    padded = np.concatenate(([-np.inf], c, [-np.inf]))
    peaks = np.nonzero((c > 0) & (c >= padded[:-2]) & (c > padded[2:]))[0]
    k = int(peaks[0])
    return float(0.5 * (e[k] + e[k + 1]))


def cluster_sizes(positions, d: float, box=None) -> np.ndarray:
    """Sizes of the clusters: connected components of the graph with edges of length ``<= d``.

    Two particles are joined when their distance is ``<= d`` (``cKDTree.query_pairs``);
    clusters are the connected components of that graph
    (``scipy.sparse.csgraph.connected_components``); an isolated particle is a cluster of
    size 1 (paper 000 Case study 2, Fig. 3f and Supp. Fig. 8g).

    Parameters
    ----------
    positions : array-like, (N, d)
        Particle positions (length units).
    d : float
        Largest edge length, > 0 (same units), e.g. :func:`first_peak` of the pair-distance
        histogram.
    box : float or (d,) array-like, optional
        Side lengths of a periodic box (edges across the boundary count); None = open space.

    Returns
    -------
    ndarray, int64, (n_clusters,)
        Cluster sizes in decreasing order; they sum to ``N``.

    Raises
    ------
    InputError
        Bad positions, ``d`` not > 0, or a bad box.
    """
    d = _positive(d, "cluster edge length d")
    p, boxsize = _points(positions, box)
    tree = cKDTree(p, boxsize=boxsize)
    pairs = tree.query_pairs(r=d, output_type="ndarray")
    n = p.shape[0]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return np.sort(np.bincount(labels))[::-1].astype(np.int64)
