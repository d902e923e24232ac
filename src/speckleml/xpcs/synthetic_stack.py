"""A synthetic speckle stack with known g2 as a frames store (``speckleml synthetic-frames``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import InputError
from ..stores import write_frames
from ..synthetic import ou_speckle

log = logging.getLogger(__name__)


def synthetic_frames(output: str | os.PathLike, *, frames: int, size: int, tau: float, mean_counts: float | None,
                     dt: float, seed: int, provenance: dict | None = None) -> Path:
    """Synthetic speckle stack with ``g2 - 1 = exp(-2 t / tau)`` (:func:`speckleml.synthetic.ou_speckle`).

    Parameters
    ----------
    output : path
        Frames store to write; ``attrs["truth"]`` records tau (frames), beta and gamma.
    frames, size : int
        Frames (>= 2) and detector side (>= 8 pixels).
    tau : float
        Field correlation time in frames, > 0.
    mean_counts : float or None
        Poisson counts per pixel; None gives noise-free intensities.
    dt : float
        Frame time (s), > 0.
    seed : int
        Seed of the random field.
    provenance : dict, optional
        Provenance record of the store.

    Returns
    -------
    Path
        ``output``.
    """
    if frames < 2 or size < 8 or not tau > 0:
        raise InputError("need frames >= 2, size >= 8 and tau > 0")
    stack = ou_speckle(frames, size, tau, seed=seed, mean_counts=mean_counts)
    attrs = {"dt": dt, "units": {"t": "s", "intensity": "counts" if mean_counts else "a.u.", "q": "pixel"},
             "source": "synthetic", "truth": {"tau_frames": tau, "beta": 1.0, "gamma": 1.0}}
    write_frames(output, stack, attrs=attrs, provenance=provenance)
    log.info("wrote %s: %d frames of %dx%d, tau=%g frames", output, frames, size, size, tau)
    return Path(output)
