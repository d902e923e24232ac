"""SVD and Gaussian-process inversion of g(theta) (paper 003, Sec. II C and III B-C).

One scikit-learn ``GaussianProcessRegressor`` per target with the kernel
``RBF(l) + WhiteKernel(sigma)`` on standardised targets (so the prior mean is the constant
training mean and the RBF amplitude is 1, as in the paper's ``k = exp(-|x-x'|^2/2l^2) +
sigma delta``), hyperparameters by maximising the log marginal likelihood with restarts.
The inputs are the full feature vectors ``g(theta)`` (paper) or ``g(q)`` (reference code), or
(beyond the paper) their standardised projections on the top centred singular vectors with one
RBF length per component (automatic relevance determination, ``ard``): the noisy directions get
long lengths and drop out, the weak ones that carry R_s keep short ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..stores import ArraySpec, StoreSchema, register_schema
from .plateau import PlateauFeatures

#: Hyperparameter bounds: wide enough for noisy laptop-scale features and the paper's Table I.
LENGTH_BOUNDS = (1e-3, 1e2)
NOISE_BOUNDS = (1e-6, 1e1)
#: ARD lengths act on standardised projections (unit variance): 1e3 switches a component off.
ARD_LENGTH_BOUNDS = (1e-2, 1e3)
#: Target transforms: learned in ``forward(value)`` space, reported in the target's units.
TRANSFORMS = ("identity", "log")

ANALYSIS = register_schema(StoreSchema(
    name="shear_analysis", version=2,
    description="SVD of the feature matrix and its rank, PDDF/ACF and log-marginal-likelihood grids",
    arrays={
        "singular_values": ArraySpec(("rank",), ("float64",)),
        "profile_log_likelihood": ArraySpec(("split",), ("float64",)),
        "singular_vectors": ArraySpec(("component", "feature"), ("float64",)),
        "projections": ArraySpec(("draw", "component"), ("float64",)),
        "axis": ArraySpec(("feature",), ("float64",)),
        "z": ArraySpec(("z",), ("float64",)),
        "pddf": ArraySpec(("z",), ("float64",)),
        "acf": ArraySpec(("target", "z"), ("float64",)),
        "lml": ArraySpec(("target", "noise", "length"), ("float64",)),
        "length_grid": ArraySpec(("target", "length"), ("float64",)),
        "noise_grid": ArraySpec(("target", "noise"), ("float64",)),
        "optimum": ArraySpec(("target", "hyper"), ("float64",)),
    },
    required_attrs=("targets", "features", "rank", "rank_paper"),
))


def train_test_split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random split of ``range(n)`` into training and test draws (paper: 70/30).

    Parameters
    ----------
    n : int
        Number of draws.
    train_fraction : float
        In (0, 1).
    seed : int
        The permutation comes from ``SeedSequence([seed, 2])``.

    Returns
    -------
    train, test : ndarray of int, sorted

    Raises
    ------
    ValueError
        ``train_fraction`` outside (0, 1) or fewer than 2 training / 1 test draws.
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train fraction must be in (0, 1), got {train_fraction}")
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 2])).permutation(n)
    n_train = int(round(train_fraction * n))
    if n_train < 2 or n - n_train < 1:
        raise ValueError(f"{n} draws are too few for a {train_fraction:.0%} split")
    return np.sort(order[:n_train]), np.sort(order[n_train:])


#: Components the paper keeps (Sec. III B, Fig. 4): the mean-like first vector and two more.
PAPER_RANK = 3


def profile_likelihood_rank(values: np.ndarray) -> tuple[int, np.ndarray]:
    """Number of leading values that stand out, by the profile likelihood of Zhu & Ghodsi (2006).

    M. Zhu and A. Ghodsi, "Automatic dimensionality selection from the scree plot via the use of
    profile likelihood", Comput. Stat. Data Anal. 51, 918 (2006): for each ``q`` the values are
    split into ``d_1..d_q`` and ``d_{q+1}..d_p``, each group modelled as normal with its own mean
    and a common variance (maximum likelihood), and ``q`` maximises the profile log likelihood.

    Parameters
    ----------
    values : ndarray, (p,)
        Singular values (or eigenvalues), p >= 3; sorted descending here.

    Returns
    -------
    rank : int
        The ``q`` in ``[1, p - 1]`` of largest profile log likelihood.
    log_likelihood : ndarray, (p - 1,)
        Profile log likelihood of ``q = 1 .. p - 1``.

    Raises
    ------
    ValueError
        Fewer than 3 values or non-finite values.
    """
    d = np.sort(np.asarray(values, np.float64).ravel())[::-1]
    if len(d) < 3 or not np.isfinite(d).all():
        raise ValueError(f"need >= 3 finite values, got {len(d)}")
    p = len(d)
    # within-group sums of squares of every split from cumulative sums (O(p))
    q = np.arange(1, p)
    c1, c2 = np.cumsum(d)[:-1], np.cumsum(d**2)[:-1]
    t1, t2 = d.sum() - c1, (d**2).sum() - c2
    within = (c2 - c1**2 / q) + (t2 - t1**2 / (p - q))
    variance = np.maximum(within / p, 1e-300)
    log_likelihood = -0.5 * p * (np.log(2 * np.pi * variance) + 1.0)
    return int(np.argmax(log_likelihood)) + 1, log_likelihood


def feature_rank(features: np.ndarray) -> tuple[int, np.ndarray]:
    """SVD rank of a feature matrix chosen by the data, in the paper's (uncentred) counting.

    The uncentred SVD of ``g(theta)`` (paper Fig. 4) has a first singular value ~40x the others:
    its vector is the mean ``g(theta)``, and a scree test on those values always stops there. So
    the profile likelihood (:func:`profile_likelihood_rank`) is applied to the singular values of
    the centred matrix, and the mean direction is counted once: ``rank = 1 + q``, comparable with
    the paper's three components (:data:`PAPER_RANK`).

    Parameters
    ----------
    features : ndarray, (draws, n)

    Returns
    -------
    rank : int
    log_likelihood : ndarray, (min(draws, n) - 1,)
        Profile log likelihood of ``q = 1, 2, ...`` centred components.
    """
    values = np.linalg.svd(features - features.mean(axis=0), compute_uv=False)
    q, log_likelihood = profile_likelihood_rank(values)
    return q + 1, log_likelihood


def svd(features: np.ndarray, components: int = 3):
    """``F = U S V^T`` of the feature matrix (paper 003 Sec. III A, Fig. 4-5).

    Parameters
    ----------
    features : ndarray, (draws, n)
    components : int
        Right singular vectors kept.

    Returns
    -------
    values : ndarray, (min(draws, n),)
        Singular values, descending.
    vectors : ndarray, (components, n)
        Top right singular vectors, each with its largest entry positive.
    projections : ndarray, (draws, components)
        ``F V``.
    """
    _, values, vt = np.linalg.svd(features, full_matrices=False)
    vectors = vt[:components]
    # fix the sign so that each vector's largest entry is positive (SVD signs are arbitrary)
    signs = np.sign(vectors[np.arange(len(vectors)), np.abs(vectors).argmax(axis=1)])
    vectors = vectors * signs[:, None]
    return values, vectors, features @ vectors.T


def pair_distances(features: np.ndarray) -> np.ndarray:
    """Euclidean distances between all pairs of rows (upper triangle, i < j).

    Parameters
    ----------
    features : ndarray, (M, F)

    Returns
    -------
    distances : ndarray, (M (M - 1) / 2,)
    i, j : ndarray of int
        Row indices of each pair.
    """
    sq = (features**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * features @ features.T, 0.0)
    i, j = np.triu_indices(len(features), k=1)
    return np.sqrt(d2[i, j]), i, j


def pddf_acf(features: np.ndarray, targets: np.ndarray, bins: int = 50, min_share: float = 0.01):
    """Eq. 7 pair distance distribution ``p(z)`` and eq. 8 autocorrelation ``C_mu(z)`` per target.

    Parameters
    ----------
    features : (M, F) array
    targets : (M, T) array
    bins : int
    min_share : float
        The ACF of a bin holding less than this share of the pairs is NaN: at the largest
        distances a handful of pairs gives values far outside [-1, 1] (noise ~ 1/sqrt(pairs)).

    Returns
    -------
    z : (bins,) bin centres; pddf : (bins,) density (integrates to 1 over pairs i != j);
    acf : (T, bins), NaN where a bin has no pairs or fewer than ``min_share`` of them.
    """
    dist, i, j = pair_distances(features)
    edges = np.linspace(0.0, dist.max() * (1 + 1e-9) if len(dist) else 1.0, bins + 1)
    index = np.clip(np.digitize(dist, edges) - 1, 0, bins - 1)
    width = edges[1] - edges[0]
    counts = np.bincount(index, minlength=bins).astype(float)
    pddf = counts / max(counts.sum(), 1.0) / width
    acf = np.full((targets.shape[1], bins), np.nan)
    mu = targets - targets.mean(axis=0)
    variance = (mu**2).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(targets.shape[1]):
            product = np.bincount(index, weights=mu[i, t] * mu[j, t], minlength=bins)
            acf[t] = product / counts / variance[t]
    acf[:, counts < max(min_share * counts.sum(), 1.0)] = np.nan
    return 0.5 * (edges[1:] + edges[:-1]), pddf, acf


def make_gpr(length: float = 0.1, noise: float = 1e-2, restarts: int = 5, seed: int = 0, optimize: bool = True,
             dims: int | None = None):
    """Unfitted scikit-learn ``GaussianProcessRegressor`` with ``RBF(length) + WhiteKernel(noise)``.

    The paper's kernel ``k = exp(-|x - x'|^2 / 2 l^2) + sigma delta`` (Sec. II C) on standardised
    targets; bounds :data:`LENGTH_BOUNDS`, :data:`NOISE_BOUNDS` (:data:`ARD_LENGTH_BOUNDS` with
    ``dims``).

    Parameters
    ----------
    length, noise : float
        Initial ``l`` (feature units) and ``sigma`` (standardised target variance).
    restarts : int
        Optimiser restarts from random initial values.
    seed : int
        Seeds the restarts.
    optimize : bool
        False keeps ``length`` and ``noise`` fixed.
    dims : int, optional
        One length per input dimension (anisotropic RBF, ARD) instead of one for all.
    """
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel

    rbf = RBF(length, LENGTH_BOUNDS) if dims is None else RBF(np.full(int(dims), length), ARD_LENGTH_BOUNDS)
    kernel = rbf + WhiteKernel(noise, NOISE_BOUNDS)
    return GaussianProcessRegressor(kernel=kernel, alpha=1e-10, normalize_y=False,
                                    optimizer="fmin_l_bfgs_b" if optimize else None,
                                    n_restarts_optimizer=restarts, random_state=seed)


def contrast(features: np.ndarray, scale: float) -> np.ndarray:
    """Log-like transform of a correlation function, ``asinh((g - 1) / scale)`` (0: ``g`` unchanged).

    ``g - 1`` spans ~1e-3 (the polydispersity plateau, off-peak angles) to ~1 (the peak of a
    small strain): the transform is linear below ``scale`` (so noise around ``g = 1``, which can
    be negative, stays finite) and logarithmic above, where eq. 5's factors
    ``sinc^2(q gamma L cos(theta)/2) exp(-q^2 D2^2)`` become sums. Beyond the paper, which feeds
    ``g(theta)`` itself.

    Parameters
    ----------
    features : ndarray, (..., n)
        ``g(theta)`` or ``g(q)``.
    scale : float
        Width of the linear part (>= 0; 0 = identity).

    Returns
    -------
    ndarray, shape of ``features``

    Raises
    ------
    ValueError
        ``scale < 0``.
    """
    if scale < 0:
        raise ValueError(f"feature scale must be >= 0, got {scale}")
    return np.asarray(features, dtype=np.float64) if scale == 0 else np.arcsinh((np.asarray(features) - 1.0) / scale)


@dataclass
class Projection:
    """Standardised projections of features on the top centred right singular vectors (GPR inputs).

    ``z = ((x - mean) V_k^T) / scale``, fitted on the training features only.

    Attributes
    ----------
    mean : ndarray, (n,)
        Mean training feature vector.
    vectors : ndarray, (k, n)
        Top ``k`` right singular vectors of the centred training features.
    scale : ndarray, (k,)
        Standard deviation of each projection over the training features.
    """

    mean: np.ndarray
    vectors: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, components: int) -> "Projection":
        """Fit on training features ``(M, n)``; ``components`` in ``[1, min(M, n)]``.

        Raises
        ------
        ValueError
            ``components`` out of range.
        """
        if not 1 <= components <= min(features.shape):
            raise ValueError(f"components must be in [1, {min(features.shape)}], got {components}")
        mean = features.mean(axis=0)
        _, _, vt = np.linalg.svd(features - mean, full_matrices=False)
        vectors = vt[:components]
        scale = ((features - mean) @ vectors.T).std(axis=0)
        return cls(mean, vectors, np.where(scale > 0, scale, 1.0))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Projections ``(M, k)`` of features ``(M, n)``."""
        return ((np.atleast_2d(features) - self.mean) @ self.vectors.T) / self.scale


