"""Two-time maps of azimuthal sectors and min-max normalised crops along their diagonal.

Each frames series is correlated on ``n_sectors`` azimuthal sectors of one q-ring with the
shared correlation engine (:func:`speckleml.correlation.two_time`, paper 001 eq. 1-2; the
workflow uses the ring-normalised ``classical`` form, see the README); square crops of ``size`` frames are cut along the diagonal (so they
start and end at the same time on both axes) and scaled to [0, 1] each, as the paper does.
A stretched exponential (KWW) fitted to each crop's diagonal average gives its relaxation
time, the physical axis along which the paper orders its classes.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from ..stores import ArraySpec, StoreSchema, register_schema

#: Crop sides the autoencoder takes: three MaxPool-4 stages (:class:`.model.AutoencoderConfig`).
CROP_MULTIPLE = 4 ** 3

log = logging.getLogger(__name__)

CROPS = register_schema(StoreSchema(
    name="clustering_crops", version=2,
    description="min-max normalised C2 crops along the diagonal, with their origin and KWW fit "
                "(tau in frames; kww_bound +1/-1 where tau sits at the crop's longest/shortest lag)",
    arrays={
        "crops": ArraySpec(("item", "y", "x"), ("float32",), finite=True),
        "label": ArraySpec(("item",), ("int64",)),
        "series": ArraySpec(("item",), ("int64",)),
        "sector": ArraySpec(("item",), ("int64",)),
        "start": ArraySpec(("item",), ("int64",)),
        "c2_min": ArraySpec(("item",), ("float32",)),
        "c2_max": ArraySpec(("item",), ("float32",)),
        "kww_tau": ArraySpec(("item",), ("float64",)),
        "kww_gamma": ArraySpec(("item",), ("float64",)),
        "kww_bound": ArraySpec(("item",), ("int8",)),
    },
    required_attrs=("classes", "crop", "dt"),
))


def sector_labels(qx: np.ndarray, qy: np.ndarray, q_edges: tuple[float, float], n_sectors: int,
                  mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ROI labels of ``n_sectors`` equal azimuthal sectors of the q-ring ``q_edges``.

    Parameters
    ----------
    qx, qy : ndarray (x,), (y,)
        Pixel q coordinates along the detector axes (any units; pixels for the simulator).
    q_edges : (float, float)
        Inner and outer ring radius, in the units of ``qx``/``qy``.
    n_sectors : int
        Sectors of equal azimuthal width (paper 001: 18).
    mask : ndarray (y, x) bool, optional
        Valid pixels.

    Returns
    -------
    labels : ndarray (y, x) int
        0 = outside the ring or masked, ``1..n_sectors`` = sector.
    roi_q : ndarray (n_sectors,) float64
        Mean ``|q|`` of each sector.

    Raises
    ------
    ValueError
        When a sector contains no pixel (ring too thin for the detector).
    """
    from ..correlation import q_ring_rois

    qy_grid, qx_grid = np.meshgrid(np.asarray(qy, np.float64), np.asarray(qx, np.float64), indexing="ij")
    q_map = np.hypot(qy_grid, qx_grid)
    phi_map = np.arctan2(qy_grid, qx_grid)
    labels, roi_q = q_ring_rois(q_map, np.asarray(q_edges, np.float64), mask=mask, phi_map=phi_map,
                                n_sectors=n_sectors)
    labels = np.asarray(labels)
    found = np.unique(labels[labels > 0])
    if found.size != n_sectors:
        raise ValueError(f"only {found.size} of {n_sectors} sectors contain pixels: widen the ring or the detector")
    return labels, np.asarray(roi_q, np.float64)


