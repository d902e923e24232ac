"""The shared neural-ODE training loop (speckleml.dynamics.training): losses, batches, rollback, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from speckleml.errors import InputError  # noqa: E402
from speckleml.stores import read_store  # noqa: E402
from speckleml.dynamics.training import (HISTORY, SpikeGuard, TrainSettings, WindowData, intensity_loss,  # noqa: E402
                                         sample_windows, train_ode, write_history)
from speckleml.runtime import seed_everything  # noqa: E402


class Decay(torch.nn.Module):
    """dy/dt = -k y with a trainable rate k: y(t) = y0 exp(-k t) is known in closed form."""

    def __init__(self, k=0.2):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(float(k), dtype=torch.float64))
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return -self.k * y


def square(states):
    """A toy 'forward model': intensity = state^2 on a 2x2 'detector'."""
    return states**2


def decay_data(k_true=0.7, n_series=6, n_time=12, dt=0.25, seed=0):
    rng = np.random.default_rng(seed)
    y0 = rng.uniform(0.5, 2.0, size=(n_series, 2, 2))
    t = np.arange(n_time) * dt
    states = y0[:, None] * np.exp(-k_true * t)[None, :, None, None]
    return WindowData(states=torch.as_tensor(states), frames=torch.as_tensor(states**2),
                      mask=torch.ones(2, 2, dtype=torch.bool), t=torch.as_tensor(t))


def settings(**kw):
    base = dict(iterations=30, learning_rate=0.05, batch_series=3, batch_time=5, rtol=1e-8, atol=1e-10,
                checkpoint_every=4, snapshot_every=5, seed=3)
    base.update(kw)
    return TrainSettings(**base)


def test_poisson_loss_is_half_deviance_with_nll_gradient():
    target = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]], dtype=torch.float64)
    mask = torch.ones(2, 2, dtype=torch.bool)
    perfect = intensity_loss(target.clone(), target, mask, "poisson")
    assert float(perfect) == pytest.approx(0.0, abs=1e-7)  # 0 for a perfect fit (eps only)
    pred = torch.tensor([[[[0.5, 2.0], [2.0, 9.0]]]], dtype=torch.float64, requires_grad=True)
    intensity_loss(pred, target, mask, "poisson").backward()
    reference = pred.detach().clone().requires_grad_(True)
    torch.nn.functional.poisson_nll_loss(reference, target, log_input=False, full=False, eps=1e-8,
                                         reduction="mean").backward()
    assert torch.allclose(pred.grad, reference.grad, rtol=1e-6)


def test_l1_loss_respects_mask_and_t0_rescale():
    target = torch.full((2, 3, 2, 2), 10.0, dtype=torch.float64)
    pred = torch.full((2, 3, 2, 2), 1.0, dtype=torch.float64)
    mask = torch.tensor([[True, False], [True, True]])
    assert float(intensity_loss(pred, target, mask, "l1")) == pytest.approx(9.0)
    # the observation is the prediction x 10 (unknown lambda_max): rescaling at t0 removes it
    assert float(intensity_loss(pred, target, mask, "l1", rescale_t0=True)) == pytest.approx(0.0, abs=1e-12)
    pred[:, :, 0, 1] = 100.0  # a masked pixel changes nothing
    assert float(intensity_loss(pred, target, mask, "l1", rescale_t0=True)) == pytest.approx(0.0, abs=1e-12)


def test_sample_windows_returns_true_initial_states():
    data = decay_data()
    rng = np.random.default_rng(1)
    t, y0, target = sample_windows(data, 4, 5, rng)
    assert t.shape == (5,) and y0.shape == (4, 2, 2) and target.shape == (4, 5, 2, 2)
    assert float(t[0]) == 0.0 and float(t[1]) == pytest.approx(0.25)
    # each window's first frame is the intensity of its initial state
    assert torch.allclose(target[:, 0], y0**2)


def test_settings_validation():
    with pytest.raises(InputError, match="learning_rate"):
        TrainSettings(iterations=1, learning_rate=-1.0, batch_series=1, batch_time=2)
    with pytest.raises(InputError, match="loss"):
        TrainSettings(iterations=1, learning_rate=1.0, batch_series=1, batch_time=2, loss="l2")


def test_training_recovers_a_decay_rate(tmp_path):
    data = decay_data(k_true=0.7)
    seed_everything(0)
    model = Decay(0.2)
    history = train_ode(model, square, data, settings(iterations=150, learning_rate=0.05), tmp_path / "c.ckpt",
                        snapshot=lambda m: m.k.detach().numpy().reshape(1))
    assert float(model.k.detach()) == pytest.approx(0.7, abs=0.02)
    assert np.median(history["loss"][-20:]) < 0.1 * history["loss"][0]  # batch scatter stays: compare a median
    assert history["snapshot_iteration"][0] == 0 and history["snapshot_iteration"][-1] == 150


def test_killed_and_resumed_run_is_bit_identical(tmp_path):
    data = decay_data()
    full = Decay()
    reference = train_ode(full, square, data, settings(), tmp_path / "full.ckpt", snapshot=lambda m: m.k.detach().numpy())
    first = Decay()
    train_ode(first, square, data, settings(), tmp_path / "part.ckpt", stop_after=10)  # "killed" after 10
    resumed = Decay(k=5.0)  # a fresh process: its initial weights are overwritten by the checkpoint
    history = train_ode(resumed, square, data, settings(), tmp_path / "part.ckpt", snapshot=lambda m: m.k.detach().numpy())
    assert torch.equal(resumed.k, full.k)
    assert history["loss"] == reference["loss"]
    assert history["iterations"] == 30


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    data = decay_data()
    train_ode(Decay(), square, data, settings(), tmp_path / "c.ckpt", stop_after=8)
    other = Decay()
    history = train_ode(other, square, data, settings(learning_rate=0.01), tmp_path / "c.ckpt")
    assert len(history["loss"]) == 30  # started over: 30 iterations of its own


class FailingOnce:
    """Forward model that returns NaN on its ``fail_at``-th call (a blown-up solve)."""

    def __init__(self, fail_at):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, states):
        self.calls += 1
        out = states**2
        return out * float("nan") if self.calls == self.fail_at else out


def test_nan_reloads_last_checkpoint_and_halves_learning_rate(tmp_path):
    data = decay_data()
    model = Decay()
    kept = {}

    def snapshot(m):
        kept[len(kept)] = float(m.k.detach())
        return m.k.detach().numpy().reshape(1)

    s = settings(iterations=10, checkpoint_every=4, snapshot_every=1)
    history = train_ode(model, FailingOnce(fail_at=7), data, s, tmp_path / "c.ckpt", snapshot=snapshot)
    assert history["rolled_back"] == [False] * 6 + [True] + [False] * 3
    assert math.isnan(history["loss"][6])
    assert history["learning_rate"][5] == pytest.approx(0.05) and history["learning_rate"][6] == pytest.approx(0.025)
    assert history["rollbacks"] == 1
    # after the failed iteration 7 the weights are those of the checkpoint at iteration 4
    snaps = dict(zip(history["snapshot_iteration"], np.concatenate(history["snapshots"])))
    assert snaps[7] == snaps[4]


class Spiky:
    """Forward model whose intensities are x ``factor`` from call ``first`` on (growing by ``growth``
    per call) up to call ``last``: a lone outlier batch or a run that diverges."""

    def __init__(self, first, last, factor=50.0, growth=1.0, calls=0):
        self.first, self.last, self.factor, self.growth, self.calls = first, last, factor, growth, calls

    def __call__(self, states):
        self.calls += 1
        if self.first <= self.calls <= self.last:
            return states**2 * self.factor * self.growth ** (self.calls - self.first)
        return states**2


def test_paper_mean_rule_rolls_back_at_the_first_spike(tmp_path):
    s = settings(iterations=14, spike_rule="mean", spike_window=5, spike_factor=3.0, spike_patience=1,
                 lr_recovery=0, checkpoint_every=5)
    history = train_ode(Decay(), Spiky(12, 12), decay_data(), s, tmp_path / "c.ckpt")
    assert history["rolled_back"][11] and sum(history["rolled_back"]) == 1
    assert history["learning_rate"][-1] == pytest.approx(0.025)


def test_robust_rule_skips_a_lone_outlier_batch(tmp_path):
    s = settings(iterations=14, spike_window=5, checkpoint_every=5)
    history = train_ode(Decay(), Spiky(12, 12), decay_data(), s, tmp_path / "c.ckpt")
    assert history["skipped"] == [False] * 11 + [True] + [False] * 2
    assert not any(history["rolled_back"]) and history["learning_rate"][-1] == pytest.approx(0.05)


def test_robust_rule_rolls_back_a_divergence(tmp_path):
    s = settings(iterations=16, spike_window=5, checkpoint_every=5)
    history = train_ode(Decay(), Spiky(12, 14, factor=10.0, growth=2.0), decay_data(), s, tmp_path / "c.ckpt")
    assert history["skipped"][11:13] == [True, True]
    assert history["rolled_back"] == [False] * 13 + [True] + [False] * 2  # the third outlier in a row
    assert history["learning_rate"][-1] == pytest.approx(0.025)


def _lognormal_losses(seed, n=2000, sigma=0.5, decay=400.0):
    rng = np.random.default_rng(seed)
    return np.exp(-np.arange(n) / decay) * rng.lognormal(0.0, sigma, n)


@pytest.mark.parametrize("seed", range(5))
def test_ordinary_batch_scatter_never_rolls_back(seed):
    """Lognormal batch scatter (sigma 0.5) around a decaying mean: no divergence with the default
    rule; the old rule (3x the running mean, every spike a rollback) fires on the same sequence."""
    losses = _lognormal_losses(seed)
    guard = SpikeGuard.from_settings(settings())
    verdicts = [guard.check(loss) for loss in losses]
    assert verdicts.count("diverged") == 0 and verdicts.count("skip") <= 10
    old = SpikeGuard(rule="mean", factor=3.0, window=10, patience=1)
    assert [old.check(loss) for loss in losses].count("diverged") >= 3


def test_a_growing_divergence_is_caught_within_patience():
    guard = SpikeGuard.from_settings(settings())
    for loss in _lognormal_losses(0, n=300):
        guard.check(loss)
    level = float(np.median(guard.recent))
    verdicts = [guard.check(level * 10 * 1.5**i) for i in range(5)]  # x10 and growing
    assert verdicts[:3] == ["skip", "skip", "diverged"]


def test_learning_rate_recovers_after_a_stable_stretch(tmp_path):
    s = settings(iterations=12, checkpoint_every=4, lr_recovery=3)
    history = train_ode(Decay(), FailingOnce(fail_at=7), decay_data(), s, tmp_path / "c.ckpt")
    assert history["learning_rate"][6:10] == pytest.approx([0.025, 0.025, 0.025, 0.05])


def test_resume_in_the_middle_of_outliers_is_bit_identical(tmp_path):
    """The guard's state (recent losses, outliers in a row, stable steps) survives a kill."""
    s = settings(iterations=24, spike_window=5, checkpoint_every=4, lr_recovery=4)
    full = Decay()
    reference = train_ode(full, Spiky(12, 14, factor=10.0, growth=2.0), decay_data(), s, tmp_path / "full.ckpt")
    assert sum(reference["rolled_back"]) == 1
    train_ode(Decay(), Spiky(12, 14, factor=10.0, growth=2.0), decay_data(), s, tmp_path / "part.ckpt", stop_after=13)
    resumed = Decay(k=5.0)
    history = train_ode(resumed, Spiky(12, 14, factor=10.0, growth=2.0, calls=13), decay_data(), s,
                        tmp_path / "part.ckpt")
    assert torch.equal(resumed.k, full.k)
    assert history["loss"] == reference["loss"] and history["learning_rate"] == reference["learning_rate"]
    assert history["skipped"] == reference["skipped"]


