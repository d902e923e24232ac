"""Synthetic speckle with known dynamics: the one Ornstein-Uhlenbeck field generator and the
one Poisson photon-count sampler of the package (used by the xpcs chain's synthetic stacks,
the clustering study's simulator, the tests and the benchmarks).

A complex scattered field ``E`` whose every element follows the Ornstein-Uhlenbeck process

    E(0) = xi(0),   E(t) = a_t E(t-1) + sqrt(1 - a_t^2) xi(t),   0 <= a_t <= 1,

with ``xi`` circular complex Gaussian white noise (``<|xi|^2> = 1``), is stationary with unit
power and has the field correlation ``<E(t1) E*(t2)> = prod_{t1 < t <= t2} a_t``. For a
constant rate ``a_t = exp(-Gamma)`` the Siegert relation gives the intensity correlation
``g2(lag) - 1 = exp(-2 Gamma lag)`` (contrast 1): the two-time map of paper 001 eq. 1-2 is
``C2(t1, t2) = exp(-2 sum Gamma)``.
"""

from __future__ import annotations

from itertools import repeat
from typing import Iterable, Iterator

import numpy as np


def complex_gaussian(shape, rng: np.random.Generator) -> np.ndarray:
    """Circular complex Gaussian white noise with ``<|xi|^2> = 1``.

    Parameters
    ----------
    shape : tuple of int
        Shape of the noise array.
    rng : numpy.random.Generator
        Draws the real part, then the imaginary part (two ``standard_normal`` calls).

    Returns
    -------
    ndarray, complex128, ``shape``
    """
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def ou_field(decay: Iterable, shape, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Successive fields ``E(0), E(1), ...`` of an Ornstein-Uhlenbeck process (module docstring).

    Parameters
    ----------
    decay : iterable of float or ndarray
        Field decay factor ``a_t = exp(-Gamma_t)`` of each step ``t-1 -> t`` (so one fewer than
        the frames wanted); each a scalar or an array broadcastable to ``shape`` (per-pixel
        rates), in [0, 1]. It is consumed lazily, one step per yielded field.
    shape : tuple of int
        Shape of the field (e.g. detector pixels ``(y, x)``).
    rng : numpy.random.Generator
        Source of the noise; one :func:`complex_gaussian` draw per yielded field.

    Yields
    ------
    ndarray, complex128, ``shape``
        The field at ``t = 0, 1, ...``; unit mean power at every step.
    """
    field = complex_gaussian(shape, rng)
    yield field
    for a in decay:
        field = a * field + np.sqrt(1.0 - a * a) * complex_gaussian(shape, rng)
        yield field


def poisson_counts(intensity: np.ndarray, mean_counts: float | None, rng: np.random.Generator) -> np.ndarray:
    """Scale ``intensity`` to a mean of ``mean_counts`` per pixel and draw Poisson photon counts.

    Parameters
    ----------
    intensity : ndarray, any shape
        Non-negative intensity; its mean over the whole array is the unit (the scaling keeps
        the array's dtype).
    mean_counts : float or None
        Mean photon count per pixel and frame; ``None`` returns the normalised intensity
        (mean 1) without noise.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, float32, ``intensity.shape``
        Counts (integers stored as float32), or the noise-free normalised intensity.

    Raises
    ------
    ValueError
        When ``mean_counts`` is negative.
    """
    if mean_counts is not None and mean_counts < 0:
        raise ValueError(f"mean_counts must be >= 0, got {mean_counts}")
    scaled = intensity / intensity.mean()
    if mean_counts is None:
        return scaled.astype(np.float32)
    return rng.poisson(scaled * mean_counts).astype(np.float32)


def ou_speckle(n_frames: int, size: int, tau: float, seed: int = 0, aperture: float = 0.25,
               mean_counts: float | None = None, n_series: int = 1) -> np.ndarray:
    """Far-field speckle of a sample whose scattering field decorrelates exponentially.

    The real-space field is an Ornstein-Uhlenbeck process (:func:`ou_field`) with the constant
    decay ``a = exp(-1/tau)``, seen through a circular aperture; the far field is ``|FFT|^2``.
    Hence the intensity autocorrelation of every pixel is ``g2(lag) - 1 = exp(-2 lag / tau)``
    (Siegert, contrast 1), the APS convention with ``gamma = 1``.

    Parameters
    ----------
    n_frames, size : int
        Frames per series and detector side (pixels).
    tau : float
        Field correlation time in frames (``g2 - 1 = exp(-2 t / tau)``).
    seed : int
        Seed of the random field and of the Poisson draws.
    aperture : float
        Aperture radius as a fraction of ``size``; speckles are ``~1/(2 aperture)`` px wide.
    mean_counts : float, optional
        When given, frames are Poisson counts with this mean per pixel (:func:`poisson_counts`).
    n_series : int
        Independent series.

    Returns
    -------
    ndarray, float32, (n_series, n_frames, size, size)
        Intensity normalised to mean 1 over the whole array, or Poisson counts.

    Raises
    ------
    ValueError
        When ``n_frames < 1``, ``size < 4`` or ``tau <= 0``.
    """
    if n_frames < 1 or size < 4 or tau <= 0:
        raise ValueError("need n_frames >= 1, size >= 4 and tau > 0")
    rng = np.random.default_rng(seed)
    a = np.exp(-1.0 / tau)
    yy, xx = np.indices((size, size)) - size // 2
    pupil = (np.hypot(yy, xx) <= aperture * size).astype(np.float64)
    out = np.empty((n_series, n_frames, size, size), np.float32)
    for s in range(n_series):
        for t, field in enumerate(ou_field(repeat(a, n_frames - 1), (size, size), rng)):
            amplitude = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(pupil * field)))
            out[s, t] = np.abs(amplitude) ** 2
    # noise-free output is the normalised intensity too (mean 1), as before the Poisson draw
    return poisson_counts(out, mean_counts, rng)
