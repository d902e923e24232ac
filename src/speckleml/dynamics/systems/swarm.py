"""Case 2 of paper 000: self-organising particles — a pairwise interaction learned through speckle.

Each particle moves by a short-range pairwise interaction (paper 000, Case study 2, eq. 4)::

    dr_i/dt = (1/n) sum_{j in N_R(i)} h(|r_j - r_i|) (1 - h(|r_j - r_i|)) (r_j - r_i),

``N_R(i)`` the particles within the cutoff ``R`` of particle ``i``, ``n = (2/L)^2`` (paper:
"a normalizing factor which scales with the size of the simulation box, L, as n = (2/L)^2"),
and the smooth cutoff function of eq. 5 (paper 000, Case study 2, the display after
"we model the cutoff function as a short-range interaction according to [62]")::

    h(r) = R / (2 r) * (1 + tanh(1 / (r - R) - 1 / (r - 2R)))   for r <= R,
    h(r) = 0                                                      for r > R.

``h`` falls smoothly to 0 at ``r = R`` (every derivative vanishes there) and diverges like
``1/r`` at contact; ``h (1 - h)`` is attractive where ``0 < h < 1`` and repulsive where
``h > 1``, so an isolated pair settles at the distance where ``h = 1``
(:func:`equilibrium_distance`; 0.1152 = 0.0230 L for ``R = 0.15 L``, ``L = 5``).

The graph neural ODE (eq. 6) replaces ``h`` by a network ``F_NN(r; R, theta)``: an MLP on the
two inputs ``[r, R]`` with three hidden layers of 10, LeakyReLU, and a Softplus output, ``R``
a trainable parameter that also sets the neighbour graph (:class:`SwarmGraphODE`). It is
pretrained to ``F ~ (1/n) (R0 - r) / r`` (eq. 20, :func:`pretrain_target`,
:func:`pretrain_cutoff`), ``R0`` estimated from the bright diffraction ring at ``t = 10``
(Methods, Supp. Fig. 8).

Aggregation: eq. 4 sums over the neighbours; the public reference code averages (graph layer
with ``aggr='mean'``), which is the default here (see :class:`SwarmRHS` for the measured
difference); ``aggregation="sum"`` gives eq. 4 as printed.

Sizes (paper): 500 identical particles of radius ``0.03 L``, ``L = 5``, ``R = 0.15 L``, 50
series from uniform positions in a disk of radius ``L/2`` (:func:`random_disk_positions`);
frames from the point model with the sphere form factor (eq. 15-16, :func:`render_frames`).
Positions are ``(..., N, 2)`` tensors, ``[..., 0] = x``, in the length units of ``L``; open
boundaries (the paper's disk sits inside the box and the interaction is short-ranged).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import brentq
from torch import nn

from ...errors import InputError
from ...scattering import point_intensity
from .registry import DynamicsCase, register_case

SYSTEM = "swarm"

#: Paper 000 Case study 2: box side L, particle radius 0.03 L, cutoff R = 0.15 L, 500 particles.
BOX_LENGTH = 5.0
PARTICLE_RADIUS = 0.03 * BOX_LENGTH
CUTOFF = 0.15 * BOX_LENGTH
N_PARTICLES = 500


def _positive(value, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def normalization(box_length: float = BOX_LENGTH) -> float:
    """The normalising factor ``n = (2 / L)^2`` of eq. 4 and 6 (0.16 for ``L = 5``)."""
    return (2.0 / _positive(box_length, "box length")) ** 2


def cutoff_function(r: torch.Tensor, cutoff: float = CUTOFF) -> torch.Tensor:
    """The true cutoff function ``h(r)`` of eq. 5 (paper 000 Case study 2).

    ``h(r) = R / (2 r) (1 + tanh(1 / (r - R) - 1 / (r - 2R)))`` for ``0 < r < R``, 0 for
    ``r >= R`` (the limit at ``r = R``). Differentiable in ``r``, with finite gradients at and
    beyond ``R``.

    Parameters
    ----------
    r : torch.Tensor
        Pair distances, > 0 (``h`` diverges like ``1/r`` at 0), length units of ``L``.
    cutoff : float
        ``R`` (paper: 0.15 L = 0.75).

    Returns
    -------
    torch.Tensor, shape and dtype of ``r``.
    """
    R = _positive(cutoff, "cutoff R")
    r = torch.as_tensor(r)
    inside = (r > 0) & (r < R)
    r_safe = torch.where(inside, r, torch.full_like(r, R / 2))  # keeps the unused branch finite
    value = R / (2 * r_safe) * (1 + torch.tanh(1 / (r_safe - R) - 1 / (r_safe - 2 * R)))
    return torch.where(inside, value, torch.zeros_like(r))


def equilibrium_distance(cutoff: float = CUTOFF) -> float:
    """The pair distance where ``h(r) = 1``: an isolated pair's rest separation under eq. 4.

    Below it ``h (1 - h) < 0`` (repulsion), above it attraction up to ``R``. For
    ``R = 0.75`` it is 0.11522 (0.0230 L): the distance between neighbours in a cluster.
    """
    R = _positive(cutoff, "cutoff R")

    def excess(r):
        return float(cutoff_function(torch.tensor(r, dtype=torch.float64), R)) - 1.0

    return float(brentq(excess, 1e-6 * R, R * (1 - 1e-9), xtol=1e-14))


def radius_graph(positions: torch.Tensor, cutoff) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ordered pairs ``(i, j)``, ``i != j``, closer than ``cutoff``, per batch element.

    Pairs are selected from ``torch.cdist`` without gradient (the selection is a step
    function); the displacements ``r_j - r_i`` and distances are then gathered from
    ``positions``, so they are differentiable in the positions (no ``cdist`` gradient at
    coincident points is ever taken). ``O(B N^2)`` memory: ~1 MB for 500 particles.

    Parameters
    ----------
    positions : torch.Tensor, (N, d) or (B, N, d)
        Particle positions.
    cutoff : float or 0-d tensor
        Neighbour radius ``R`` (a trainable ``R`` is read as a number; no gradient through the
        selection). Pairs with distance ``<= cutoff`` are kept; ``cutoff <= 0`` gives no edges.

    Returns
    -------
    index : torch.Tensor, int64, (3, E)
        ``(batch, i, j)`` of every edge (both directions of each pair); batch is 0 for 2-D input.
    displacement : torch.Tensor, (E, d)
        ``positions[b, j] - positions[b, i]``.
    distance : torch.Tensor, (E,)
        Its Euclidean norm.
    """
    if positions.ndim not in (2, 3):
        raise InputError(f"positions must be (N, d) or (B, N, d), got shape {tuple(positions.shape)}")
    batched = positions if positions.ndim == 3 else positions[None]
    radius = float(cutoff.detach()) if isinstance(cutoff, torch.Tensor) else float(cutoff)
    with torch.no_grad():
        distances = torch.cdist(batched, batched)
        n = batched.shape[1]
        keep = distances <= radius
        keep &= ~torch.eye(n, dtype=torch.bool, device=batched.device)
    b, i, j = keep.nonzero(as_tuple=True)
    displacement = batched[b, j] - batched[b, i]
    return torch.stack((b, i, j)), displacement, torch.linalg.norm(displacement, dim=-1)


