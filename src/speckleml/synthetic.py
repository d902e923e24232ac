"""Synthetic speckle stacks with known dynamics, for tests and for runs without real data."""

from __future__ import annotations

import numpy as np


def ou_speckle(n_frames: int, size: int, tau: float, seed: int = 0, aperture: float = 0.25,
               mean_counts: float | None = None, n_series: int = 1) -> np.ndarray:
    """Speckle of a sample whose scattering field decorrelates exponentially.

    The real-space field is an Ornstein-Uhlenbeck process of complex Gaussians,
    ``E(t+1) = a E(t) + sqrt(1 - a^2) xi`` with ``a = exp(-1/tau)``, seen through a circular
    aperture; the far field is ``|FFT|^2``. Hence the intensity autocorrelation of every
    pixel is ``g2(lag) - 1 = exp(-2 lag / tau)`` (Siegert, contrast 1), the APS convention
    with ``gamma = 1``.

    Parameters
    ----------
    n_frames, size : int
        Frames per series and detector size (pixels).
    tau : float
        Field correlation time in frames (``g2 - 1 = exp(-2 t / tau)``).
    seed : int
        Seed of the random field.
    aperture : float
        Aperture radius as a fraction of ``size``; speckles are ``~1/(2 aperture)`` px wide.
    mean_counts : float, optional
        When given, frames are Poisson counts with this mean per pixel.
    n_series : int
        Independent series.

    Returns
    -------
    ndarray, float32, (n_series, n_frames, size, size)
    """
    if n_frames < 1 or size < 4 or tau <= 0:
        raise ValueError("need n_frames >= 1, size >= 4 and tau > 0")
    rng = np.random.default_rng(seed)
    a = np.exp(-1.0 / tau)
    yy, xx = np.indices((size, size)) - size // 2
    pupil = (np.hypot(yy, xx) <= aperture * size).astype(np.float64)
    out = np.empty((n_series, n_frames, size, size), np.float32)

    def noise():
        return (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))) / np.sqrt(2)

    for s in range(n_series):
        field = noise()
        for t in range(n_frames):
            if t:
                field = a * field + np.sqrt(1 - a * a) * noise()
            amplitude = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(pupil * field)))
            out[s, t] = np.abs(amplitude) ** 2
    out /= out.mean()
    if mean_counts is not None:
        out = rng.poisson(out * mean_counts).astype(np.float32)
    return out
