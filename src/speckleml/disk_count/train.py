"""Training loop of the disk-count classifier (paper 002: Adam, categorical cross entropy).

Keras defaults in the paper: Adam with learning rate 1e-3; 200 epochs of batch 40 at paper
scale. The weights of the epoch with the best validation accuracy (ties: lowest validation
loss) are kept, which is what a Keras ``ModelCheckpoint(save_best_only=True)`` run gives.

Optional augmentation uses the symmetries of the problem: a mirrored or 90-degree-rotated
disk configuration is another valid configuration with the same disk number. On the centred
k grid its pattern is the mirrored/rotated pattern (the 8 symmetries of the square). On the
paper's quadrant grid (k >= 0) only the diagonal mirror x <-> y maps the quadrant onto itself
(a mirror x -> -x would need the k_x < 0 half), so the augmentation is a random transpose.

Optional k-range augmentation (``k_range_min`` < 1) trains each batch on a random crop of the
k range: on the quadrant grid the corner ``n = 0 .. c-1`` (the pattern the same system gives on
a smaller detector at the same k pixel), re-standardised like a pattern of that size. The model
then sees global-average-pooled features over k ranges of different extent, which is what a
pattern of a larger k range (paper Fig. 4) asks of it.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..progress import progress

log = logging.getLogger(__name__)

#: Learning-rate schedules: constant (Keras default, the paper) or cosine decay to 0 over the
#: run, which settles short CPU runs (few epochs) on a stable minimum.
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run (paper 002 §2: Adam, lr 1e-3, 200 epochs, batch 40).

    Raises
    ------
    InputError
        ``epochs`` < 1, ``batch_size`` < 2, ``lr`` <= 0 or an unknown ``schedule``.
    """

    epochs: int
    batch_size: int
    lr: float = 1e-3
    augment: bool = False
    schedule: str = "constant"
    seed: int = 0
    k_range_min: float = 1.0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 2 or not self.lr > 0:
            raise InputError(f"need epochs >= 1, batch size >= 2 and lr > 0; got {self.epochs}, "
                             f"{self.batch_size}, {self.lr}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"--schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0 < self.k_range_min <= 1:
            raise InputError(f"--k-range-min must be in (0, 1], got {self.k_range_min}")


def symmetry_augment(x, generator, grid: str = "quadrant"):
    """Random symmetries of the pattern per sample.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, channels, y, x), y == x
    generator : torch.Generator
        Draws the flips and turns.
    grid : {"quadrant", "centred"}
        ``centred``: random flips and 90-degree rotations (the 8 symmetries of the square);
        ``quadrant``: random transpose (the diagonal mirror, the one that keeps k >= 0).

    Returns
    -------
    torch.Tensor
        Same shape; each sample mirrored and/or rotated.
    """
    import torch

    if grid == "quadrant":
        swap = torch.randint(0, 2, (x.shape[0],), generator=generator).bool()
        return torch.where(swap[:, None, None, None], x.transpose(-2, -1), x)
    flips = torch.randint(0, 2, (2, x.shape[0]), generator=generator).bool()
    turns = torch.randint(0, 4, (x.shape[0],), generator=generator)
    x = torch.where(flips[0][:, None, None, None], x.flip(-1), x)
    x = torch.where(flips[1][:, None, None, None], x.flip(-2), x)
    out = x.clone()
    for t in range(1, 4):
        chosen = turns == t
        if chosen.any():
            out[chosen] = torch.rot90(x[chosen], t, dims=(-2, -1))
    return out


def k_range_crop(x, size: int, grid: str = "quadrant"):
    """The part of standardised patterns within a smaller k range, re-standardised.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, channels, y, x)
        Per-pattern standardised inputs (an affine map of the intensities, so standardising
        the crop equals preprocessing the smaller pattern from scratch).
    size : int
        Side of the crop in input pixels, 3 .. y.
    grid : {"quadrant", "centred"}
        ``quadrant``: the corner at k = 0 (``n = 0 .. size-1``); ``centred``: the centred
        ``size x size`` square (``size`` odd).

    Returns
    -------
    torch.Tensor, shape (batch, channels, size, size)
        Zero mean and unit variance per pattern.
    """
    if grid == "quadrant":
        crop = x[..., :size, :size]
    else:
        start = (x.shape[-1] - size) // 2
        crop = x[..., start: start + size, start: start + size]
    mean = crop.mean(dim=(-2, -1), keepdim=True)
    std = crop.std(dim=(-2, -1), keepdim=True, unbiased=False).clamp_min(1e-6)
    return (crop - mean) / std


def evaluate_loss(model, x, y, device, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on a data set, in batches without gradients.

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor, shape (n, 1, h, w)
    y : torch.Tensor of int64, shape (n,)
        Class indices.
    device : torch.device
    batch_size : int

    Returns
    -------
    (float, float)
        Mean cross-entropy (nats) and accuracy (fraction).
    """
    import torch

    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start: start + batch_size].to(device), y[start: start + batch_size].to(device)
            logits = model(xb)
            total_loss += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    n = max(len(x), 1)
    return total_loss / n, correct / n


def train_classifier(model, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                     settings: TrainSettings, device, grid: str = "quadrant"):
    """Train ``model`` in place and load the best-validation weights.

    Parameters
    ----------
    model : torch.nn.Module
    train_x, val_x : ndarray, float32, shape (n, y, x)
        Standardised patterns.
    train_y, val_y : ndarray, int
        Class indices (0 .. classes-1).
    settings : TrainSettings
    device : torch.device
    grid : {"quadrant", "centred"}
        k grid of the inputs; chooses the augmentation symmetries (:func:`symmetry_augment`).

    Returns
    -------
    list of dict
        One row per epoch: epoch, train_loss, train_accuracy, val_loss, val_accuracy,
        seconds, images_per_second.
    """
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    x_train = torch.as_tensor(train_x, dtype=torch.float32)[:, None]
    y_train = torch.as_tensor(train_y, dtype=torch.long)
    x_val = torch.as_tensor(val_x, dtype=torch.float32)[:, None]
    y_val = torch.as_tensor(val_y, dtype=torch.long)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs)
                 if settings.schedule == "cosine" else None)
    history, best, best_state = [], None, None
    for epoch in progress(range(1, settings.epochs + 1), desc="train", every=10.0):
        model.train()
        start, seen, total_loss, correct = time.perf_counter(), 0, 0.0, 0
        order = torch.randperm(len(x_train), generator=generator)
        for begin in range(0, len(order), settings.batch_size):
            index = order[begin: begin + settings.batch_size]
            if len(index) < 2 and len(order) > 1:
                continue  # BatchNorm cannot train on a batch of one
            xb = x_train[index]
            if settings.k_range_min < 1:
                side = xb.shape[-1]
                low = max(3, int(np.ceil(settings.k_range_min * side)))
                size = int(torch.randint(low, side + 1, (1,), generator=generator))
                if grid == "centred" and size % 2 == 0:
                    size -= 1
                xb = k_range_crop(xb, size, grid)
            if settings.augment:
                xb = symmetry_augment(xb, generator, grid)
            xb, yb = xb.to(device), y_train[index].to(device)
            optimiser.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            loss.backward()
            optimiser.step()
            seen += len(index)
            total_loss += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == yb).sum())
        seconds = time.perf_counter() - start
        if scheduler is not None:
            scheduler.step()
        val_loss, val_acc = evaluate_loss(model, x_val, y_val, device, settings.batch_size)
        row = {"epoch": epoch, "train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": val_loss, "val_accuracy": val_acc, "seconds": seconds,
               "images_per_second": seen / seconds if seconds > 0 else float("nan")}
        history.append(row)
        log.info("epoch %d: train loss %.4f acc %.3f, val loss %.4f acc %.3f (%.1f img/s)", epoch,
                 row["train_loss"], row["train_accuracy"], val_loss, val_acc, row["images_per_second"])
        score = (val_acc, -val_loss)
        if best is None or score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def train_store(source, output, *, history, arch: str, stem: str, epochs: int, batch_size: int, lr: float,
                schedule: str, augment: bool, seed: int, device: str, k_range_min: float = 1.0):
    """Train a ResNet on the train split of an inputs store; save the model and its history.

    Paper 002 §2 ("Machine learning model and data"): ResNet from scratch, Adam, categorical
    cross entropy. The weights kept are those of the best validation epoch (the paper kept the
    final epoch); the model's metadata records the preprocessing it expects.

    Parameters
    ----------
    source : path
        Inputs store (:data:`~speckleml.disk_count.data.INPUTS`) with train and val splits.
    output : path
        Model file to write (:func:`~speckleml.disk_count.model.save_model`).
    history : path
        CSV of one row per epoch (:func:`train_classifier`).
    arch : {"resnet18", "resnet34", "resnet50"}
    stem : {"imagenet", "small"}
        First layers (:data:`~speckleml.disk_count.model.STEMS`).
    epochs, batch_size : int
    lr : float
        Adam learning rate.
    schedule : {"constant", "cosine"}
    augment : bool
        Random symmetries of the k grid (:func:`symmetry_augment`).
    seed : int
        Seeds the initial weights, the batch order and the augmentation.
    device : {"auto", "cpu", "cuda"}
    k_range_min : float
        Smallest fraction of the k range a training batch is cropped to (1 = off; see
        :func:`k_range_crop`).

    Returns
    -------
    list of dict
        The history written.

    Raises
    ------
    InputError
        Fewer than 2 classes in the train split, an empty validation split or one with classes
        the train split lacks, bad hyper-parameters.
    """
    import pandas as pd

    from ..atomic import write_csv
    from ..provenance import make_provenance
    from ..runtime import resolve_device, seed_everything
    from ..stores import read_store
    from .data import INPUTS, SPLITS
    from .model import build_resnet, save_model, training_record

    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, augment=augment, schedule=schedule,
                             seed=seed, k_range_min=k_range_min)
    store = read_store(source, INPUTS)
    labels, split, inputs = store["n_disks"], store["split"], store["inputs"]
    train_rows, val_rows = split == SPLITS["train"], split == SPLITS["val"]
    classes = sorted(int(c) for c in np.unique(labels[train_rows]))
    if len(classes) < 2:
        raise InputError(f"{source}: the train split holds {len(classes)} class(es); need at least 2")
    if not val_rows.any():
        raise InputError(f"{source}: the validation split is empty (use a non-zero VAL fraction)")
    if not set(np.unique(labels[val_rows])) <= set(classes):
        raise InputError(f"{source}: the validation split has classes missing from the train split")
    index = {c: i for i, c in enumerate(classes)}
    target = np.array([index.get(int(c), -1) for c in labels])
    seed_everything(seed)
    model = build_resnet(arch, len(classes), stem=stem)
    grid = store.attrs.get("k_grid", "centred")
    rows = train_classifier(model, inputs[train_rows], target[train_rows], inputs[val_rows], target[val_rows],
                            settings, resolve_device(device), grid)
    best = max(rows, key=lambda row: (row["val_accuracy"], -row["val_loss"]))
    config = {"arch": arch, "stem": stem, "epochs": epochs, "batch_size": batch_size, "lr": lr, "schedule": schedule,
              "augment": augment, "k_range_min": k_range_min, "seed": seed, "device": device}
    metadata = {"arch": arch, "stem": stem, "classes": classes, "input_size": list(inputs.shape[1:]),
                "block": int(store.attrs["block"]), "bin": int(store.attrs.get("bin", 1)), "k_grid": grid,
                "scale": store.attrs.get("scale", "linear"), "stats_size": store.attrs.get("stats_size"),
                "source_size": store.attrs.get("source_size"), "k_pixel": store.attrs.get("k_pixel"),
                "dispersity": store.attrs["dispersity"], "normalisation": store.attrs.get("normalisation"),
                "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
                "training": training_record(store.attrs, split),
                "provenance": make_provenance(config=config, seed=seed, inputs=[source])}
    write_csv(pd.DataFrame(rows), history)
    save_model(output, model, metadata)
    log.info("best epoch %d: val accuracy %.3f; wrote %s", best["epoch"], best["val_accuracy"], output)
    return rows