AGGREGATIONS = ("sum", "mean")


def _check_aggregation(aggregation: str) -> str:
    if aggregation not in AGGREGATIONS:
        raise InputError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    return aggregation


def _aggregate(positions: torch.Tensor, index: torch.Tensor, edge_velocity: torch.Tensor,
               aggregation: str = "mean") -> torch.Tensor:
    """Sum (or average) edge contributions ``(E, d)`` onto their particle ``i``: ``(..., N, d)``.

    ``mean`` divides by each particle's neighbour count (particles without neighbours get 0).
    """
    batched = positions if positions.ndim == 3 else positions[None]
    b, i, _ = index
    node = b * batched.shape[1] + i
    n_nodes = batched.shape[0] * batched.shape[1]
    flat = torch.zeros(n_nodes, batched.shape[2], dtype=edge_velocity.dtype, device=edge_velocity.device)
    flat = flat.index_add(0, node, edge_velocity)
    if aggregation == "mean":
        count = torch.bincount(node, minlength=n_nodes).clamp_min(1).to(flat.dtype)
        flat = flat / count[:, None]
    return flat.reshape(positions.shape)


class SwarmRHS(nn.Module):
    """The true right-hand side, eq. 4 with ``h`` of eq. 5, ``forward(t, positions)``.

    Parameters
    ----------
    cutoff : float
        ``R`` (paper: 0.15 L).
    box_length : float
        ``L``, sets ``n = (2/L)^2``.
    aggregation : {"sum", "mean"}
        ``sum`` is eq. 4 as printed; ``mean`` (default) averages over the neighbours instead, as
        the public reference code's graph layer does (``MessagePassing(aggr='mean')``). Measured
        here (500 particles, disk of radius L/2, dopri5 rtol 1e-6, one CPU thread): ``sum`` is
        stiff (the ``1/r`` repulsion summed over ~30 cluster mates), takes 230 s to reach t = 10
        and the clusters are frozen by t = 5, leaving nothing to extrapolate; ``mean`` takes 15 s
        and the clusters are still growing at t = 10, as in paper Fig. 3 (evolution to t = 50).
    """

    def __init__(self, cutoff: float = CUTOFF, box_length: float = BOX_LENGTH, aggregation: str = "mean"):
        super().__init__()
        self.cutoff = _positive(cutoff, "cutoff R")
        self.n = normalization(box_length)
        self.aggregation = _check_aggregation(aggregation)

    def forward(self, t, positions: torch.Tensor) -> torch.Tensor:  # noqa: ARG002  (autonomous)
        """``positions`` (N, 2) or (B, N, 2) -> velocities, same shape."""
        index, displacement, distance = radius_graph(positions, self.cutoff)
        h = cutoff_function(distance, self.cutoff)
        return _aggregate(positions, index, (h * (1 - h) / self.n)[:, None] * displacement, self.aggregation)


