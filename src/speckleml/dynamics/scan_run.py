"""The scan case's ``simulate`` and ``train`` stages (paper 000 "Experimental proof-of-concept").

:func:`run_scan_simulation` builds the sample (random-feature object, focused probe;
:mod:`.systems.scan`), integrates eq. 9 over twice the training window, and writes the
training states and frames (the first ``window`` scan points), the test states (the whole
``extrapolation x window``) and the sample store the forward model reads.
:func:`run_scan_training` trains one member of the NODE of eq. 10 through the patterns with
the shared driver (:func:`speckleml.dynamics.train.run_training`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)


def scan_frames(states, obj, probe, chunk: int = 16, device="cpu") -> np.ndarray:
    """Patterns ``(series, time, n, n)`` float32 of ``states (series, time, >=2)`` (object pixels)."""
    import torch

    from .systems.scan import ScanSpeckle

    model = ScanSpeckle(obj, probe, dtype=torch.float64, device=device)
    states = np.asarray(states)
    n = probe.shape[0]
    out = np.empty((*states.shape[:2], n, n), np.float32)
    with torch.no_grad():
        for s in range(states.shape[0]):
            for start in range(0, states.shape[1], chunk):
                batch = torch.as_tensor(states[s, start:start + chunk], dtype=torch.float64, device=device)
                out[s, start:start + chunk] = model(batch).cpu().numpy()
    return out


def add_poisson(frames: np.ndarray, lambda_max: float, rng: np.random.Generator) -> np.ndarray:
    """Counts drawn with rates ``frames / max(frames) x lambda_max`` (paper 000 §2.2 noise model)."""
    if not lambda_max > 0:
        raise InputError(f"lambda_max must be > 0, got {lambda_max}")
    return rng.poisson(frames / frames.max() * lambda_max).astype(np.float32)


def run_scan_simulation(*, states, frames, test_states, sample, window: int, turns: float, radius: float,
                        extrapolation: float, omega: float, detector: int, probe_sigma: float, defocus: float,
                        feature_size: float, phase: float, absorption: float, beamstop: float,
                        lambda_max: float | None, seed: int, run_config: dict | None = None) -> None:
    """Write the sample, the training states and frames, and the test states of the scan case.

    Parameters
    ----------
    states, frames, test_states, sample : path
        Output stores: training states ``(1, window, 3)`` = ``(x, y, t)`` (object pixels, scan
        points), their patterns ``(1, window, detector, detector)``, the test states over
        ``extrapolation x window`` points from the same ``t0``, and the object and probe.
    window, turns, radius, extrapolation, omega :
        As :func:`speckleml.dynamics.systems.scan.simulate_states` (paper: 80, ~1, -, 2, 4).
    detector : int
        Pattern side in pixels (= probe and patch side; paper: 512).
    probe_sigma, defocus : float
        :func:`~speckleml.dynamics.systems.scan.make_probe`.
    feature_size, phase, absorption : float
        :func:`~speckleml.dynamics.systems.scan.make_object`.
    beamstop : float
        Masked radius (pixels) at the pattern centre.
    lambda_max : float or None
        Poisson noise (maximum expected count of the brightest pixel); None: noise-free.
    seed : int
        Drives the object (``[seed, 0]``) and the noise (``[seed, 1]``).
    run_config : dict, optional
        Recorded in the stores' provenance.

    Raises
    ------
    InputError
        On invalid sizes or geometry.
    """
    from ..provenance import make_provenance
    from ..stores import write_frames, write_states
    from .systems.scan import (COORDINATES, SYSTEM, ScanGeometry, make_object, make_probe, object_size,
                               sample_digest, simulate_states, start_time, write_sample)

    probe = make_probe(detector, probe_sigma, defocus)  # validate before the work
    values, t = simulate_states(1, window=window, turns=turns, radius=radius, extrapolation=extrapolation,
                                omega=omega)
    max_radius = float(np.hypot(values[0, :, 0], values[0, :, 1]).max())
    obj = make_object(object_size(max_radius, detector), np.random.default_rng([seed, 0]), feature_size=feature_size,
                      phase=phase, absorption=absorption)
    provenance = make_provenance(config=run_config, seed=seed)
    write_sample(sample, obj, probe, attrs={"units": "object pixels; probe on the detector's real-space grid",
                                            "feature_size": feature_size, "phase": phase, "absorption": absorption,
                                            "probe_sigma": probe_sigma, "defocus": defocus},
                 provenance=provenance)
    # relative to the frames store's folder (ScanGeometry.resolved): stores move together
    spec = ScanGeometry(sample=os.path.relpath(Path(sample).resolve(), Path(frames).resolve().parent), digest=sample_digest(obj, probe), detector=detector, beamstop=beamstop)
    attrs = {"omega": omega, "t0": start_time(window, turns, omega), "turns": turns, "radius": radius,
             "window": window, "coordinates": list(COORDINATES), "dt": 1.0,
             "units": "x, y: object pixels from the spiral centre; t: scan points", "rhs": "paper 000 eq. 9"}
    write_states(test_states, values, t, system=SYSTEM, dims=("series", "time", "coordinate"),
                 attrs={**attrs, "split": "test"}, provenance=provenance)
    train, t_train = values[:, :window], t[:window]
    write_states(states, train, t_train, system=SYSTEM, dims=("series", "time", "coordinate"),
                 attrs={**attrs, "split": "train"}, provenance=provenance)
    images = scan_frames(train, obj, probe)
    if lambda_max is not None:
        images = add_poisson(images, lambda_max, np.random.default_rng([seed, 1]))
    write_frames(frames, images, mask=spec.mask(),
                 attrs={"t": t_train.tolist(), "dt": 1.0, "geometry": spec.as_attrs(), "lambda_max": lambda_max,
                        "units": "counts" if lambda_max is not None else "intensity (orthonormal FFT)",
                        "q_units": "detector pixels"},
                 provenance=make_provenance(config=run_config, seed=seed, inputs=[states, sample]))
    log.info("scan: t0 = %.2f, %d training / %d test points, object %d px, detector %d px", t[0], window,
             values.shape[1], obj.shape[0], detector)


def run_scan_training(*, states, frames, model, history, checkpoint=None, member: int = 0, seed: int,
                      features: int, hidden: int, depth: int, device: str = "auto", stop_after: int | None = None,
                      run_config: dict | None = None, **training) -> bool:
    """Train one member of the scan NODE (eq. 10) through the patterns.

    Parameters
    ----------
    states, frames, model, history, checkpoint, member, seed, device, stop_after, run_config :
        As :func:`speckleml.dynamics.train.run_training`.
    features, hidden, depth : int
        :class:`~speckleml.dynamics.systems.scan.ScanODE`'s featuriser width, width and depth.
    **training
        Keyword arguments of :func:`speckleml.dynamics.train.training_settings`.

    Returns
    -------
    bool
        False when stopped early by ``stop_after``.

    Raises
    ------
    InputError
        A states store of another case.
    """
    from ..stores import read_states
    from .train import run_training

    store = read_states(states)
    if store.attrs.get("system") != "scan":
        raise InputError(f"{states}: states store is of system {store.attrs.get('system')!r}, expected 'scan'")
    t = np.asarray(store["t"])
    # Input scales the experimenter knows: the window's start and length, the initial radius.
    options = {"t_offset": float(t[0]), "t_scale": float(t[-1] - t[0]),
               "r_scale": float(np.hypot(*np.asarray(store["states"])[0, 0, :2])), "features": features,
               "hidden": hidden, "depth": depth}
    return run_training(states=states, frames=frames, model=model, history=history, checkpoint=checkpoint,
                        member=member, seed=seed, model_options=options, device=device, stop_after=stop_after,
                        run_config=run_config, **training)
