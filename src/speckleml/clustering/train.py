"""Training of the C2 autoencoder as in the reference code of paper 001.

L1 loss, Adam with a CyclicLR in ``triangular2`` mode (base lr = lr/10, half cycle
``cycle_epochs`` epochs, stepped every batch), and augmentation by wrapped shifts along the
diagonal: a C2 crop rolled by the same amount on both time axes is another plausible crop
of the same map, which is how the authors taught the model off-diagonal features (x100).
Validation is on whole series held out (crops of one series are near-duplicates); the
weights of the epoch with the lowest validation L1 are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import progress
from .model import AutoencoderConfig, C2Autoencoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (see the module docstring)."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    augment: int = 4
    cycle_epochs: int = 6
    val_fraction: float = 0.2

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.augment < 1 or self.cycle_epochs < 1:
            raise ValueError("epochs, batch_size, augment and cycle_epochs must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def split_by_series(series: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation items, holding out whole series.

    At least one series goes to each side (when there are two or more series).
    """
    ids = np.unique(series)
    if ids.size < 2:
        raise ValueError("need crops from at least two series to hold one out for validation")
    n_val = int(np.clip(round(val_fraction * ids.size), 1, ids.size - 1))
    val_ids = rng.choice(ids, size=n_val, replace=False)
    is_val = np.isin(series, val_ids)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def wrapped_diagonal_shift(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Roll every map of ``batch`` (B, 1, n, n) by one random shift on both time axes."""
    n = batch.shape[-1]
    shifts = torch.randint(0, n, (batch.shape[0],), generator=generator)
    return torch.stack([torch.roll(image, shifts=(int(s), int(s)), dims=(-2, -1)) for image, s in zip(batch, shifts)])


def evaluate(model: C2Autoencoder, crops: torch.Tensor, device, batch_size: int = 64) -> tuple[float, float]:
    """Mean L1 and MSE reconstruction error of ``crops`` (N, 1, n, n), model in eval mode."""
    model.eval()
    l1 = mse = 0.0
    with torch.no_grad():
        for start in range(0, crops.shape[0], batch_size):
            x = crops[start:start + batch_size].to(device)
            y = model(x)
            l1 += float((y - x).abs().mean(dim=(1, 2, 3)).sum())
            mse += float(((y - x) ** 2).mean(dim=(1, 2, 3)).sum())
    return l1 / crops.shape[0], mse / crops.shape[0]


def train_autoencoder(crops: np.ndarray, series: np.ndarray, model_config: AutoencoderConfig,
                      train_config: TrainConfig, seed: int, device) -> tuple[C2Autoencoder, list[dict]]:
    """Train a :class:`C2Autoencoder` on min-max normalised crops.

    Parameters
    ----------
    crops : ndarray (N, n, n)
        Crops in [0, 1].
    series : ndarray (N,)
        Series of each crop (validation holds out whole series).
    model_config, train_config : AutoencoderConfig, TrainConfig
    seed : int
        Drives the split, the initial weights, shuffling, dropout and augmentation.
    device : torch.device

    Returns
    -------
    model : C2Autoencoder
        With the weights of the best validation epoch, in eval mode, on ``device``.
    history : list of dict
        Per epoch: ``epoch, train_l1, val_l1, val_mse, lr``.
    """
    from ..runtime import seed_everything

    if crops.ndim != 3 or crops.shape[1] != crops.shape[2] or crops.shape[1] != model_config.crop:
        raise ValueError(f"crops must be (N, {model_config.crop}, {model_config.crop}), got {crops.shape}")
    rng = seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    train_idx, val_idx = split_by_series(np.asarray(series), train_config.val_fraction, rng)
    data = torch.from_numpy(np.ascontiguousarray(crops, np.float32))[:, None]
    train_data, val_data = data[train_idx], data[val_idx]

    model = C2Autoencoder(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    per_epoch = int(np.ceil(train_data.shape[0] * train_config.augment / train_config.batch_size))
    scheduler = torch.optim.lr_scheduler.CyclicLR(
        optimizer, base_lr=train_config.lr / 10, max_lr=train_config.lr,
        step_size_up=train_config.cycle_epochs * per_epoch, mode="triangular2", cycle_momentum=False,
    )
    loss_fn = torch.nn.L1Loss()
    history: list[dict] = []
    best = (float("inf"), None)
    log.info("training on %d crops x%d augmentation, validating on %d held-out crops",
             train_data.shape[0], train_config.augment, val_data.shape[0])
    for epoch in progress(range(1, train_config.epochs + 1), "train", every=10.0):
        model.train()
        # x augment: every crop appears `augment` times per epoch, each with its own shift.
        order = torch.randperm(train_data.shape[0] * train_config.augment, generator=generator) % train_data.shape[0]
        total, count = 0.0, 0
        for start in range(0, order.numel(), train_config.batch_size):
            batch = wrapped_diagonal_shift(train_data[order[start:start + train_config.batch_size]], generator).to(device)
            loss = loss_fn(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * batch.shape[0]
            count += batch.shape[0]
        val_l1, val_mse = evaluate(model, val_data, device)
        history.append({"epoch": epoch, "train_l1": total / count, "val_l1": val_l1, "val_mse": val_mse,
                        "lr": scheduler.get_last_lr()[0]})
        log.info("epoch %d: train L1 %.4f, val L1 %.4f, val MSE %.5f", epoch, total / count, val_l1, val_mse)
        if val_l1 < best[0]:
            best = (val_l1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    model.eval()
    return model, history


def encode_crops(model: C2Autoencoder, crops: np.ndarray, device, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Latents (N, latent) and per-crop L1 reconstruction error (N,) of ``crops`` (N, n, n)."""
    model.eval().to(device)
    latents, errors = [], []
    with torch.no_grad():
        for start in range(0, crops.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[start:start + batch_size], np.float32))[:, None].to(device)
            z = model.encode(x)
            y = model.decode(z)
            latents.append(z.cpu().numpy())
            errors.append((y - x).abs().mean(dim=(1, 2, 3)).cpu().numpy())
    return np.concatenate(latents).astype(np.float32), np.concatenate(errors).astype(np.float32)
