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

import numpy as np

from ..checkpoints import load_torch, save_torch
from ..errors import InputError

ARCHITECTURES = ("resnet18", "resnet34", "resnet50")
#: First layers: torchvision's ImageNet stem (7x7 stride-2 convolution + stride-2 max pool, 4x
#: down-sampling: a 27x27 input leaves layer4 at 1x1, the default 45x45 at 2x2) or a small-image stem (3x3 stride-1
#: convolution, no pool, as for CIFAR: 27x27 -> 4x4 at layer4; ResNet-18 trains ~4.5x slower
#: on a CPU).
STEMS = ("imagenet", "small")
CHECKPOINT_FORMAT = "speckleml.disk_count.checkpoint/1"


def build_resnet(arch: str, num_classes: int, in_channels: int = 1, stem: str = "imagenet"):
    """A torchvision ResNet from scratch with ``in_channels`` inputs and ``num_classes`` logits.

    Paper 002 §2 ("Machine learning model"): ResNet-50 trained from scratch; ResNet-18/-34 are
    the cheaper members of the same family for CPU runs.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50"}
    num_classes : int
        Number of logits (>= 2).
    in_channels : int
        Channels of the input images (1: a speckle intensity).
    stem : {"imagenet", "small"}
        See :data:`STEMS`; ``imagenet`` is the paper's ResNet-50.

    Returns
    -------
    torch.nn.Module
        Takes (batch, in_channels, y, x) float32, any y, x >= 32 (global average pool),
        returns (batch, num_classes) logits.

    Raises
    ------
    InputError
        Unknown ``arch`` or ``stem``, or fewer than 2 classes.
    """
    import torch
    import torchvision

    if arch not in ARCHITECTURES:
        raise InputError(f"--arch must be one of {ARCHITECTURES}, got {arch!r}")
    if stem not in STEMS:
        raise InputError(f"--stem must be one of {STEMS}, got {stem!r}")
    if num_classes < 2:
        raise InputError(f"need at least 2 classes, got {num_classes}")
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    old = model.conv1
    if stem == "small":
        model.conv1 = torch.nn.Conv2d(in_channels, old.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = torch.nn.Identity()
    else:
        model.conv1 = torch.nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size,
                                      stride=old.stride, padding=old.padding, bias=False)
    torch.nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def save_model(path: str | os.PathLike, model, metadata: dict[str, Any]) -> Path:
    """Save a classifier's ``state_dict`` and its metadata atomically.

    Parameters
    ----------
    path : path
        Checkpoint file to write (``*.pt``).
    model : torch.nn.Module
        A model from :func:`build_resnet`.
    metadata : dict
        JSON-like; :func:`load_model` needs ``arch``, ``classes`` (disk numbers in logit
        order) and ``block``; evaluation also reads ``bin`` and ``source_size``.

    Returns
    -------
    pathlib.Path
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_torch({"format": CHECKPOINT_FORMAT, "state_dict": state, "metadata": dict(metadata)}, path)


def load_model(path: str | os.PathLike, device=None):
    """Load a classifier written by :func:`save_model`.

    Parameters
    ----------
    path : path
    device : torch.device or str, optional
        Where to put the model (default: stay on the CPU).

    Returns
    -------
    model : torch.nn.Module
        In eval mode on ``device``.
    metadata : dict
        Must hold ``arch``, ``classes`` (disk numbers, in logit order) and ``block``.

    Raises
    ------
    InputError
        Missing, unreadable or foreign file, or metadata lacking a required key.
    """
    payload = load_torch(path, "disk_count checkpoint", fmt=CHECKPOINT_FORMAT, keys=("state_dict", "metadata"))
    metadata = payload["metadata"]
    for key in ("arch", "classes", "block"):
        if key not in metadata:
            raise InputError(f"{path}: checkpoint metadata lacks {key!r}")
    model = build_resnet(metadata["arch"], len(metadata["classes"]), stem=metadata.get("stem", "imagenet"))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    if device is not None:
        model.to(device)
    return model, metadata


def predict_proba(model, inputs, device, batch_size: int = 64):
    """Softmax class probabilities of standardised patterns.

    Parameters
    ----------
    model : torch.nn.Module
    inputs : array-like, float, shape (batch, y, x)
        Standardised patterns (:func:`~speckleml.disk_count.data.standardise`).
    device : torch.device or str
    batch_size : int
        Patterns per forward pass (memory only; the result does not depend on it).

    Returns
    -------
    ndarray, float32, shape (batch, classes)
    """
    import numpy as np
    import torch

    outputs = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            x = torch.as_tensor(np.asarray(inputs[start: start + batch_size]), dtype=torch.float32, device=device)
            outputs.append(torch.softmax(model(x[:, None]), dim=1).cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def split_digest(split) -> str:
    """SHA-256 of an inputs store's split codes: which patterns were train, validation and test."""
    import hashlib

    return "sha256:" + hashlib.sha256(np.ascontiguousarray(split, dtype=np.int8).tobytes()).hexdigest()


