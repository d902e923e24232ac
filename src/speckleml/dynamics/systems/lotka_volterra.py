"""Case 3 of paper 000: a fluctuating source — Lotka-Volterra motion seen through speckle.

A stationary random object is probed by a beam whose position fluctuates; seen from the beam,
the object's centre of mass ``r(t) = (x(t), y(t))`` obeys the Lotka-Volterra equations
(paper 000, Case study 3, eq. 7)::

    dx/dt = alpha x - beta x y
    dy/dt = delta x y - gamma y

with ``alpha = 1/3, beta = 2/3, gamma = delta = 1/2`` (paper: "which corresponds to periodic
oscillations of the coordinates with a period of 2 pi / sqrt(alpha gamma) ~ 15.39"; that is
the period of small orbits about the fixed point ``(gamma/delta, alpha/beta) = (1, 1/2)``,
larger orbits are slower). Along an orbit the quantity (paper, the sentence after eq. 7)::

    V = delta x - gamma ln(x) + beta y - alpha ln(y)

is conserved (:func:`conserved_quantity`). The neural ODE learns the whole right-hand side,
``dr/dt ~ F_NN(t, r; theta)`` (eq. 8), with an MLP ``2 -> 10 -> 10 -> 10 -> 2`` and ReLU
(:class:`LotkaVolterraMLP`); the ensemble model integrates the average of the members'
right-hand sides (:class:`EnsembleRHS`, Fig. 4c orange line).

Object and frames (paper Methods eq. 17-18): ``N = 400`` identical particles of radius
``0.07 L`` (``L = 2``) placed uniformly at random in the box ``[-L/2, L/2]^2`` per series
(:func:`random_objects`), all moving rigidly with the centre of mass; the speckle is the
point-scatterer sum with the sphere form factor (eq. 15) under a Gaussian probe at the origin
(:func:`render_frames`, through :func:`speckleml.scattering.point_intensity`). Moving the
object by ``s`` under a fixed probe is the same as moving the probe by ``-s`` over a fixed
object, so the frames are differentiable in the beam position through ``states``.

Coordinates: the Lotka-Volterra state is the object's centre of mass plus a fixed
``offset = (1, 1)`` (the public reference code's convention, ``x = mean(x_j) + L/2`` with
``L = 2``): an object
centred near the origin starts near ``(1, 1)``, on an orbit about the fixed point ``(1, 1/2)``
(paper: "the sample centers are defined as the origin in each simulation and coincide
roughly with the initial position of the probe"). That orbit's period is 16.05, longer than
the small-orbit 15.39 the paper quotes (measured in ``tests/test_lotka_volterra.py``). The reference code uses an absolute particle
radius of 0.07 with ``L = 2`` (i.e. 0.035 L); the default here follows the paper's text, 0.07 L.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn

from ...errors import InputError
from ...scattering import point_intensity
from .registry import DynamicsCase, register_case

SYSTEM = "lotka_volterra"

#: Box side ``L`` and particle radius (paper 000 Case study 3: radii 0.07 L, L = 2).
BOX_LENGTH = 2.0
PARTICLE_RADIUS = 0.07 * BOX_LENGTH
N_PARTICLES = 400
#: Lotka-Volterra state = centre of mass + OFFSET (reference-code convention).
OFFSET = (1.0, 1.0)


@dataclass(frozen=True)
class LotkaVolterraParameters:
    """Rates of eq. 7 (paper 000: ``alpha = 1/3, beta = 2/3, gamma = delta = 1/2``), 1 / time.

    Raises
    ------
    InputError
        A rate that is not finite and > 0.
    """

    alpha: float = 1.0 / 3.0
    beta: float = 2.0 / 3.0
    gamma: float = 0.5
    delta: float = 0.5

    def __post_init__(self):
        for name in ("alpha", "beta", "gamma", "delta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"Lotka-Volterra rate {name} must be > 0, got {value!r}")

    @property
    def fixed_point(self) -> tuple[float, float]:
        """The non-trivial equilibrium ``(gamma / delta, alpha / beta)``."""
        return self.gamma / self.delta, self.alpha / self.beta

    @property
    def small_orbit_period(self) -> float:
        """``2 pi / sqrt(alpha gamma)`` (paper: ~15.39), the limit of small orbits."""
        return 2.0 * math.pi / math.sqrt(self.alpha * self.gamma)


def lotka_volterra_rhs(state, params: LotkaVolterraParameters = LotkaVolterraParameters()):
    """Right-hand side of eq. 7 for states ``(..., 2)`` = ``(x, y)``; numpy or torch in, same out.

    Returns ``(alpha x - beta x y, delta x y - gamma y)`` stacked on the last axis.
    """
    x, y = state[..., 0], state[..., 1]
    dx = params.alpha * x - params.beta * x * y
    dy = params.delta * x * y - params.gamma * y
    if isinstance(state, torch.Tensor):
        return torch.stack((dx, dy), dim=-1)
    return np.stack((dx, dy), axis=-1)


def conserved_quantity(state, params: LotkaVolterraParameters = LotkaVolterraParameters()):
    """``V = delta x - gamma ln x + beta y - alpha ln y`` (paper 000, after eq. 7).

    Parameters
    ----------
    state : ndarray or torch.Tensor, (..., 2)
        ``(x, y)`` with ``x, y > 0`` (``NaN`` where not).
    params : LotkaVolterraParameters

    Returns
    -------
    Same type, shape ``state.shape[:-1]``. Constant along every orbit of eq. 7; its minimum
    is at the fixed point.
    """
    x, y = state[..., 0], state[..., 1]
    log = torch.log if isinstance(state, torch.Tensor) else np.log
    return params.delta * x - params.gamma * log(x) + params.beta * y - params.alpha * log(y)


def simulate_truth(initial_states, times, params: LotkaVolterraParameters = LotkaVolterraParameters(), *,
                   rtol: float = 1e-10, atol: float = 1e-12) -> np.ndarray:
    """Integrate eq. 7 for several initial states with ``scipy.integrate.solve_ivp`` (DOP853).

    All series are integrated as one system (the equations are independent per series), with
    tight default tolerances so that :func:`conserved_quantity` is constant to ~1e-9.

    Parameters
    ----------
    initial_states : array-like, (S, 2)
        ``(x, y)`` per series at ``times[0]``, both > 0.
    times : array-like, (T,)
        Strictly increasing output times (time units of the rates).
    params : LotkaVolterraParameters
    rtol, atol : float
        Solver tolerances.

    Returns
    -------
    ndarray, float64, (S, T, 2)

    Raises
    ------
    InputError
        Bad shapes, non-positive states, non-increasing times, or a solver failure.
    """
    y0 = np.asarray(initial_states, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if y0.ndim != 2 or y0.shape[-1] != 2:
        raise InputError(f"initial states must be (S, 2), got shape {y0.shape}")
    if not np.all(np.isfinite(y0)) or np.any(y0 <= 0):
        raise InputError("Lotka-Volterra initial states must be finite and > 0 (x, y are populations)")
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0):
        raise InputError("times must be a strictly increasing 1-D array")
    n = y0.shape[0]

    def rhs(_t, flat):
        return lotka_volterra_rhs(flat.reshape(n, 2), params).ravel()

    if t.size == 1:
        return y0[:, None, :].copy()
    solution = solve_ivp(rhs, (t[0], t[-1]), y0.ravel(), method="DOP853", t_eval=t, rtol=rtol, atol=atol)
    if not solution.success:
        raise InputError(f"Lotka-Volterra integration failed: {solution.message}")
    return solution.y.reshape(n, 2, t.size).transpose(0, 2, 1)


def random_objects(n_series: int, rng: np.random.Generator, *, n_particles: int = N_PARTICLES,
                   box_length: float = BOX_LENGTH) -> np.ndarray:
    """Particle positions of stationary random objects, uniform in ``[-L/2, L/2]^2``.

    Parameters
    ----------
    n_series : int
        One independent object per series (paper: 100 for training, 50 for evaluation).
    rng : numpy.random.Generator
        Seeded by the caller.
    n_particles : int
        Particles per object (paper: 400).
    box_length : float
        Box side ``L`` (paper: 2).

    Returns
    -------
    ndarray, float64, (n_series, n_particles, 2), ``[..., 0]`` = x.
    """
    if n_series < 1 or n_particles < 1:
        raise InputError(f"need n_series >= 1 and n_particles >= 1, got {n_series}, {n_particles}")
    if not (math.isfinite(box_length) and box_length > 0):
        raise InputError(f"box length must be > 0, got {box_length!r}")
    return rng.uniform(-box_length / 2, box_length / 2, size=(n_series, n_particles, 2))


def initial_states(objects, offset: Sequence[float] = OFFSET) -> np.ndarray:
    """Lotka-Volterra state at ``t = 0`` of each object: its centre of mass (eq. 17) + ``offset``.

    Parameters
    ----------
    objects : array-like, (S, N, 2)
    offset : (float, float)

    Returns
    -------
    ndarray, (S, 2)
    """
    objects = np.asarray(objects, dtype=np.float64)
    if objects.ndim != 3 or objects.shape[-1] != 2:
        raise InputError(f"objects must be (S, N, 2), got shape {objects.shape}")
    return objects.mean(axis=1) + np.asarray(offset, dtype=np.float64)


def object_positions(objects: torch.Tensor, states: torch.Tensor,
                     offset: Sequence[float] = OFFSET) -> torch.Tensor:
    """Particle positions of each rigid object whose centre of mass is ``state - offset``.

    ``r_j(t) = r_j(0) - com(0) + (state(t) - offset)`` (eq. 17): all particles move with the
    centre of mass. Differentiable in ``states`` (and ``objects``).

    Parameters
    ----------
    objects : torch.Tensor, (S, N, 2)
        Particle positions at ``t = 0``.
    states : torch.Tensor, (S, T, 2)
        Lotka-Volterra states ``(x, y)`` per series and time.
    offset : (float, float)

    Returns
    -------
    torch.Tensor, (S, T, N, 2)
    """
    if objects.ndim != 3 or states.ndim != 3 or objects.shape[-1] != 2 or states.shape[-1] != 2 \
            or objects.shape[0] != states.shape[0]:
        raise InputError(f"objects must be (S, N, 2) and states (S, T, 2) with the same S; got "
                         f"{tuple(objects.shape)} and {tuple(states.shape)}")
    shift = torch.as_tensor(offset, dtype=states.dtype, device=states.device)
    relative = objects - objects.mean(dim=1, keepdim=True)
    return relative[:, None, :, :] + (states - shift)[:, :, None, :]


def render_frames(objects: torch.Tensor, states: torch.Tensor, q: torch.Tensor, *,
                  particle_radius: float = PARTICLE_RADIUS, probe_sigma: float = BOX_LENGTH / 4,
                  offset: Sequence[float] = OFFSET, chunk_size: int = 2048) -> torch.Tensor:
    """Speckle frames of the moving objects (paper 000 Methods eq. 18), differentiable in ``states``.

    ``I(Q, t) = |sum_j p(r_j(t)) f_s(Q) exp(i Q.r_j(t))|^2`` with the sphere form factor
    ``f_s`` (eq. 15) of radius ``particle_radius`` and the Gaussian probe amplitude
    ``p(r) = exp(-|r|^2 / (2 probe_sigma^2))`` fixed at the origin, evaluated by
    :func:`speckleml.scattering.point_intensity`. The beamstop mask, noise and the t0 rescale
    are the caller's (see :mod:`speckleml.scattering`).

    Parameters
    ----------
    objects : torch.Tensor, (S, N, 2)
        Particle positions at ``t = 0`` (:func:`random_objects`), length units of ``L``.
    states : torch.Tensor, (S, T, 2)
        Lotka-Volterra states (centre of mass + ``offset``), e.g. a neural-ODE solution
        permuted to series-first; gradients flow back into it.
    q : torch.Tensor, (ny, nx, 2)
        Detector wave vectors, e.g. ``detector_q_grid(56, math.pi / L)``.
    particle_radius : float
        Sphere radius ``a`` (paper: 0.07 L).
    probe_sigma : float
        Probe amplitude standard deviation (the study's probe, e.g. ``L / 4``).
    offset : (float, float)
        See :func:`object_positions`.
    chunk_size : int
        Wave vectors per chunk of the point sum.

    Returns
    -------
    torch.Tensor, real, (S, T, ny, nx)
    """
    positions = object_positions(objects.to(states.dtype), states, offset)
    return point_intensity(positions, q, radii=float(particle_radius), form_factor="sphere",
                           probe_sigma=float(probe_sigma), chunk_size=chunk_size)


class LotkaVolterraRHS(nn.Module):
    """The true right-hand side (eq. 7) as a torch module ``forward(t, y)``, ``y`` (..., 2).

    For torchdiffeq and for comparing learned and true vector fields (Fig. 4d).
    """

    def __init__(self, params: LotkaVolterraParameters = LotkaVolterraParameters()):
        super().__init__()
        self.params = params

    def forward(self, t, y: torch.Tensor) -> torch.Tensor:  # noqa: ARG002  (autonomous)
        return lotka_volterra_rhs(y, self.params)


class LotkaVolterraMLP(nn.Module):
    """The neural ODE of eq. 8: ``dr/dt = F_NN(r)``, an MLP ``2 -> 10 -> 10 -> 10 -> 2`` with ReLU.

    Paper 000 Case study 3: "an input and output layer with two neurons each, and three hidden
    layers each with 10 neurons ... Each layer prior to the output is activated by a ReLU".
    The system is autonomous, so ``t`` is ignored. PyTorch's default (Kaiming-uniform)
    initialisation; seed torch before constructing for reproducibility.

    Parameters
    ----------
    hidden : int
        Width of each of the three hidden layers (paper: 10).
    dtype : torch.dtype
        Parameter dtype.
    """

    def __init__(self, hidden: int = 10, dtype: torch.dtype = torch.float64):
        super().__init__()
        if hidden < 1:
            raise InputError(f"hidden width must be >= 1, got {hidden}")
        self.net = nn.Sequential(
            nn.Linear(2, hidden, dtype=dtype), nn.ReLU(),
            nn.Linear(hidden, hidden, dtype=dtype), nn.ReLU(),
            nn.Linear(hidden, hidden, dtype=dtype), nn.ReLU(),
            nn.Linear(hidden, 2, dtype=dtype),
        )

    def forward(self, t, y: torch.Tensor) -> torch.Tensor:  # noqa: ARG002  (autonomous)
        """``y`` (..., 2) -> ``dy/dt`` (..., 2)."""
        return self.net(y)


class EnsembleRHS(nn.Module):
    """The ensemble model: the mean of the members' right-hand sides, integrated as one ODE.

    ``dr/dt = (1/M) sum_m F_m(t, r)`` (paper 000 Fig. 4c, orange line) — not the mean of the
    members' solutions, which the caller computes separately.

    Parameters
    ----------
    members : sequence of nn.Module
        Right-hand sides ``forward(t, y)`` with equal output shapes (at least one).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        members = list(members)
        if not members:
            raise InputError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, t, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(t, y) for member in self.members]).mean(dim=0)


