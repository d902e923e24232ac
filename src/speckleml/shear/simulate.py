"""Monte Carlo speckle of sheared dilute colloids (paper 003, Sec. II A-B).

A configuration is ``4 nL^2`` particles uniform in ``[-L, L]^2`` with log-normal radii
``ln R ~ N(ln R0, R_s)``; the transformation of eq. 3 moves them by an affine simple shear
``x' = x + gamma y`` (``gamma = (gamma L) / L``) plus Gaussian non-affine steps of standard
deviation ``D2``. Only particles inside the beam ``[-L/2, L/2]^2`` scatter, before and after.
The intensity is eq. 1-2 (volume-weighted sphere amplitudes normalised by ``sum V^2``, the form
factor from :func:`speckleml.scattering.sphere_form_factor`) on the polar ``(q, theta)`` grid,
summed by the polar fast path :func:`speckleml.scattering.polar_intensity`.

Two estimators of the ensemble correlation ``g(q) = <I I'> / <I>^2`` (eq. 4):

``speckle`` (the paper's)
    average the product of the two speckle patterns over configurations.
``pairs`` (beyond the paper)
    average, per configuration, the part of ``I I'`` that survives the average over absolute
    positions: ``[S_F S_F' + |sum_j a_j^2 exp(i q.dr_j)|^2 - sum_j a_j^4] / (S S')`` with
    ``a_j = V_j F_j(q)``, ``S_F = sum a_j^2``, ``S = sum V_j^2`` and the sum over particles in the
    beam both times. Cross terms between distinct particles average to zero up to
    ``O(1 / (q L))`` (< 1e-4 here), so both estimators have the same expectation, but ``pairs``
    averages over particles as well as configurations: far fewer configurations give the same
    precision, at half the cost per configuration.
``steps`` (beyond the paper)
    ``pairs`` with the phase factor of the Gaussian non-affine steps replaced by its average
    (conditional Monte Carlo, Rao-Blackwellisation): ``E[exp(i q.(d_j - d_k))] =
    exp(-q^2 (s_j^2 + s_k^2) / 2)`` for independent steps of standard deviation ``s_j`` per axis,
    so the cross terms are ``|sum_both a_j^2 exp(-q^2 s_j^2 / 2) exp(i q_x gamma y_j)|^2 -
    sum_both a_j^4 exp(-q^2 s_j^2)`` with the affine displacement ``(gamma y_j, 0)`` only. Same
    expectation as ``pairs`` except for the particles within a few ``D2`` of the beam edge, whose
    membership of the beam depends on their step (a share ``~4 D2 / L`` < 1.5 %; the test
    against ``pairs`` bounds the difference); far less variance where the steps decorrelate the
    speckle (``q D2 > 1``), which is where the polydispersity plateau is read.

The reference code (github.com/ljding94/Sheared_Suspension) scales the non-affine step of a
particle by ``sqrt(R0 / R)`` (Stokes-Einstein); ``nonaffine_scaling="reference"`` does that,
the default ``"paper"`` follows eq. 3.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np
import torch

from ..progress import progress
from ..scattering import polar_intensity, sphere_form_factor, sphere_volume

from .system import (ESTIMATORS, PAIR_ESTIMATORS, PARAM_LABELS, PARAM_NAMES, SCALINGS, PolarGrid,  # noqa: F401
                     ShearSystem, theory_g)


def sample_configurations(system: ShearSystem, n_configs: int, beam: float, generator: torch.Generator,
                          nonaffine_scaling: str = "paper", dtype=torch.float64, device="cpu"):
    """Draw configurations and their transformed copies (paper 003 eq. 3).

    Parameters
    ----------
    system : ShearSystem
        ``(nL^2, R_s, D2, gamma L)`` in units of R0.
    n_configs : int
        Configurations to draw.
    beam : float
        Beam size L (R0); particles fill ``[-L, L]^2``.
    generator : torch.Generator
        CPU generator; every number is drawn from it in float64 (device- and dtype-independent).
    nonaffine_scaling : {"paper", "reference"}
        Steps ``N(0, D2)`` (eq. 3) or times ``sqrt(R0 / R)`` (reference code).
    dtype, device
        Of the returned tensors.

    Returns
    -------
    positions, moved : torch.Tensor, (n_configs, 4 nL^2, 2)
        Coordinates (R0) before and after the transformation, in ``[-L, L]^2`` before.
    radii : torch.Tensor, (n_configs, 4 nL^2)
        ``ln R ~ N(0, R_s)`` (R0).

    Raises
    ------
    ValueError
        Unknown ``nonaffine_scaling``.
    """
    if nonaffine_scaling not in SCALINGS:
        raise ValueError(f"nonaffine_scaling must be one of {SCALINGS}, got {nonaffine_scaling!r}")
    n_particles = max(int(round(4 * system.density)), 1)
    shape = (n_configs, n_particles)
    # draw in float64 on the CPU generator so results do not depend on device or dtype
    positions = (torch.rand(*shape, 2, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * beam
    radii = torch.exp(system.r_s * torch.randn(*shape, generator=generator, dtype=torch.float64))
    steps = system.d2 * torch.randn(*shape, 2, generator=generator, dtype=torch.float64)
    if nonaffine_scaling == "reference":
        steps = steps * torch.sqrt(1.0 / radii)[..., None]  # D ~ 1/R (R0 = 1)
    gamma = system.gamma_l / beam
    moved = positions.clone()
    moved[..., 0] += gamma * positions[..., 1]
    moved = moved + steps
    to = dict(dtype=dtype, device=device)
    return positions.to(**to), moved.to(**to), radii.to(**to)


def in_beam(positions: torch.Tensor, beam: float) -> torch.Tensor:
    """Mask of particles inside the illuminated square ``[-L/2, L/2]^2``.

    Parameters
    ----------
    positions : torch.Tensor, (..., N, 2)
    beam : float
        Beam size L (same units).

    Returns
    -------
    torch.Tensor, bool, (..., N)
    """
    return (positions.abs() < beam / 2).all(dim=-1)


def pack(mask: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Move the selected particles of each configuration to the front and crop to the largest count.

    Padding keeps its values but gets ``mask`` False, so callers zero its weights. Cuts the work
    of a configuration from ``4 nL^2`` particles to the ``~nL^2`` that scatter.

    Parameters
    ----------
    mask : torch.Tensor, bool, (B, N)
    *tensors : torch.Tensor, (B, N, ...)

    Returns
    -------
    tuple of torch.Tensor
        The packed mask ``(B, W)`` and each tensor ``(B, W, ...)``, ``W`` = largest count (>= 1).
    """
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    width = max(int(mask.sum(dim=1).max()), 1)
    order = order[:, :width]
    packed = [torch.gather(mask, 1, order)]
    for tensor in tensors:
        index = order.reshape(*order.shape, *([1] * (tensor.ndim - 2))).expand(-1, -1, *tensor.shape[2:])
        packed.append(torch.gather(tensor, 1, index))
    return tuple(packed)


