"""ResNet classifiers for single-channel speckle patterns and their checkpoints.

torchvision's ResNet-18/-50 built with ``weights=None`` (trained from scratch, nothing is
downloaded). The first convolution takes one input channel: a speckle pattern is a single
intensity image, and with no pretrained RGB filters to reuse, replicating it into three
identical channels would only triple the stem's cost without adding information. The
global average pool lets a model trained on one pattern size classify another (paper
Fig. 4: 257-trained model on 513 patterns).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..checkpoints import load_torch, save_torch
from ..errors import InputError

ARCHITECTURES = ("resnet18", "resnet34", "resnet50")
CHECKPOINT_FORMAT = "speckleml.disk_count.checkpoint/1"


def build_resnet(arch: str, num_classes: int, in_channels: int = 1):
    """A torchvision ResNet from scratch with ``in_channels`` inputs and ``num_classes`` logits."""
    import torch
    import torchvision

    if arch not in ARCHITECTURES:
        raise InputError(f"--arch must be one of {ARCHITECTURES}, got {arch!r}")
    if num_classes < 2:
        raise InputError(f"need at least 2 classes, got {num_classes}")
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    old = model.conv1
    model.conv1 = torch.nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size,
                                  stride=old.stride, padding=old.padding, bias=False)
    torch.nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def save_checkpoint(path: str | os.PathLike, model, metadata: dict[str, Any]) -> Path:
    """Save ``state_dict`` and metadata (classes, input size, normalisation...) atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_torch({"format": CHECKPOINT_FORMAT, "state_dict": state, "metadata": dict(metadata)}, path)


def load_checkpoint(path: str | os.PathLike, device=None):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    model : torch.nn.Module
        In eval mode on ``device``.
    metadata : dict
        Must hold ``arch``, ``classes`` (disk numbers, in logit order) and ``block``.
    """
    payload = load_torch(path, "disk_count checkpoint", fmt=CHECKPOINT_FORMAT, keys=("state_dict", "metadata"))
    metadata = payload["metadata"]
    for key in ("arch", "classes", "block"):
        if key not in metadata:
            raise InputError(f"{path}: checkpoint metadata lacks {key!r}")
    model = build_resnet(metadata["arch"], len(metadata["classes"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    if device is not None:
        model.to(device)
    return model, metadata


def predict_proba(model, inputs, device, batch_size: int = 64):
    """Softmax class probabilities (numpy, (batch, classes)) of standardised inputs (batch, y, x)."""
    import numpy as np
    import torch

    outputs = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            x = torch.as_tensor(np.asarray(inputs[start: start + batch_size]), dtype=torch.float32, device=device)
            outputs.append(torch.softmax(model(x[:, None]), dim=1).cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