def vector_field_grid(x_range: tuple[float, float], y_range: tuple[float, float], n: int) -> np.ndarray:
    """A regular ``n x n`` grid of states over the domain, ``(n, n, 2)``, ``[i, j] = (x_j, y_i)``.

    Evaluate the true (:class:`LotkaVolterraRHS`) and learned right-hand sides on it to compare
    vector fields (paper 000 Fig. 4d-f).
    """
    if n < 2:
        raise InputError(f"vector-field grid needs n >= 2, got {n}")
    xs = np.linspace(*x_range, n)
    ys = np.linspace(*y_range, n)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    return np.stack((gx, gy), axis=-1)


# ----------------------------------------------------------------------------------------
# the case: geometry, forward model, truth simulator, model (registered below)
# ----------------------------------------------------------------------------------------

RENDER_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class LotkaVolterraGeometry:
    """Scattering geometry of the fluctuating-source case, including the (known) random objects.

    The objects are not stored: they are the first draw of ``numpy.random.default_rng(
    object_seed)`` (:func:`random_objects`), so the geometry rebuilds exactly the objects the
    frames were made from. Lengths are fractions of the box side ``L`` (``box``).

    Attributes
    ----------
    n_series, n_particles : int
        Objects (one per series) and particles per object (paper: 100 and 400).
    object_seed : tuple of int
        Seed sequence of the objects' draw.
    box : float
        Box side ``L`` (paper: 2).
    particle_radius : float
        Sphere radius in units of ``L`` (paper: 0.07).
    probe_sigma : float
        Gaussian probe amplitude standard deviation in units of ``L``.
    detector : int
        Detector pixels per side (paper: 56).
    dq_factor : float
        Pixel size in units of ``pi / L``.
    render_dtype : {"float32", "float64"}
        Precision of the point sum (float32 is ~2x faster on a CPU; see the README).

    Raises
    ------
    InputError
        On a non-positive size or an unknown dtype.
    """

    n_series: int
    n_particles: int = N_PARTICLES
    object_seed: tuple = (0,)
    box: float = BOX_LENGTH
    particle_radius: float = 0.07
    probe_sigma: float = 0.25
    detector: int = 56
    dq_factor: float = 1.0
    render_dtype: str = "float64"

    def __post_init__(self):
        object.__setattr__(self, "object_seed", tuple(int(s) for s in np.atleast_1d(self.object_seed)))
        for name in ("n_series", "n_particles", "detector"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"Lotka-Volterra geometry: {name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("box", "particle_radius", "probe_sigma", "dq_factor"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"Lotka-Volterra geometry: {name} must be > 0, got {value!r}")
        if self.render_dtype not in RENDER_DTYPES:
            raise InputError(f"render dtype must be one of {RENDER_DTYPES}, got {self.render_dtype!r}")

    def as_attrs(self) -> dict:
        """JSON-able fields (``geometry`` attr of the frames store and the model files)."""
        return {"n_series": self.n_series, "n_particles": self.n_particles, "object_seed": list(self.object_seed),
                "box": self.box, "particle_radius": self.particle_radius, "probe_sigma": self.probe_sigma,
                "detector": self.detector, "dq_factor": self.dq_factor, "render_dtype": self.render_dtype}

    @property
    def dq(self) -> float:
        """Detector pixel size ``dq_factor * pi / L`` (1 / length)."""
        return self.dq_factor * math.pi / self.box

    def objects(self) -> np.ndarray:
        """The objects ``(n_series, n_particles, 2)`` (:func:`random_objects` of ``object_seed``)."""
        rng = np.random.default_rng(list(self.object_seed))
        return random_objects(self.n_series, rng, n_particles=self.n_particles, box_length=self.box)


class FluctuatingSourceSpeckle:
    """Forward model of the case: beam positions ``(batch, time, 2)`` -> frames ``(batch, time, ny, nx)``.

    :func:`render_frames` of the geometry's objects under the Gaussian probe, computed in
    ``geometry.render_dtype`` and returned in the states' dtype; differentiable in the states.
    ``per_series``: the training loop passes the batch's series indices (one object per series).

    Parameters
    ----------
    geometry : LotkaVolterraGeometry
    dtype : torch.dtype
        Unused (the render precision is the geometry's); kept for the registry's signature.
    device : torch.device or str
    """

    per_series = True

    def __init__(self, geometry: LotkaVolterraGeometry, dtype=torch.float64, device="cpu"):  # noqa: ARG002
        from ...scattering import detector_q_grid

        self.geometry = geometry
        self.render_dtype = getattr(torch, geometry.render_dtype)
        self.objects = torch.as_tensor(geometry.objects(), dtype=self.render_dtype, device=device)
        self.q = detector_q_grid(geometry.detector, geometry.dq, dtype=self.render_dtype, device=device)

    def __call__(self, states: torch.Tensor, series=None) -> torch.Tensor:
        """Frames of ``states (batch, time, 2)`` of the series ``series`` (default: all, in order)."""
        objects = self.objects if series is None else self.objects[series]
        g = self.geometry
        frames = render_frames(objects, states.to(self.render_dtype), self.q,
                               particle_radius=g.particle_radius * g.box, probe_sigma=g.probe_sigma * g.box)
        return frames.to(states.dtype)


def training_forward_model(geometry: LotkaVolterraGeometry, dtype=torch.float64, device="cpu"):
    """The registry's ``forward_model``: a :class:`FluctuatingSourceSpeckle`."""
    return FluctuatingSourceSpeckle(geometry, dtype=dtype, device=device)


def time_grid(t_max: float, dt: float) -> np.ndarray:
    """``0, dt, ..., t_max`` (``t_max`` a multiple of ``dt`` to 1e-9).

    Raises
    ------
    InputError
        ``dt`` or ``t_max`` not > 0, or ``t_max`` not a multiple of ``dt``.
    """
    if not (dt > 0 and t_max > 0):
        raise InputError(f"need t_max > 0 and dt > 0, got {t_max!r}, {dt!r}")
    steps = t_max / dt
    if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
        raise InputError(f"t_max = {t_max} is not a multiple of dt = {dt}")
    return np.arange(int(round(steps)) + 1) * dt


def simulate_states(n_series: int, t_max: float, dt: float, rng: np.random.Generator, *,
                    n_particles: int = N_PARTICLES, box_length: float = BOX_LENGTH,
                    params: LotkaVolterraParameters = LotkaVolterraParameters()):
    """The registry's truth simulator: random objects from ``rng``, their orbits of eq. 7.

    The objects are the first draw from ``rng`` (:func:`random_objects`), so
    ``LotkaVolterraGeometry(object_seed=...)`` rebuilds them from the same seed.

    Returns
    -------
    states : ndarray, float64, (n_series, T, 2)
        ``(x, y)`` = centre of mass + :data:`OFFSET`.
    t : ndarray, (T,)
        ``0, dt, ..., t_max``.
    """
    t = time_grid(t_max, dt)
    objects = random_objects(n_series, rng, n_particles=n_particles, box_length=box_length)
    return simulate_truth(initial_states(objects), t, params), t


def build_model(hidden: int = 10, init_scale: float = 1.0) -> LotkaVolterraMLP:
    """The registry's ``build_model``: :class:`LotkaVolterraMLP` (float64).

    Parameters
    ----------
    hidden : int
        Hidden width (paper: 10).
    init_scale : float
        Factor on the output layer's initial weights and bias (PyTorch's default
        initialisation otherwise). A default MLP moves the object by 2-6 box lengths within the
        training window, out of the probe, where the frames carry no gradient and a member can
        stall (measured at the laptop scale: one of two members stayed at its initial loss);
        ``0.1`` starts every member close to "nothing moves". Initialisation only: not part of
        :func:`model_architecture`.

    Raises
    ------
    InputError
        ``init_scale`` not > 0.
    """
    if not (math.isfinite(init_scale) and init_scale > 0):
        raise InputError(f"init_scale must be > 0, got {init_scale!r}")
    model = LotkaVolterraMLP(hidden=hidden)
    with torch.no_grad():
        model.net[-1].weight.mul_(init_scale)
        model.net[-1].bias.mul_(init_scale)
    return model


def model_architecture(model: LotkaVolterraMLP) -> dict:
    """``{"hidden": width}``, what rebuilds ``model``."""
    return {"hidden": int(model.net[0].out_features)}


def model_parameters(model: nn.Module) -> np.ndarray:
    """All parameters of ``model`` as one flat float64 vector (the history's snapshots)."""
    return torch.cat([p.detach().reshape(-1).cpu().to(torch.float64) for p in model.parameters()]).numpy()


CASE = register_case(DynamicsCase(
    name=SYSTEM, simulate=simulate_states, geometry=LotkaVolterraGeometry, forward_model=training_forward_model,
    build_model=build_model, architecture=model_architecture, snapshot=model_parameters,
    snapshot_label="MLP parameters (flattened)",
))
