"""Train one ensemble member of a dynamics NODE through speckle (the ``train`` stage).

:func:`run_training` is the stage: read the states and frames stores, build the case's model
and forward model (:mod:`speckleml.dynamics.systems`), run the checkpointed loop
(:func:`speckleml.dynamics.training.train_ode`), write the model file and the history store.
Nothing here is specific to one case: the case comes from the states store's ``system``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..provenance import checksum
from ..stores import read_frames, read_states
from .systems import get_case
from .training import TrainSettings, WindowData, train_ode

log = logging.getLogger(__name__)


def geometry_from_attrs(attrs: dict, path, case: str = "kuramoto"):
    """The scattering geometry a frames store was made with (its ``geometry`` attr).

    Raises
    ------
    InputError
        When the attr is missing or does not describe a geometry of ``case``.
    """
    try:
        geometry = get_case(case).geometry(**attrs["geometry"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: frames store has no valid {case} 'geometry' attr ({exc})") from None
    # A geometry that names another store (the scan's sample) finds it beside the frames store.
    return geometry.resolved(path) if hasattr(geometry, "resolved") else geometry


def choose_loss(loss: str, lambda_max, poisson_below: float) -> str:
    """``auto``: Poisson NLL for noisy frames with ``lambda_max <= poisson_below``, else L1 (paper 000)."""
    if loss != "auto":
        return loss
    return "poisson" if lambda_max is not None and lambda_max <= poisson_below else "l1"


def training_settings(*, lambda_max: float | None, seed: int, iterations: int, learning_rate: float,
                      batch_series: int, batch_time: int, loss: str, poisson_below: float, rescale_t0: str,
                      method: str, rtol: float, atol: float, max_num_steps: int, spike_rule: str,
                      spike_factor: float, spike_mad: float, spike_window: int, spike_patience: int,
                      lr_recovery: int, min_learning_rate: float, checkpoint_every: int,
                      snapshot_every: int) -> TrainSettings:
    """The :class:`TrainSettings` of a run on frames with noise level ``lambda_max``.

    ``loss="auto"`` picks the Poisson NLL when ``lambda_max <= poisson_below`` (paper 000 §2.2,
    noisy frames), else L1; ``rescale_t0="auto"`` rescales at each window's t0 when the frames
    are noisy. The other parameters are :class:`TrainSettings`'s.

    Raises
    ------
    InputError
        On an invalid setting (:class:`TrainSettings` validates).
    """
    if rescale_t0 not in ("auto", "yes", "no"):
        raise InputError(f"rescale_t0 must be auto, yes or no, got {rescale_t0!r}")
    return TrainSettings(
        iterations=iterations, learning_rate=learning_rate, batch_series=batch_series, batch_time=batch_time,
        loss=choose_loss(loss, lambda_max, poisson_below),
        rescale_t0={"auto": lambda_max is not None, "yes": True, "no": False}[rescale_t0], method=method,
        rtol=rtol, atol=atol, max_num_steps=max_num_steps, spike_rule=spike_rule, spike_factor=spike_factor,
        spike_mad=spike_mad, spike_window=spike_window, spike_patience=spike_patience, lr_recovery=lr_recovery,
        min_learning_rate=min_learning_rate, checkpoint_every=checkpoint_every, snapshot_every=snapshot_every,
        seed=seed,
    )


def load_training_data(states_path, frames_path, device, dtype):
    """Read the stores and put states, frames, mask and times on ``device``.

    Returns
    -------
    data : WindowData
    case : DynamicsCase
        The states store's case (its ``system`` attr).
    geometry :
        The frames' scattering geometry (the case's geometry type).
    attrs : dict
        The frames store's attributes.

    Raises
    ------
    InputError
        Missing stores, an unknown case, or (series, time) that differ between the stores.
    """
    import torch

    states = read_states(states_path)
    frames = read_frames(frames_path)
    case = get_case(states.attrs.get("system"), where=f"{states_path}: states store")
    if states["states"].shape[:2] != frames["frames"].shape[:2]:
        raise InputError(f"{frames_path}: frames (series, time) {frames['frames'].shape[:2]} do not match "
                         f"states {states['states'].shape[:2]} of {states_path}")
    geometry = geometry_from_attrs(frames.attrs, frames_path, case.name)
    data = WindowData(
        states=torch.as_tensor(states["states"], dtype=dtype, device=device),
        frames=torch.as_tensor(frames["frames"], device=device),
        mask=torch.as_tensor(frames["mask"], device=device),
        t=torch.as_tensor(states["t"], dtype=dtype, device=device),
    )
    return data, case, geometry, frames.attrs


def train_member(states_path, frames_path, checkpoint, settings: TrainSettings, model_options: dict, member: int,
                 device, stop_after: int | None = None):
    """Train one member of the states store's case; resumes ``checkpoint`` when it is this run's.

    Parameters
    ----------
    states_path, frames_path : path
        Truth (window initial conditions) and observed frames.
    checkpoint : path
        Checkpoint file of the run.
    settings : TrainSettings
    model_options : dict
        Keyword arguments of the case's ``build_model`` (Kuramoto: ``kernel_size``,
        ``coupling``, ``init_std``).
    member : int
        Ensemble member (recorded in the checkpoint's fingerprint).
    device : torch.device
    stop_after : int, optional
        Stop after this many iterations (tests: a simulated kill).

    Returns
    -------
    model, history, case, geometry
    """
    import torch

    from ..runtime import seed_everything

    data, case, geometry, _ = load_training_data(states_path, frames_path, device, torch.float64)
    seed_everything(settings.seed)
    model = case.build_model(**model_options).to(device)
    forward = case.forward_model(geometry, dtype=torch.float64, device=device)
    extra = {"states": checksum(states_path), "frames": checksum(frames_path), **model_options, "member": member}
    history = train_ode(model, forward, data, settings, checkpoint, snapshot=case.snapshot,
                        fingerprint_extra=extra, desc=f"train member {member}", stop_after=stop_after)
    return model, history, case, geometry


def remove_checkpoint(path) -> None:
    """Delete a finished run's checkpoint (its content now lives in the model and history)."""
    path = Path(path)
    if path.exists():
        os.remove(path)


def run_training(*, states, frames, model, history, checkpoint=None, member: int = 0, seed: int,
                 model_options: dict, device: str = "auto", stop_after: int | None = None,
                 run_config: dict | None = None, **training) -> bool:
    """The ``train`` stage: train one ensemble member and write its model file and history store.

    Parameters
    ----------
    states, frames : path
        Input states store (truth, window initial conditions) and frames store (observations).
    model, history : path
        Output model file (:func:`speckleml.dynamics.models.save_model`) and history store.
    checkpoint : path, optional
        Checkpoint file (default ``MODEL.ckpt``); resumed when present and of this run, removed
        once the model is written.
    member : int
        Ensemble member; its seed is ``seed + member``.
    seed : int
        Base seed of the ensemble.
    model_options : dict
        Keyword arguments of the case's ``build_model``.
    device : str
        ``auto``, ``cpu``, ``cuda``... (:func:`speckleml.runtime.resolve_device`).
    stop_after : int, optional
        Stop after this many iterations, leaving only the checkpoint (tests: a kill).
    run_config : dict, optional
        The stage's parameters, recorded in the provenance.
    **training
        Keyword arguments of :func:`training_settings` except ``lambda_max`` and ``seed``.

    Returns
    -------
    bool
        False when stopped early by ``stop_after`` (nothing but the checkpoint written).

    Raises
    ------
    InputError
        Missing or inconsistent stores, invalid settings.
    """
    import torch

    from ..provenance import make_provenance
    from ..runtime import resolve_device
    from .models import save_model
    from .training import write_history

    torch_device = resolve_device(device)
    lambda_max = read_frames(frames, lazy=True).attrs.get("lambda_max")
    member_seed = seed + member
    settings = training_settings(lambda_max=lambda_max, seed=member_seed, **training)
    checkpoint = checkpoint or f"{model}.ckpt"
    net, record, case, geometry = train_member(states, frames, checkpoint, settings, model_options, member,
                                               torch_device, stop_after=stop_after)
    if record["iterations"] < settings.iterations:
        return False  # interrupted on purpose (tests): the checkpoint is the result
    provenance = make_provenance(config=run_config, seed=(run_config or {}).get("seed"), inputs=[states, frames])
    write_history(history, record, attrs={"member": member, "seed": member_seed, "loss": settings.loss,
                                          "rescale_t0": settings.rescale_t0, "snapshot": case.snapshot_label},
                  provenance=provenance)
    save_model(model, net.to(torch.device("cpu")), settings, member, member_seed, case=case.name,
               provenance=provenance, extra={"geometry": geometry.as_attrs(), "rollbacks": record["rollbacks"]})
    remove_checkpoint(checkpoint)
    return True


def kernel_errors(learned: np.ndarray, true: np.ndarray) -> dict:
    """Kernel MAE and relative (Frobenius) error, centre excluded (paper 000 Fig. 5 kernel metric).

    The centre weight multiplies ``cos phi sin phi - sin phi cos phi = 0``: it has no effect on
    the dynamics, receives no gradient and keeps its random initial value, so it is left out.

    Parameters
    ----------
    learned, true : ndarray (k, k)

    Returns
    -------
    dict with ``kernel_mae`` (kernel units) and ``kernel_rel_error`` (dimensionless).

    Raises
    ------
    InputError
        When the shapes differ.
    """
    if learned.shape != true.shape:
        raise InputError(f"learned kernel {learned.shape} and true kernel {true.shape} differ in size")
    keep = np.ones(true.shape, bool)
    keep[true.shape[0] // 2, true.shape[1] // 2] = False
    diff = (learned - true)[keep]
    return {
        "kernel_mae": float(np.abs(diff).mean()),
        "kernel_rel_error": float(np.linalg.norm(diff) / np.linalg.norm(true[keep])),
    }
