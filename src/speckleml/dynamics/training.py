"""Checkpointed neural-ODE training through a forward model, shared by every dynamics case.

Seeding, threads and device choice live in :mod:`speckleml.runtime`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..checkpoints import load_torch, save_torch
from ..errors import InputError
from ..stores import FLOATS, ArraySpec, StoreSchema, register_schema, write_store

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Checkpointed neural-ODE training through a forward model (shared by the dynamics cases).
#
# The loop fits an ODE right-hand side ``model(t, y)`` (any ``nn.Module``) so that
# ``forward_model(odeint(model, y0, t))`` matches observed frames. Mini-batches are random
# (series, start time) windows; the true state at a window's start is its initial condition
# (paper 000: real space is known at the initial conditions). A divergence (the loss above a
# robust running threshold on ``spike_patience`` consecutive batches, :class:`SpikeGuard`), a
# non-finite loss or gradient, or a solver failure reloads the last checkpoint and halves the
# learning rate; a single outlier batch is only skipped, and the rate doubles back towards its
# initial value after ``lr_recovery`` accepted steps. Checkpoints hold everything the future
# depends on (model, optimizer, learning rate, iteration, RNG states, spike-guard state,
# history), so a run killed and resumed ends bit-identical to an uninterrupted run.
# ---------------------------------------------------------------------------------------------



LOSSES = ("l1", "poisson")
SPIKE_RULES = ("robust", "mean")
CHECKPOINT_FORMAT = 2

HISTORY = register_schema(StoreSchema(
    name="training_history", version=1,
    description="per-iteration loss, learning rate and solver cost; parameter snapshots",
    arrays={
        "loss": ArraySpec(("iteration",), FLOATS),
        "learning_rate": ArraySpec(("iteration",), FLOATS, finite=True),
        "nfe": ArraySpec(("iteration",), ("int64",)),
        "rolled_back": ArraySpec(("iteration",), ("bool",)),
        "skipped": ArraySpec(("iteration",), ("bool",), required=False),
        "snapshot_iteration": ArraySpec(("snapshot",), ("int64",)),
        "snapshots": ArraySpec(("snapshot", "..."), FLOATS, required=False),
    },
    required_attrs=("iterations", "rollbacks"),
))


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of :func:`train_ode` (every one comes from the config).

    Attributes
    ----------
    iterations : int
        Optimizer steps (a rolled-back step counts).
    learning_rate : float
        Initial Adam learning rate.
    batch_series, batch_time : int
        Series per mini-batch and time points per window (incl. the initial point).
    loss : {"l1", "poisson"}
        Mean absolute error on intensities, or Poisson negative log-likelihood of counts.
    rescale_t0 : bool
        Rescale the observed frames of each window so that they match the prediction at the
        window start (paper 000, noisy data); the Poisson loss then compares counts.
    method, rtol, atol, max_num_steps :
        ``torchdiffeq.odeint`` solver, tolerances and step budget per solve (a solve that needs
        more steps counts as a failure: rollback).
    spike_rule : {"robust", "mean"}
        How a batch loss is called an outlier (:class:`SpikeGuard`), once ``spike_window``
        accepted losses are known. ``robust``: ``log(loss)`` above the median of the recent
        log-losses plus ``max(log(spike_factor), spike_mad x 1.4826 MAD)`` (the MAD of a normal
        sample estimates its sigma: for lognormal batch scatter this is a fixed false-alarm rate).
        ``mean``: the loss above ``spike_factor`` x the running mean (paper 000: factor 2).
    spike_factor : float
        Mean rule: the factor over the running mean; robust rule: the smallest ratio over the
        median that can count as an outlier.
    spike_mad : float
        Robust rule: outlier threshold in (normal-consistent) MADs of the recent log-losses.
    spike_window : int
        Accepted losses the running statistic is taken over.
    spike_patience : int
        Consecutive outliers that count as a divergence (rollback, learning rate halved); fewer
        are skipped batches (no optimizer step). 1 rolls back at every outlier.
    lr_recovery : int
        After this many consecutive accepted steps the learning rate doubles, up to its initial
        value (0: never; a halving is then for good).
    min_learning_rate : float
        Floor of the halving.
    checkpoint_every, snapshot_every : int
        Iterations between checkpoints and between parameter snapshots.
    seed : int
        Seeds the batch sampler (model initialisation is the caller's, via :func:`seed_everything`).
    """

    iterations: int
    learning_rate: float
    batch_series: int
    batch_time: int
    loss: str = "l1"
    rescale_t0: bool = False
    method: str = "dopri5"
    rtol: float = 1e-7
    atol: float = 1e-9
    max_num_steps: int = 20000
    spike_rule: str = "robust"
    spike_factor: float = 2.0
    spike_mad: float = 4.0
    spike_window: int = 20
    spike_patience: int = 3
    lr_recovery: int = 100
    min_learning_rate: float = 1e-6
    checkpoint_every: int = 25
    snapshot_every: int = 10
    seed: int = 0

    def __post_init__(self):
        checks = {
            "iterations": self.iterations >= 1, "learning_rate": self.learning_rate > 0,
            "batch_series": self.batch_series >= 1, "batch_time": self.batch_time >= 2,
            "rtol": self.rtol > 0, "atol": self.atol > 0, "spike_factor": self.spike_factor > 1,
            "spike_window": self.spike_window >= 1, "checkpoint_every": self.checkpoint_every >= 1,
            "spike_mad": self.spike_mad > 0, "spike_patience": self.spike_patience >= 1,
            "lr_recovery": self.lr_recovery >= 0,
            "snapshot_every": self.snapshot_every >= 1, "max_num_steps": self.max_num_steps >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"invalid training settings: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")
        if self.loss not in LOSSES:
            raise InputError(f"invalid training settings: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.spike_rule not in SPIKE_RULES:
            raise InputError(f"invalid training settings: spike_rule must be one of {SPIKE_RULES}, "
                             f"got {self.spike_rule!r}")


@dataclass
class WindowData:
    """Training data: true states (initial conditions of windows) and observed frames.

    Attributes
    ----------
    states : torch.Tensor (series, time, ...)
        True real-space states; only the state at each window start is used.
    frames : torch.Tensor (series, time, y, x)
        Observed intensities (counts when noisy).
    mask : torch.Tensor (y, x) bool
        Valid detector pixels (False under the beamstop).
    t : torch.Tensor (time,)
        Uniformly spaced times.
    """

    states: Any
    frames: Any
    mask: Any
    t: Any

    def __post_init__(self):
        import torch

        if self.states.shape[:2] != self.frames.shape[:2]:
            raise InputError(f"states {tuple(self.states.shape[:2])} and frames {tuple(self.frames.shape[:2])} "
                             "differ in (series, time)")
        if self.frames.shape[-2:] != self.mask.shape:
            raise InputError(f"mask {tuple(self.mask.shape)} does not match frames {tuple(self.frames.shape[-2:])}")
        if self.t.shape[0] != self.frames.shape[1]:
            raise InputError(f"t has {self.t.shape[0]} points, frames have {self.frames.shape[1]}")
        steps = torch.diff(self.t)
        if len(steps) and not torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-6, atol=0):
            raise InputError("training times must be uniformly spaced")

    @property
    def n_series(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_time(self) -> int:
        return int(self.frames.shape[1])


def sample_windows(data: WindowData, batch_series: int, batch_time: int, rng: np.random.Generator,
                   return_series: bool = False):
    """Draw a mini-batch: distinct series, one random window start per series.

    A single series (one long trajectory, e.g. the scan case) gives ``batch_series`` windows of
    it with independent random starts.

    With ``return_series`` the series indices ``(batch,)`` (a tensor) are returned as a fourth
    value, for forward models that differ per series (``per_series`` attribute, e.g. the
    Lotka-Volterra case's one random object per series).

    Returns
    -------
    t : tensor (batch_time,)
        Times relative to the window start.
    y0 : tensor (batch, ...)
        True states at the window starts.
    target : tensor (batch, batch_time, y, x)
        Observed frames of the windows.
    """
    import torch

    batch_time = min(batch_time, data.n_time)
    if data.n_series == 1:
        # One long trajectory (the scan case): batch_series windows of it at independent starts.
        series = np.zeros(batch_series, dtype=np.int64)
    else:
        series = rng.choice(data.n_series, size=min(batch_series, data.n_series), replace=False)
    starts = rng.integers(0, data.n_time - batch_time + 1, size=len(series))
    s_idx = torch.as_tensor(series, device=data.frames.device)
    t_idx = torch.as_tensor(starts, device=data.frames.device)[:, None] + torch.arange(batch_time, device=data.frames.device)
    target = data.frames[s_idx[:, None], t_idx]
    y0 = data.states[torch.as_tensor(series, device=data.states.device), torch.as_tensor(starts, device=data.states.device)]
    t = data.t[:batch_time] - data.t[0]
    return (t, y0, target, s_idx) if return_series else (t, y0, target)


def intensity_loss(pred, target, mask, kind: str = "l1", rescale_t0: bool = False):
    """Loss between predicted and observed intensities ``(batch, time, y, x)`` over ``mask``.

    With ``rescale_t0`` each series' prediction is multiplied by the factor that makes it match
    the observed frame at the window start (:func:`speckleml.scattering.rescale_at_t0`). The
    prediction at t0 comes from the known initial state, so this needs no knowledge of
    lambda_max (paper 000 §2.2); both losses then compare counts.

    ``l1`` is the mean absolute error; ``poisson`` the Poisson negative log-likelihood minus its
    minimum (the half deviance ``rate - k - k log(rate / k)``): same gradient as the NLL, but
    >= 0 and 0 for a perfect fit, so that the spike test on the running statistic is meaningful.

    Parameters
    ----------
    pred, target : torch.Tensor (batch, time, y, x)
        Predicted intensities and observed frames (counts when noisy).
    mask : torch.Tensor (y, x) bool
        Valid pixels.
    kind : {"l1", "poisson"}
    rescale_t0 : bool

    Returns
    -------
    torch.Tensor, scalar: the mean over valid pixels, frames and series (intensity units for L1).

    Raises
    ------
    InputError
        For an unknown ``kind``.
    """
    import torch

    from ..scattering import rescale_at_t0

    weights = mask.to(pred.dtype)
    n_valid = weights.sum() * pred.shape[0] * pred.shape[1]
    target = target.to(pred.dtype)
    if rescale_t0:
        pred, _ = rescale_at_t0(pred, target, mask=mask)
    if kind == "l1":
        return (torch.abs(pred - target) * weights).sum() / n_valid
    if kind == "poisson":
        eps = 1e-8
        saturated = target - torch.xlogy(target, target)
        deviance = pred - target * torch.log(pred + eps) - saturated
        return (deviance * weights).sum() / n_valid
    raise InputError(f"unknown loss {kind!r} (use one of {LOSSES})")


@dataclass
class _State:
    """Everything the rest of a training run depends on (what a checkpoint stores)."""

    iteration: int
    learning_rate: float
    model: dict
    optimizer: dict
    rng: dict
    recent_losses: list
    rollbacks: int
    history: dict = field(default_factory=dict)
    outliers_in_a_row: int = 0
    stable_steps: int = 0


def _rng_state(rng: np.random.Generator) -> dict:
    import torch

    state = {"numpy": copy.deepcopy(rng.bit_generator.state), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(rng: np.random.Generator, state: dict) -> None:
    import torch

    rng.bit_generator.state = copy.deepcopy(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def settings_fingerprint(settings: TrainSettings, extra: dict | None = None) -> str:
    """Hash of the settings and ``extra`` (e.g. input checksums): a checkpoint only resumes its own run."""
    text = json.dumps({"settings": asdict(settings), "extra": extra or {}}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path, state: _State, fingerprint: str) -> None:
    """Write ``state`` to ``path`` atomically (torch pickle)."""
    save_torch({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, **asdict(state)}, path)


def load_checkpoint(path, fingerprint: str) -> _State | None:
    """Load a checkpoint written by :func:`save_checkpoint`; None when absent or from another run."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = load_torch(path, "training checkpoint", weights_only=False)
    except InputError as exc:  # a corrupt checkpoint must not stop a fresh start
        log.warning("ignoring %s", exc)
        return None
    if payload.get("format") != CHECKPOINT_FORMAT or payload.get("fingerprint") != fingerprint:
        log.warning("ignoring checkpoint %s: it belongs to other settings or inputs", path)
        return None
    payload.pop("format"), payload.pop("fingerprint")
    return _State(**payload)


class _Progress:
    """A tqdm bar with the loss on a terminal, a log line every ``every`` seconds otherwise."""

    def __init__(self, total: int, start: int, desc: str, every: float = 15.0):
        self.total, self.desc, self.every = total, desc, every
        self.bar = None
        self.started = self.last = time.monotonic()
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True)

    def update(self, iteration: int, loss: float, lr: float, nfe: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.2g}", nfe=nfe)
            return
        now = time.monotonic()
        if now - self.last >= self.every or iteration == self.total:
            self.last = now
            log.info("%s: iteration %d/%d loss %.5g lr %.3g nfe %d (%.0f s)",
                     self.desc, iteration, self.total, loss, lr, nfe, now - self.started)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _new_history() -> dict:
    return {"loss": [], "learning_rate": [], "nfe": [], "rolled_back": [], "skipped": [], "snapshot_iteration": [],
            "snapshots": []}


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _solve(model, y0, t, settings: TrainSettings):
    from torchdiffeq import odeint

    options = {"max_num_steps": settings.max_num_steps} if settings.method in ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun") else None
    traj = odeint(model, y0, t, method=settings.method, rtol=settings.rtol, atol=settings.atol, options=options)
    return traj.movedim(0, 1)  # (batch, time, ...)


def train_ode(
    model,
    forward_model: Callable,
    data: WindowData,
    settings: TrainSettings,
    checkpoint: str | Path,
    snapshot: Callable | None = None,
    fingerprint_extra: dict | None = None,
    desc: str = "train",
    stop_after: int | None = None,
) -> dict:
    """Train the ODE right-hand side ``model`` through ``forward_model``; resumable.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(t, y) -> dy/dt``; initialised by the caller (seed it with :func:`seed_everything`).
    forward_model : callable
        ``states (batch, time, ...) -> intensities (batch, time, y, x)``, differentiable; when
        its ``per_series`` attribute is true it is called ``forward_model(states, series=idx)``
        with the batch's series indices.
    data : WindowData
        True states (for window initial conditions), observed frames, mask and times, on the
        model's device.
    settings : TrainSettings
        Hyper-parameters.
    checkpoint : path
        Checkpoint file; an existing one from the same settings and inputs is resumed.
    snapshot : callable, optional
        ``model -> ndarray`` recorded every ``settings.snapshot_every`` iterations (kernels...).
    fingerprint_extra : dict, optional
        Whatever else identifies the run (input checksums, model description).
    desc : str
        Label of the progress lines.
    stop_after : int, optional
        Stop (after checkpointing) once this many iterations are done: simulates a kill in tests.

    Returns
    -------
    dict
        History: ``loss``, ``learning_rate``, ``nfe``, ``rolled_back``, ``skipped`` per iteration,
        ``snapshot_iteration``, ``snapshots`` and ``rollbacks``; the model holds the final weights.

    Raises
    ------
    InputError
        Windows longer than the training series (``settings.batch_time`` > time points) or
        more series per batch than there are (with two or more series): they would be cut
        short silently.
    """
    import torch

    n_time = int(data.frames.shape[1])
    if settings.batch_time > n_time:
        raise InputError(f"--batch-time: windows of {settings.batch_time} frames exceed the {n_time} time points "
                         "of the training series")
    n_series = int(data.frames.shape[0])
    if n_series > 1 and settings.batch_series > n_series:  # one series: windows of the one trajectory
        raise InputError(f"--batch-series: {settings.batch_series} series per batch exceed the {n_series} "
                         "training series")
    fingerprint = settings_fingerprint(settings, fingerprint_extra)
    rng = np.random.default_rng(settings.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    state = load_checkpoint(checkpoint, fingerprint)
    if state is None:
        history = _new_history()
        if snapshot is not None:
            history["snapshot_iteration"].append(0)
            history["snapshots"].append(np.asarray(snapshot(model)).copy())
        state = _State(iteration=0, learning_rate=settings.learning_rate, model=copy.deepcopy(model.state_dict()),
                       optimizer=copy.deepcopy(optimizer.state_dict()), rng=_rng_state(rng), recent_losses=[],
                       rollbacks=0, history=history)
        save_checkpoint(checkpoint, state, fingerprint)
    else:
        log.info("%s: resuming from %s at iteration %d", desc, checkpoint, state.iteration)
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        _restore_rng(rng, state.rng)
    last_saved = copy.deepcopy(state)  # what a rollback reloads (identical to the file on disk)
    history = state.history
    guard = SpikeGuard.from_settings(settings, recent=state.recent_losses, outliers_in_a_row=state.outliers_in_a_row)
    lr, rollbacks, stable = state.learning_rate, state.rollbacks, state.stable_steps
    _set_lr(optimizer, lr)
    progress = _Progress(settings.iterations, state.iteration, desc)
    iteration = state.iteration
    try:
        while iteration < settings.iterations:
            iteration += 1
            loss_value, nfe, ok = _loss_and_gradient(model, forward_model, data, settings, optimizer, rng)
            verdict = guard.check(loss_value) if ok else "diverged"
            if verdict == "diverged":
                # Reload the last checkpoint's weights and optimizer moments, halve the rate;
                # the iteration counter and the batch stream go on (the budget stays fixed).
                reason = "non-finite loss, gradient or failed solve" if not ok else f"loss diverging ({loss_value:.4g})"
                lr = max(lr / 2, settings.min_learning_rate)
                rollbacks, stable = rollbacks + 1, 0
                guard.outliers_in_a_row = 0
                log.warning("%s: iteration %d: %s -> reload checkpoint of iteration %d, learning rate %.3g",
                            desc, iteration, reason, last_saved.iteration, lr)
                model.load_state_dict(last_saved.model)
                optimizer.load_state_dict(last_saved.optimizer)
                _set_lr(optimizer, lr)
            elif verdict == "skip":
                log.info("%s: iteration %d: outlier batch (loss %.4g) skipped", desc, iteration, loss_value)
            else:
                optimizer.step()
                stable += 1
                if settings.lr_recovery and stable >= settings.lr_recovery and lr < settings.learning_rate:
                    lr, stable = min(2 * lr, settings.learning_rate), 0  # a stable stretch: recover the rate
                    _set_lr(optimizer, lr)
            history["loss"].append(loss_value if ok else float("nan"))
            history["learning_rate"].append(lr)
            history["nfe"].append(nfe)
            history["rolled_back"].append(verdict == "diverged")
            history["skipped"].append(verdict == "skip")
            if snapshot is not None and iteration % settings.snapshot_every == 0:
                history["snapshot_iteration"].append(iteration)
                history["snapshots"].append(np.asarray(snapshot(model)).copy())
            progress.update(iteration, loss_value, lr, nfe)
            if iteration % settings.checkpoint_every == 0 or iteration == settings.iterations or iteration == stop_after:
                state = _State(iteration=iteration, learning_rate=lr, model=copy.deepcopy(model.state_dict()),
                               optimizer=copy.deepcopy(optimizer.state_dict()), rng=_rng_state(rng),
                               recent_losses=list(guard.recent), rollbacks=rollbacks, history=history,
                               outliers_in_a_row=guard.outliers_in_a_row, stable_steps=stable)
                save_checkpoint(checkpoint, state, fingerprint)
                last_saved = copy.deepcopy(state)
            if stop_after is not None and iteration >= stop_after:
                break
    finally:
        progress.close()
    if snapshot is not None and (not history["snapshot_iteration"] or history["snapshot_iteration"][-1] != iteration):
        history["snapshot_iteration"].append(iteration)
        history["snapshots"].append(np.asarray(snapshot(model)).copy())
    return {**history, "rollbacks": rollbacks, "iterations": iteration}


@dataclass
class SpikeGuard:
    """Tells an outlier batch from a divergence of the training loss.

    A batch loss is an *outlier* when, once ``window`` accepted losses are known, it exceeds
    a running threshold: ``rule="robust"``: ``log(loss) > median(log L) + max(log(factor),
    mad x 1.4826 MAD(log L))`` over the recent accepted losses ``L`` (mini-batch losses scatter
    roughly lognormally, so this is a fixed false-alarm rate whatever the scatter, and a
    decaying loss only makes it more lenient); ``rule="mean"``: ``loss > factor x mean(L)``
    (paper 000's rule with factor 2). ``patience`` outliers in a row are a *divergence*.
    Outliers do not enter the running statistic.

    Attributes
    ----------
    rule, factor, mad, window, patience :
        As ``spike_rule``, ``spike_factor``, ``spike_mad``, ``spike_window``, ``spike_patience``
        of :class:`TrainSettings`.
    recent : list of float
        The last ``window`` accepted losses (loss units).
    outliers_in_a_row : int
        Consecutive outliers so far.
    """

    rule: str = "robust"
    factor: float = 2.0
    mad: float = 4.0
    window: int = 20
    patience: int = 3
    recent: list = field(default_factory=list)
    outliers_in_a_row: int = 0

    @classmethod
    def from_settings(cls, settings: TrainSettings, recent=(), outliers_in_a_row: int = 0) -> "SpikeGuard":
        """A guard with ``settings``' rule, resuming from ``recent`` and ``outliers_in_a_row``."""
        return cls(rule=settings.spike_rule, factor=settings.spike_factor, mad=settings.spike_mad,
                   window=settings.spike_window, patience=settings.spike_patience,
                   recent=list(recent), outliers_in_a_row=int(outliers_in_a_row))

    def is_outlier(self, loss: float) -> bool:
        """Whether ``loss`` is above the running threshold (never during the first ``window``)."""
        if len(self.recent) < self.window:
            return False
        recent = np.asarray(self.recent[-self.window:], np.float64)
        if self.rule == "mean":
            return bool(loss > self.factor * float(np.mean(recent)))
        tiny = np.finfo(np.float64).tiny  # a loss of exactly 0 (a perfect fit) has no logarithm
        logs = np.log(np.maximum(recent, tiny))
        centre = float(np.median(logs))
        spread = 1.4826 * float(np.median(np.abs(logs - centre)))
        return bool(math.log(max(loss, tiny)) > centre + max(math.log(self.factor), self.mad * spread))

    def check(self, loss: float) -> str:
        """Judge one finite batch loss and update the state.

        Returns
        -------
        str
            ``"accept"`` (take the step; the loss joins the statistic), ``"skip"`` (an outlier:
            no step) or ``"diverged"`` (the ``patience``-th outlier in a row: roll back).
        """
        if not self.is_outlier(loss):
            self.outliers_in_a_row = 0
            self.recent.append(float(loss))
            del self.recent[:-self.window]
            return "accept"
        self.outliers_in_a_row += 1
        if self.outliers_in_a_row >= self.patience:
            self.outliers_in_a_row = 0
            return "diverged"
        return "skip"


def _loss_and_gradient(model, forward_model, data, settings, optimizer, rng) -> tuple[float, int, bool]:
    """Draw a batch, solve, compute the loss and its gradient (no step).

    Returns (loss, solver function evaluations, ok); not ok means a failed solve or a
    non-finite loss or gradient.
    """
    import torch

    t, y0, target, series = sample_windows(data, settings.batch_series, settings.batch_time, rng, return_series=True)
    optimizer.zero_grad(set_to_none=True)
    if hasattr(model, "nfe"):
        model.nfe = 0
    try:
        traj = _solve(model, y0, t, settings)
        # A per-series forward model (one object per series) is told which series the batch holds.
        pred = forward_model(traj, series=series) if getattr(forward_model, "per_series", False) else forward_model(traj)
        loss = intensity_loss(pred, target, data.mask, settings.loss, settings.rescale_t0)
    except AssertionError as exc:  # torchdiffeq: step-size underflow or step budget exceeded
        log.debug("solver failure: %s", exc)
        return float("nan"), int(getattr(model, "nfe", 0)), False
    nfe = int(getattr(model, "nfe", 0))
    if not torch.isfinite(loss):
        return float(loss.detach()), nfe, False
    loss.backward()
    grads_ok = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())
    return float(loss.detach()), nfe, grads_ok


def predict_ode(model, y0, t, settings: TrainSettings | None = None, method: str = "dopri5", rtol: float = 1e-7,
                atol: float = 1e-9, chunk: int = 16):
    """Integrate ``model`` from ``y0 (batch, ...)`` over ``t`` without gradients, in chunks.

    Returns a tensor ``(batch, time, ...)`` on ``y0``'s device.
    """
    import torch
    from torchdiffeq import odeint

    if settings is not None:
        method, rtol, atol = settings.method, settings.rtol, settings.atol
    out = []
    with torch.no_grad():
        for start in range(0, y0.shape[0], chunk):
            traj = odeint(model, y0[start:start + chunk], t, method=method, rtol=rtol, atol=atol)
            out.append(traj.movedim(0, 1))
    return torch.cat(out)


def write_history(path, history: dict, attrs: dict | None = None, provenance: dict | None = None):
    """Write a ``training_history`` store from :func:`train_ode`'s result."""
    arrays = {
        "loss": np.asarray(history["loss"], np.float64),
        "learning_rate": np.asarray(history["learning_rate"], np.float64),
        "nfe": np.asarray(history["nfe"], np.int64),
        "rolled_back": np.asarray(history["rolled_back"], bool),
        "skipped": np.asarray(history.get("skipped", [False] * len(history["loss"])), bool),
        "snapshot_iteration": np.asarray(history["snapshot_iteration"], np.int64),
    }
    if history.get("snapshots"):
        arrays["snapshots"] = np.stack([np.asarray(s, np.float64) for s in history["snapshots"]])
    return write_store(path, HISTORY, arrays,
                       attrs={"iterations": int(history["iterations"]), "rollbacks": int(history["rollbacks"]),
                              **(attrs or {})},
                       provenance=provenance)
