"""Saliency maps and Grad-CAM for the disk-count classifier (paper 002, Discussion, SI).

- Saliency (Simonyan et al. 2014): ``|d score_c / d input|`` of the class score ``c``
  (the logit before softmax) per pixel.
- Grad-CAM (Selvaraju et al. 2017): ``ReLU(sum_k alpha_k A_k)`` with ``A`` the activations of
  the last convolutional stage (``layer4`` of a torchvision ResNet) and ``alpha_k`` the
  spatial mean of ``d score_c / d A_k``; bilinearly upsampled to the input size and scaled
  to a maximum of 1. Implemented with a forward hook (no extra dependency).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def saliency_maps(model, inputs: np.ndarray, target: np.ndarray, device) -> np.ndarray:
    """Absolute input gradient of each sample's target class score (Simonyan et al. 2014).

    Parameters
    ----------
    model : torch.nn.Module
    inputs : ndarray, shape (batch, y, x)
        Standardised patterns.
    target : ndarray of int, shape (batch,)
        Class index (logit) explained per sample.
    device : torch.device or str

    Returns
    -------
    ndarray, float32, shape (batch, y, x)
        ``|d logit / d input|`` per pixel (logit per standardised intensity unit).
    """
    import torch

    model.eval()
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)[:, None].requires_grad_(True)
    logits = model(x)
    score = logits.gather(1, torch.as_tensor(target, device=device).long()[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x)
    return grad.abs()[:, 0].cpu().numpy().astype(np.float32)


def gradcam_maps(model, inputs: np.ndarray, target: np.ndarray, device, layer=None) -> np.ndarray:
    """Grad-CAM of each sample's target class on ``layer`` (default ``model.layer4``).

    Parameters
    ----------
    model : torch.nn.Module
        A torchvision ResNet (or any model with ``layer``).
    inputs : ndarray, shape (batch, y, x)
    target : ndarray of int, shape (batch,)
    device : torch.device or str
    layer : torch.nn.Module, optional

    Returns
    -------
    ndarray, float32, shape (batch, y, x)
        In [0, 1] per sample (all zeros where no positive evidence is found); constant on the
        block of input pixels under each cell of the layer's output (nearest upsampling).
    """
    import torch

    layer = layer if layer is not None else model.layer4
    captured = {}

    def keep_activation(_module, _inputs, output):
        captured["activation"] = output

    handle = layer.register_forward_hook(keep_activation)
    try:
        model.eval()
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)[:, None]
        logits = model(x)
        score = logits.gather(1, torch.as_tensor(target, device=device).long()[:, None]).sum()
        activation = captured["activation"]
        (grad,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activation).sum(dim=1, keepdim=True))
    # nearest: one block of input pixels per feature-map cell, no detail finer than the layer resolves
    cam = torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="nearest")[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(torch.finfo(cam.dtype).tiny)[:, None, None]
    return (cam / peak).detach().cpu().numpy().astype(np.float32)


def feature_map_shape(model, input_shape: tuple[int, int], device, layer=None) -> tuple[int, int]:
    """Spatial (y, x) size of ``layer``'s output (default ``model.layer4``) for one input of ``input_shape``.

    Grad-CAM is upsampled from this map: at 1 x 1 it is one number per class, i.e. a constant
    map that says nothing about where the evidence lies.

    Parameters
    ----------
    model : torch.nn.Module
    input_shape : (int, int)
        (y, x) of one single-channel input.
    device : torch.device or str
    layer : torch.nn.Module, optional

    Returns
    -------
    (int, int)
        For a ResNet: about input / 32 per axis (27 -> 1, 53 -> 2, 257 -> 9).
    """
    import torch

    layer = layer if layer is not None else model.layer4
    captured = {}
    def keep_shape(_module, _inputs, output):  # returns None: the output is left as it is
        captured["shape"] = output.shape

    handle = layer.register_forward_hook(keep_shape)
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, 1, *input_shape), device=device))
    finally:
        handle.remove()
    return int(captured["shape"][-2]), int(captured["shape"][-1])


def one_per_class(labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """Index of the first pattern of every class present in ``labels`` (in class order).

    Parameters
    ----------
    labels : ndarray of int
        Disk numbers.
    classes : list of int
        Disk numbers in the order wanted; those absent from ``labels`` are skipped.

    Returns
    -------
    ndarray of int, shape (classes present,)
    """
    labels = np.asarray(labels)
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in classes if (labels == c).any()], dtype=int)


def interpret_store(model_path, source, output, *, device: str):
    """Saliency and Grad-CAM maps of the first test pattern of every class (paper 002 §4, SI).

    Each map explains the class the model predicted (the Grad-CAM convention).

    Parameters
    ----------
    model_path : path
        Model file (:func:`~speckleml.disk_count.model.save_model`).
    source : path
        Inputs store with a test split, preprocessed like the model's training inputs.
    output : path
        Maps store to write (:data:`~speckleml.disk_count.data.MAPS`): ``inputs``,
        ``saliency``, ``gradcam`` (sample, y, x); ``n_disks``, ``predicted``, ``probability``;
        attribute ``feature_map``: the (y, x) size of layer4's output, from which Grad-CAM
        is upsampled (1 x 1 means a constant Grad-CAM map).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        Unreadable model or store, preprocessing unlike the model's.
    """
    from ..provenance import make_provenance
    from ..runtime import resolve_device, seed_everything
    from ..stores import read_store, write_store
    from .data import INPUTS, MAPS, SPLITS
    from .model import check_compatible, load_model, predict_proba

    seed_everything(0)  # deterministic kernels; nothing here is random
    torch_device = resolve_device(device)
    model, metadata = load_model(model_path, torch_device)
    store = read_store(source, INPUTS)
    check_compatible(metadata, store.attrs, source, store["split"])
    test = np.flatnonzero(store["split"] == SPLITS["test"])
    classes = [int(c) for c in metadata["classes"]]
    chosen = test[one_per_class(store["n_disks"][test], classes)]
    inputs = store["inputs"][chosen]
    probability = predict_proba(model, inputs, torch_device)
    target = probability.argmax(1)
    arrays = {"inputs": inputs, "saliency": saliency_maps(model, inputs, target, torch_device),
              "gradcam": gradcam_maps(model, inputs, target, torch_device), "n_disks": store["n_disks"][chosen],
              "predicted": np.asarray(classes, np.int64)[target],
              "probability": probability.max(1).astype(np.float32)}
    path = write_store(output, MAPS, arrays,
                       attrs={"patterns": chosen.tolist(), "layer": "layer4", "explained_class": "predicted",
               "feature_map": list(feature_map_shape(model, inputs.shape[1:], torch_device))},
                       provenance=make_provenance(config={"device": device}, inputs=[source, model_path]))
    log.info("wrote maps of %d patterns to %s", len(chosen), output)
    return path