@dataclass
class TargetModel:
    """A fitted GPR for one target with the standardisation of its values.

    Attributes
    ----------
    name : str
        Target (a :data:`~.system.PARAM_NAMES` entry).
    gpr : sklearn.gaussian_process.GaussianProcessRegressor
        Fitted on ``(forward(values) - mean) / std``.
    mean, std : float
        Standardisation, in the units of the transformed target.
    projection : Projection or None
        Maps features to the GPR inputs; None: the full feature vectors (paper).
    transform : {"identity", "log"}
        Space in which the target is learned (:data:`TRANSFORMS`).
    feature_scale : float
        Features enter as :func:`contrast` ``(features, feature_scale)`` (0: as they are).
    plateau : PlateauFeatures or None
        Appends the eq. 5 fit of each ``g(theta)`` (plateau, gamma L, D2; :mod:`.plateau`) to
        the inputs; None: not used.
    """

    name: str
    gpr: object
    mean: float
    std: float
    projection: Projection | None = None
    transform: str = "identity"
    feature_scale: float = 0.0
    plateau: PlateauFeatures | None = None

    @property
    def length_scales(self) -> np.ndarray:
        """Fitted RBF lengths: one (isotropic) or one per input component (ARD)."""
        return np.atleast_1d(np.asarray(self.gpr.kernel_.k1.length_scale, np.float64))

    @property
    def length_scale(self) -> float:
        """Fitted RBF length ``l`` (feature units; paper Table I); the geometric mean of the ARD lengths."""
        return float(np.exp(np.log(self.length_scales).mean()))

    @property
    def noise_level(self) -> float:
        """Fitted white-noise level ``sigma`` (standardised units; paper Table I)."""
        return float(self.gpr.kernel_.k2.noise_level)

    @property
    def log_marginal_likelihood(self) -> float:
        """Log marginal likelihood at the optimum."""
        return float(self.gpr.log_marginal_likelihood_value_)

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """GPR inputs ``(M, k)`` (projection) or ``(M, n)`` (full features) of features ``(M, n)``."""
        raw = np.atleast_2d(features)
        features = contrast(raw, self.feature_scale)
        inputs = features if self.projection is None else self.projection(features)
        return inputs if self.plateau is None else np.concatenate([inputs, self.plateau(raw)], axis=1)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation in the target's units.

        With ``transform="log"`` the GP is Gaussian in ``log(value)``: the returned mean is
        ``exp(m)`` (the median) and the std ``exp(m) s`` (first order).

        Parameters
        ----------
        features : ndarray, (M, n) or (n,)

        Returns
        -------
        mean, std : ndarray, (M,)
        """
        mean, std = self.gpr.predict(self.inputs(features), return_std=True)
        mean, std = mean * self.std + self.mean, std * self.std
        if self.transform == "log":
            return np.exp(mean), np.exp(mean) * std
        return mean, std


@dataclass
class InversionModel:
    """GPRs for several targets on one kind of feature (``angular`` g(theta) or ``radial`` g(q)).

    Attributes
    ----------
    features : {"angular", "radial"}
    axis : ndarray, (n,)
        ``theta`` (radians) or ``q`` (1/R0) of the training features.
    targets : dict ``{name: TargetModel}``
    train_index, test_index : ndarray of int
        Draws of the data set used for training and held out.
    rank : int or None
        SVD rank of the training features chosen by :func:`feature_rank`.
    scores : dict ``{name: dict}``
        Held-out ``err``, ``within_1sigma``, ``within_2sigma`` and ``n_test`` per target
        (:func:`score`), so that whoever applies the model knows its calibration.
    feature_range : (low, high) of ndarray (n,), or None
        Smallest and largest training feature at each axis point (:func:`outside_training_range`).
    """

    features: str
    axis: np.ndarray
    targets: dict[str, TargetModel] = field(default_factory=dict)
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None
    rank: int | None = None
    scores: dict[str, dict] = field(default_factory=dict)
    feature_range: tuple[np.ndarray, np.ndarray] | None = None

    def predict(self, features: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{target: (mean, std)}`` for features ``(M, n)``; see :meth:`TargetModel.predict`."""
        return {name: model.predict(features) for name, model in self.targets.items()}


