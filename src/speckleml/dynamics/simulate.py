"""Ground truth and speckle of the Kuramoto case: integrate the true ODE, then scatter.

:func:`simulate_states` integrates the true Kuramoto system from random phases with
``torchdiffeq`` (dopri5, float64), drops the transient, and re-zeroes time.
:func:`speckle_frames` turns states into detector frames with :class:`MomentsSpeckle`,
optionally with Poisson noise (``lambda_max``, paper 000 §2.2).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..errors import InputError
from ..progress import progress
from .systems.kuramoto import KuramotoRHS, MomentsSpeckle, SpeckleGeometry, log_kernel, random_phases

log = logging.getLogger(__name__)


def time_grid(t_max: float, dt: float, n_drop: int) -> np.ndarray:
    """Integration times ``0, dt, ..., t_max + n_drop dt`` (the first ``n_drop`` are dropped later)."""
    if dt <= 0 or t_max <= 0:
        raise InputError(f"t_max and dt must be > 0, got t_max={t_max}, dt={dt}")
    n = int(round(t_max / dt)) + 1 + n_drop
    return np.arange(n, dtype=np.float64) * dt


def simulate_states(n_series: int, size: int, kernel: np.ndarray, coupling: float, t_max: float, dt: float,
                    n_drop: int, rng: np.random.Generator, rtol: float = 1e-7, atol: float = 1e-9,
                    chunk: int = 10, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Integrate the true system from random phases.

    Parameters
    ----------
    n_series, size : int
        Number of initial conditions and lattice sites per side.
    kernel : ndarray (k, k)
        True coupling kernel.
    coupling : float
        K.
    t_max, dt : float
        Kept window ``[0, t_max]`` and its step.
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
    counts (:func:`speckleml.scattering.poisson_noise`).

    Returns
    -------
    frames : ndarray (series, time, n, n) float32
    mask : ndarray (n, n) bool, valid pixels
    """
    from ..scattering import poisson_noise

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


def true_kernel(size: int, sigma: float, normalization: str) -> np.ndarray:
    """The config's true coupling kernel (:func:`log_kernel`)."""
    return log_kernel(size, sigma, normalization)
