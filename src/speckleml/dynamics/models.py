"""Neural ODE right-hand sides of the dynamics study and their model files.

A model file (``*.pt``, written atomically) holds the weights plus everything needed to
rebuild the module: the case, its constructor arguments, the training settings, the member
and its seed, and the provenance of the training run.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..checkpoints import load_torch, save_torch
from ..errors import InputError
from .training import TrainSettings
from .systems.kuramoto import KuramotoRHS

MODEL_FORMAT = 1


def build_kuramoto_model(kernel_size: int, coupling: float, init_std: float = 0.01) -> KuramotoRHS:
    """The paper's NODE: one trainable ``k x k`` kernel (N(0, init_std^2)) in the Kuramoto sin/cos form.

    Seed torch first (:func:`speckleml.dynamics.training.seed_everything`): the kernel is drawn from it.
    """
    return KuramotoRHS(kernel=None, coupling=coupling, kernel_size=kernel_size, init_std=init_std)


def learned_kernel(model: KuramotoRHS) -> np.ndarray:
    """Copy of the model's coupling kernel as float64 numpy."""
    return model.kernel.detach().cpu().numpy().astype(np.float64).copy()


def save_model(path, model: KuramotoRHS, settings: TrainSettings, member: int, seed: int,
               provenance: dict | None = None, extra: dict | None = None) -> Path:
    """Write a Kuramoto model file atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "case": "kuramoto",
        "architecture": {"kernel_size": int(model.kernel.shape[-1]), "coupling": model.coupling},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "settings": asdict(settings),
        "member": int(member),
        "seed": int(seed),
        "provenance": provenance or {},
        **(extra or {}),
    }
    return save_torch(payload, path)


def load_model(path, device="cpu") -> tuple[KuramotoRHS, dict]:
    """Load a model file; returns the module (eval mode, no gradients) and the file's metadata."""
    payload = load_torch(path, "kuramoto model file", fmt=MODEL_FORMAT, keys=("architecture", "state_dict"),
                         weights_only=False)
    if payload.get("case") != "kuramoto":
        raise InputError(f"{path}: not a kuramoto model file of format {MODEL_FORMAT}")
    arch = payload["architecture"]
    model = KuramotoRHS(kernel=None, coupling=arch["coupling"], kernel_size=arch["kernel_size"])
    model.load_state_dict(payload["state_dict"])
    model.requires_grad_(False)
    return model.to(device).eval(), payload
