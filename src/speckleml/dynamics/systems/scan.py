"""Case 4 of paper 000: a ptychographic scan trajectory learned from its diffraction patterns.

The beam centre ``r(t) = (x, y)`` moves over a static object along the spiral of paper 000
eq. 9 ("Experimental proof-of-concept")::

    dx/dt = 1/(2 sqrt(t)) (x / sqrt(t) - omega y),
    dy/dt = 1/(2 sqrt(t)) (y / sqrt(t) + omega x),        omega = 4,

whose solution is ``x = c sqrt(t) cos(omega sqrt(t) + phi0)``, ``y = c sqrt(t) sin(omega
sqrt(t) + phi0)`` (:func:`spiral`; in polar form ``d rho/dt = rho / (2t)`` and ``d theta/dt =
omega / (2 sqrt(t))``). Time is in scan points (one pattern per unit time, as the paper's
``t - t0 = 80``); positions are in object pixels from the spiral centre. The training window
is ``window`` points from ``t0 > 0``, with ``t0`` chosen so that it spans ``turns``
revolutions (:func:`start_time`; 80 points and one turn give ``t0 = 609.1``); evaluation runs
to twice the window.

The authors' tungsten test pattern is not public. The object here (:func:`make_object`) is a
random-feature pattern of the same kind: white noise low-passed at ``feature_size`` pixels and
thresholded into etched / unetched areas, edges softened by a 1-pixel blur, with transmission
``(1 - absorption f) exp(i phase f)`` (``f`` in [0, 1] the etched fraction). The probe
(:func:`make_probe`) is a focused beam: a Gaussian of ``probe_sigma x detector`` pixels with a
quadratic (defocus) phase of ``defocus`` radians at one sigma. Each pattern is
``|FFT(object patch x probe)|^2`` (orthonormal FFT, zero frequency at the centre) of the
``detector x detector`` patch centred on ``r(t)`` (:class:`ScanSpeckle`); the patch is read by
bilinear interpolation (``torch.nn.functional.grid_sample``), so the patterns are
differentiable in ``r``: the "interpolating function of the full real-space image" of the
paper's Methods.

The neural ODE (eq. 10, Fig. 7h; :class:`ScanODE`): a shallow network featurises ``t`` and a
deeper network maps ``[r(t), features(t)]`` to ``dr/dt``. The shared training loop integrates
windows from relative times; the state therefore carries its own clock, ``y = (x, y, t)``
with ``dt/dt = 1``, so the right-hand side sees the absolute time that eq. 9 depends on.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import InputError
from .registry import DynamicsCase, register_case

SYSTEM = "scan"

#: Paper 000 eq. 9: angular parameter of the spiral.
OMEGA = 4.0
#: Components of a state: position (object pixels) and the clock (scan points).
COORDINATES = ("x", "y", "t")


def _positive(value, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------
# truth: eq. 9
# ------------------------------------------------------------------------------------------


def start_time(window: float, turns: float = 1.0, omega: float = OMEGA) -> float:
    """``t0`` at which ``window`` scan points span ``turns`` revolutions of eq. 9.

    The angle is ``omega sqrt(t)``, so ``sqrt(t0 + window) - sqrt(t0) = a = 2 pi turns / omega``
    and ``sqrt(t0) = (window - a^2) / (2a)``.

    Raises
    ------
    InputError
        When no ``t0 > 0`` exists (``window <= a^2``).
    """
    window, turns, omega = _positive(window, "window"), _positive(turns, "turns"), _positive(omega, "omega")
    a = 2 * math.pi * turns / omega
    if window <= a * a:
        raise InputError(f"--window: {window} scan points cannot span {turns} turns of eq. 9 from t0 > 0 "
                         f"(needs window > {a * a:.3g})")
    return ((window - a * a) / (2 * a)) ** 2


def spiral(t, c: float, omega: float = OMEGA, phi0: float = 0.0) -> np.ndarray:
    """Analytic solution of eq. 9: ``(x, y) = c sqrt(t) (cos, sin)(omega sqrt(t) + phi0)``.

    Parameters
    ----------
    t : array-like (time,)
        Times (scan points), > 0.
    c : float
        Radius scale: ``|r(t)| = c sqrt(t)`` (object pixels per sqrt(scan point)).
    omega, phi0 : float
        Eq. 9's parameter and the phase at ``t = 0``.

    Returns
    -------
    ndarray (time, 2), object pixels.
    """
    s = np.sqrt(np.asarray(t, np.float64))
    return np.stack([c * s * np.cos(omega * s + phi0), c * s * np.sin(omega * s + phi0)], axis=-1)


def eq9_rhs(t, r, omega: float = OMEGA):
    """Right-hand side of eq. 9 for ``r (..., 2)`` at time ``t`` (numpy or torch)."""
    x, y = r[..., 0], r[..., 1]
    k = 1.0 / (2.0 * t ** 0.5)
    dx = k * (x / t ** 0.5 - omega * y)
    dy = k * (y / t ** 0.5 + omega * x)
    return np.stack([dx, dy], axis=-1) if isinstance(r, np.ndarray) else torch.stack([dx, dy], dim=-1)


def simulate_states(n_series: int, rng: np.random.Generator | None = None, *, window: int = 80, turns: float = 1.0,
                    radius: float = 40.0, extrapolation: float = 2.0, omega: float = OMEGA, phi0: float = 0.0,
                    rtol: float = 1e-10, atol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """The case's truth: eq. 9 integrated numerically (scipy DOP853) from the analytic ``r(t0)``.

    Parameters
    ----------
    n_series : int
        Must be 1: a scan is one trajectory (kept for the registry's signature).
    rng : unused
        The truth is deterministic (the random part of the case is its object).
    window : int
        Scan points of the training window (paper: 80).
    turns : float
        Revolutions the window spans (paper: about one).
    radius : float
        ``|r(t0)|``, object pixels.
    extrapolation : float
        Length of the returned trajectory in windows (1: the training window; paper: 2).
    omega, phi0 : float
        Eq. 9's parameter and the spiral's phase at ``t = 0``.
    rtol, atol : float
        Solver tolerances.

    Returns
    -------
    states : ndarray float64 (1, time, 3)
        ``(x, y, t)`` per scan point, ``time = round(extrapolation window)``.
    t : ndarray (time,)
        ``t0, t0 + 1, ...`` (scan points).

    Raises
    ------
    InputError
        On ``n_series != 1`` or invalid sizes.
    """
    from scipy.integrate import solve_ivp

    if n_series != 1:
        raise InputError(f"a scan is one trajectory: series must be 1, got {n_series}")
    if extrapolation < 1:
        raise InputError(f"extrapolation must be >= 1, got {extrapolation}")
    t0 = start_time(window, turns, omega)
    c = _positive(radius, "radius") / math.sqrt(t0)
    n = int(round(window * extrapolation))
    t = t0 + np.arange(n, dtype=np.float64)
    r0 = spiral([t0], c, omega, phi0)[0]
    sol = solve_ivp(lambda s, r: eq9_rhs(s, r, omega), (t[0], t[-1]), r0, t_eval=t, method="DOP853",
                    rtol=rtol, atol=atol)
    if not sol.success:  # pragma: no cover - smooth ODE
        raise InputError(f"eq. 9 integration failed: {sol.message}")
    states = np.concatenate([sol.y.T, t[:, None]], axis=1)[None]
    return states, t


# ------------------------------------------------------------------------------------------
# object, probe, forward model
# ------------------------------------------------------------------------------------------


def object_size(max_radius: float, detector: int, margin: int = 4) -> int:
    """Side (pixels, even) of a square object holding every patch of a spiral up to ``max_radius``."""
    return int(2 * math.ceil(max_radius + detector / 2 + margin))


def make_object(size: int, rng: np.random.Generator, *, feature_size: float = 4.0, phase: float = 1.0,
                absorption: float = 0.2) -> np.ndarray:
    """A random-feature complex test object (stand-in for the paper's etched tungsten pattern).

    Parameters
    ----------
    size : int
        Side in pixels.
    rng : numpy Generator
    feature_size : float
        Gaussian low-pass sigma (pixels) of the noise that is thresholded into features.
    phase, absorption : float
        Phase shift (radians) and amplitude loss of a fully etched pixel.

    Returns
    -------
    ndarray complex128 (size, size): ``(1 - absorption f) exp(i phase f)``.
    """
    from scipy.ndimage import gaussian_filter

    if size < 8 or feature_size <= 0 or not 0 <= absorption < 1:
        raise InputError(f"invalid scan object: size {size}, feature_size {feature_size}, absorption {absorption}")
    noise = gaussian_filter(rng.standard_normal((size, size)), feature_size, mode="wrap")
    features = gaussian_filter((noise > 0).astype(np.float64), 1.0)
    return (1.0 - absorption * features) * np.exp(1j * phase * features)


def make_probe(detector: int, sigma: float = 0.125, defocus: float = 1.0) -> np.ndarray:
    """A focused probe ``(detector, detector)``: Gaussian of ``sigma x detector`` px, defocus phase.

    ``P = exp(-rho^2 / (2 s^2)) exp(i defocus rho^2 / s^2)``, ``s = sigma detector``, centred
    on pixel ``detector // 2`` (the patch's centre).
    """
    if detector < 4 or sigma <= 0:
        raise InputError(f"invalid probe: detector {detector}, sigma {sigma}")
    s = sigma * detector
    axis = np.arange(detector) - detector // 2
    rho2 = axis[None, :] ** 2 + axis[:, None] ** 2
    return np.exp(-rho2 / (2 * s * s) + 1j * defocus * rho2 / (s * s))


def sample_digest(obj: np.ndarray, probe: np.ndarray) -> str:
    """Short SHA-256 of an object and probe (binds a frames store to its sample store)."""
    h = hashlib.sha256()
    for a in (obj, probe):
        h.update(np.ascontiguousarray(a, np.complex128).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ScanGeometry:
    """Scattering geometry of the scan: the sample store (object, probe) and the detector.

    Attributes
    ----------
    sample : str
        Path of the ``scan_sample`` store (object and probe) the patterns are computed from.
    digest : str
        :func:`sample_digest` of that store's object and probe (checked on load).
    detector : int
        Pixels per side of the patterns (= patch side; paper: 512).
    beamstop : float
        Radius (pixels) of the masked direct beam; 0 = none.
    """

    sample: str
    digest: str
    detector: int = 64
    beamstop: float = 0.0

    def __post_init__(self):
        if self.detector < 4 or self.beamstop < 0:
            raise InputError(f"invalid scan geometry: {self}")

    def as_attrs(self) -> dict:
        return asdict(self)

    def resolved(self, frames_path) -> "ScanGeometry":
        """This geometry with a relative ``sample`` path taken from the frames store's folder.

        The simulate stage records the sample store relative to the frames store, so the two
        can be moved together and read from any working directory.
        """
        sample = Path(self.sample)
        if sample.is_absolute():
            return self
        return replace(self, sample=str(Path(frames_path).parent / sample))

    def mask(self) -> np.ndarray:
        """Valid pixels ``(detector, detector)``: False within ``beamstop`` of the centre."""
        axis = np.arange(self.detector) - self.detector // 2
        return np.hypot(axis[None, :], axis[:, None]) >= self.beamstop if self.beamstop > 0 else \
            np.ones((self.detector, self.detector), bool)


class ScanSpeckle(nn.Module):
    """``r (..., >=2) -> |FFT(O(r + patch) P)|^2 (..., n, n)``, differentiable in ``r``.

    The object is sampled bilinearly (``grid_sample``, ``align_corners=True``, border padding)
    on the ``n x n`` pixel grid centred on ``r`` (object pixels from the object's centre);
    components of the state beyond the first two (the clock) are ignored.

    Parameters
    ----------
    obj : ndarray complex (H, W)
    probe : ndarray complex (n, n)
    dtype, device :
        Real dtype and device of the computation.
    """

    def __init__(self, obj, probe, dtype=torch.float64, device="cpu"):
        super().__init__()
        obj, probe = np.asarray(obj), np.asarray(probe)
        if probe.ndim != 2 or probe.shape[0] != probe.shape[1] or obj.ndim != 2:
            raise InputError(f"scan forward model needs a 2-D object and a square probe, got {obj.shape}, {probe.shape}")
        self.n = probe.shape[0]
        self.height, self.width = obj.shape
        self.register_buffer("obj", torch.as_tensor(np.stack([obj.real, obj.imag])[None], dtype=dtype, device=device))
        ctype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.register_buffer("probe", torch.as_tensor(probe, dtype=ctype, device=device))
        offsets = torch.arange(self.n, dtype=dtype, device=device) - self.n // 2
        self.register_buffer("offsets", offsets)

    def patches(self, r):
        """Complex object patches ``(..., n, n)`` centred on ``r[..., :2]`` (object pixels)."""
        lead = r.shape[:-1]
        pos = r[..., :2].reshape(-1, 2).to(self.obj.dtype)
        # pixel (column, row) of every patch pixel; the object's centre pixel is (W - 1)/2, (H - 1)/2
        cols = (self.width - 1) / 2 + pos[:, 0, None] + self.offsets[None, :]
        rows = (self.height - 1) / 2 + pos[:, 1, None] + self.offsets[None, :]
        gx = (2 * cols / (self.width - 1) - 1)[:, None, :].expand(-1, self.n, -1)
        gy = (2 * rows / (self.height - 1) - 1)[:, :, None].expand(-1, -1, self.n)
        grid = torch.stack([gx, gy], dim=-1)
        out = torch.nn.functional.grid_sample(self.obj.expand(grid.shape[0], -1, -1, -1), grid, mode="bilinear",
                                              padding_mode="border", align_corners=True)
        return torch.complex(out[:, 0], out[:, 1]).reshape(*lead, self.n, self.n)

    def exit_waves(self, r):
        """Object patch x probe ``(..., n, n)`` complex: the real-space frames of Fig. 7b-c."""
        return self.patches(r) * self.probe

    def forward(self, r):
        field = torch.fft.fftshift(torch.fft.fft2(self.exit_waves(r), norm="ortho"), dim=(-2, -1))
        return field.real ** 2 + field.imag ** 2


def _sample_schema():
    from ...stores import FLOATS, ArraySpec, StoreSchema, register_schema

    return register_schema(StoreSchema(
        name="scan_sample", version=1,
        description="scan case: complex object (object pixels) and probe (detector pixels), real and imaginary parts",
        arrays={"object_real": ArraySpec(("oy", "ox"), FLOATS, finite=True),
                "object_imag": ArraySpec(("oy", "ox"), FLOATS, finite=True),
                "probe_real": ArraySpec(("py", "px"), FLOATS, finite=True),
                "probe_imag": ArraySpec(("py", "px"), FLOATS, finite=True)},
    ))


def write_sample(path, obj, probe, attrs=None, provenance=None):
    """Write a ``scan_sample`` store of ``obj (H, W)`` and ``probe (n, n)`` (complex, float64 parts)."""
    from ...stores import write_store

    obj, probe = np.asarray(obj, np.complex128), np.asarray(probe, np.complex128)
    return write_store(path, _sample_schema(), {"object_real": obj.real, "object_imag": obj.imag,
                                                "probe_real": probe.real, "probe_imag": probe.imag},
                       attrs={"digest": sample_digest(obj, probe), **(attrs or {})}, provenance=provenance)


def load_sample(path):
    """Object and probe (complex ndarrays) of a ``scan_sample`` store.

    Raises
    ------
    InputError
        (a :class:`~speckleml.stores.StoreError`) when the store is missing or malformed.
    """
    from ...stores import read_store

    store = read_store(path, _sample_schema())
    obj = np.asarray(store["object_real"]) + 1j * np.asarray(store["object_imag"])
    probe = np.asarray(store["probe_real"]) + 1j * np.asarray(store["probe_imag"])
    return obj, probe


def training_forward_model(geometry: ScanGeometry, dtype=torch.float64, device="cpu") -> ScanSpeckle:
    """The forward model the NODE is trained through: the known object and probe of ``geometry``.

    Raises
    ------
    InputError
        When the sample store is missing or is not the one the frames were made from.
    """
    obj, probe = load_sample(geometry.sample)
    if sample_digest(obj, probe) != geometry.digest:
        raise InputError(f"{geometry.sample}: object/probe differ from those the frames were made with")
    if probe.shape[0] != geometry.detector:
        raise InputError(f"{geometry.sample}: probe is {probe.shape}, detector is {geometry.detector}")
    return ScanSpeckle(obj, probe, dtype=dtype, device=device)


# ------------------------------------------------------------------------------------------
# neural ODE (eq. 10, Fig. 7h)
# ------------------------------------------------------------------------------------------


class ScanODE(nn.Module):
    """``d(x, y, t)/dt = (F_NN(t, r), 1)``: a time featuriser and a deeper network (Fig. 7h).

    The inputs are put on unit scales with known quantities (the paper: "disparate scales of
    the spatial and time coordinates"): ``tau = (t - t_offset) / t_scale`` (the training
    window's start and length) and ``r / r_scale`` (the initial radius); the output is in
    ``r_scale / t_scale`` pixels per scan point.

    Parameters
    ----------
    t_offset, t_scale, r_scale : float
    features : int
        Outputs of the featuriser ``Linear(1, features) -> Tanh -> Linear(features, features)``.
    hidden, depth : int
        Width and hidden layers (Tanh) of the network on ``[r, features]``.
    """

    def __init__(self, t_offset: float, t_scale: float, r_scale: float, features: int = 8, hidden: int = 32,
                 depth: int = 3):
        super().__init__()
        self.t_offset, self.t_scale, self.r_scale = float(t_offset), float(t_scale), float(r_scale)
        self.featuriser = nn.Sequential(nn.Linear(1, features), nn.Tanh(), nn.Linear(features, features))
        layers, width = [], 2 + features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*layers)
        self.nfe = 0

    def velocity(self, clock, r):
        """``dr/dt (..., 2)`` at absolute times ``clock (...)`` and positions ``r (..., 2)``."""
        tau = ((clock - self.t_offset) / self.t_scale)[..., None]
        inputs = torch.cat([r / self.r_scale, self.featuriser(tau)], dim=-1)
        return self.net(inputs) * (self.r_scale / self.t_scale)

    def forward(self, t, y):
        self.nfe += 1
        v = self.velocity(y[..., 2], y[..., :2])
        return torch.cat([v, torch.ones_like(y[..., 2:3])], dim=-1)


def build_model(t_offset: float, t_scale: float, r_scale: float, features: int = 8, hidden: int = 32,
                depth: int = 3) -> ScanODE:
    """A fresh :class:`ScanODE` (random weights from torch's generator), float64."""
    for name, value in (("features", features), ("hidden", hidden), ("depth", depth)):
        if int(value) < 1:
            raise InputError(f"scan model: {name} must be >= 1, got {value}")
    return ScanODE(t_offset, t_scale, r_scale, int(features), int(hidden), int(depth)).double()


def model_architecture(model: ScanODE) -> dict:
    """Keyword arguments of :func:`build_model` that rebuild ``model``."""
    return {"t_offset": model.t_offset, "t_scale": model.t_scale, "r_scale": model.r_scale,
            "features": int(model.featuriser[0].out_features), "hidden": int(model.net[0].out_features),
            "depth": sum(isinstance(m, nn.Linear) for m in model.net) - 1}


def velocity_snapshot(model: ScanODE) -> np.ndarray:
    """``dr/dt`` at ``r = (+-r_scale, 0), (0, +-r_scale)`` and ``t = t_offset`` (history snapshots), (4, 2)."""
    r = model.r_scale * torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    with torch.no_grad():
        ref = next(model.parameters())
        v = model.velocity(torch.full((4,), model.t_offset, dtype=ref.dtype, device=ref.device), r.to(ref))
    return v.cpu().numpy().astype(np.float64)


CASE = register_case(DynamicsCase(
    name=SYSTEM, simulate=simulate_states, geometry=ScanGeometry, forward_model=training_forward_model,
    build_model=build_model, architecture=model_architecture, snapshot=velocity_snapshot,
    snapshot_label="dr/dt at r = (+-r_scale, 0), (0, +-r_scale), t = t_offset (systems.scan)",
))