class SwarmGraphODE(nn.Module):
    """The graph neural ODE of eq. 6: ``h`` replaced by ``F_NN(r; R, theta)``, ``R`` trainable.

    ``dr_i/dt = (1/n) sum_{j: |r_j - r_i| <= R} F (1 - F) (r_j - r_i)`` with
    ``F = Softplus(MLP([r, R]))``, the MLP ``2 -> 10 -> 10 -> 10 -> 1`` with LeakyReLU after
    each hidden layer (paper 000 Case study 2: "three hidden layers each with 10 neurons ...
    leaky rectified linear unit ... a softplus is used as the final activation"). The
    neighbour graph is rebuilt from the current ``R`` at every evaluation (no gradient through
    the selection; ``R`` gets its gradient as an input of the MLP).

    Parameters
    ----------
    initial_cutoff : float
        ``R^(0)``, e.g. the length scale of the diffraction ring at ``t = 10`` (Supp. Fig. 8).
    box_length : float
        ``L``, sets ``n = (2/L)^2``.
    hidden : int
        Hidden width (paper: 10).
    aggregation : {"sum", "mean"}
        As :class:`SwarmRHS` (use the truth's).
    dtype : torch.dtype
        Parameter dtype.
    """

    def __init__(self, initial_cutoff: float, box_length: float = BOX_LENGTH, hidden: int = 10,
                 aggregation: str = "mean", dtype: torch.dtype = torch.float64):
        super().__init__()
        self.aggregation = _check_aggregation(aggregation)
        if hidden < 1:
            raise InputError(f"hidden width must be >= 1, got {hidden}")
        self.box_length = float(box_length)
        self.n = normalization(box_length)
        self.cutoff = nn.Parameter(torch.tensor(_positive(initial_cutoff, "initial cutoff R0"), dtype=dtype))
        self.net = nn.Sequential(
            nn.Linear(2, hidden, dtype=dtype), nn.LeakyReLU(),
            nn.Linear(hidden, hidden, dtype=dtype), nn.LeakyReLU(),
            nn.Linear(hidden, hidden, dtype=dtype), nn.LeakyReLU(),
            nn.Linear(hidden, 1, dtype=dtype), nn.Softplus(),
        )
        self.nfe = 0  # right-hand-side evaluations (solver cost), reset by the training loop

    def cutoff_function(self, r: torch.Tensor) -> torch.Tensor:
        """The learned ``F_NN(r; R)``, ``r`` any shape -> same shape, ``> 0`` (Softplus)."""
        r = torch.as_tensor(r, dtype=self.cutoff.dtype, device=self.cutoff.device)
        features = torch.stack((r, self.cutoff.expand_as(r)), dim=-1)
        return self.net(features).squeeze(-1)

    def forward(self, t, positions: torch.Tensor) -> torch.Tensor:  # noqa: ARG002  (autonomous)
        """``positions`` (N, 2) or (B, N, 2) -> velocities, same shape (eq. 6)."""
        self.nfe += 1
        index, displacement, distance = radius_graph(positions, self.cutoff)
        f = self.cutoff_function(distance)
        return _aggregate(positions, index, (f * (1 - f) / self.n)[:, None] * displacement, self.aggregation)