def training_record(attrs: dict[str, Any], split) -> dict[str, Any]:
    """What a model records of its training inputs so that a later test set can be checked as held out.

    Returns
    -------
    dict
        ``patterns``: checksums of the patterns store(s) the inputs store was made from (its
        provenance); ``split``: :func:`split_digest` of its split codes.
    """
    inputs = (attrs.get("provenance") or {}).get("inputs") or {}
    return {"patterns": sorted(set(inputs.values())), "split": split_digest(split)}


def check_compatible(metadata: dict[str, Any], attrs: dict[str, Any], source, split=None) -> None:
    """Check that an inputs store was preprocessed like the model's training inputs, and held out.

    Parameters
    ----------
    metadata : dict
        Model metadata (:func:`load_model`).
    attrs : dict
        Attributes of the inputs store.
    source : path
        The store, named in the error.
    split : ndarray of int8, optional
        The store's split codes. With the model's :func:`training_record`: a store made from
        the model's training patterns store must carry the training split (else its test
        patterns may have been trained on); a store of other patterns is fresh data.

    Raises
    ------
    InputError
        ``block``, ``bin``, ``scale``, ``stats_size``, ``k_grid`` or the k pixel differs (the
        model would see another kind of image), the store's patterns are smaller than the
        training patterns, or its split is not the training one on the same patterns.
    """
    for key in ("block", "bin"):
        if int(attrs.get(key, 1)) != int(metadata.get(key, 1)):
            raise InputError(f"{source}: {key} {attrs.get(key)} differs from the model's {metadata.get(key)}")
    if attrs.get("scale", "linear") != metadata.get("scale", "linear"):
        raise InputError(f"{source}: scale {attrs.get('scale', 'linear')} differs from the model's "
                         f"{metadata.get('scale', 'linear')}")
    if attrs.get("stats_size") != metadata.get("stats_size"):
        raise InputError(f"{source}: standardisation window stats_size {attrs.get('stats_size')} differs from "
                         f"the model's {metadata.get('stats_size')}")
    if attrs.get("k_grid", "centred") != metadata.get("k_grid", "centred"):
        raise InputError(f"{source}: k grid {attrs.get('k_grid', 'centred')} differs from the model's "
                         f"{metadata.get('k_grid', 'centred')}")
    if attrs.get("k_pixel") and metadata.get("k_pixel") and not np.isclose(attrs["k_pixel"], metadata["k_pixel"]):
        raise InputError(f"{source}: k pixel {attrs['k_pixel']:g} differs from the model's {metadata['k_pixel']:g}")
    if attrs.get("source_size") and metadata.get("source_size") and attrs["source_size"] < metadata["source_size"]:
        raise InputError(f"{source}: patterns of side {attrs['source_size']} are smaller than the model's "
                         f"{metadata['source_size']} (a k range the model never saw)")
    record = metadata.get("training")
    if split is None or not record:
        return
    store = training_record(attrs, split)
    if set(store["patterns"]) & set(record["patterns"]) and store["split"] != record["split"]:
        raise InputError(f"{source}: made from the model's training patterns with another split, so its test "
                         "patterns may have been trained on (preprocess with the training --split and --seed)")