def sector_c2(frames, labels: np.ndarray, normalization: str = "pixel_mean") -> np.ndarray:
    """Two-time maps of every sector of one series (paper 001 eq. 1-2).

    Parameters
    ----------
    frames : array-like (T, y, x)
        One series of frames (read lazily in panels).
    labels : ndarray (y, x) int
        Sector labels of :func:`sector_labels`: the sectors of one ring.
    normalization : {"pixel_mean", "ring_mean", "classical", "covariance"}
        Normaliser of :func:`speckleml.correlation.two_time`: ``ring_mean`` (paper 001 eq. 1-2)
        divides every sector by the ring's time-and-azimuthal mean, ``pixel_mean`` by each
        pixel's time mean, ``classical`` is ``<I(t1) I(t2)>_p / (<I(t1)>_p <I(t2)>_p)`` over
        the sector's pixels.

    Returns
    -------
    ndarray (n_sectors, T, T) float32
        ``C2(t1, t2)`` of each sector; frame index on both axes.
    """
    from ..correlation import two_time

    # budget: whole-series panels (no re-reads); the maps are small next to the frames
    one_ring = np.zeros(int(np.max(labels)), np.int64)
    return np.asarray(two_time(frames, labels, normalization=normalization, desc="c2", max_memory=1 << 28,
                               mean_groups=one_ring), np.float32)


