"""The AI-NERD convolutional autoencoder of two-time maps (paper 001, reference code).

Three encoder stages of ``[Conv3x3 -> Dropout -> ReLU] x 2 + MaxPool(p_i)`` with 16/32/64
channels, a fully connected bottleneck ``Linear(flat, latent) + ReLU`` and back, and a
decoder of ``[Conv3x3 -> Dropout -> ReLU] x 2 + bilinear Upsample(p_i)`` stages (in reverse order) ending in a
``Conv3x3`` and an output activation (``Sigmoid`` in the authors' training script; ``ReLU``
for their published weights, see :func:`load_published`). Submodules are named and indexed
exactly as in the authors' code (``encoder``, ``bottleneck``, ``decoder1`` as
``nn.Sequential``), so their published ``state_dict`` loads with
``load_state_dict(strict=True)`` unchanged. The reference pools by 4 in every stage
(``pools = (4, 4, 4)``), which leaves a 4 x 4 map of its 256 px crops to the bottleneck; the
flattened size is ``channels[-1] * (crop / (p_1 p_2 p_3))**2`` (1024 for 256 px crops). On
smaller crops the same pools leave less: a 64 px crop would reach the bottleneck as ONE pixel,
a global maximum per channel that keeps no position along or across the diagonal, so the
laptop scale pools ``(4, 2, 2)`` and keeps the reference's 4 x 4 map and 1024 features
(pooling has no weights: the parameter names and, for the same flat size, shapes are unchanged).

Input convention (the authors' crop ``AccuracyEvaluation_TargetImage.npy`` and their
``InferenceEncoding`` notebook; :func:`to_model_input` applies it): one square C2 crop cut
along the diagonal, array index ``[i, j] = C2(t1 = s + i, t2 = s + j)`` with both times
increasing with the index, so ``t1 = t2`` is the main diagonal ``[i, i]`` (bottom-left to
top-right with ``imshow(origin="lower")``), the diagonal values kept; each crop min-max
scaled to [0, 1] on its own; float32; layout NCHW ``(batch, 1, crop, crop)`` (PyTorch, no
channel-last transposition); evaluation mode (no dropout). Our own crops
(:mod:`speckleml.clustering.crops`: ``diagonal_crops`` then ``minmax_normalise``) follow it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..checkpoints import load_torch, save_torch

OUTPUT_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of a :class:`C2Autoencoder` (stored with every checkpoint).

    Parameters
    ----------
    crop : int
        Side of the square input maps; must be divisible by the product of ``pools``.
    latent : int
        Size of the latent vector.
    channels : tuple of int
        Channels of the three encoder stages (reference: 16, 32, 64).
    pools : tuple of int
        Max-pooling factor of each encoder stage, the decoder's upsampling factors in reverse
        (reference: 4, 4, 4); ``crop`` must be divisible by their product.
    dropout : float
        Dropout probability after every convolution (reference: 0.05).
    output : {"sigmoid", "relu"}
        Activation after the last convolution: ``"sigmoid"`` as in the authors' training
        script, ``"relu"`` as their published weights were trained (the decoder class of
        their analysis notebook ends in ``ReLU`` with the ``Sigmoid`` commented out; with a
        Sigmoid these weights cannot output values below 0.5).
    """

    crop: int = 256
    latent: int = 64
    channels: tuple[int, int, int] = (16, 32, 64)
    pools: tuple[int, int, int] = (4, 4, 4)
    dropout: float = 0.05
    output: str = "sigmoid"

    def __post_init__(self):
        if len(self.pools) != 3 or min(self.pools) < 1:
            raise ValueError(f"need three pooling factors >= 1, got {self.pools}")
        if self.crop % self.reduction:
            raise ValueError(f"crop {self.crop} must be divisible by the product of the pools "
                             f"{'x'.join(map(str, self.pools))} = {self.reduction}")
        if self.latent < 1 or len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError("need latent >= 1 and three positive channel counts")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.output not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output must be one of {sorted(OUTPUT_ACTIVATIONS)}, got {self.output!r}")

    @property
    def reduction(self) -> int:
        """Product of the pooling factors: crop side / side of the last encoder map."""
        return int(np.prod(self.pools))

    @property
    def bottom(self) -> int:
        """Spatial side of the last encoder feature map."""
        return self.crop // self.reduction

    @property
    def flat(self) -> int:
        """Number of features entering the bottleneck."""
        return self.channels[2] * self.bottom ** 2

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels), "pools": list(self.pools)}

    @classmethod
    def from_dict(cls, values: dict) -> "AutoencoderConfig":
        values = dict(values)
        values["channels"] = tuple(values.get("channels", (16, 32, 64)))
        if "pool" in values and "pools" in values:
            raise ValueError("config has both pool and pools")
        if "pool" in values:  # checkpoints written before per-stage pools: one factor for all
            values["pools"] = (values.pop("pool"),) * 3
        values["pools"] = tuple(int(p) for p in values.get("pools", (4, 4, 4)))
        return cls(**values)


def _conv_block(c_in: int, c_out: int, dropout: float) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=1, padding=1), nn.Dropout(dropout), nn.ReLU()]


