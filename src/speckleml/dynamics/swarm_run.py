"""The swarm case's ``simulate`` and ``train`` stages (paper 000 Case study 2).

:func:`run_swarm_simulation` integrates the true particles (eq. 4-5) for the training window
and, from new initial conditions, for ``extrapolation`` times it, and writes the training
frames (point model with the sphere form factor, eq. 15-16). :func:`initial_cutoff_from_frames`
estimates ``R^(0)`` from the bright ring of the frames at the end of the training window
(Methods, Supp. Fig. 8a-c); :func:`run_swarm_training` pretrains the NODE to eq. 20 with that
``R^(0)`` and trains one member through speckle with the shared driver
(:func:`speckleml.dynamics.train.run_training`).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

#: Seed offset of each split: independent initial conditions for training and test.
SPLITS = {"train": 0, "test": 1}


def swarm_frames(states, geometry, chunk: int = 8, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(series, time, ny, nx)`` float32 and mask of ``states (series, time, N, 2)``."""
    import torch

    from .systems.swarm import SwarmSpeckle

    model = SwarmSpeckle(geometry, dtype=torch.float64, device=device)
    states = np.asarray(states)
    out = np.empty((*states.shape[:2], geometry.detector, geometry.detector), np.float32)
    with torch.no_grad():
        for s in range(states.shape[0]):
            for start in range(0, states.shape[1], chunk):
                batch = torch.as_tensor(states[s, start:start + chunk], dtype=torch.float64, device=device)
                out[s, start:start + chunk] = model(batch).cpu().numpy()
    return out, model.mask.cpu().numpy()