def random_starts(n_frames: int, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random crop starts along the diagonal.

    Parameters
    ----------
    n_frames, size : int
        Frames of the map and crop side (frames).
    n : int
        Starts wanted (with replacement).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray (n,) int
        Uniform in ``[0, n_frames - size]``.

    Raises
    ------
    ValueError
        When ``size > n_frames``.
    """
    if size > n_frames:
        raise ValueError(f"crop size {size} is larger than the {n_frames} frames")
    return rng.integers(0, n_frames - size + 1, size=n)


def sliding_starts(n_frames: int, size: int, stride: int) -> np.ndarray:
    """Crop starts every ``stride`` frames; the last crop ends at most at ``n_frames``.

    Parameters
    ----------
    n_frames, size, stride : int
        Frames of the map, crop side and step (frames).

    Returns
    -------
    ndarray (n,) int
        ``0, stride, 2 stride, ... <= n_frames - size``.

    Raises
    ------
    ValueError
        When ``size > n_frames`` or ``stride < 1``.
    """
    if size > n_frames or stride < 1:
        raise ValueError(f"need crop size {size} <= {n_frames} frames and stride >= 1")
    return np.arange(0, n_frames - size + 1, stride)


def diagonal_crops(c2: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """Square crops along the diagonal of one map: ``c2[s:s+size, s:s+size]`` for each start.

    Parameters
    ----------
    c2 : ndarray (T, T)
        Two-time map.
    starts : ndarray (n,) int
        First frame of each crop on both time axes.
    size : int
        Crop side (frames).

    Returns
    -------
    ndarray (n, size, size)
    """
    return np.stack([c2[s:s + size, s:s + size] for s in starts])


def bin_crops(crops: np.ndarray, factor: int) -> np.ndarray:
    """Average square crops in ``factor x factor`` blocks: ``factor`` frames per crop pixel.

    Binning both time axes of a C2 map keeps its diagonal on the diagonal and averages
    ``factor**2`` noisy estimates per pixel (the pixel ``[i, j]`` is the mean of
    ``C2(t1, t2)`` over ``t1 in [i f, (i+1) f)``, ``t2 in [j f, (j+1) f)``), so a crop can span
    more frames for the same autoencoder input size.

    Parameters
    ----------
    crops : ndarray (..., n, n)
        Crops whose side ``n`` is a multiple of ``factor``.
    factor : int
        Frames per output pixel, >= 1 (1 returns the crops unchanged).

    Returns
    -------
    ndarray (..., n // factor, n // factor)

    Raises
    ------
    ValueError
        When ``factor < 1`` or does not divide ``n``.
    """
    crops = np.asarray(crops)
    n = crops.shape[-1]
    if factor < 1 or n % factor:
        raise ValueError(f"time bin {factor} must be >= 1 and divide the crop side {n}")
    if factor == 1:
        return crops
    m = n // factor
    return crops.reshape(*crops.shape[:-2], m, factor, m, factor).mean(axis=(-3, -1))


def minmax_normalise(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale every crop to [0, 1], as paper 001 feeds C2 crops to its autoencoder.

    Parameters
    ----------
    crops : ndarray (..., n, n)
        Crops (any leading shape).

    Returns
    -------
    scaled : ndarray (..., n, n) float32
        ``(c - min) / (max - min)``; a constant crop (max == min) becomes all zeros, not NaN.
    low, high : ndarray (...,) float32
        Each crop's minimum and maximum before scaling.
    """
    crops = np.asarray(crops, np.float32)
    low = crops.min(axis=(-2, -1))
    high = crops.max(axis=(-2, -1))
    span = np.where(high > low, high - low, 1.0).astype(np.float32)
    scaled = (crops - low[..., None, None]) / span[..., None, None]
    return np.clip(scaled, 0.0, 1.0).astype(np.float32), low, high


def diagonal_profiles(crops: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean along the off-diagonals of each crop: the one-time correlation of a stationary map.

    Parameters
    ----------
    crops : ndarray (N, n, n)
        Crops (two-time maps).
    max_lag : int
        Largest lag (frames), ``< n``.

    Returns
    -------
    lags : ndarray (max_lag,) float64
        ``1..max_lag`` (frames).
    values : ndarray (N, max_lag) float64
        Mean of the ``lag``-th off-diagonal; ``g2 - 1`` for the ``pixel_mean`` and ``ring_mean`` forms of eq. 1-2.
    """
    crops = np.asarray(crops)
    lags = np.arange(1, max_lag + 1)
    values = np.stack([np.diagonal(crops, offset=int(k), axis1=-2, axis2=-1).mean(-1) for k in lags], axis=-1)
    return lags.astype(np.float64), values.astype(np.float64)


def fit_kww_profile(lags: np.ndarray, values: np.ndarray, sigma: np.ndarray | None = None,
                    baseline: float | None = None) -> tuple[float, float, int]:
    """Relaxation time (frames), stretching exponent and bound flag of one diagonal profile.

    The model is :func:`speckleml.fitting.g2_model`, ``beta exp(-2 (t / tau)^gamma) + baseline``
    with ``t`` in frames. ``tau`` is bounded to the lag range ``[lags[0], lags[-1]]`` that the
    profile can resolve: a map that has not decorrelated within the longest lag (frozen,
    slow) sits at the upper bound, one that has fully decorrelated by the first lag at the
    lower bound; either is flagged, since its ``tau`` is then only a limit. ``gamma`` is
    bounded to ``[0.2, 2.5]``. This fit trades error estimates for speed (thousands of crops);
    :func:`speckleml.fitting.fit_g2` reports uncertainties.

    Parameters
    ----------
    lags : ndarray (L,) float
        Increasing lags (frames), ``lags[0] > 0``.
    values : ndarray (L,) float
        Profile at those lags (:func:`diagonal_profiles` of unscaled C2).
    sigma : ndarray (L,), optional
        Relative uncertainty of each value (least-squares weights ``1 / sigma^2``).
    baseline : float, optional
        Level of a fully decorrelated map (``speckleml.correlation.G2_OFFSET`` of the C2
        normalisation: 1 for ``classical``, 0 for ``pixel_mean``). Fixing it is what tells a frozen
        map (flat above it) from a fully decorrelated one (flat on it); None fits it.

    Returns
    -------
    tau : float
        Relaxation time (frames); NaN when the fit fails.
    gamma : float
        Stretching exponent; NaN when the fit fails.
    bound : int
        ``+1`` when ``tau`` sits at the longest lag (slower than the profile resolves),
        ``-1`` at the shortest (faster), 0 inside or when the fit fails.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    from ..fitting import g2_model

    lags = np.asarray(lags, np.float64)
    values = np.asarray(values, np.float64)
    level = values[-1] if baseline is None else baseline
    beta0 = max(values[0] - level, 1e-3)
    log_bounds = (np.log(lags[0]), np.log(lags[-1]))
    gamma_bounds = (np.log(0.2), np.log(2.5))
    # initial tau: first lag where the profile has dropped by 1 - e^-2 of its range
    below = np.flatnonzero(values <= level + beta0 * np.exp(-2.0))
    p0 = [beta0, float(np.clip(np.log(lags[below[0]] if below.size else lags[-1]), *log_bounds)), 0.0]

    def model(t, beta, log_tau, log_gamma, *free_baseline):
        # log parameters clipped to the bounds: MINPACK's unbounded lm is ~10x faster than trf
        tau = np.exp(np.clip(log_tau, *log_bounds))
        gamma = np.exp(np.clip(log_gamma, *gamma_bounds))
        return g2_model(t, beta, tau, gamma, free_baseline[0] if free_baseline else baseline)

    try:
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # flat (frozen) maps: no covariance
            popt, _ = curve_fit(model, lags, values, p0=p0 + ([values[-1]] if baseline is None else []),
                                sigma=sigma, maxfev=2000)
    except (RuntimeError, ValueError):
        return float("nan"), float("nan"), 0
    bound = 1 if popt[1] >= log_bounds[1] else -1 if popt[1] <= log_bounds[0] else 0
    tau = float(np.exp(np.clip(popt[1], *log_bounds)))
    gamma = float(np.exp(np.clip(popt[2], *gamma_bounds)))
    return tau, gamma, bound


def fit_crops_kww(c2: np.ndarray, baseline: float | None = None, progress=None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KWW relaxation time (frames) of every crop over the crop's whole lag range ``1..n-1``.

    The lag-``L`` diagonal of an ``n``-frame crop averages ``n - L`` values, so each profile
    value is weighted by ``n - L`` (``sigma ~ 1 / sqrt(n - L)``).

    Parameters
    ----------
    c2 : ndarray (N, n, n)
        Two-time crops as the correlation engine made them (not min-max scaled), ``n >= 3``.
    baseline : float, optional
        Fully decorrelated level of the normalisation (see :func:`fit_kww_profile`).
    progress : callable, optional
        ``progress(iterable, desc)`` wrapper for long runs.

    Returns
    -------
    tau : ndarray (N,) float64
        Relaxation time (frames) within ``[1, n - 1]``; NaN where the fit failed.
    gamma : ndarray (N,) float64
        Stretching exponent.
    bound : ndarray (N,) int8
        ``+1`` / ``-1`` where ``tau`` sits at the longest / shortest lag (a limit, not a
        measurement), else 0.

    Raises
    ------
    ValueError
        When the crops are smaller than 3 frames.
    """
    n = c2.shape[-1]
    if n < 3:
        raise ValueError(f"KWW fits need crops of >= 3 frames, got {n}")
    lags, profiles = diagonal_profiles(c2, n - 1)
    sigma = 1.0 / np.sqrt(n - lags)
    rows = profiles if progress is None else progress(profiles, "KWW fits")
    fits = np.array([fit_kww_profile(lags, row, sigma, baseline) for row in rows], np.float64).reshape(-1, 3)
    return fits[:, 0], fits[:, 1], fits[:, 2].astype(np.int8)


def crop_labels(truth: dict, series: int, starts: np.ndarray, crop: int) -> list[int]:
    """True class of each crop of one series, from a frames store's ``truth`` attribute.

    Parameters
    ----------
    truth : dict
        ``series_class`` (one class per series: the library) or ``frame_class`` (one class
        per frame and series: the driven run); neither gives ``-1`` (unknown, real data).
    series : int
        Index of the series.
    starts : ndarray (n,) int
        Crop starts (frames).
    crop : int
        Crop side (frames).

    Returns
    -------
    list of int
        The series class, or the majority class of the frames ``[s, s + crop)`` of each crop.
    """
    if "series_class" in truth:
        return [int(truth["series_class"][series])] * len(starts)
    if "frame_class" in truth:
        frame_class = np.asarray(truth["frame_class"][series])
        return [int(np.bincount(frame_class[s:s + crop]).argmax()) for s in starts]
    return [-1] * len(starts)


def check_window(attrs: dict, frames_path, crop: int, crop_bin: int) -> None:
    """Refuse crops of a simulated store whose class time scales were set for another window.

    ``simulate`` scales each class's relaxation times to its crop window of ``crop x
    crop_bin`` frames and records both; a crop of another window length would see other
    dynamics than the labels promise. Stores that record no window (measured data) pass.

    Raises
    ------
    InputError
        Naming ``frames_path`` and the options, when the recorded window differs.
    """
    from ..errors import InputError

    if "crop" not in attrs:
        return
    made = (int(attrs["crop"]), int(attrs.get("crop_bin", 1)))
    if made[0] * made[1] != crop * crop_bin:
        raise InputError(f"{frames_path}: simulated for a {made[0]} x {made[1]}-frame crop window, but --crop/--crop-bin "
                         f"give {crop} x {crop_bin}: re-simulate with these values")


def make_crops(frames_path, output_path, *, crop: int, sectors: int, normalization: str, per_map: int,
               stride: int | None, seed: int, crop_bin: int = 1, q_edges: tuple[float, float] | None = None) -> None:
    """The ``crops`` stage: C2 of every sector of every series, diagonal crops, KWW fits -> store.

    For each series of the frames store, :func:`sector_c2` correlates ``sectors`` azimuthal
    sectors of the ring ``q_edges``; ``per_map`` random windows (or, with ``stride``, windows
    every ``stride`` frames) of ``crop * crop_bin`` frames are cut along each map's diagonal,
    averaged in ``crop_bin x crop_bin`` blocks (:func:`bin_crops`) to ``crop`` pixels and
    min-max scaled (paper 001); each crop's KWW relaxation time is fitted
    (:func:`fit_crops_kww`). Random windows of the full map are the paper's augmentation by
    shifting the crop window along the diagonal.

    Parameters
    ----------
    frames_path : path
        Frames store (``*.zarr``) with ``q_edges`` and ``truth`` attributes when simulated.
    output_path : path
        Crops store to write (schema :data:`CROPS`), items ordered series, sector, start.
    crop : int
        Crop side (pixels: the autoencoder's input), >= 2; ``crop * crop_bin`` <= the frames per series.
    sectors : int
        Azimuthal sectors of the ring (paper: 18).
    normalization : str
        C2 normalisation of :func:`speckleml.correlation.two_time`.
    per_map : int
        Random crops per map (used when ``stride`` is None).
    stride : int or None
        Frames between sliding crops (the driven run: class fractions over time).
    seed : int
        Seeds the random crop starts.
    crop_bin : int
        Frames per crop pixel (>= 1): a window of ``crop * crop_bin`` frames is block-averaged.
    q_edges : (float, float), optional
        Ring edges in the store's q units; default the store's ``q_edges`` attribute.

    Raises
    ------
    InputError
        When a size is out of range, the series are shorter than ``crop * crop_bin``, ``per_map``
        exceeds the distinct windows of a series, the store was simulated for another crop
        window (:func:`check_window`), the ring is not known or has an empty sector, or a C2 is
        not finite.
    """
    from ..correlation import G2_OFFSET
    from ..errors import InputError
    from ..progress import progress
    from ..provenance import make_provenance
    from ..stores import read_frames, write_store

    for option, value, low in (("--crop", crop, 2), ("--sectors", sectors, 1), ("--per-map", per_map, 1),
                               ("--crop-bin", crop_bin, 1), ("--stride", stride, 1)):
        if value is not None and value < low:
            raise InputError(f"{option} must be >= {low}, got {value}")
    if crop % CROP_MULTIPLE:
        raise InputError(f"--crop {crop}: the autoencoder needs a multiple of {CROP_MULTIPLE} frames "
                         f"(three MaxPool-4 stages), e.g. {max(CROP_MULTIPLE, crop // CROP_MULTIPLE * CROP_MULTIPLE)}")
    store = read_frames(frames_path, lazy=True)
    n_series, n_frames = store["frames"].shape[:2]
    window = crop * crop_bin
    if window > n_frames:
        raise InputError(f"{frames_path}: {n_frames} frames are fewer than the crop window {crop} x {crop_bin}")
    check_window(store.attrs, frames_path, crop, crop_bin)
    if stride is None and per_map > n_frames - window + 1:
        raise InputError(f"--per-map {per_map}: a {n_frames}-frame series has only {n_frames - window + 1} "
                         f"distinct {crop} x {crop_bin}-frame windows")
    q_edges = q_edges or store.attrs.get("q_edges")
    if q_edges is None:
        raise InputError(f"{frames_path}: no q_edges attr; give the ring edges (--q-edges INNER OUTER)")
    try:
        labels, _ = sector_labels(store["qx"], store["qy"], tuple(q_edges), sectors, mask=store["mask"])
    except ValueError as exc:
        raise InputError(f"{frames_path}: {exc}") from None
    truth = store.attrs.get("truth", {})
    rng = np.random.default_rng(seed)
    pieces = {k: [] for k in ("crops", "label", "series", "sector", "start", "c2_min", "c2_max")}
    for s in progress(range(n_series), "crops"):
        c2 = sector_c2(store["frames"][s], labels, normalization)
        for sector in range(sectors):
            starts = (sliding_starts(n_frames, window, stride) if stride
                      else random_starts(n_frames, window, per_map, rng))
            raw = bin_crops(diagonal_crops(c2[sector], starts, window), crop_bin)
            if not np.isfinite(raw).all():
                raise InputError(f"{frames_path}: series {s} sector {sector} has a non-finite C2 (empty sector?)")
            scaled, low, high = minmax_normalise(raw)
            pieces["crops"].append(scaled)
            pieces["c2_min"].append(low)
            pieces["c2_max"].append(high)
            pieces["start"].append(starts)
            pieces["series"].append(np.full(starts.size, s))
            pieces["sector"].append(np.full(starts.size, sector))
            pieces["label"].append(crop_labels(truth, s, starts, window))
    arrays = {k: np.concatenate([np.asarray(v) for v in vals]) for k, vals in pieces.items()}
    for key in ("label", "series", "sector", "start"):
        arrays[key] = arrays[key].astype(np.int64)
    # the fit needs the C2 levels that the min-max scaling removed (frozen vs decorrelated)
    unscaled = arrays["crops"] * (arrays["c2_max"] - arrays["c2_min"])[:, None, None] + arrays["c2_min"][:, None, None]
    arrays["kww_tau"], arrays["kww_gamma"], arrays["kww_bound"] = fit_crops_kww(
        unscaled, G2_OFFSET[normalization], progress)
    arrays["kww_tau"] = arrays["kww_tau"] * crop_bin   # crop pixels -> frames
    attrs = {"classes": truth.get("classes", []), "crop": crop, "crop_bin": crop_bin, "dt": store.attrs.get("dt", 1.0),
             "n_sectors": sectors, "normalization": normalization, "q_edges": list(q_edges),
             "n_frames": int(n_frames), "source": str(frames_path)}
    settings = {"crop": crop, "crop_bin": crop_bin, "sectors": sectors, "normalization": normalization, "per_map": per_map,
                "stride": stride, "q_edges": list(q_edges), "seed": seed}
    write_store(output_path, CROPS, arrays, attrs=attrs,
                provenance=make_provenance(config=settings, seed=seed, inputs=[frames_path]))
    log.info("wrote %s: %d crops of %d px (%d frames each) from %d series x %d sectors", output_path,
             len(arrays["label"]), crop, window, n_series, sectors)
