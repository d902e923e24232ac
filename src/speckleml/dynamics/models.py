"""Model files of the dynamics study: a trained NODE right-hand side and how to rebuild it.

A model file (``*.pt``, written atomically) holds the weights plus everything needed to
rebuild the module: the case (:mod:`speckleml.dynamics.systems`), its architecture, the
training settings, the member and its seed, and the provenance of the training run.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..checkpoints import load_torch, save_torch
from ..errors import InputError
from .systems import get_case
from .training import TrainSettings

MODEL_FORMAT = 1


def save_model(path, model, settings: TrainSettings, member: int, seed: int, case: str = "kuramoto",
               provenance: dict | None = None, extra: dict | None = None) -> Path:
    """Write a model file atomically (the house order: ``save_model(path, model, ...)``).

    Parameters
    ----------
    path : path
        Output ``.pt`` file.
    model : torch.nn.Module
        The trained right-hand side of case ``case``.
    settings : TrainSettings
        Its training settings (recorded).
    member, seed : int
        Ensemble member and the seed it was trained with.
    case : str
        Registered dynamics case of the model (:func:`speckleml.dynamics.systems.get_case`).
    provenance : dict, optional
        Provenance of the training run.
    extra : dict, optional
        Further entries (geometry, rollbacks, ...).

    Returns
    -------
    Path of the written file.

    Raises
    ------
    InputError
        When ``case`` is not registered.
    """
    spec = get_case(case)
    payload = {
        "format": MODEL_FORMAT,
        "case": spec.name,
        "architecture": spec.architecture(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "settings": asdict(settings),
        "member": int(member),
        "seed": int(seed),
        "provenance": provenance or {},
        **(extra or {}),
    }
    return save_torch(payload, path)


def load_model(path, device="cpu"):
    """Load a model file written by :func:`save_model`.

    Returns
    -------
    model : torch.nn.Module
        The right-hand side, in eval mode, without gradients, on ``device``.
    payload : dict
        The file's metadata (case, architecture, settings, member, seed, provenance, ...).

    Raises
    ------
    InputError
        When the file is missing, unreadable, of another format or of an unknown case.
    """
    payload = load_torch(path, "dynamics model file", fmt=MODEL_FORMAT, keys=("case", "architecture", "state_dict"),
                         weights_only=False)
    case = get_case(payload["case"], where=str(path))
    model = case.build_model(**payload["architecture"])
    model.load_state_dict(payload["state_dict"])
    model.requires_grad_(False)
    return model.to(device).eval(), payload