def pretrain_target(r, initial_cutoff: float, box_length: float = BOX_LENGTH, scale: float | None = None):
    """Pretraining target of eq. 20: ``scale (R0 - r) / r``, ``scale = 1/n = (L/2)^2`` by default.

    A decreasing function of ``r`` that crosses zero at ``R0`` (paper 000 Methods, "Pretraining
    details for Case study 2"; the default ``1/n`` factor is the printed eq. 20; issue 14 states
    the target as ``(R0 - r)/r``, ``scale = 1``). ``r > 0``; numpy or torch.
    """
    r0 = _positive(initial_cutoff, "initial cutoff R0")
    factor = 1 / normalization(box_length) if scale is None else _positive(scale, "pretraining scale")
    return factor * (r0 - r) / r


def pretrain_cutoff(model: SwarmGraphODE, *, r_min: float, r_max: float, n_points: int = 200,
                    steps: int = 500, lr: float = 1e-2, scale: float | None = None) -> float:
    """Fit ``model.cutoff_function`` to eq. 20 on ``[r_min, r_max]`` by Adam on the MSE.

    ``R0`` is the model's current ``cutoff``, which stays fixed here. The Softplus output is
    positive, so beyond ``R0`` (negative target) the fit can only approach 0: the pretrained
    function decreases and vanishes near ``R0`` (Supp. Fig. 8d). Seed torch beforehand.

    Parameters
    ----------
    model : SwarmGraphODE
    r_min, r_max : float
        Distance range of the fit, ``0 < r_min < r_max`` (e.g. the particle diameter and
        ``1.5 R0``).
    n_points : int
        Evenly spaced distances.
    steps : int
        Adam iterations.
    lr : float
        Learning rate.
    scale : float, optional
        Prefactor of the target (:func:`pretrain_target`; None = eq. 20's ``1/n``).

    Returns
    -------
    float
        Final mean squared error on the points where the target is >= 0.
    """
    r_min, r_max = _positive(r_min, "r_min"), _positive(r_max, "r_max")
    if r_min >= r_max or n_points < 2 or steps < 1:
        raise InputError(f"pretraining needs r_min < r_max, n_points >= 2, steps >= 1; got {r_min}, "
                         f"{r_max}, {n_points}, {steps}")
    r0 = float(model.cutoff.detach())
    r = torch.linspace(r_min, r_max, n_points, dtype=model.cutoff.dtype, device=model.cutoff.device)
    target = pretrain_target(r, r0, model.box_length, scale)
    params = [p for name, p in model.named_parameters() if name != "cutoff"]
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.mean((model.cutoff_function(r) - target) ** 2)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        positive = target >= 0
        return float(torch.mean((model.cutoff_function(r[positive]) - target[positive]) ** 2))