def particle_amplitudes(radii: torch.Tensor, mask: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1-2 weights ``a_j(q) = V_j F(q R_j)`` and the normalisation ``sum_j V_j^2`` (paper 003).

    Parameters
    ----------
    radii : torch.Tensor, (B, N)
        Radii (units of R0).
    mask : torch.Tensor, bool, (B, N)
        Particles that scatter (in the beam); the others get zero weight.
    q : torch.Tensor, (n_q,)
        Wave-vector magnitudes (1/R0).

    Returns
    -------
    amplitude : torch.Tensor, (B, N, n_q)
    norm : torch.Tensor, (B,)
        ``sum_j V_j^2`` over the masked particles.
    """
    volume = sphere_volume(radii) * mask
    amplitude = volume[..., None] * sphere_form_factor(q, radii[..., None])
    return amplitude, (volume**2).sum(dim=1)


def speckle_patterns(positions: torch.Tensor, radii: torch.Tensor, beam: float, q: torch.Tensor,
                     theta: torch.Tensor, q_chunk: int = 10) -> torch.Tensor:
    """Normalised intensity of paper 003 eq. 1-2, ``|sum_j V_j F(q R_j) e^{i q.r_j}|^2 / sum_j V_j^2``.

    Parameters
    ----------
    positions : torch.Tensor, (configs, N, 2)
        Positions (R0); only those in the beam scatter.
    radii : torch.Tensor, (configs, N)
    beam : float
        Beam size L (R0).
    q, theta : torch.Tensor, 1-D
        Polar grid (1/R0, radians).
    q_chunk : int
        Magnitudes per chunk of :func:`speckleml.scattering.polar_intensity`.

    Returns
    -------
    torch.Tensor, (configs, n_q, n_theta)
    """
    mask, positions, radii = pack(in_beam(positions, beam), positions, radii)
    amplitude, norm = particle_amplitudes(radii, mask, q)
    intensity = polar_intensity(positions, q, theta, amplitude, q_chunk=q_chunk)
    return intensity / norm.clamp_min(torch.finfo(norm.dtype).tiny)[:, None, None]


def pair_products(positions: torch.Tensor, moved: torch.Tensor, radii: torch.Tensor, beam: float,
                  q: torch.Tensor, theta: torch.Tensor, q_chunk: int = 10, step_std: torch.Tensor | None = None,
                  gamma: float = 0.0):
    """Position-averaged ``I``, ``I'`` and ``I I'`` of each configuration (``pairs`` and ``steps`` estimators).

    Parameters
    ----------
    positions, moved : torch.Tensor, (configs, N, 2)
        Positions before and after eq. 3 (R0).
    radii : torch.Tensor, (configs, N)
    beam : float
    q, theta : torch.Tensor, 1-D
    q_chunk : int
    step_std : torch.Tensor, (configs, N), optional
        ``steps`` estimator: standard deviation per axis of each particle's non-affine step
        (``D2``, or ``D2 sqrt(R0 / R)`` with the reference scaling); the cross terms are then
        averaged over the steps analytically and use the affine displacement ``(gamma y, 0)``.
        None: ``pairs`` (the sampled displacement ``moved - positions``).
    gamma : float
        Shear strain ``gamma L / L`` (``steps`` only).

    Returns
    -------
    mean_before, mean_after : torch.Tensor, (configs, n_q, 1)
        ``S_F / S`` and ``S_F' / S'`` (the incoherent intensities; isotropic).
    product : torch.Tensor, (configs, n_q, n_theta)
        ``[S_F S_F' + |sum_both w_j exp(i q.dr_j)|^2 - sum_both w_j^2] / (S S')`` with ``w_j = a_j^2``
        (pairs) or ``a_j^2 exp(-q^2 s_j^2 / 2)`` (steps).
    """
    before, after = in_beam(positions, beam), in_beam(moved, beam)
    if step_std is None:
        shift = moved - positions
    else:
        shift = torch.stack([gamma * positions[..., 1], torch.zeros_like(positions[..., 1])], dim=-1)
    extra = () if step_std is None else (step_std,)
    # keep the ~nL^2 particles that scatter before or after (of 4 nL^2): the form factor, the
    # costliest term after the phase sums, is then evaluated for them only
    mask, radii, before, after, shift, *extra = pack(before | after, radii, before, after, shift, *extra)
    before, after = before & mask, after & mask
    both = before & after
    amplitude, _ = particle_amplitudes(radii, mask, q)
    volume2 = sphere_volume(radii) ** 2
    norm_before = (volume2 * before).sum(dim=1)
    norm_after = (volume2 * after).sum(dim=1)
    squared = amplitude**2
    incoherent_before = (squared * before[..., None]).sum(dim=1)
    incoherent_after = (squared * after[..., None]).sum(dim=1)
    weight = squared
    if extra:  # E[exp(i q.d)] = exp(-q^2 s^2 / 2) for a Gaussian step of std s per axis
        weight = squared * torch.exp(-0.5 * (q * extra[0][..., None]) ** 2)
    mask, shift, weight = pack(both, shift, weight)
    weight = weight * mask[..., None]
    coherent = polar_intensity(shift, q, theta, weight, q_chunk=q_chunk)
    self_term = (weight**2).sum(dim=1)
    tiny = torch.finfo(norm_before.dtype).tiny
    norm = (norm_before * norm_after).clamp_min(tiny)[:, None]
    product = (incoherent_before * incoherent_after - self_term)[..., None] + coherent
    return ((incoherent_before / norm_before.clamp_min(tiny)[:, None])[..., None],
            (incoherent_after / norm_after.clamp_min(tiny)[:, None])[..., None],
            product / norm[..., None])


def step_deviations(system: ShearSystem, radii: torch.Tensor, nonaffine_scaling: str = "paper") -> torch.Tensor:
    """Standard deviation per axis of each particle's non-affine step (paper 003 eq. 3).

    Parameters
    ----------
    system : ShearSystem
    radii : torch.Tensor, (configs, N)
        Radii (R0).
    nonaffine_scaling : {"paper", "reference"}
        ``D2`` for every particle (eq. 3) or ``D2 sqrt(R0 / R)`` (reference code).

    Returns
    -------
    torch.Tensor, (configs, N)
    """
    if nonaffine_scaling == "reference":
        return system.d2 * torch.sqrt(1.0 / radii)
    return torch.full_like(radii, system.d2)


def incoherent_terms(positions: torch.Tensor, moved: torch.Tensor, radii: torch.Tensor, beam: float,
                     q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The theta-independent part of the ``pairs`` product, without any phase sum.

    ``X = S_F / S`` (the incoherent intensity before the move) and ``A = S_F S_F' / (S S')``:
    the ``pairs`` product of :func:`pair_products` is ``A`` plus the cross terms of distinct
    particles, ``[|sum_both a_j^2 exp(i q.dr_j)|^2 - sum_both a_j^4] / (S S')``. At high ``q`` the
    cross terms vanish and ``<A> / <X>^2 - 1``, the relative variance of the incoherent intensity
    over configurations, is the polydispersity plateau of ``g`` (paper Fig. 3a). It costs
    ``O(N n_q)`` against ``O(N n_q n_theta)`` for the cross terms.

    Parameters
    ----------
    positions, moved : torch.Tensor, (configs, N, 2)
        Positions before and after eq. 3 (R0).
    radii : torch.Tensor, (configs, N)
    beam : float
    q : torch.Tensor, (n_q,)

    Returns
    -------
    incoherent, product : torch.Tensor, (configs, n_q)
        ``X`` and ``A``.
    """
    before, after = in_beam(positions, beam), in_beam(moved, beam)
    mask, radii, before, after = pack(before | after, radii, before, after)
    amplitude, _ = particle_amplitudes(radii, mask, q)
    squared, volume2 = amplitude**2, sphere_volume(radii) ** 2 * mask
    tiny = torch.finfo(squared.dtype).tiny
    norm_before = (volume2 * before).sum(dim=1).clamp_min(tiny)[:, None]
    norm_after = (volume2 * after).sum(dim=1).clamp_min(tiny)[:, None]
    incoherent_before = (squared * before[..., None]).sum(dim=1) / norm_before
    incoherent_after = (squared * after[..., None]).sum(dim=1) / norm_after
    return incoherent_before, incoherent_before * incoherent_after


class CorrelationAccumulator:
    """Running sums of ``I``, ``I^2``, ``P = I I'``, ``P^2`` and ``I P`` (float64) for eq. 4 and its error.

    Parameters
    ----------
    shape : (n_q, n_theta)
        Grid of the sums.
    """

    def __init__(self, shape: tuple[int, int]):
        self.count = 0
        self.sums = {k: np.zeros(shape) for k in ("i", "i2", "p", "p2", "ip")}
        self.extra, self.extra_count = {}, 0

    def add(self, intensity: torch.Tensor, product: torch.Tensor, incoherent: torch.Tensor | None = None) -> None:
        """Add a batch: ``intensity`` (B, n_q, n_theta or 1) before the move, ``product`` (B, n_q, n_theta),
        and for ``pairs`` optionally ``A`` (B, n_q, 1) of :func:`incoherent_terms` (needed with extras)."""
        i = intensity.double().expand_as(product)
        p = product.double()
        pairs = [("i", i), ("i2", i * i), ("p", p), ("p2", p * p), ("ip", i * p)]
        if incoherent is not None:
            a = incoherent.double().expand_as(product)
            pairs += [("a", a), ("a2", a * a), ("pa", p * a), ("ia", i * a)]
        for key, value in pairs:
            self.sums[key] = self.sums.get(key, 0.0) + value.sum(dim=0).cpu().numpy()
        self.count += product.shape[0]

    def add_incoherent(self, incoherent: torch.Tensor, product: torch.Tensor) -> None:
        """Add ``X`` and ``A`` (B, n_q) of :func:`incoherent_terms` for extra configurations (``pairs``)."""
        x, a = incoherent.double()[..., None], product.double()[..., None]
        for key, value in (("x", x), ("x2", x * x), ("a", a), ("a2", a * a), ("xa", x * a)):
            self.extra[key] = self.extra.get(key, 0.0) + value.sum(dim=0).cpu().numpy()
        self.extra_count += incoherent.shape[0]

    def result(self) -> dict[str, np.ndarray]:
        """``mean_i``, ``mean_ii`` and ``g = mean_ii / mean_i^2`` with its delta-method standard error.

        With extra configurations (:meth:`add_incoherent`), ``mean_i`` and the theta-independent
        part ``<A>`` of ``mean_ii`` average over all configurations, the cross terms
        ``<P - A>`` over the full ones only: same expectation, less variance.
        """
        m = max(self.count, 1)
        mean = {k: v / m for k, v in self.sums.items()}
        i, p = mean["i"], mean["p"]
        if self.extra_count:
            return self._result_with_extra(mean)
        var_i = np.maximum(mean["i2"] - i * i, 0.0)
        var_p = np.maximum(mean["p2"] - p * p, 0.0)
        cov = mean["ip"] - i * p
        g = p / i**2
        # var(P/I^2) ~ var(P)/I^4 - 4 P cov(P, I)/I^5 + 4 P^2 var(I)/I^6, over m configurations
        var_g = (var_p / i**4 - 4 * p * cov / i**5 + 4 * p * p * var_i / i**6) / max(m - 1, 1)
        return {"mean_i": i, "mean_ii": p, "g": g, "g_err": np.sqrt(np.maximum(var_g, 0.0))}

    def _result_with_extra(self, mean: dict) -> dict[str, np.ndarray]:
        """:meth:`result` when extra configurations hold ``X`` and ``A`` (full ones count in both)."""
        m, n = max(self.count, 1), self.count + self.extra_count
        full = {"x": mean["i"], "x2": mean["i2"], "a": mean["a"], "a2": mean["a2"], "xa": mean["ia"]}
        tot = {k: (full[k] * self.count + self.extra[k]) / n for k in full}
        i, a = tot["x"], tot["a"]
        cross, var_cross = mean["p"] - mean["a"], mean["p2"] - 2 * mean["pa"] + mean["a2"]
        var_cross = np.maximum(var_cross - cross * cross, 0.0)
        p = a + cross
        var_i, var_a = np.maximum(tot["x2"] - i * i, 0.0), np.maximum(tot["a2"] - a * a, 0.0)
        cov = tot["xa"] - i * a
        # delta method: the cross terms over m configurations, A and X over all n
        var_total = (var_a - 4 * p * cov / i + 4 * p * p * var_i / i**2) / max(n - 1, 1)
        var_g = (var_cross / max(m - 1, 1) + var_total) / i**4
        return {"mean_i": i, "mean_ii": p, "g": p / i**2, "g_err": np.sqrt(np.maximum(var_g, 0.0))}


def correlation_batches(system: ShearSystem, n_configs: int, batch: int, grid: PolarGrid,
                        generator: torch.Generator, estimator: str = "speckle",
                        nonaffine_scaling: str = "paper", dtype=torch.float32,
                        device="cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(intensity, product)`` for batches of configurations of one system.

    Parameters
    ----------
    system, n_configs, batch, grid, generator, estimator, nonaffine_scaling, dtype, device
        See :func:`simulate_correlation`.

    Yields
    ------
    intensity : torch.Tensor, (B, n_q, n_theta) or (B, n_q, 1)
        ``I`` before the move (speckle) or its position average (pairs, steps).
    product : torch.Tensor, (B, n_q, n_theta)
        ``I I'`` (speckle) or its position average (pairs; steps: also averaged over the steps).
    incoherent : torch.Tensor, (B, n_q, 1) or None
        ``A`` of :func:`incoherent_terms` (pairs, steps), None (speckle).

    Raises
    ------
    ValueError
        Unknown ``estimator``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    q = torch.as_tensor(grid.q(), dtype=dtype, device=device)
    theta = torch.as_tensor(grid.theta(), dtype=dtype, device=device)
    done = 0
    while done < n_configs:
        size = min(batch, n_configs - done)
        positions, moved, radii = sample_configurations(system, size, grid.beam, generator,
                                                        nonaffine_scaling, dtype, device)
        if estimator == "speckle":
            before = speckle_patterns(positions, radii, grid.beam, q, theta)
            after = speckle_patterns(moved, radii, grid.beam, q, theta)
            yield before, before * after, None
        else:
            steps = step_deviations(system, radii, nonaffine_scaling) if estimator == "steps" else None
            mean_before, mean_after, product = pair_products(positions, moved, radii, grid.beam, q, theta,
                                                             step_std=steps, gamma=system.gamma_l / grid.beam)
            yield mean_before, product, mean_before * mean_after
        done += size


def simulate_correlation(system: ShearSystem, n_configs: int, grid: PolarGrid, seed: int | np.random.SeedSequence,
                         estimator: str = "speckle", nonaffine_scaling: str = "paper", batch: int = 8,
                         dtype=torch.float32, device="cpu", show_progress: bool = False,
                         incoherent_configs: int = 0) -> dict[str, np.ndarray]:
    """Average ``<I>``, ``<I I'>`` and ``g(q, theta)`` over ``n_configs`` configurations.

    Parameters
    ----------
    system : ShearSystem
    n_configs : int
        Monte Carlo configurations (paper: 1e4).
    grid : PolarGrid
    seed : int or SeedSequence
        Seeds the torch CPU generator that draws every configuration (same seed -> same arrays).
    estimator : {"speckle", "pairs", "steps"}
    nonaffine_scaling : {"paper", "reference"}
    batch : int
        Configurations per vectorised batch (memory ~ batch x nL^2 x 2048 x 24 bytes).
    dtype, device
        Precision and device of the scattering sums (float32 keeps phases to ~1e-4 rad).
    show_progress : bool
    incoherent_configs : int
        ``pairs`` only: extra configurations, drawn after the ``n_configs`` full ones, for the
        theta-independent terms ``<X>`` and ``<A>`` (:func:`incoherent_terms`), which need no
        phase sum (~1/10 of the cost of a pairs configuration). They set the polydispersity plateau, a variance over
        configurations that few configurations estimate poorly. 0: the estimator as before
        (same arrays for the same seed).

    Returns
    -------
    dict with ``mean_i``, ``mean_ii``, ``g``, ``g_err`` (n_q, n_theta) and the radial/angular
    averages ``g_q`` (mean over theta) and ``g_theta`` (mean over q).

    Raises
    ------
    ValueError
        ``n_configs < 1``, ``batch < 1``, ``incoherent_configs < 0``, or extra configurations
        with the speckle estimator.
    """
    if n_configs < 1 or batch < 1 or incoherent_configs < 0:
        raise ValueError(f"need n_configs >= 1, batch >= 1, incoherent_configs >= 0, got {n_configs}, {batch}, "
                         f"{incoherent_configs}")
    if incoherent_configs and estimator not in PAIR_ESTIMATORS:
        raise ValueError("incoherent_configs needs the pairs or steps estimator")
    generator = make_generator(seed)
    acc = CorrelationAccumulator((grid.n_q, grid.n_theta))
    batches = correlation_batches(system, n_configs, batch, grid, generator, estimator,
                                  nonaffine_scaling, dtype, device)
    if show_progress:
        batches = progress(batches, "configurations", total=-(-n_configs // batch))
    for intensity, product, incoherent in batches:
        acc.add(intensity, product, incoherent if incoherent_configs else None)
    q = torch.as_tensor(grid.q(), dtype=dtype, device=device)
    done, size = 0, max(batch, 256)  # no phase sums: large batches are cheap in memory
    while done < incoherent_configs:
        positions, moved, radii = sample_configurations(system, min(size, incoherent_configs - done), grid.beam,
                                                        generator, nonaffine_scaling, dtype, device)
        acc.add_incoherent(*incoherent_terms(positions, moved, radii, grid.beam, q))
        done += len(radii)
    out = acc.result()
    out["g_q"] = out["g"].mean(axis=1)
    out["g_theta"] = out["g"].mean(axis=0)
    return out


def mc_settings(*, batch: int, configs: int, dtype: str, device: str) -> dict:
    """Torch ``dtype`` and ``device`` of the Monte Carlo sums, checked once.

    Parameters
    ----------
    batch, configs : int
        Configurations per batch and per system (>= 1).
    dtype : {"float32", "float64"}
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    dict
        ``dtype`` (torch.dtype) and ``device`` (torch.device), keyword arguments of
        :func:`simulate_correlation`.

    Raises
    ------
    InputError
        ``batch < 1``, ``configs < 1``, a dtype other than float32/float64, or an unknown or
        unavailable device.
    """
    from ..errors import InputError
    from ..runtime import resolve_device

    if batch < 1 or configs < 1:
        raise InputError(f"batch and configs must be >= 1, got {batch} and {configs}")
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
    return {"dtype": getattr(torch, dtype), "device": resolve_device(device)}


def monte_carlo_attrs(grid: PolarGrid, estimator: str, nonaffine_scaling: str, incoherent_configs: int = 0) -> dict:
    """Store attributes that say how ``g`` was estimated and on which grid.

    Returns
    -------
    dict
        ``estimator``, ``nonaffine_scaling``, ``incoherent_configs`` and ``grid`` (beam, q_min,
        q_max, n_q, n_theta).
    """
    return {"estimator": estimator, "nonaffine_scaling": nonaffine_scaling, "incoherent_configs": incoherent_configs,
            "grid": dataclasses.asdict(grid)}


def make_generator(seed: int | np.random.SeedSequence) -> torch.Generator:
    """A torch CPU generator seeded from an int or a :class:`numpy.random.SeedSequence`.

    Returns
    -------
    torch.Generator
        On the CPU (configurations are drawn there whatever the device of the sums).
    """
    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1, dtype=np.uint64)[0] % (2**63))
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return generator
