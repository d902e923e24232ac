"""Runtime plumbing shared by every study: seeding, torch threads, compute device.

Kept apart from the neural-ODE training loop (:mod:`speckleml.dynamics.training`) so that a
study which only needs a seed or a device does not depend on, or re-run when, that loop changes.
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a NumPy ``Generator``.

    Deterministic torch algorithms are requested where they exist, so that the same config
    gives the same arrays on the same machine.
    """
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def set_torch_threads(threads: int) -> None:
    """Use ``threads`` torch CPU threads (0 keeps torch's default, one per core)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def resolve_device(device: str = "auto"):
    """Return a ``torch.device`` for ``"auto"``, ``"cpu"`` or ``"cuda"``.

    ``"cuda"`` without a GPU is a user error (one line, exit 2), ``"auto"`` falls back to CPU.
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available (use --device auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)")
    log.info("device: %s", device)
    return torch.device(device)