def ring_length_scale(frame, dq: float, *, q_min: float = 0.0, mask=None) -> float:
    """Length scale ``2 pi / Q*`` of the brightest diffraction ring (``R0`` of Supp. Fig. 8a-c).

    ``Q*`` is the maximum of the azimuthal average of ``frame`` over rings one pixel wide
    (``Q = dq * round(|k|)``, ``k`` the pixel offset from ``Q = 0`` at ``(ny // 2, nx // 2)``),
    for ``Q > q_min`` (exclude the central peak and the beamstop), refined by a parabola through
    the peak and its two neighbours. Paper 000 Methods: as clusters form, a bright ring appears
    close to the central peak at the length scale of the spacing between neighbouring clusters,
    which is the initial cutoff ``R^(0)`` used for pretraining (eq. 20).

    Parameters
    ----------
    frame : array-like, (ny, nx)
        One intensity pattern (e.g. the frame at ``t = 10``), ``Q = 0`` at ``(ny // 2, nx // 2)``.
    dq : float
        Pixel size in reciprocal length units.
    q_min : float
        Rings at ``Q <= q_min`` are ignored.
    mask : array-like bool (ny, nx), optional
        Valid pixels (True).

    Returns
    -------
    float
        ``2 pi / Q*`` in the length units of ``1 / dq``.

    Raises
    ------
    InputError
        A frame that is not 2-D, or fewer than three rings above ``q_min``.
    """
    image = np.asarray(frame, dtype=np.float64)
    dq = _positive(dq, "dq")
    if image.ndim != 2:
        raise InputError(f"frame must be 2-D (ny, nx), got shape {image.shape}")
    ny, nx = image.shape
    ky, kx = np.mgrid[0:ny, 0:nx]
    ring = np.rint(np.hypot(ky - ny // 2, kx - nx // 2)).astype(int)
    valid = np.ones_like(image, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    valid &= ring * dq > q_min
    total = np.bincount(ring[valid], weights=image[valid], minlength=ring.max() + 1)
    count = np.bincount(ring[valid], minlength=ring.max() + 1)
    rings = np.nonzero(count)[0]
    if rings.size < 3:
        raise InputError(f"ring_length_scale: fewer than three rings above q_min = {q_min}")
    average = total[rings] / count[rings]
    k = int(np.argmax(average))
    peak = float(rings[k])
    if 0 < k < rings.size - 1 and rings[k + 1] - rings[k - 1] == 2:
        left, centre, right = average[k - 1:k + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            peak += 0.5 * (left - right) / curvature
    return 2 * math.pi / (peak * dq)


def random_disk_positions(n_series: int, rng: np.random.Generator, *, n_particles: int = N_PARTICLES,
                          radius: float = BOX_LENGTH / 2) -> np.ndarray:
    """Initial positions uniform in a disk of ``radius`` about the origin (paper: ``L/2``).

    Returns
    -------
    ndarray, float64, (n_series, n_particles, 2)
    """
    if n_series < 1 or n_particles < 1:
        raise InputError(f"need n_series >= 1 and n_particles >= 1, got {n_series}, {n_particles}")
    radius = _positive(radius, "disk radius")
    rho = radius * np.sqrt(rng.random((n_series, n_particles)))
    theta = 2 * math.pi * rng.random((n_series, n_particles))
    return np.stack((rho * np.cos(theta), rho * np.sin(theta)), axis=-1)


def simulate_truth(initial_positions, times, *, cutoff: float = CUTOFF, box_length: float = BOX_LENGTH,
                   aggregation: str = "mean", rtol: float = 1e-6, atol: float = 1e-8, device="cpu") -> np.ndarray:
    """Integrate eq. 4 from each initial configuration with torchdiffeq's dopri5, in float64.

    Series are integrated one at a time, so one series' steps never depend on the others.

    Parameters
    ----------
    initial_positions : array-like, (S, N, 2)
    times : array-like, (T,)
        Strictly increasing output times (paper: 0 to 10 step 0.1; evaluation to 50).
    cutoff, box_length : float
        ``R`` and ``L`` of the truth.
    aggregation : {"sum", "mean"}
        See :class:`SwarmRHS`.
    rtol, atol : float
        dopri5 tolerances.
    device : str or torch.device

    Returns
    -------
    ndarray, float64, (S, T, N, 2)
    """
    from torchdiffeq import odeint

    p0 = np.asarray(initial_positions, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if p0.ndim != 3 or p0.shape[-1] != 2 or not np.all(np.isfinite(p0)):
        raise InputError(f"initial positions must be finite (S, N, 2), got shape {p0.shape}")
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0):
        raise InputError("times must be a strictly increasing 1-D array")
    rhs = SwarmRHS(cutoff, box_length, aggregation)
    t_tensor = torch.as_tensor(t, device=device)
    out = np.empty((p0.shape[0], t.size, *p0.shape[1:]))
    with torch.no_grad():
        for s in range(p0.shape[0]):
            trajectory = odeint(rhs, torch.as_tensor(p0[s], device=device), t_tensor, method="dopri5",
                                rtol=rtol, atol=atol)
            out[s] = trajectory.cpu().numpy()
    return out


def render_frames(positions: torch.Tensor, q: torch.Tensor, *, particle_radius: float = PARTICLE_RADIUS,
                  probe_sigma: float | None = None, chunk_size: int = 2048) -> torch.Tensor:
    """Speckle of the particles (paper 000 Methods eq. 16), differentiable in ``positions``.

    ``I(Q) = |sum_j p(r_j) f_s(Q) exp(i Q.r_j)|^2`` with the sphere form factor (eq. 15) and an
    optional Gaussian probe at the origin, through :func:`speckleml.scattering.point_intensity`.

    Parameters
    ----------
    positions : torch.Tensor, (..., N, 2)
    q : torch.Tensor, (ny, nx, 2)
        Detector wave vectors (e.g. ``detector_q_grid(64, dq)``).
    particle_radius : float
        Sphere radius (paper: 0.03 L).
    probe_sigma : float, optional
        Probe amplitude standard deviation; None = plane wave.
    chunk_size : int
        Wave vectors per chunk.

    Returns
    -------
    torch.Tensor, real, (..., ny, nx)
    """
    return point_intensity(positions, q, radii=_positive(particle_radius, "particle radius"),
                           form_factor="sphere", probe_sigma=probe_sigma, chunk_size=chunk_size)


# ------------------------------------------------------------------ the case: geometry, forward model, NODE

@dataclass(frozen=True)
class SwarmGeometry:
    """Scattering geometry of the particles (paper 000 Methods eq. 15-16, with Case study 1's probe).

    The paper gives the detector size (64 x 64) and, in Methods, a Gaussian probe and a masked
    direct beam for every computational case; the sampling, probe width and beamstop are Case
    study 1's (``dQ = pi/L``, ``sigma_p = L/4``, beamstop ~5 px), stated here as defaults.

    Attributes
    ----------
    box_length : float
        ``L`` (length units of the positions).
    detector : int
        Pixels per side (paper: 64).
    dq_factor : float
        Pixel size ``dQ`` in units of ``pi / L``.
    probe_sigma : float
        Gaussian probe amplitude standard deviation as a fraction of ``L``; 0 = plane wave.
    beamstop : float
        Beamstop radius in pixels (pixels within it are masked).
    particle_radius : float
        Sphere radius as a fraction of ``L`` (paper: 0.03).
    """

    box_length: float = BOX_LENGTH
    detector: int = 64
    dq_factor: float = 1.0
    probe_sigma: float = 0.25
    beamstop: float = 5.0
    particle_radius: float = 0.03

    def __post_init__(self):
        if not (self.box_length > 0 and self.detector >= 4 and self.dq_factor > 0 and self.probe_sigma >= 0
                and self.beamstop >= 0 and self.particle_radius > 0):
            raise InputError(f"invalid swarm scattering geometry: {self}")

    def as_attrs(self) -> dict:
        return asdict(self)

    @property
    def dq(self) -> float:
        """Pixel size ``dQ = dq_factor pi / L`` (reciprocal length units)."""
        return self.dq_factor * math.pi / self.box_length


class SwarmSpeckle:
    """Forward model ``positions (..., N, 2) -> I (..., ny, nx)`` of eq. 16, masked by the beamstop.

    Pixels under the beamstop are set to 0 (the loss also skips them through ``mask``).

    Parameters
    ----------
    geometry : SwarmGeometry
    dtype : torch.dtype
    device : torch.device or str
    """

    def __init__(self, geometry: SwarmGeometry, dtype=torch.float64, device="cpu"):
        from ...scattering import beamstop_mask, detector_q_grid

        self.geometry = geometry
        self.q = detector_q_grid(geometry.detector, geometry.dq, dtype=dtype, device=device)
        self.mask = beamstop_mask(geometry.detector, geometry.beamstop, device=device)
        self._probe = geometry.probe_sigma * geometry.box_length or None
        self._radius = geometry.particle_radius * geometry.box_length

    #: Complex values held per wave-vector chunk (positions x wave vectors): ~256 MiB in complex128.
    CHUNK_ELEMENTS = 1 << 24

    def __call__(self, positions: torch.Tensor) -> torch.Tensor:
        # A training batch (4 x 20 frames x 500 particles) with the default 2048 wave vectors per
        # chunk holds ~1.3 GB per intermediate (measured: the paper-size benchmark was killed
        # for memory); the chunk shrinks with the number of scatterers instead.
        n_scatterers = max(1, positions.numel() // positions.shape[-1])
        chunk = int(min(4096, max(64, self.CHUNK_ELEMENTS // n_scatterers)))
        intensity = render_frames(positions, self.q, particle_radius=self._radius, probe_sigma=self._probe,
                                  chunk_size=chunk)
        return intensity * self.mask.to(intensity.dtype)

    def q_map(self) -> np.ndarray:
        """``|Q|`` of every pixel ``(ny, nx)``, reciprocal length units."""
        return torch.linalg.norm(self.q, dim=-1).cpu().numpy()


def training_forward_model(geometry: SwarmGeometry, dtype=torch.float64, device="cpu") -> SwarmSpeckle:
    """The forward model the NODE is trained through: the frames' own geometry (known to the experimenter)."""
    return SwarmSpeckle(geometry, dtype=dtype, device=device)


def simulate_states(n_series: int, rng: np.random.Generator, *, n_particles: int = N_PARTICLES,
                    disk_radius: float = BOX_LENGTH / 2, t_max: float = 10.0, dt: float = 0.1,
                    cutoff: float = CUTOFF, box_length: float = BOX_LENGTH, aggregation: str = "mean",
                    rtol: float = 1e-6, atol: float = 1e-8, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """The case's truth simulator: random disks (:func:`random_disk_positions`) -> eq. 4 trajectories.

    Returns
    -------
    states : ndarray float64 (series, time, N, 2)
    t : ndarray (time,), ``0, dt, ..., t_max``

    Raises
    ------
    InputError
        When ``t_max`` or ``dt`` is not > 0 (or other invalid sizes).
    """
    t_max, dt = _positive(t_max, "t_max"), _positive(dt, "dt")
    t = np.arange(int(round(t_max / dt)) + 1, dtype=np.float64) * dt
    p0 = random_disk_positions(n_series, rng, n_particles=n_particles, radius=disk_radius)
    return simulate_truth(p0, t, cutoff=cutoff, box_length=box_length, aggregation=aggregation, rtol=rtol,
                          atol=atol, device=device), t


#: Distances (fractions of L) at which the training history records the learned cutoff function.
SNAPSHOT_R = np.linspace(0.005, 0.3, 60)


def build_model(initial_cutoff: float, box_length: float = BOX_LENGTH, hidden: int = 10, aggregation: str = "mean",
                pretrain_steps: int = 0, pretrain_lr: float = 1e-2, pretrain_scale: float | None = None,
                pretrain_r_min: float | None = None, pretrain_r_max: float | None = None) -> SwarmGraphODE:
    """The graph NODE of eq. 6 with ``R = initial_cutoff``, pretrained to eq. 20 when ``pretrain_steps > 0``.

    Seed torch first: the MLP's initial weights come from its generator.

    Parameters
    ----------
    initial_cutoff : float
        ``R^(0)`` (length units), e.g. from :func:`ring_length_scale` at the end of the training
        window (paper: t = 10).
    box_length, hidden, aggregation :
        As :class:`SwarmGraphODE`.
    pretrain_steps, pretrain_lr : int, float
        Adam steps and learning rate of :func:`pretrain_cutoff` (0: no pretraining; a model
        file is rebuilt that way and then loads its weights).
    pretrain_scale : float, optional
        Prefactor of the target ``(R0 - r)/r`` (None: eq. 20's ``1/n``). Measured (60
        particles, rtol 1e-4): 1/n gives F(0.1) ~ 60 and ~820 solver steps per 20-step
        window, 1 gives ~160.
    pretrain_r_min, pretrain_r_max : float, optional
        Distance range of the pretraining (default ``0.05 R0`` to ``1.5 R0``).
    """
    model = SwarmGraphODE(initial_cutoff, box_length=box_length, hidden=hidden, aggregation=aggregation)
    if pretrain_steps > 0:
        r0 = float(initial_cutoff)
        pretrain_cutoff(model, r_min=pretrain_r_min or 0.05 * r0, r_max=pretrain_r_max or 1.5 * r0,
                        steps=int(pretrain_steps), lr=pretrain_lr, scale=pretrain_scale)
    return model


def model_architecture(model: SwarmGraphODE) -> dict:
    """Keyword arguments of :func:`build_model` that rebuild ``model``'s shape (no pretraining)."""
    return {"initial_cutoff": float(model.cutoff.detach()), "box_length": model.box_length,
            "hidden": int(model.net[0].out_features), "aggregation": model.aggregation}


def learned_cutoff(model: SwarmGraphODE, r=None) -> np.ndarray:
    """``[R, F_NN(r_1), ..., F_NN(r_k)]`` as float64 numpy; ``r`` defaults to ``SNAPSHOT_R * L``."""
    r = SNAPSHOT_R * model.box_length if r is None else np.asarray(r, np.float64)
    with torch.no_grad():
        values = model.cutoff_function(torch.as_tensor(r)).cpu().numpy().astype(np.float64)
    return np.concatenate(([float(model.cutoff.detach())], values))


CASE = register_case(DynamicsCase(
    name=SYSTEM, simulate=simulate_states, geometry=SwarmGeometry, forward_model=training_forward_model,
    build_model=build_model, architecture=model_architecture, snapshot=learned_cutoff,
    snapshot_label="[R, F_NN(r)] at r = SNAPSHOT_R * L (systems.swarm)",
))
