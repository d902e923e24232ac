"""Case 1 of paper 000: locally coupled moments on a lattice (a Kuramoto model).

The moment orientations ``phi`` live on an ``N x N`` periodic lattice of side ``L`` and obey

    dphi_i/dt = K * sum_j a_(j-i) sin(phi_j - phi_i)
              = K * (cos(phi) * conv(sin(phi), a) - sin(phi) * conv(cos(phi), a))

with the coupling kernel ``a = -LoG(s)`` (Laplacian of Gaussian, centre set to 0) and circular
padding. The same right-hand side with a trainable kernel is the neural ODE of the paper (one
``Conv2d(1, 1, k)``, no bias): :class:`KuramotoRHS` serves both. The periodic convolution is
done by FFT (:func:`circular_conv_fft`; the same numbers as ``conv2d`` to ~1e-15 relative,
~35x faster per right-hand side at paper size in float64 on a CPU).

The speckle (paper Methods eq. 12-14) is the incoherent sum ``I = w0 * I0 + I1`` of a constant
form factor channel ``I0`` and the orientation channel ``I1`` with ``f1 = cos(phi)``; the
form-factor perturbation of Supp. Fig. 16 is ``f1 = (1 - delta) cos(phi) + delta (sin^3 + cos^3)``.

Conventions: states are float64 tensors ``(..., N, N)`` in radians; the conv is PyTorch's
cross-correlation (truth and model use the same operator, so the kernel is compared as is).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ...progress import progress
from .registry import DynamicsCase, register_case

SYSTEM = "kuramoto"
KERNEL_NORMALIZATIONS = ("none", "max", "l1")
#: Constraints of the trainable kernel: ``none`` (the paper's free ``k x k`` conv), ``point``
#: (``a(d) = a(-d)``: reciprocal pairwise coupling, ``a_ij = a_ji``) or ``d4`` (invariant under the
#: square lattice's rotations and reflections: an isotropic interaction, as the true -LoG).
KERNEL_SYMMETRIES = ("none", "point", "d4")


class PointSymmetric(nn.Module):
    """Parametrisation ``w -> (w + w[::-1, ::-1]) / 2``: a point-symmetric kernel, ``a(d) = a(-d)``.

    Reciprocal coupling makes eq. 1 a gradient flow that conserves ``sum_i phi_i``; the
    antisymmetric part of a free kernel, which the centrosymmetric speckle ``|F|^2`` of a real
    field constrains only weakly, drives a drift of the stripes that grows without bound in
    extrapolation.
    """

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return 0.5 * (weight + torch.flip(weight, dims=(-2, -1)))


class D4Symmetric(nn.Module):
    """Parametrisation ``w -> mean of w over the 8 symmetries of the square`` (rotations by 90
    degrees and reflections): an isotropic kernel on the lattice (point-symmetric too)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        rotations = [torch.rot90(weight, k, dims=(-2, -1)) for k in range(4)]
        return sum(rotations + [r.transpose(-2, -1) for r in rotations]) / 8.0


def log_kernel(size: int, sigma: float, normalization: str = "none") -> np.ndarray:
    """Coupling kernel ``a = -LoG(sigma)`` on a ``size x size`` pixel grid, centre set to 0.

    Parameters
    ----------
    size : int
        Odd kernel width in lattice sites.
    sigma : float
        Width of the Gaussian in lattice sites (paper: 1.5).
    normalization : {"none", "max", "l1"}
        ``none`` keeps the analytic values ``(1/(pi s^4)) (1 - r^2/(2 s^2)) exp(-r^2/(2 s^2))``
        (the paper's kernel, used with K = 20); ``max`` divides by the largest value, ``l1`` by
        the sum of absolute values.

    Returns
    -------
    ndarray, float64, (size, size)
    """
    if size < 3 or size % 2 == 0:
        raise InputError(f"kernel size must be odd and >= 3, got {size}")
    if sigma <= 0:
        raise InputError(f"kernel sigma must be > 0, got {sigma}")
    if normalization not in KERNEL_NORMALIZATIONS:
        raise InputError(f"kernel normalization must be one of {KERNEL_NORMALIZATIONS}, got {normalization!r}")
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    rho = (x**2 + y**2) / (2 * sigma**2)
    kernel = (1.0 - rho) * np.exp(-rho) / (math.pi * sigma**4)
    kernel[half, half] = 0.0  # no self-coupling (it has no effect on the dynamics anyway)
    if normalization == "max":
        kernel /= np.abs(kernel).max()
    elif normalization == "l1":
        kernel /= np.abs(kernel).sum()
    return kernel


