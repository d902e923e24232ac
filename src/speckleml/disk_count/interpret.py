"""Saliency maps and Grad-CAM for the disk-count classifier (paper 002, Discussion, SI).

- Saliency (Simonyan et al. 2014): ``|d score_c / d input|`` of the class score ``c``
  (the logit before softmax) per pixel.
- Grad-CAM (Selvaraju et al. 2017): ``ReLU(sum_k alpha_k A_k)`` with ``A`` the activations of
  the last convolutional stage (``layer4`` of a torchvision ResNet) and ``alpha_k`` the
  spatial mean of ``d score_c / d A_k``; bilinearly upsampled to the input size and scaled
  to a maximum of 1. Implemented with a forward hook (no extra dependency).
"""

from __future__ import annotations

import numpy as np


def saliency_maps(model, inputs: np.ndarray, target: np.ndarray, device) -> np.ndarray:
    """Absolute input gradient of each sample's target class score, (batch, y, x) float32."""
    import torch

    model.eval()
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)[:, None].requires_grad_(True)
    logits = model(x)
    score = logits.gather(1, torch.as_tensor(target, device=device).long()[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x)
    return grad.abs()[:, 0].cpu().numpy().astype(np.float32)


def gradcam_maps(model, inputs: np.ndarray, target: np.ndarray, device, layer=None) -> np.ndarray:
    """Grad-CAM of each sample's target class on ``layer`` (default ``model.layer4``).

    Returns
    -------
    ndarray, float32, shape (batch, y, x)
        In [0, 1] per sample (all zeros where no positive evidence is found).
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
    cam = torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(torch.finfo(cam.dtype).tiny)[:, None, None]
    return (cam / peak).detach().cpu().numpy().astype(np.float32)


def one_per_class(labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """Index of the first pattern of every class present in ``labels`` (in class order)."""
    labels = np.asarray(labels)
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in classes if (labels == c).any()], dtype=int)