class C2Autoencoder(nn.Module):
    """Hourglass autoencoder of min-max normalised C2 crops ``(batch, 1, crop, crop)``.

    Inputs follow the convention of the module docstring (:func:`to_model_input`).

    Parameters
    ----------
    config : AutoencoderConfig, optional
        Shape (default: the paper's 256 px crops and 64-d latent).

    Examples
    --------
    >>> model = C2Autoencoder(AutoencoderConfig(crop=64, latent=8))
    >>> model(torch.rand(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
    """

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = config = config or AutoencoderConfig()
        c1, c2, c3 = config.channels
        (p1, p2, p3), d = config.pools, config.dropout
        self.encoder = nn.Sequential(
            *_conv_block(1, c1, d), *_conv_block(c1, c1, d), nn.MaxPool2d((p1, p1)),
            *_conv_block(c1, c2, d), *_conv_block(c2, c2, d), nn.MaxPool2d((p2, p2)),
            *_conv_block(c2, c3, d), *_conv_block(c3, c3, d), nn.MaxPool2d((p3, p3)),
        )
        self.bottleneck = nn.Sequential(
            nn.Flatten(),
            nn.Linear(config.flat, config.latent),
            nn.ReLU(),
            nn.Linear(config.latent, config.flat),
            nn.ReLU(),
            nn.Unflatten(1, (c3, config.bottom, config.bottom)),
        )
        self.decoder1 = nn.Sequential(
            *_conv_block(c3, c3, d), *_conv_block(c3, c3, d), nn.Upsample(scale_factor=p3, mode="bilinear"),
            *_conv_block(c3, c3, d), *_conv_block(c3, c3, d), nn.Upsample(scale_factor=p2, mode="bilinear"),
            *_conv_block(c3, c2, d), *_conv_block(c2, c2, d), nn.Upsample(scale_factor=p1, mode="bilinear"),
            nn.Conv2d(c2, 1, 3, stride=1, padding=1),
            OUTPUT_ACTIVATIONS[config.output](),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent vectors ``(batch, latent)`` (non-negative: after the bottleneck ReLU)."""
        return self.bottleneck[:3](self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``(batch, 1, crop, crop)`` from latents (in [0, 1] for ``output="sigmoid"``)."""
        return self.decoder1(self.bottleneck[3:](z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def to_model_input(crops) -> torch.Tensor:
    """C2 crops in the model's input convention: ``(batch, 1, n, n)`` float32, each in [0, 1].

    Parameters
    ----------
    crops : array_like, shape (n, n) or (batch, n, n)
        Square C2 crops along the diagonal, index ``[i, j] = C2(t1 = s + i, t2 = s + j)``
        (see the module docstring). Each crop is min-max scaled to [0, 1] on its own
        (a no-op for crops that already are, such as the authors' and ours); a constant
        crop becomes zeros.

    Raises
    ------
    ValueError
        When the crops are not square 2-D maps or not finite.
    """
    crops = np.asarray(crops, np.float64)
    if crops.ndim == 2:
        crops = crops[None]
    if crops.ndim != 3 or crops.shape[1] != crops.shape[2] or not np.isfinite(crops).all():
        raise ValueError(f"expected finite square C2 crops (n, n) or (batch, n, n), got shape {crops.shape}")
    low = crops.min(axis=(1, 2), keepdims=True)
    span = crops.max(axis=(1, 2), keepdims=True) - low
    scaled = (crops - low) / np.where(span > 0, span, 1.0)
    return torch.from_numpy(scaled.astype(np.float32)[:, None])


def save_model(path, model: C2Autoencoder, extra: dict | None = None) -> None:
    """Save weights and shape atomically: ``{"config": ..., "state_dict": ..., **extra}``.

    Parameters
    ----------
    path : path
        Checkpoint file (``*.pt``), written atomically.
    model : C2Autoencoder
        Its :class:`AutoencoderConfig` and ``state_dict`` are stored (tensors as they are:
        move the model to the CPU first for a device-independent file).
    extra : dict, optional
        More entries (metrics, history); must not use the keys ``config``, ``state_dict``.
    """
    save_torch({"config": model.config.to_dict(), "state_dict": model.state_dict(), **(extra or {})}, path)


def load_model(path, map_location="cpu") -> tuple[C2Autoencoder, dict]:
    """Load a checkpoint written by :func:`save_model` (strict), in eval mode.

    Raises
    ------
    InputError
        When the file is not such a checkpoint, its config is invalid or its weights do not fit
        the model its config describes.
    """
    from ..errors import InputError

    checkpoint = load_torch(path, "clustering checkpoint", keys=("config", "state_dict"), map_location=map_location)
    try:
        model = C2Autoencoder(AutoencoderConfig.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise InputError(f"{path}: not a checkpoint of the C2 autoencoder its config describes: "
                         f"{' '.join(str(exc).split())[:300]}") from None
    model.eval()
    return model, checkpoint


def load_published(path, crop: int = 256, latent: int = 64, map_location="cpu") -> C2Autoencoder:
    """The authors' published ``state_dict`` loaded strictly into :class:`C2Autoencoder`, in eval mode.

    The weights were trained with a ``ReLU`` output (``output="relu"``): with the training
    script's ``Sigmoid`` instead, their reconstruction of the authors' real crop
    ``AccuracyEvaluation_TargetImage.npy`` is nearly flat in [0.52, 0.67] (L1 0.341, worse
    than its mean's 0.094); with the ``ReLU`` it is L1 0.037. Feed crops through
    :func:`to_model_input`.

    Raises
    ------
    InputError
        When the file is not such a ``state_dict``.
    """
    from ..errors import InputError

    state = load_torch(path, "state_dict", map_location=map_location)
    model = C2Autoencoder(AutoencoderConfig(crop=crop, latent=latent, output="relu"))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not fit the reference autoencoder: {' '.join(str(exc).split())[:300]}") from None
    model.eval()
    return model
