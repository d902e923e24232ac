"""Non-equilibrium XPCS speckle with known dynamics classes (paper 001's kinds of C2).

Every detector pixel carries a complex scattered field ``E(q, t)`` that evolves as an
Ornstein-Uhlenbeck process (the package's one generator, :func:`speckleml.synthetic.ou_field`)
with a time-dependent, q-dependent rate,

    E(t+1) = a E(t) + sqrt(1 - a^2) xi(t),   a = exp(-Gamma(q, t)),

so the field correlation is ``exp(-int_t1^t2 Gamma dt)`` and, by the Siegert relation, the
APS two-time map of a q-ring is ``C2(t1, t2) = exp(-2 int_t1^t2 Gamma dt)`` (contrast 1,
paper 001 eq. 1-2). ``Gamma(q, t) = rate(t) (q/q0)^2 A(phi)`` is diffusive in q with an
optional azimuthal anisotropy ``A(phi) = 1 + anisotropy cos^2(phi - phi_shear)`` (shear makes
dynamics faster along the flow). Heterodyne flow adds a static reference field and a Doppler
phase ``exp(i q.v t)`` to the moving field, which draws fringes parallel to the diagonal.
Frames are ``|E|^2`` (or ``|E_ref + E|^2``) as Poisson counts with ``mean_counts`` per pixel
(:func:`speckleml.synthetic.poisson_counts`).

Times are in frames; ``tau`` is the field correlation time at the ring centre ``q0``
(intensity correlation ``exp(-2 t / tau)``), drawn per series from class-specific ranges
expressed in units of the crop size ``c`` (what the autoencoder sees).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..synthetic import ou_field, poisson_counts

log = logging.getLogger(__name__)

#: The dynamics classes, in label order.
CLASSES = ("frozen", "slow_diffusion", "fast_diffusion", "ageing", "avalanches", "heterodyne_flow")
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}

#: Classes visited by the driven (stress-relaxation) experiment, and the stress law of each:
#: relative stress decay per segment (positive relaxes, negative builds up while jammed).
DRIVE_CLASSES = ("frozen", "slow_diffusion", "fast_diffusion", "ageing", "avalanches")
STRESS_RELAXATION = {"frozen": -0.25, "slow_diffusion": 0.15, "fast_diffusion": 0.8, "ageing": 0.3,
                     "avalanches": 0.0}

# Class time scales as fractions of the crop window W = crop x crop_bin frames, chosen so that
# each class's signature is visible inside ONE window at the resolution of the reference
# autoencoder, whose first MaxPool-4 leaves nothing finer than 8 crop pixels (W/8 frames) resolved:
#: Heterodyne fringe period at q0 along the flow. The sector's q spread (0.5-1.5 q0) dephases
#: the fringes after about one period, so the signature is a bright band with one dark
#: undershoot at lag ~P/2; P in [W/2, W] puts it at 4-8 pooled pixels (was [W/10, W/3]:
#: undershoot at 0.8-2.7 pooled pixels, and those crops merged with frozen ones).
HETERODYNE_PERIOD = (1.0 / 2.0, 1.0)
#: Reference / moving-field intensity ratio of the heterodyne class (log-uniform).
HETERODYNE_RATIO = (0.5, 2.0)
#: Ageing time t_age (tau = tau0 exp(t / t_age)): [W/5, 3W/10] grows tau by e^(W/t_age) >= 28x
#: within any window (was [W/4, W/2]: at W/2 a window from t = 0 widens it from 0.25 to 1.7
#: crop pixels, which is fast diffusion's range, and ageing merged with it).
AGEING_TIME = (1.0 / 5.0, 3.0 / 10.0)
#: Mean interval between avalanche bursts: [W/10, W/6] gives 6-10 blocks per window (was
#: [W/5, W/2.5]: 2.5-5, so windows with 0-2 bursts looked frozen and the class spread over
#: four clusters).
AVALANCHE_GAP = (1.0 / 10.0, 1.0 / 6.0)


@dataclass(frozen=True)
class Detector:
    """Pixel grid of the simulated detector with its q-ring.

    Parameters
    ----------
    size : int
        Detector side in pixels; q is in pixel units from the centre ``size // 2``.
    q_inner, q_outer : float
        Ring radii as fractions of ``size`` (the ring centre is ``q0``).
    """

    size: int
    q_inner: float = 0.15
    q_outer: float = 0.45

    def __post_init__(self):
        if self.size < 8:
            raise ValueError(f"detector size must be >= 8 pixels, got {self.size}")
        if not 0 < self.q_inner < self.q_outer <= 0.5 * np.sqrt(2):
            raise ValueError(f"need 0 < q_inner < q_outer, got {self.q_inner}, {self.q_outer}")

    @property
    def axis(self) -> np.ndarray:
        """Pixel q coordinates along one axis (centre at ``size // 2``)."""
        return np.arange(self.size, dtype=np.float64) - self.size // 2

    @property
    def q_edges(self) -> tuple[float, float]:
        """Inner and outer ring radii in pixels."""
        return self.q_inner * self.size, self.q_outer * self.size

    @property
    def q0(self) -> float:
        """Ring centre in pixels: the q at which ``tau`` is quoted."""
        return float(np.mean(self.q_edges))

    def q_phi(self) -> tuple[np.ndarray, np.ndarray]:
        """``|q|`` (pixels) and azimuth ``phi`` (radians, -pi..pi) of every pixel."""
        qy, qx = np.meshgrid(self.axis, self.axis, indexing="ij")
        return np.hypot(qy, qx), np.arctan2(qy, qx)


def rate_map(detector: Detector, anisotropy: float = 0.0, shear_angle: float = 0.0) -> np.ndarray:
    """Relative decorrelation rate of every pixel: diffusive in q, optionally anisotropic.

    Parameters
    ----------
    detector : Detector
    anisotropy : float
        ``a`` of ``1 + a cos^2(phi - shear_angle)`` (0: isotropic).
    shear_angle : float
        Flow direction (radians) along which the dynamics are fastest.

    Returns
    -------
    ndarray (size, size) float64
        ``(q/q0)^2 (1 + anisotropy cos^2(phi - shear_angle))``: 1 on the ring centre when isotropic.
    """
    q, phi = detector.q_phi()
    return (q / detector.q0) ** 2 * (1.0 + anisotropy * np.cos(phi - shear_angle) ** 2)


def evolve_field(rate_t: np.ndarray, spatial: np.ndarray, rng: np.random.Generator,
                 omega: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray:
    """Intensity frames of an OU field (:func:`speckleml.synthetic.ou_field`) with the rate
    ``rate_t[t] * spatial`` per pixel for the step ``t-1 -> t``.

    Parameters
    ----------
    rate_t : ndarray (T,)
        Decorrelation rate (1/frame) at the ring centre for each step ``t-1 -> t``
        (``rate_t[0]`` is not used: frame 0 is the stationary start).
    spatial : ndarray (y, x)
        Relative rate per pixel (see :func:`rate_map`).
    rng : numpy.random.Generator
    omega : ndarray (y, x), optional
        Doppler phase advance per frame (radians) of the moving field.
    reference : ndarray (y, x) complex, optional
        Static reference field added before taking ``|.|^2`` (heterodyne detection).

    Returns
    -------
    ndarray (T, y, x) float64
        Noise-free intensity, mean ~1 (+ reference power). Per pixel and for ``omega`` and
        ``reference`` None, ``C2(t1, t2) = exp(-2 spatial sum_{t1 < t <= t2} rate_t)``
        (paper 001 eq. 1-2, contrast 1).
    """
    rate_t = np.asarray(rate_t, np.float64)
    frames = np.empty((rate_t.size, *spatial.shape))
    if rate_t.size == 0:
        return frames
    decay = (np.exp(-rate * spatial) for rate in rate_t[1:])
    for t, field in enumerate(ou_field(decay, spatial.shape, rng)):
        moving = field if omega is None else field * np.exp(1j * omega * t)
        total = moving if reference is None else moving + reference
        frames[t] = np.abs(total) ** 2
    return frames


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def class_rate(kind: str, n_frames: int, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Rate per frame of one dynamics class and the drawn parameters.

    Time scales are drawn relative to the crop size so that each class looks the same to the
    autoencoder at any scale (module docstring; tau = field correlation time at q0, frames).

    Parameters
    ----------
    kind : str
        One of :data:`CLASSES`.
    n_frames : int
        Frames of the series.
    crop : int
        Crop side (frames) that sets the time scales.
    rng : numpy.random.Generator

    Returns
    -------
    rate : ndarray (n_frames,) float64
        Decorrelation rate at q0 (1/frame) of each step.
    params : dict
        ``tau`` (frames) and the class's other draws (``t_age``, ``mean_gap``, ``n_events``).

    Raises
    ------
    ValueError
        For an unknown class.
    """
    t = np.arange(n_frames, dtype=np.float64)
    if kind == "frozen":
        tau = _log_uniform(rng, 50.0 * n_frames, 500.0 * n_frames)
        return np.full(n_frames, 1.0 / tau), {"tau": tau}
    if kind == "slow_diffusion":
        tau = _log_uniform(rng, crop / 3.0, 2.0 * crop)
        return np.full(n_frames, 1.0 / tau), {"tau": tau}
    if kind == "fast_diffusion":
        tau = _log_uniform(rng, 1.0, max(crop / 16.0, 1.5))
        return np.full(n_frames, 1.0 / tau), {"tau": tau}
    if kind == "ageing":
        # tau grows exponentially with the age: the diagonal band widens along the diagonal.
        tau0 = _log_uniform(rng, 1.0, 3.0)
        t_age = rng.uniform(crop * AGEING_TIME[0], crop * AGEING_TIME[1])
        return 1.0 / (tau0 * np.exp(t / t_age)), {"tau": tau0, "t_age": t_age}
    if kind == "avalanches":
        # Nearly arrested, with rare bursts that decorrelate the speckle in 1-2 frames:
        # square blocks along the diagonal.
        tau = _log_uniform(rng, 5.0 * n_frames, 50.0 * n_frames)
        rate = np.full(n_frames, 1.0 / tau)
        mean_gap = rng.uniform(crop * AVALANCHE_GAP[0], crop * AVALANCHE_GAP[1])
        events = np.flatnonzero(rng.random(n_frames) < 1.0 / mean_gap)
        rate[events] = rng.uniform(1.0, 3.0, events.size)
        return rate, {"tau": tau, "mean_gap": mean_gap, "n_events": int(events.size)}
    if kind == "heterodyne_flow":
        tau = _log_uniform(rng, crop, 4.0 * crop)
        return np.full(n_frames, 1.0 / tau), {"tau": tau}
    raise ValueError(f"unknown dynamics class {kind!r} (known: {', '.join(CLASSES)})")


def simulate_class_series(kind: str, n_frames: int, crop: int, detector: Detector,
                          rng: np.random.Generator, mean_counts: float | None = None) -> tuple[np.ndarray, dict]:
    """One series of dynamics class ``kind`` on ``detector``.

    Parameters
    ----------
    kind : str
        One of :data:`CLASSES`; ``heterodyne_flow`` adds a static reference field and a Doppler
        phase ``2 pi (q/q0) cos(phi - flow_angle) t / period`` (fringes parallel to the diagonal).
    n_frames, crop : int
        Frames of the series and the crop side that sets the time scales.
    detector : Detector
    rng : numpy.random.Generator
    mean_counts : float, optional
        Poisson photons per pixel and frame (:func:`speckleml.synthetic.poisson_counts`);
        None: noise-free intensity, mean 1.

    Returns
    -------
    frames : ndarray (n_frames, size, size) float32
    params : dict
        The drawn class parameters (``tau`` in frames at q0, ...).
    """
    rate, params = class_rate(kind, n_frames, crop, rng)
    spatial = rate_map(detector)
    omega = reference = None
    if kind == "heterodyne_flow":
        q, phi = detector.q_phi()
        period = rng.uniform(crop * HETERODYNE_PERIOD[0], crop * HETERODYNE_PERIOD[1])   # fringe period (frames) at q0 along the flow
        flow_angle = rng.uniform(-np.pi, np.pi)
        ratio = _log_uniform(rng, *HETERODYNE_RATIO)             # reference / moving intensity
        omega = 2 * np.pi / period * (q / detector.q0) * np.cos(phi - flow_angle)
        reference = np.sqrt(ratio) * (rng.standard_normal(q.shape) + 1j * rng.standard_normal(q.shape)) / np.sqrt(2)
        params.update(period=period, flow_angle=flow_angle, reference_ratio=ratio)
    frames = evolve_field(rate, spatial, rng, omega=omega, reference=reference)
    return poisson_counts(frames, mean_counts, rng), params


def simulate_library(n_per_class: int, n_frames: int, crop: int, detector: Detector, seed: int,
                     classes: tuple[str, ...] = CLASSES, mean_counts: float | None = None,
                     progress=None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """A library of series with one dynamics class each (the training/evaluation set).

    Parameters
    ----------
    n_per_class, n_frames, crop : int
        Series per class, frames per series, crop side (frames) that sets the time scales.
    detector : Detector
    seed : int
        Seeds the class order (interleaved) and every draw.
    classes : tuple of str
        Classes to simulate (default all of :data:`CLASSES`).
    mean_counts : float, optional
        Poisson photons per pixel and frame; None: noise-free.
    progress : callable, optional
        ``progress(iterable, desc)`` wrapper.

    Returns
    -------
    frames : ndarray (series, n_frames, size, size) float32
    labels : ndarray (series,) int64
        Index into :data:`CLASSES`.
    params : list of dict
        Drawn parameters per series.
    """
    rng = np.random.default_rng(seed)
    kinds = [k for k in classes for _ in range(n_per_class)]
    order = rng.permutation(len(kinds))  # interleave classes so that any split sees all of them
    kinds = [kinds[i] for i in order]
    frames = np.empty((len(kinds), n_frames, detector.size, detector.size), np.float32)
    params = []
    iterator = range(len(kinds)) if progress is None else progress(range(len(kinds)), "simulate")
    for s in iterator:
        frames[s], p = simulate_class_series(kinds[s], n_frames, crop, detector, rng, mean_counts)
        params.append(p)
    labels = np.array([CLASS_INDEX[k] for k in kinds], np.int64)
    return frames, labels, params


def drive_sequence(n_segments: int, rng: np.random.Generator) -> list[str]:
    """Class of each segment of a stress-relaxation run after shear cessation.

    The run starts with fast relaxation (the structure yields the stored stress), then wanders
    between arrested, slow, ageing and avalanche-like dynamics (a Markov chain that prefers to
    stay, like the intermittent dynamics of a shear-induced glass).

    Parameters
    ----------
    n_segments : int
    rng : numpy.random.Generator

    Returns
    -------
    list of str
        ``n_segments`` names from :data:`DRIVE_CLASSES`, the first two ``fast_diffusion``.
    """
    sequence = ["fast_diffusion"] * min(2, n_segments)
    while len(sequence) < n_segments:
        previous = sequence[-1]
        if previous != "fast_diffusion" and rng.random() < 0.35:
            sequence.append(previous)
        else:
            choices = [c for c in DRIVE_CLASSES if c != previous]
            weights = np.array([0.2 if c == "fast_diffusion" else 1.0 for c in choices])
            sequence.append(str(rng.choice(choices, p=weights / weights.sum())))
    return sequence


def stress_signal(segment_class: np.ndarray, segment_edges: np.ndarray, n_frames: int,
                  rng: np.random.Generator, avalanche_rate: np.ndarray | None = None) -> np.ndarray:
    """Shear stress (relative units, 1 at cessation) driven by the dynamics of each segment.

    Fast dynamics relax stress quickly, arrested (jammed) dynamics let it build up, each
    avalanche releases a fraction of it: the macroscopic signal that Fig. 3 sets beside the
    class fractions.

    Parameters
    ----------
    segment_class : ndarray (n_segments,) int
        Index into :data:`DRIVE_CLASSES` of each segment.
    segment_edges : ndarray (n_segments + 1,) int
        First frame of each segment and the end.
    n_frames : int
    rng : numpy.random.Generator
        Draws a 1 % multiplicative noise per frame.
    avalanche_rate : ndarray (n_frames,), optional
        Rate of the avalanche bursts; a frame above 0.5 releases 10 % of the stress.

    Returns
    -------
    ndarray (n_frames,) float64
    """
    stress = np.empty(n_frames)
    level = 1.0
    for seg, kind in enumerate(segment_class):
        start, stop = segment_edges[seg], segment_edges[seg + 1]
        length = stop - start
        k = STRESS_RELAXATION[DRIVE_CLASSES[kind]] / max(length, 1)
        for t in range(start, stop):
            if k >= 0:
                level *= np.exp(-k)
            else:
                level += -k * 0.5          # linear build-up while jammed
            if avalanche_rate is not None and avalanche_rate[t] > 0.5:
                level *= 0.9               # a burst releases part of the stored stress
            stress[t] = level * (1.0 + 0.01 * rng.standard_normal())
    return stress


def simulate_drive(n_frames: int, crop: int, segment: int, detector: Detector, seed: int,
                   anisotropy: float = 1.0, mean_counts: float | None = None) -> dict:
    """One long driven run whose dynamics class changes segment by segment.

    Parameters
    ----------
    n_frames : int
        Length of the run (frames).
    crop : int
        Crop size, sets the class time scales.
    segment : int
        Segment length in frames (one class per segment).
    detector : Detector
    seed : int
    anisotropy : float
        Shear anisotropy of the rates (sectors along the flow decorrelate faster), so the
        18 sectors see different classes at the same time, as in the paper's Fig. 3.
    mean_counts : float, optional
        Poisson counts per pixel.

    Returns
    -------
    dict
        ``frames`` (T, y, x) float32, ``frame_class`` (T,) int (index into :data:`CLASSES`),
        ``stress`` (T,), ``segments`` (list of class names).
    """
    if segment < 2 or n_frames < segment:
        raise ValueError(f"need 2 <= segment <= n_frames, got segment={segment}, n_frames={n_frames}")
    rng = np.random.default_rng(seed)
    n_segments = int(np.ceil(n_frames / segment))
    names = drive_sequence(n_segments, rng)
    edges = np.minimum(np.arange(n_segments + 1) * segment, n_frames)
    rate = np.empty(n_frames)
    frame_class = np.empty(n_frames, np.int64)
    for seg, kind in enumerate(names):
        start, stop = edges[seg], edges[seg + 1]
        seg_rate, _ = class_rate(kind, stop - start, crop, rng)  # ageing restarts each segment
        rate[start:stop] = seg_rate
        frame_class[start:stop] = CLASS_INDEX[kind]
    spatial = rate_map(detector, anisotropy=anisotropy, shear_angle=rng.uniform(-np.pi, np.pi))
    frames = evolve_field(rate, spatial, rng)
    seg_index = np.array([DRIVE_CLASSES.index(n) for n in names])
    bursts = np.where(frame_class == CLASS_INDEX["avalanches"], rate, 0.0)
    stress = stress_signal(seg_index, edges, n_frames, rng, avalanche_rate=bursts)
    return {"frames": poisson_counts(frames, mean_counts, rng), "frame_class": frame_class,
            "stress": stress, "segments": names}


def simulate_stores(library_path, drive_path, *, per_class: int, frames: int, drive_frames: int, segment: int,
                    crop: int, crop_bin: int, size: int, q_inner: float, q_outer: float, mean_counts: float,
                    anisotropy: float, dt: float, seed: int) -> None:
    """The ``simulate`` stage: write the class library and the driven run as frames stores.

    Parameters
    ----------
    library_path, drive_path : path
        Frames stores (``*.zarr``) to write: ``per_class * len(CLASSES)`` series of ``frames``
        frames with ``truth.series_class``; one run of ``drive_frames`` frames with
        ``truth.frame_class`` and the stress signal (``drive``).
    per_class, frames, drive_frames, segment, crop, crop_bin : int
        Series per class, frames per library series, frames of the driven run, frames per
        class segment of the driven run, the crop side (pixels) and the frames per crop pixel:
        the crop window of ``crop * crop_bin`` frames sets the class time scales.
    size : int
        Detector side (pixels).
    q_inner, q_outer : float
        Ring radii as fractions of ``size``.
    mean_counts : float
        Poisson photons per pixel and frame; 0 writes the noise-free intensity (mean 1).
    anisotropy : float
        Shear anisotropy of the driven run's rates, ``1 + anisotropy cos^2(phi - phi_shear)``.
    dt : float
        Frame time (s), recorded in the stores.
    seed : int
        Seeds the library (``seed``) and the driven run (``seed + 1``).

    Raises
    ------
    InputError
        When a size is < 1, ``crop * crop_bin`` exceeds ``frames`` or ``drive_frames``, ``segment``
        exceeds ``drive_frames``, ``mean_counts < 0``, ``dt <= 0`` or the ring does not fit.
    """
    from ..errors import InputError
    from ..progress import progress
    from ..provenance import make_provenance
    from ..stores import write_frames

    sizes = {"per_class": per_class, "frames": frames, "drive_frames": drive_frames, "segment": segment,
             "crop": crop, "crop_bin": crop_bin}
    for name, value in sizes.items():
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    window = crop * crop_bin   # frames of one crop: the class time scales are set in these units
    for option, limit in (("--frames", frames), ("--drive-frames", drive_frames)):
        if window > limit:
            raise InputError(f"{option} {limit}: fewer than the crop window --crop x --crop-bin = {window} frames")
    if segment > drive_frames:
        raise InputError(f"--segment {segment}: more than --drive-frames {drive_frames}")
    if mean_counts < 0 or not np.isfinite(mean_counts):
        raise InputError(f"--mean-counts must be finite and >= 0, got {mean_counts}")
    if not dt > 0 or not np.isfinite(dt):
        raise InputError(f"--dt must be finite and > 0, got {dt}")
    try:
        detector = Detector(size, q_inner, q_outer)
    except ValueError as exc:
        raise InputError(f"size/q_inner/q_outer: {exc}") from None
    settings = {**sizes, "size": size, "q_inner": q_inner, "q_outer": q_outer, "mean_counts": mean_counts,
                "anisotropy": anisotropy, "dt": dt, "seed": seed}
    provenance = make_provenance(config=settings, seed=seed)
    counts = mean_counts or None
    library, labels, params = simulate_library(per_class, frames, window, detector, seed, mean_counts=counts,
                                               progress=progress)
    axis = detector.axis
    common = {"dt": dt, "units": {"t": "s", "q": "pixel", "intensity": "counts" if counts else "a.u."},
              "source": "speckleml clustering simulate", "q_edges": list(detector.q_edges),
              "crop": crop, "crop_bin": crop_bin}   # the crop window that set the class time scales
    write_frames(library_path, library, qx=axis, qy=axis, provenance=provenance,
                 attrs={**common, "truth": {"classes": list(CLASSES), "series_class": labels.tolist(),
                                            "params": params}})
    log.info("wrote %s: %d series x %d frames, classes %s", library_path, library.shape[0], library.shape[1],
             np.bincount(labels, minlength=len(CLASSES)).tolist())
    drive = simulate_drive(drive_frames, window, segment, detector, seed + 1, anisotropy=anisotropy,
                           mean_counts=counts)
    write_frames(drive_path, drive["frames"], qx=axis, qy=axis, provenance=provenance,
                 attrs={**common, "truth": {"classes": list(CLASSES), "frame_class": [drive["frame_class"].tolist()],
                                            "segments": drive["segments"]},
                        "drive": {"name": "shear stress", "units": "relative (1 at cessation)",
                                  "values": [drive["stress"].tolist()]}})
    log.info("wrote %s: driven run of %d frames, segments %s", drive_path, drive_frames, drive["segments"])
