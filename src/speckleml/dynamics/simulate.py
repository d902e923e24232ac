"""The ``simulate`` and ``speckle`` stages of the Kuramoto case: truth and speckle stores.

:func:`run_simulation` integrates the true lattice (training and test initial conditions,
:func:`~speckleml.dynamics.systems.kuramoto.simulate_states`) into states stores and writes the
training frames; :func:`write_speckle_store` writes the frames of an existing states store under
one scattering condition (the robustness sweeps). :func:`speckle_geometry` validates the
geometry options once.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError
from .systems.kuramoto import (SYSTEM, SpeckleGeometry, log_kernel, simulate_states,  # noqa: F401  (re-exported)
                               speckle_frames, time_grid)

log = logging.getLogger(__name__)

#: Seed offset of each split: independent initial conditions for training and test.
SPLITS = {"train": 0, "test": 1}


def true_kernel(size: int, sigma: float, normalization: str) -> np.ndarray:
    """The config's true coupling kernel ``(size, size)``, ``-LoG(sigma)`` (:func:`log_kernel`)."""
    return log_kernel(size, sigma, normalization)


def speckle_geometry(size: int, *, box: float, detector: int, dq_factor: float, probe_sigma: float, beamstop: float,
                     sigma_coh: float | None, static_weight: float, delta: float) -> SpeckleGeometry:
    """The scattering geometry of a ``size x size`` lattice (paper 000 Methods, case study 1).

    Parameters are those of :class:`SpeckleGeometry` (lengths as fractions of the box side L,
    ``dq_factor`` in units of pi/L, ``beamstop`` in pixels at dQ = pi/L).

    Raises
    ------
    InputError
        When ``delta`` is outside [0, 1].
    """
    if not 0 <= delta <= 1:
        raise InputError(f"--delta must be in [0, 1], got {delta}")
    return SpeckleGeometry(size=size, box=box, detector=detector, dq_factor=dq_factor, probe_sigma=probe_sigma,
                           beamstop=beamstop, sigma_coh=sigma_coh, static_weight=static_weight, delta=delta)


def _q_axes(geometry: SpeckleGeometry):
    import torch

    from ..scattering import detector_q_axes

    qy, qx = detector_q_axes(geometry.detector_pixels, geometry.dq, dtype=torch.float64)
    return qy.numpy().astype("float64"), qx.numpy().astype("float64")


def write_speckle_store(frames, *, states, geometry: dict, lambda_max: float | None, seed: int,
                        run_config: dict | None = None) -> None:
    """Write the frames store of the states store ``states`` under one scattering condition.

    Parameters
    ----------
    frames : path
        Output frames store ``(series, time, qy, qx)``: intensity (probe peak amplitude 1), or
        counts when ``lambda_max`` is set; ``q`` in reciprocal units of the box.
    states : path
        Input Kuramoto states store (phases in radians).
    geometry : dict
        Keyword arguments of :func:`speckle_geometry` (the lattice size comes from the store).
    lambda_max : float or None
        Poisson noise: expected counts of each series' brightest pixel at t0; None = noise-free.
    seed : int
        Seed of the Poisson draws.
    run_config : dict, optional
        The stage's parameters, recorded in the store's provenance.

    Raises
    ------
    InputError
        When the states store is missing, not of the Kuramoto case, or the geometry is invalid.
    """
    from ..provenance import make_provenance
    from ..stores import read_states, write_frames

    store = read_states(states)
    if store.attrs.get("system") != SYSTEM:
        raise InputError(f"{states}: states store is of system {store.attrs.get('system')!r}, expected {SYSTEM!r}")
    spec = speckle_geometry(int(store["states"].shape[-1]), **geometry)
    images, mask = speckle_frames(store["states"], spec, lambda_max, seed=seed)
    qy, qx = _q_axes(spec)
    write_frames(frames, images, mask=mask, qx=qx, qy=qy,
                 attrs={"t": store["t"].tolist(), "dt": float(store["t"][1] - store["t"][0]),
                        "geometry": spec.as_attrs(), "lambda_max": lambda_max,
                        "units": "counts" if lambda_max else "intensity (probe peak amplitude 1)",
                        "q_units": "1/length of the box"},
                 provenance=make_provenance(config=run_config, seed=(run_config or {}).get("seed"), inputs=[states]))


def run_simulation(*, states, frames=None, test_states=None, series: int, lattice: int, kernel_size: int,
                   kernel_sigma: float, kernel_normalization: str, coupling: float, t_max: float, dt: float,
                   drop: int, rtol: float, atol: float, test_series: int, extrapolation: float, geometry: dict,
                   lambda_max: float | None, seed: int, run_config: dict | None = None) -> None:
    """Integrate the true Kuramoto lattice (paper 000 eq. 1-2) and write the states and frames stores.

    Parameters
    ----------
    states : path
        Output training states store ``(series, time, y, x)``, phases in radians.
    frames : path, optional
        Output frames store of the training states (:func:`write_speckle_store`).
    test_states : path, optional
        Output test states store: ``test_series`` new initial conditions over
        ``extrapolation x t_max``.
    series, lattice : int
        Training initial conditions and lattice sites per side N.
    kernel_size, kernel_sigma, kernel_normalization :
        True kernel ``-LoG(kernel_sigma)`` (sigma in sites) of width ``kernel_size``.
    coupling : float
        Coupling strength K.
    t_max, dt : float
        Training window and frame interval (ODE time units).
    drop : int
        Leading time points dropped (transient).
    rtol, atol : float
        dopri5 tolerances of the truth.
    test_series : int
    extrapolation : float
        Test window as a multiple of ``t_max`` (paper: 5).
    geometry : dict
        Keyword arguments of :func:`speckle_geometry` except the size.
    lambda_max : float or None
        Poisson noise of the frames.
    seed : int
        Drives everything: torch, the initial phases of each split (``[seed, split]``), the noise.
    run_config : dict, optional
        The stage's parameters, recorded in the stores' provenance.

    Raises
    ------
    InputError
        On invalid parameters (times, kernel, geometry).
    """
    from ..provenance import make_provenance
    from ..runtime import seed_everything
    from ..stores import write_states

    seed_everything(seed)
    kernel = true_kernel(kernel_size, kernel_sigma, kernel_normalization)
    speckle_geometry(lattice, **geometry)  # validate before the long integration
    attrs = {"kernel": kernel.tolist(), "coupling": coupling, "kernel_sigma": kernel_sigma,
             "kernel_normalization": kernel_normalization, "box": geometry["box"], "units": "radians",
             "dropped": drop, "dt": dt}
    runs = [("train", states, series, t_max)]
    if test_states:
        runs.append(("test", test_states, test_series, t_max * extrapolation))
    for split, path, n_series, window in runs:
        rng = np.random.default_rng([seed, SPLITS[split]])  # independent initial conditions per split
        values, t = simulate_states(n_series, lattice, kernel, coupling, window, dt, drop, rng, rtol=rtol, atol=atol)
        write_states(path, values, t, system=SYSTEM, dims=("series", "time", "y", "x"),
                     attrs={**attrs, "split": split}, provenance=make_provenance(config=run_config, seed=seed))
    if frames:
        write_speckle_store(frames, states=states, geometry=geometry, lambda_max=lambda_max, seed=seed,
                            run_config=run_config)