def fit_target(name: str, features: np.ndarray, values: np.ndarray, restarts: int, seed: int,
               components: int = 0, transform: str = "identity", feature_scale: float = 0.0,
               plateau_scale: float = 0.0, grid: tuple[np.ndarray, np.ndarray] | None = None) -> TargetModel:
    """Standardise ``values`` and fit one GPR by maximum log marginal likelihood (paper Sec. II C).

    Parameters
    ----------
    name : str
        Target name.
    features : ndarray, (M, n)
    values : ndarray, (M,)
        Target values (their units; > 0 for ``transform="log"``).
    restarts : int
    seed : int
    components : int
        0: the full feature vectors with one RBF length (paper). ``k >= 1``: the ``k``
        standardised centred SVD projections (:class:`Projection`) with one length each (ARD).
    transform : {"identity", "log"}
        Learn ``values`` or ``log(values)``.
    feature_scale : float
        Learn from :func:`contrast` ``(features, feature_scale)`` (0: the features themselves).
    plateau_scale : float
        > 0: the features are ``g(theta)`` curves and the eq. 5 fit of each (plateau ``P`` as
        ``asinh(P / plateau_scale)``, log gamma L, log D2; :class:`~.plateau.PlateauFeatures`)
        is appended to the ARD inputs (needs ``components >= 1`` and ``grid``). 0: not used.
    grid : (q, theta), optional
        The detector grid of the curves (``plateau_scale > 0``).

    Returns
    -------
    TargetModel

    Raises
    ------
    ValueError
        Unknown ``transform``, non-positive values with ``"log"``, ``components`` out of range,
        or ``plateau_scale > 0`` without components or grid.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if transform == "log":
        if (values <= 0).any():
            raise ValueError(f"{name}: log transform needs positive values")
        values = np.log(values)
    plateau = None
    if plateau_scale > 0:
        if not components or grid is None:
            raise ValueError("plateau features need input components (ARD) and the (q, theta) grid")
        plateau, extra = PlateauFeatures.fit(features, grid[0], grid[1], plateau_scale)
    features = contrast(features, feature_scale)
    projection = Projection.fit(features, components) if components else None
    inputs = features if projection is None else projection(features)
    if plateau is not None:
        inputs = np.concatenate([inputs, extra], axis=1)
    mean, std = float(values.mean()), float(values.std())
    std = std if std > 0 else 1.0
    # ARD starts at the projections' unit scale; the isotropic length at the paper's scale
    gpr = make_gpr(length=1.0 if components else 0.1, restarts=restarts, seed=seed,
                   dims=inputs.shape[1] if components else None).fit(inputs, (values - mean) / std)
    return TargetModel(name, gpr, mean, std, projection, transform, feature_scale, plateau)


def lml_surface(model: TargetModel, lengths: np.ndarray, noises: np.ndarray) -> np.ndarray:
    """Log marginal likelihood of the fitted GPR's training data on a ``(noise, length)`` grid (Fig. 6).

    With ARD the grid scales all lengths together, keeping their fitted ratios, so that their
    geometric mean (:attr:`TargetModel.length_scale`) takes each value of ``lengths``.

    Parameters
    ----------
    model : TargetModel
    lengths, noises : ndarray, 1-D
        Values of ``l`` and ``sigma``.

    Returns
    -------
    ndarray, (len(noises), len(lengths))
    """
    ratios = model.length_scales / model.length_scale
    out = np.empty((len(noises), len(lengths)))
    for a, noise in enumerate(noises):
        for b, length in enumerate(lengths):
            out[a, b] = model.gpr.log_marginal_likelihood(np.log([*(length * ratios), noise]))
    return out


def relative_error(true: np.ndarray, predicted: np.ndarray) -> float:
    """Paper 003's ``Err = < |mu - mu_hat| / max(mu, mu_hat) >`` (Sec. III C; absolute values guard the sign).

    Parameters
    ----------
    true, predicted : ndarray, (M,)

    Returns
    -------
    float
        Mean relative error (0 when both are 0).
    """
    denominator = np.maximum(np.abs(true), np.abs(predicted))
    return float(np.mean(np.abs(true - predicted) / np.where(denominator > 0, denominator, 1.0)))


def calibration(true: np.ndarray, predicted: np.ndarray, std: np.ndarray) -> tuple[float, float]:
    """Fractions of points within 1 and 2 predictive standard deviations (ideal 0.683, 0.954).

    Parameters
    ----------
    true, predicted, std : ndarray, (M,)

    Returns
    -------
    within_1sigma, within_2sigma : float
    """
    z = np.abs(true - predicted) / np.maximum(std, 1e-300)
    return float(np.mean(z <= 1)), float(np.mean(z <= 2))


def score(model: TargetModel, features: np.ndarray, true: np.ndarray) -> dict:
    """Held-out error and calibration of one target's GPR (paper Fig. 7 and Table I).

    Parameters
    ----------
    model : TargetModel
    features : ndarray, (M, n)
        Held-out features.
    true : ndarray, (M,)
        Their true target values.

    Returns
    -------
    dict
        ``err`` (:func:`relative_error`), ``within_1sigma``, ``within_2sigma``
        (:func:`calibration`), ``n_test``, and the predictions ``mean`` and ``std`` (M,).
    """
    mean, std = model.predict(features)
    within1, within2 = calibration(true, mean, std)
    return {"err": relative_error(true, mean), "within_1sigma": within1, "within_2sigma": within2,
            "n_test": len(true), "mean": mean, "std": std}


def resample_feature(axis: np.ndarray, values: np.ndarray, target_axis: np.ndarray) -> np.ndarray:
    """Linear interpolation of a measured feature onto the training grid (paper Sec. IV).

    Parameters
    ----------
    axis, values : ndarray, (m,)
        Measured axis (any order) and feature.
    target_axis : ndarray, (n,)
        The model's axis.

    Returns
    -------
    ndarray, (n,)

    Raises
    ------
    InputError
        When ``axis`` does not cover ``target_axis``.
    """
    from ..errors import InputError

    order = np.argsort(axis)
    axis, values = axis[order], values[order]
    # an end written to 5 digits (pi as 3.1416 or 3.14159) still covers: np.interp holds the end value
    slack = 1e-4 * max(float(np.ptp(target_axis)), 1.0)
    if target_axis.min() < axis.min() - slack or target_axis.max() > axis.max() + slack:
        raise InputError(f"measured axis [{axis.min():.6g}, {axis.max():.6g}] does not cover the model's "
                         f"[{target_axis.min():.6g}, {target_axis.max():.6g}]")
    return np.interp(target_axis, axis, values)


#: Slack of :func:`outside_training_range`: half the training spread at each point, at least this (g units).
RANGE_SLACK = 0.05


def outside_training_range(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Axis points where a measured feature lies outside the training features' range, widened.

    The GPR only interpolates: a curve far outside every training curve (``g - 1`` given for
    ``g``, a negative ``g``, another quantity) gets the prior mean with a confident-looking
    std. The range at each point is widened by half its width and at least :data:`RANGE_SLACK`,
    so measurement noise passes and a wrong quantity does not.

    Parameters
    ----------
    values : ndarray, (n,)
        Measured feature on the model's axis.
    low, high : ndarray, (n,)
        Smallest and largest training feature per point.

    Returns
    -------
    ndarray of int
        Indices of the points outside.
    """
    slack = np.maximum(0.5 * (high - low), RANGE_SLACK)
    return np.flatnonzero((values < low - slack) | (values > high + slack))


def undercovered(within_1sigma: float, n_test: int, expected: float = 0.6827) -> bool:
    """Whether a held-out 1-sigma coverage is more than 2 binomial standard errors below ``expected``.

    Parameters
    ----------
    within_1sigma : float
        Share of held-out draws within 1 predictive std.
    n_test : int
        Held-out draws.
    expected : float
        Coverage of a calibrated Gaussian (68.27 %).
    """
    return within_1sigma < expected - 2 * np.sqrt(expected * (1 - expected) / max(int(n_test), 1))