def test_history_store_round_trip(tmp_path):
    data = decay_data()
    history = train_ode(Decay(), square, data, settings(iterations=6), tmp_path / "c.ckpt",
                        snapshot=lambda m: m.k.detach().numpy().reshape(1))
    write_history(tmp_path / "h.zarr", history, attrs={"member": 0})
    store = read_store(tmp_path / "h.zarr", HISTORY)
    assert store["loss"].shape == (6,) and store["snapshots"].shape == (3, 1)
    assert store.attrs["iterations"] == 6 and store.attrs["member"] == 0
    np.testing.assert_array_equal(store["loss"], history["loss"])


def test_windows_longer_than_the_series_or_batches_larger_than_the_set_are_refused():
    """Fresh-user trial: --batch-time 500 on 51 frames was accepted and silently shortened."""
    import pytest
    import torch

    from speckleml.dynamics.training import TrainSettings, WindowData, train_ode
    from speckleml.errors import InputError

    data = WindowData(states=torch.zeros(2, 6, 3), frames=torch.zeros(2, 6, 4, 4),
                      mask=torch.ones(4, 4, dtype=torch.bool), t=torch.arange(6.0))
    settings = TrainSettings(seed=0, iterations=1, learning_rate=1e-3, batch_series=2, batch_time=7)
    with pytest.raises(InputError, match="--batch-time: windows of 7 frames exceed the 6 time points"):
        train_ode(torch.nn.Linear(3, 3), lambda y: y, data, settings, checkpoint="unused.ckpt")
    settings = TrainSettings(seed=0, iterations=1, learning_rate=1e-3, batch_series=3, batch_time=4)
    with pytest.raises(InputError, match="--batch-series: 3 series per batch exceed the 2 training series"):
        train_ode(torch.nn.Linear(3, 3), lambda y: y, data, settings, checkpoint="unused.ckpt")
