"""Training of the C2 autoencoder as in the reference code of paper 001.

L1 loss, Adam with a CyclicLR in ``triangular2`` mode (base lr = lr/10, half cycle
``cycle_epochs`` epochs, stepped every batch). The paper's augmentation, shifting the crop
window along the diagonal of the full map (x100), is done where the maps are: the crops stage
cuts ``crops_per_map`` random windows of every map. (A crop rolled onto itself with wrap-around,
as ``torch.roll`` would do, puts far-apart times next to the diagonal, which no real crop has.)
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
    """Optimisation settings (see the module docstring); no defaults: the config schema
    (``clustering.train``) is their one home.

    Parameters
    ----------
    epochs : int
        Passes over the training crops.
    batch_size : int
        Crops per optimiser step.
    lr : float
        Peak learning rate of the CyclicLR (base ``lr / 10``).
    cycle_epochs : int
        Half cycle of the CyclicLR in epochs (reference code: 6).
    val_fraction : float
        Fraction of the series held out for validation, in (0, 1).

    Raises
    ------
    ValueError
        When a count is < 1, ``lr <= 0`` or ``val_fraction`` is outside (0, 1).
    """

    epochs: int
    batch_size: int
    lr: float
    cycle_epochs: int
    val_fraction: float

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.cycle_epochs < 1:
            raise ValueError("epochs, batch_size and cycle_epochs must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def split_by_series(series: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation items, holding out whole series.

    Crops of one series are near-duplicates, so validation on held-out crops of seen series
    would flatter the model.

    Parameters
    ----------
    series : ndarray (N,) int
        Series of each item.
    val_fraction : float
        Fraction of the series held out, in (0, 1); at least one on each side.
    rng : numpy.random.Generator

    Returns
    -------
    train, val : ndarray of int
        Item indices.

    Raises
    ------
    ValueError
        With fewer than two series.
    """
    ids = np.unique(series)
    if ids.size < 2:
        raise ValueError("need crops from at least two series to hold one out for validation")
    n_val = int(np.clip(round(val_fraction * ids.size), 1, ids.size - 1))
    val_ids = rng.choice(ids, size=n_val, replace=False)
    is_val = np.isin(series, val_ids)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def evaluate(model: C2Autoencoder, crops: torch.Tensor, device, batch_size: int = 64) -> tuple[float, float]:
    """Mean L1 and MSE reconstruction error, model in eval mode (no dropout, no gradients).

    Parameters
    ----------
    model : C2Autoencoder
    crops : torch.Tensor (N, 1, n, n)
        Crops in [0, 1].
    device : torch.device
    batch_size : int

    Returns
    -------
    l1, mse : float
        Means over crops of the per-crop mean absolute and squared error.
    """
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
        Drives the split, the initial weights, shuffling and dropout.
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
    per_epoch = int(np.ceil(train_data.shape[0] / train_config.batch_size))
    scheduler = torch.optim.lr_scheduler.CyclicLR(
        optimizer, base_lr=train_config.lr / 10, max_lr=train_config.lr,
        step_size_up=train_config.cycle_epochs * per_epoch, mode="triangular2", cycle_momentum=False,
    )
    loss_fn = torch.nn.L1Loss()
    history: list[dict] = []
    best = (float("inf"), None)
    log.info("training on %d crops, validating on %d held-out crops", train_data.shape[0], val_data.shape[0])
    for epoch in progress(range(1, train_config.epochs + 1), "train", every=10.0):
        model.train()
        order = torch.randperm(train_data.shape[0], generator=generator)
        total, count = 0.0, 0
        for start in range(0, order.numel(), train_config.batch_size):
            batch = train_data[order[start:start + train_config.batch_size]].to(device)
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
    """Latents and per-crop L1 reconstruction error, model in eval mode.

    Parameters
    ----------
    model : C2Autoencoder
    crops : ndarray (N, n, n)
        Min-max scaled crops in [0, 1].
    device : torch.device or str
    batch_size : int
        Crops per forward pass (memory only).

    Returns
    -------
    latents : ndarray (N, latent) float32
        Non-negative (after the bottleneck ReLU).
    errors : ndarray (N,) float32
        Mean absolute reconstruction error of each crop.
    """
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


