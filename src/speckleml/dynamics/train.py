"""Train one ensemble member of the Kuramoto NODE through speckle (the ``train`` stage)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..provenance import checksum
from ..stores import read_frames, read_states
from .training import TrainSettings, WindowData, train_ode
from ..runtime import seed_everything
from .models import build_kuramoto_model, learned_kernel
from .systems.kuramoto import MomentsSpeckle, SpeckleGeometry

log = logging.getLogger(__name__)


def geometry_from_attrs(attrs: dict, path) -> SpeckleGeometry:
    """The :class:`SpeckleGeometry` a frames store was made with (its ``geometry`` attr)."""
    try:
        return SpeckleGeometry(**attrs["geometry"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: frames store has no valid kuramoto 'geometry' attr ({exc})") from None


def choose_loss(loss: str, lambda_max, poisson_below: float) -> str:
    """``auto``: Poisson NLL for noisy frames with ``lambda_max <= poisson_below``, else L1 (paper 000)."""
    if loss != "auto":
        return loss
    return "poisson" if lambda_max is not None and lambda_max <= poisson_below else "l1"


def load_training_data(states_path, frames_path, device, dtype):
    """Read the stores and put states, frames, mask and times on ``device``.

    Returns (WindowData, geometry, frames attrs).
    """
    import torch

    states = read_states(states_path)
    frames = read_frames(frames_path)
    if states.attrs.get("system") != "kuramoto":
        raise InputError(f"{states_path}: states store is of system {states.attrs.get('system')!r}, expected 'kuramoto'")
    if states["states"].shape[:2] != frames["frames"].shape[:2]:
        raise InputError(f"{frames_path}: frames (series, time) {frames['frames'].shape[:2]} do not match "
                         f"states {states['states'].shape[:2]} of {states_path}")
    geometry = geometry_from_attrs(frames.attrs, frames_path)
    data = WindowData(
        states=torch.as_tensor(states["states"], dtype=dtype, device=device),
        frames=torch.as_tensor(frames["frames"], device=device),
        mask=torch.as_tensor(frames["mask"], device=device),
        t=torch.as_tensor(states["t"], dtype=dtype, device=device),
    )
    return data, geometry, frames.attrs


def train_member(states_path, frames_path, checkpoint, settings: TrainSettings, kernel_size: int, coupling: float,
                 init_std: float, member: int, device, stop_after: int | None = None):
    """Train one member; returns (model, history, geometry, frames attrs).

    The model's forward model is the frames' geometry with the unperturbed form factor
    (``delta = 0``): the experimenter knows the probe, detector and coherence, not a
    form-factor perturbation (Supp. Fig. 16 tests that mismatch).
    """
    import dataclasses

    import torch

    data, geometry, attrs = load_training_data(states_path, frames_path, device, torch.float64)
    seed_everything(settings.seed)
    model = build_kuramoto_model(kernel_size, coupling, init_std).to(device)
    forward = MomentsSpeckle(dataclasses.replace(geometry, delta=0.0), dtype=torch.float64, device=device)
    extra = {
        "states": checksum(states_path), "frames": checksum(frames_path),
        "kernel_size": kernel_size, "coupling": coupling, "init_std": init_std, "member": member,
    }
    history = train_ode(model, forward, data, settings, checkpoint, snapshot=learned_kernel,
                        fingerprint_extra=extra, desc=f"train member {member}", stop_after=stop_after)
    return model, history, geometry, attrs


def remove_checkpoint(path) -> None:
    """Delete a finished run's checkpoint (its content now lives in the model and history)."""
    path = Path(path)
    if path.exists():
        os.remove(path)


def kernel_errors(learned: np.ndarray, true: np.ndarray) -> dict:
    """Kernel MAE and relative (Frobenius) error, centre excluded.

    The centre weight multiplies ``cos phi sin phi - sin phi cos phi = 0``: it has no effect on
    the dynamics, receives no gradient and keeps its random initial value, so it is left out.
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