def circular_conv(field: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlate ``field (..., N, N)`` with ``kernel (k, k)`` on a periodic lattice (direct sum).

    The reference implementation (circular ``F.pad`` + ``conv2d``); :class:`KuramotoRHS` uses the
    equal (to rounding) and much faster :func:`circular_conv_fft`.
    """
    shape = field.shape
    half = kernel.shape[-1] // 2
    x = field.reshape(-1, 1, *shape[-2:])
    x = F.pad(x, (half, half, half, half), mode="circular")
    return F.conv2d(x, kernel.view(1, 1, *kernel.shape[-2:])).reshape(shape)


def kernel_spectrum(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``rfft2`` of the ``k x k`` kernel wrapped onto an ``(Ny, Nx)`` periodic lattice, centre at 0.

    Offset ``d`` of the kernel (``kernel[d + k // 2]``) goes to site ``d mod N``; offsets that
    wrap onto the same site add up (a kernel wider than the lattice couples a site to its
    periodic images, as the pairwise sum does). Differentiable in ``kernel``.
    """
    ky, kx = kernel.shape[-2:]
    rows = torch.arange(-(ky // 2), ky - ky // 2, device=kernel.device) % shape[0]
    cols = torch.arange(-(kx // 2), kx - kx // 2, device=kernel.device) % shape[1]
    wrapped = kernel.new_zeros(shape).index_put((rows[:, None].expand(ky, kx), cols[None, :].expand(ky, kx)),
                                                kernel, accumulate=True)
    return torch.fft.rfft2(wrapped)


def circular_conv_fft(field: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
    """:func:`circular_conv` by the correlation theorem: ``irfft2(rfft2(field) * conj(spectrum))``.

    ``spectrum`` comes from :func:`kernel_spectrum` (real kernel, so the conjugate turns the
    convolution into PyTorch's cross-correlation). On a CPU in float64 this is ~100x faster
    than ``conv2d`` (which has no optimised float64 kernel) at 80x80 with an 11x11 kernel,
    and agrees with it to ~1e-15 relative.
    """
    return torch.fft.irfft2(torch.fft.rfft2(field) * spectrum.conj(), s=field.shape[-2:])


class KuramotoRHS(nn.Module):
    """Right-hand side ``dphi/dt = K (cos phi conv(sin phi) - sin phi conv(cos phi))``.

    Parameters
    ----------
    kernel : array-like (k, k), optional
        Fixed coupling kernel (ground truth). When omitted the kernel is a trainable
        parameter of size ``kernel_size`` initialised from N(0, ``init_std``^2) (the NODE).
    coupling : float
        Coupling strength K (known to the model, as in the paper).
    kernel_size : int
        Width of the trainable kernel (ignored when ``kernel`` is given).
    init_std : float
        Standard deviation of the trainable kernel's initial values (paper: 0.01).
    dtype : torch.dtype
        Parameter dtype (float64 for the paper's tolerances).
    symmetry : {"none", "point"}
        Constraint of the trainable kernel (:data:`KERNEL_SYMMETRIES`, :class:`PointSymmetric`).
    """

    def __init__(self, kernel=None, coupling: float = 1.0, kernel_size: int = 3, init_std: float = 0.01,
                 dtype=torch.float64, symmetry: str = "none"):
        super().__init__()
        if symmetry not in KERNEL_SYMMETRIES:
            raise InputError(f"kernel symmetry must be one of {KERNEL_SYMMETRIES}, got {symmetry!r}")
        self.coupling = float(coupling)
        self.symmetry = symmetry
        if kernel is not None:
            self.register_buffer("kernel", torch.as_tensor(np.asarray(kernel), dtype=dtype))
        else:
            if kernel_size < 1 or kernel_size % 2 == 0:
                raise InputError(f"model kernel size must be odd, got {kernel_size}")
            weight = torch.randn(kernel_size, kernel_size, dtype=dtype) * init_std
            self.kernel = nn.Parameter(weight)
            if symmetry != "none":
                from torch.nn.utils import parametrize

                parametrize.register_parametrization(
                    self, "kernel", PointSymmetric() if symmetry == "point" else D4Symmetric())
        self.nfe = 0  # function evaluations (solver cost), reset by the caller

    def forward(self, t, phi: torch.Tensor) -> torch.Tensor:  # noqa: ARG002  (autonomous system)
        self.nfe += 1
        cos, sin = torch.cos(phi), torch.sin(phi)
        spectrum = kernel_spectrum(self.kernel.to(phi.dtype), phi.shape[-2:])
        # one batched transform for both channels: conv(sin), conv(cos)
        conv_sin, conv_cos = circular_conv_fft(torch.stack((sin, cos)), spectrum).unbind(0)
        return self.coupling * (cos * conv_sin - sin * conv_cos)


def random_phases(n_series: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Independent uniform phases (the random initial conditions of paper 000 case 1).

    Parameters
    ----------
    n_series, size : int
    rng : numpy Generator

    Returns
    -------
    ndarray (n_series, size, size) float64, radians in [0, 2 pi)
    """
    return rng.uniform(0.0, 2 * math.pi, size=(n_series, size, size))


def order_parameter(phi) -> tuple[np.ndarray, np.ndarray]:
    """Order parameter ``r`` and mean orientation ``psi`` (paper 000 eq. 3) over the last two axes.

    ``r exp(i psi) = mean_j exp(i phi_j)``.

    Parameters
    ----------
    phi : ndarray (..., N, N), radians

    Returns
    -------
    r : ndarray (...), in [0, 1] (1: all aligned)
    psi : ndarray (...), radians in (-pi, pi]
    """
    phi = np.asarray(phi)
    z = np.exp(1j * phi).mean(axis=(-2, -1))
    return np.abs(z), np.angle(z)


def circular_mean(angles, axis=0) -> np.ndarray:
    """Circular mean ``arg(mean(exp(i angles)))`` along ``axis``, in (-pi, pi]; NaNs are ignored.

    The mean of angles near +-pi is near pi (a linear mean would give ~0). Same as
    ``scipy.stats.circmean(angles, -pi, pi, axis, nan_policy="omit")`` up to the branch.

    Parameters
    ----------
    angles : ndarray, radians
    axis : int

    Returns
    -------
    ndarray, ``angles`` without ``axis``; NaN where every value along ``axis`` is NaN.
    """
    angles = np.asarray(angles, np.float64)
    unit = np.where(np.isnan(angles), np.nan, np.exp(1j * np.nan_to_num(angles)))
    with np.errstate(invalid="ignore"):
        count = np.sum(~np.isnan(angles), axis=axis)
        total = np.nansum(unit, axis=axis)
    return np.where(count > 0, np.angle(total), np.nan)


def vorticity(phi) -> np.ndarray:
    """Curl of the unit orientation field ``(cos phi, sin phi)`` (paper 000 Supp. Fig. 3).

    ``omega = d(sin phi)/dx - d(cos phi)/dy`` by periodic central differences.

    Parameters
    ----------
    phi : ndarray (..., N, N), radians; x is the last axis

    Returns
    -------
    ndarray (..., N, N), 1 / lattice site
    """
    phi = np.asarray(phi)
    u, v = np.cos(phi), np.sin(phi)
    dv_dx = (np.roll(v, -1, axis=-1) - np.roll(v, 1, axis=-1)) / 2
    du_dy = (np.roll(u, -1, axis=-2) - np.roll(u, 1, axis=-2)) / 2
    return dv_dx - du_dy


def wrapped_difference(a, b):
    """Angular difference ``a - b`` wrapped to [-pi, pi) (numpy or torch)."""
    return (a - b + math.pi) % (2 * math.pi) - math.pi


def plain_mae(pred, true, axes=(-2, -1)) -> np.ndarray:
    """Real-space MAE (radians) per frame: the mean absolute wrapped difference (paper 000 Fig. 5).

    Parameters
    ----------
    pred, true : ndarray (..., N, N)
        Phases in radians (any branch: differences are wrapped to [-pi, pi)).
    axes : tuple of int
        The lattice axes averaged over.

    Returns
    -------
    ndarray (...), in [0, pi]; pi / 2 is the expectation for uniformly random phases.
    """
    pred, true = np.asarray(pred), np.asarray(true)
    return np.abs(wrapped_difference(pred, true)).mean(axis=axes)


def orientation_mae(pred, true, axes=(-2, -1)) -> np.ndarray:
    """Real-space MAE (radians) per frame with the ``phi -> -phi`` ambiguity removed ("sign-aligned").

    The intensity is even in ``phi`` (``f1 = cos phi``), so a prediction is scored against both
    ``phi`` and ``-phi`` and the smaller mean absolute wrapped difference is kept per frame
    (never above :func:`plain_mae`).
    """
    pred, true = np.asarray(pred), np.asarray(true)
    plus = np.abs(wrapped_difference(pred, true)).mean(axis=axes)
    minus = np.abs(wrapped_difference(-pred, true)).mean(axis=axes)
    return np.minimum(plus, minus)


def aligned_prediction(pred, true) -> np.ndarray:
    """``pred`` or ``-pred`` per frame, whichever is closer to ``true`` (for difference maps).

    Parameters
    ----------
    pred, true : ndarray (..., N, N), radians

    Returns
    -------
    ndarray (..., N, N): ``pred`` with the sign of each frame chosen by the smaller plain MAE.
    """
    pred, true = np.asarray(pred), np.asarray(true)
    plus = np.abs(wrapped_difference(pred, true)).mean(axis=(-2, -1), keepdims=True)
    minus = np.abs(wrapped_difference(-pred, true)).mean(axis=(-2, -1), keepdims=True)
    return np.where(minus < plus, -pred, pred)


def form_factor(phi: torch.Tensor, delta: float = 0.0) -> torch.Tensor:
    """Orientation form factor ``f1 = (1 - delta) cos phi + delta (sin^3 phi + cos^3 phi)``."""
    cos = torch.cos(phi)
    if delta == 0.0:
        return cos
    return (1.0 - delta) * cos + delta * (torch.sin(phi) ** 3 + cos**3)


@dataclass(frozen=True)
class SpeckleGeometry:
    """Scattering geometry of the lattice (paper Methods, case study 1).

    Attributes
    ----------
    size : int
        Lattice sites per side N.
    box : float
        Box side L (real-space units).
    detector : int
        Detector pixels per side.
    dq_factor : float
        Detector sampling in units of pi/L (paper: 1, i.e. dQ = pi/L; sweep 1..3).
    probe_sigma : float
        Gaussian probe standard deviation as a fraction of L (paper: 0.25).
    beamstop : float
        Beamstop radius in detector pixels (paper: ~5).
    sigma_coh : float or None
        Width of the Gaussian mutual coherence function as a fraction of L (None: fully coherent).
    static_weight : float
        Weight w0 of the orientation-independent channel I0 (paper: 0.1).
    delta : float
        Form-factor perturbation (Supp. Fig. 16; 0 for the paper's cos phi).
    """

    size: int
    box: float = 2.0
    detector: int = 84
    dq_factor: float = 1.0
    probe_sigma: float = 0.25
    beamstop: float = 5.0
    sigma_coh: float | None = None
    static_weight: float = 0.1
    delta: float = 0.0

    def as_attrs(self) -> dict:
        return asdict(self)

    @property
    def spacing(self) -> float:
        """Lattice spacing a = L / N."""
        return self.box / self.size

    @property
    def dq(self) -> float:
        """Detector pixel size dQ = dq_factor * pi / L."""
        return self.dq_factor * math.pi / self.box

    @property
    def detector_pixels(self) -> int:
        """Pixels per side at this dQ: the Q range of ``detector`` pixels at pi/L is kept
        (as in the reference code, a coarser dQ means fewer pixels)."""
        return max(4, int(round(self.detector / self.dq_factor)))

    @property
    def beamstop_pixels(self) -> float:
        """Beamstop radius in pixels at this dQ (fixed radius in Q)."""
        return self.beamstop / self.dq_factor


class MomentsSpeckle:
    """Forward model ``phi (..., N, N) -> I (..., n, n) = w0 I0 + I1`` (paper Methods eq. 12-14).

    ``I0`` (constant form factor) is computed once; ``I1`` uses :func:`form_factor` with the
    geometry's ``delta``. Both go through :func:`speckleml.scattering.lattice_intensity`
    (probe, zero-padded FFT, coherence blur, beamstop). Differentiable in ``phi``.

    Parameters
    ----------
    geometry : SpeckleGeometry
    dtype : torch.dtype
    device : torch.device or str
    direct : bool
        Use the dense direct sum (:func:`lattice_intensity_direct`, the reference code's method)
        instead of the FFT: for the benchmark and cross-checks only.
    """

    def __init__(self, geometry: SpeckleGeometry, dtype=torch.float64, device="cpu", direct: bool = False):
        from ... import scattering

        self.geometry = geometry
        self._intensity = scattering.lattice_intensity_direct if direct else scattering.lattice_intensity
        self._kwargs = dict(
            spacing=geometry.spacing, dq=geometry.dq, detector_shape=geometry.detector_pixels,
            probe=geometry.probe_sigma * geometry.box, beamstop_radius=geometry.beamstop_pixels,
            sigma_coh=None if geometry.sigma_coh is None else geometry.sigma_coh * geometry.box,
        )
        ones = torch.ones(geometry.size, geometry.size, dtype=dtype, device=device)
        self.static = self._intensity(ones, **self._kwargs)
        self.mask = scattering.beamstop_mask(geometry.detector_pixels, geometry.beamstop_pixels, device=device)

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        moving = self._intensity(form_factor(phi, self.geometry.delta), **self._kwargs)
        return self.geometry.static_weight * self.static.to(moving.dtype) + moving

    def q_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Detector axes ``(qy, qx)`` in reciprocal units of the box."""
        from ... import scattering

        qy, qx = scattering.detector_q_axes(self.geometry.detector_pixels, self.geometry.dq, dtype=torch.float64)
        return qy.numpy(), qx.numpy()


# ------------------------------------------------------------------ truth and frames

def time_grid(t_max: float, dt: float, n_drop: int) -> np.ndarray:
    """Integration times ``0, dt, ..., t_max + n_drop dt`` (the first ``n_drop`` are dropped later).

    Raises
    ------
    InputError
        When ``t_max`` or ``dt`` is not > 0.
    """
    if dt <= 0 or t_max <= 0:
        raise InputError(f"t_max and dt must be > 0, got t_max={t_max}, dt={dt}")
    n = int(round(t_max / dt)) + 1 + n_drop
    return np.arange(n, dtype=np.float64) * dt


def simulate_states(n_series: int, size: int, kernel: np.ndarray, coupling: float, t_max: float, dt: float,
                    n_drop: int, rng: np.random.Generator, rtol: float = 1e-7, atol: float = 1e-9,
                    chunk: int = 10, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Integrate the true system (paper 000 eq. 1-2) from random phases: the truth simulator.

    Parameters
    ----------
    n_series, size : int
        Number of initial conditions and lattice sites per side.
    kernel : ndarray (k, k)
        True coupling kernel.
    coupling : float
        K.
    t_max, dt : float
        Kept window ``[0, t_max]`` and its step (time units of the ODE).
    n_drop : int
        Leading time points dropped (transient from the random start); time is re-zeroed.
    rng : numpy Generator
        Draws the initial phases.
    rtol, atol : float
        dopri5 tolerances.
    chunk : int
        Series integrated together.

    Returns
    -------
    states : ndarray (series, time, size, size) float64, phases in radians (not wrapped)
    t : ndarray (time,) from 0 to t_max

    Raises
    ------
    InputError
        When ``t_max`` or ``dt`` is not > 0.
    """
    from torchdiffeq import odeint

    rhs = KuramotoRHS(kernel=kernel, coupling=coupling).to(device)
    t_full = time_grid(t_max, dt, n_drop)
    t = torch.as_tensor(t_full, device=device)
    phi0 = torch.as_tensor(random_phases(n_series, size, rng), device=device)
    out = np.empty((n_series, len(t_full) - n_drop, size, size))
    starts = range(0, n_series, chunk)
    with torch.no_grad():
        for start in progress(starts, desc="simulate", total=len(starts)):
            traj = odeint(rhs, phi0[start:start + chunk], t, method="dopri5", rtol=rtol, atol=atol)
            out[start:start + chunk] = traj.movedim(0, 1)[:, n_drop:].cpu().numpy()
    return out, t_full[n_drop:] - t_full[n_drop]


def speckle_frames(states: np.ndarray, geometry: SpeckleGeometry, lambda_max: float | None = None,
                   seed: int = 0, chunk: int = 4, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Detector frames of ``states (series, time, N, N)``; Poisson counts when ``lambda_max`` is set.

    Each series is scaled so that its brightest valid pixel at t0 expects ``lambda_max``
    counts (:func:`speckleml.scattering.poisson_noise`, paper 000 §2.2).

    Returns
    -------
    frames : ndarray (series, time, n, n) float32, intensity (probe peak amplitude 1) or counts
    mask : ndarray (n, n) bool, valid pixels

    Raises
    ------
    InputError
        When ``lambda_max`` is not a finite number > 0.
    """
    from ...scattering import poisson_noise

    if lambda_max is not None and not (math.isfinite(lambda_max) and lambda_max > 0):
        raise InputError(f"lambda_max must be > 0, got {lambda_max}")
    model = MomentsSpeckle(geometry, dtype=torch.float64, device=device)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    n = geometry.detector_pixels
    frames = np.empty((states.shape[0], states.shape[1], n, n), np.float32)
    starts = range(0, states.shape[0], chunk)
    with torch.no_grad():
        for start in progress(starts, desc="speckle", total=len(starts)):
            phi = torch.as_tensor(states[start:start + chunk], dtype=torch.float64, device=device)
            intensity = model(phi)
            if lambda_max is not None:
                intensity, _ = poisson_noise(intensity, lambda_max, generator, mask=model.mask)
            frames[start:start + chunk] = intensity.cpu().numpy()
    return frames, model.mask.cpu().numpy()


# ------------------------------------------------------------------ the neural ODE

def build_model(kernel_size: int, coupling: float, init_std: float = 0.01, kernel_symmetry: str = "none") -> KuramotoRHS:
    """The paper's NODE: one trainable ``k x k`` kernel (N(0, init_std^2)) in the Kuramoto sin/cos form.

    ``kernel_symmetry="point"`` constrains it to ``a(d) = a(-d)`` (:class:`PointSymmetric`),
    ``"d4"`` to the square's symmetries (:class:`D4Symmetric`); the paper trains the free
    kernel, ``"none"``.

    Seed torch first (:func:`speckleml.runtime.seed_everything`): the kernel is drawn from it.

    Raises
    ------
    InputError
        When ``kernel_size`` is not odd or the symmetry is unknown.
    """
    return KuramotoRHS(kernel=None, coupling=coupling, kernel_size=kernel_size, init_std=init_std,
                       symmetry=kernel_symmetry)


def model_architecture(model: KuramotoRHS) -> dict:
    """Keyword arguments of :func:`build_model` that rebuild ``model``'s shape (kernel size, K, symmetry)."""
    return {"kernel_size": int(model.kernel.shape[-1]), "coupling": model.coupling,
            "kernel_symmetry": getattr(model, "symmetry", "none")}


def learned_kernel(model: KuramotoRHS) -> np.ndarray:
    """Copy of the model's coupling kernel ``(k, k)`` as float64 numpy."""
    return model.kernel.detach().cpu().numpy().astype(np.float64).copy()


def training_forward_model(geometry: SpeckleGeometry, dtype=torch.float64, device="cpu") -> MomentsSpeckle:
    """The forward model of training: the frames' geometry with the unperturbed form factor.

    The experimenter knows the probe, detector and coherence, not a form-factor perturbation
    (``delta = 0``; Supp. Fig. 16 tests that mismatch).
    """
    from dataclasses import replace

    return MomentsSpeckle(replace(geometry, delta=0.0), dtype=dtype, device=device)


CASE = register_case(DynamicsCase(
    name=SYSTEM, simulate=simulate_states, geometry=SpeckleGeometry, forward_model=training_forward_model,
    build_model=build_model, architecture=model_architecture, snapshot=learned_kernel,
    snapshot_label="coupling kernel",
))