def train_from_store(crops_path, model_path, *, latent: int, epochs: int, batch_size: int, lr: float,
                     cycle_epochs: int, val_fraction: float, seed: int, device: str,
                     pools: tuple[int, int, int], history_path=None, metrics_path=None) -> dict:
    """The ``train`` stage: train a :class:`C2Autoencoder` on a crops store and save it.

    Parameters
    ----------
    crops_path : path
        Crops store (schema :data:`~speckleml.clustering.crops.CROPS`); the model's input side
        is its ``crop`` attribute.
    model_path : path
        Checkpoint to write (:func:`~speckleml.clustering.model.save_model`), with the metrics
        and the per-epoch history.
    latent : int
        Latent size.
    pools : tuple of 3 int
        Max-pooling factor of each encoder stage (:class:`AutoencoderConfig`; reference 4, 4, 4);
        the crop side must be divisible by their product.
    epochs, batch_size, lr, cycle_epochs, val_fraction
        See :class:`TrainConfig`.
    seed : int
        Drives the split, the initial weights, shuffling and dropout.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (:func:`speckleml.runtime.resolve_device`).
    history_path, metrics_path : path, optional
        CSV of the per-epoch losses; JSON of the held-out errors of the kept weights.

    Returns
    -------
    dict
        The metrics: ``latent, crop, pools, epochs, best_epoch, val_l1, val_mse, n_parameters``.

    Raises
    ------
    InputError
        When the settings are invalid or the store does not fit the model.
    """
    import json

    import pandas as pd

    from ..atomic import write_csv, write_text
    from ..errors import InputError
    from ..runtime import resolve_device
    from ..stores import read_store
    from .crops import CROPS
    from .model import save_model

    store = read_store(crops_path, CROPS)
    try:
        model_config = AutoencoderConfig(crop=int(store.attrs["crop"]), latent=latent, pools=tuple(pools))
        if model_config.bottom == 1:
            log.warning("pools %s leave the bottleneck a 1 x 1 map of the %d px crops: no position along or "
                        "across the diagonal (the reference leaves 4 x 4; README, clustering)",
                        "x".join(map(str, model_config.pools)), model_config.crop)
        train_config = TrainConfig(epochs, batch_size, lr, cycle_epochs, val_fraction)
        model, history = train_autoencoder(store["crops"], store["series"], model_config, train_config, seed,
                                           resolve_device(device))
    except ValueError as exc:
        raise InputError(f"{crops_path}: {exc}") from None
    best = min(history, key=lambda row: row["val_l1"])
    metrics = {"latent": latent, "crop": model_config.crop, "pools": list(model_config.pools), "epochs": epochs,
               "best_epoch": best["epoch"], "val_l1": best["val_l1"], "val_mse": best["val_mse"],
               "n_parameters": sum(p.numel() for p in model.parameters())}
    save_model(model_path, model.cpu(), extra={"metrics": metrics, "history": history})
    if history_path:
        write_csv(pd.DataFrame(history), history_path)
    if metrics_path:
        write_text(json.dumps(metrics, indent=2) + "\n", metrics_path)
    log.info("wrote %s: latent %d, pools %s, best val L1 %.4f (MSE %.5f) at epoch %d", model_path, latent,
             "x".join(map(str, model_config.pools)), best["val_l1"], best["val_mse"], best["epoch"])
    return metrics


def encode_store(model_path, crops_path, output_path, *, device: str, batch_size: int = 64) -> None:
    """The ``encode`` stage: latent vector and reconstruction L1 of every crop -> latents store.

    Parameters
    ----------
    model_path : path
        Checkpoint of :func:`~speckleml.clustering.model.save_model`.
    crops_path : path
        Crops store whose ``crop`` equals the model's input side.
    output_path : path
        Latents store to write (schema :data:`~speckleml.clustering.cluster.LATENTS`), with the
        crops' labels, origins and KWW relaxation times.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    batch_size : int
        Crops per forward pass (memory only: eval mode, the result does not depend on it
        beyond float rounding).

    Raises
    ------
    InputError
        When the checkpoint or the store is unreadable, or their crop sizes differ.
    """
    from ..errors import InputError
    from ..provenance import checksum, make_provenance
    from ..runtime import resolve_device
    from ..stores import read_store, write_store
    from .cluster import LATENTS
    from .crops import CROPS
    from .model import load_model

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    store = read_store(crops_path, CROPS)
    model, _ = load_model(model_path)
    if model.config.crop != int(store.attrs["crop"]):
        raise InputError(f"{crops_path}: crops are {store.attrs['crop']} px but {model_path} expects {model.config.crop}")
    latents, errors = encode_crops(model, store["crops"], resolve_device(device), batch_size)
    arrays = {"latent": latents, "recon_l1": errors, "kww_tau": store["kww_tau"], "kww_bound": store["kww_bound"],
              **{k: store[k] for k in ("label", "series", "sector", "start")}}
    attrs = {k: store.attrs[k] for k in ("classes", "dt", "crop")}
    attrs["crop_bin"] = int(store.attrs.get("crop_bin", 1))   # frames per crop pixel (query files are binned alike)
    # what similar/cluster check a model or crops store against (the paths alone may be reused)
    made_from = {"model": str(model_path), "source": str(crops_path),
                 "model_checksum": checksum(model_path), "source_checksum": checksum(crops_path)}
    write_store(output_path, LATENTS, arrays, attrs={**attrs, **made_from},
                provenance=make_provenance(config={"batch_size": batch_size, "device": device},
                                           inputs=[model_path, crops_path]))
    log.info("wrote %s: %d latents of size %d, mean L1 %.4f", output_path, *latents.shape, float(errors.mean()))


def check_made_from(store, store_path, *, model=None, crops=None) -> None:
    """Check that a latents store was encoded by ``model`` from the crops store ``crops``.

    :func:`encode_store` records the SHA-256 of its checkpoint and crops store
    (``model_checksum``, ``source_checksum``); a model or crops store given later for the same
    latents (``similar``) must have the same content: a different model of the same latent
    size, or another crops store, would pair queries and latents that do not correspond.

    Parameters
    ----------
    store : Store
        The latents store (its ``attrs``).
    store_path : path
        Its path, for the message.
    model, crops : path, optional
        Checkpoint and crops store to check; None skips that check.

    Raises
    ------
    InputError
        Naming the file that is not the recorded one, or the store when it records no checksum
        (written before checksums were recorded: re-run ``encode``).
    """
    from ..errors import InputError
    from ..provenance import checksum

    for path, key, what in ((model, "model", "model"), (crops, "source", "crops store")):
        if path is None:
            continue
        recorded = store.attrs.get(f"{key}_checksum")
        if recorded is None:
            raise InputError(f"{store_path}: records no checksum of its {what}; re-run `speckleml clustering encode`")
        if checksum(path) != recorded:
            raise InputError(f"{path}: not the {what} {store_path} was encoded with "
                             f"(that was {store.attrs.get(key, '?')}, {recorded[:19]}...)")