def run_swarm_simulation(*, states, frames, test_states=None, series: int, particles: int, disk_radius: float,
                         box_length: float, cutoff: float, aggregation: str, t_max: float, dt: float,
                         extrapolation: float, test_series: int, rtol: float, atol: float, geometry: dict,
                         seed: int, run_config: dict | None = None) -> None:
    """Integrate eq. 4-5 from random disks; write training states, frames and test states.

    Parameters
    ----------
    states, frames : path
        Output training states store ``(series, time, particle, xy)`` (length units of ``L``) and
        its frames store (intensity, probe peak amplitude 1; ``q`` in reciprocal length units).
    test_states : path, optional
        Output test states store: ``test_series`` new disks over ``extrapolation x t_max``.
    series, particles : int
        Training initial conditions and particles per configuration (paper: 50, 500).
    disk_radius : float
        Radius of the uniform initial disk (paper: L/2).
    box_length, cutoff : float
        ``L`` and the true ``R`` (paper: 5, 0.75).
    aggregation : {"mean", "sum"}
        Neighbour aggregation of eq. 4 (:class:`~speckleml.dynamics.systems.swarm.SwarmRHS`).
    t_max, dt : float
        Training window and frame interval (paper: 10, 0.1).
    extrapolation : float
        Test window as a multiple of ``t_max`` (paper: 5).
    test_series : int
    rtol, atol : float
        dopri5 tolerances of the truth.
    geometry : dict
        Keyword arguments of :class:`~speckleml.dynamics.systems.swarm.SwarmGeometry` except
        ``box_length``.
    seed : int
        Drives the initial conditions of each split (``[seed, split]``).
    run_config : dict, optional
        Recorded in the stores' provenance.

    Raises
    ------
    InputError
        On invalid sizes, times or geometry.
    """
    from ..provenance import make_provenance
    from ..stores import write_frames, write_states
    from .systems.swarm import SYSTEM, SwarmGeometry, simulate_states

    spec = SwarmGeometry(box_length=box_length, **geometry)  # validate before the long integration
    if extrapolation < 1:
        raise InputError(f"extrapolation must be >= 1, got {extrapolation}")
    provenance = make_provenance(config=run_config, seed=seed)
    attrs = {"box_length": box_length, "cutoff": cutoff, "aggregation": aggregation, "disk_radius": disk_radius,
             "particle_radius": spec.particle_radius * box_length, "dt": dt, "t_max": t_max,
             "units": "length units of L", "h": "paper 000 eq. 5"}
    runs = [("train", states, series, t_max)]
    if test_states:
        runs.append(("test", test_states, test_series, t_max * extrapolation))
    for split, path, n_series, window in runs:
        rng = np.random.default_rng([seed, SPLITS[split]])
        values, t = simulate_states(n_series, rng, n_particles=particles, disk_radius=disk_radius, t_max=window,
                                    dt=dt, cutoff=cutoff, box_length=box_length, aggregation=aggregation,
                                    rtol=rtol, atol=atol)
        write_states(path, values, t, system=SYSTEM, dims=("series", "time", "particle", "xy"),
                     attrs={**attrs, "split": split}, provenance=provenance)
        if split == "train":
            images, mask = swarm_frames(values, spec)
            axis = (np.arange(spec.detector) - spec.detector // 2) * spec.dq
            write_frames(frames, images, mask=mask, qx=axis, qy=axis,
                         attrs={"t": t.tolist(), "dt": dt, "geometry": spec.as_attrs(), "lambda_max": None,
                                "units": "intensity (probe peak amplitude 1)", "q_units": "1/length"},
                         provenance=make_provenance(config=run_config, seed=seed, inputs=[states]))


def initial_cutoff_from_frames(frames, time_index: int = -1, q_min_pixels: float | None = None) -> float:
    """``R^(0) = 2 pi / Q*`` of the bright ring at ``time_index`` (paper: t = 10), all series averaged.

    Parameters
    ----------
    frames : path
        Frames store of the swarm case (its ``geometry`` attr gives ``dQ`` and the beamstop).
    time_index : int
        Frame of the estimate (default: the last of the training window).
    q_min_pixels : float, optional
        Rings at ``Q <= q_min_pixels dQ`` are skipped (default: the beamstop radius + 1).

    Returns
    -------
    float, length units.

    Raises
    ------
    InputError
        A missing or non-swarm frames store.
    """
    from ..stores import read_frames
    from .systems.swarm import SwarmGeometry, ring_length_scale

    store = read_frames(frames, lazy=True)
    try:
        geometry = SwarmGeometry(**store.attrs["geometry"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"{frames}: not a swarm frames store ({exc})") from None
    image = np.asarray(store["frames"][:, time_index], np.float64).mean(axis=0)
    mask = np.asarray(store["mask"], bool)
    if q_min_pixels is None:
        q_min_pixels = _central_peak_end(image, mask)
    return ring_length_scale(image, geometry.dq, q_min=q_min_pixels * geometry.dq, mask=mask)


def _central_peak_end(image, mask) -> float:
    """Ring (pixels) where the azimuthal average stops falling after the beamstop: the first minimum.

    The tail of the central peak falls monotonically; the cluster ring is the first rise after it.
    """
    ny, nx = image.shape
    ky, kx = np.mgrid[0:ny, 0:nx]
    ring = np.rint(np.hypot(ky - ny // 2, kx - nx // 2)).astype(int)[mask]
    count = np.bincount(ring)
    rings = np.nonzero(count)[0]
    profile = np.bincount(ring, weights=image[mask])[rings] / count[rings]
    rising = np.nonzero(np.diff(profile) > 0)[0]
    return float(rings[rising[0]]) - 0.5 if rising.size else float(rings[0])


def run_swarm_training(*, states, frames, model, history, checkpoint=None, member: int = 0, seed: int,
                       hidden: int, pretrain_steps: int, pretrain_lr: float, pretrain_scale: float | None,
                       device: str = "auto",
                       stop_after: int | None = None, run_config: dict | None = None, **training) -> bool:
    """Pretrain (eq. 20, ``R^(0)`` from the ring) and train one member through speckle.

    Parameters
    ----------
    states, frames, model, history, checkpoint, member, seed, device, stop_after, run_config :
        As :func:`speckleml.dynamics.train.run_training`.
    hidden : int
        Hidden width of the MLP (paper: 10).
    pretrain_steps, pretrain_lr, pretrain_scale : int, float, float or None
        Pretraining of :func:`~speckleml.dynamics.systems.swarm.build_model`.
    **training
        Keyword arguments of :func:`speckleml.dynamics.train.training_settings`.

    Returns
    -------
    bool
        False when stopped early by ``stop_after``.
    """
    from ..stores import read_states
    from .train import run_training

    attrs = read_states(states).attrs
    if attrs.get("system") != "swarm":
        raise InputError(f"{states}: states store is of system {attrs.get('system')!r}, expected 'swarm'")
    r0 = initial_cutoff_from_frames(frames)
    log.info("initial cutoff R0 = %.4f from the ring at the end of the training window", r0)
    options = {"initial_cutoff": r0, "box_length": float(attrs["box_length"]), "hidden": hidden,
               "aggregation": attrs["aggregation"], "pretrain_steps": pretrain_steps, "pretrain_lr": pretrain_lr,
               "pretrain_scale": pretrain_scale}
    return run_training(states=states, frames=frames, model=model, history=history, checkpoint=checkpoint,
                        member=member, seed=seed, model_options=options, device=device, stop_after=stop_after,
                        run_config=run_config, **training)
