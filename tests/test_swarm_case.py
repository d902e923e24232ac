"""The swarm case wired end to end (issue 14): registry, pretraining, resumable training, evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speckleml.dynamics.systems import get_case
from speckleml.dynamics.systems import swarm as S
from speckleml.errors import InputError

TRAINING = dict(iterations=4, learning_rate=1e-2, batch_series=2, batch_time=5, loss="l1", poisson_below=10.0,
                rescale_t0="no", method="dopri5", rtol=1e-3, atol=1e-5, max_num_steps=2000, spike_rule="robust",
                spike_factor=2.0, spike_mad=4.0, spike_window=20, spike_patience=3, lr_recovery=100,
                min_learning_rate=1e-6, checkpoint_every=1, snapshot_every=2)


def test_the_swarm_case_is_registered_and_its_model_file_round_trips(tmp_path):
    from speckleml.dynamics.models import load_model, save_model
    from speckleml.dynamics.training import TrainSettings

    case = get_case("swarm")
    assert case is S.CASE and case.geometry is S.SwarmGeometry and case.build_model is S.build_model
    torch.manual_seed(1)
    model = case.build_model(initial_cutoff=0.8, pretrain_steps=20)
    save_model(tmp_path / "m.pt", model, TrainSettings(iterations=1, learning_rate=1e-3, batch_series=1,
                                                        batch_time=2), 0, 0, case="swarm")
    loaded, payload = load_model(tmp_path / "m.pt")
    assert payload["architecture"] == {"initial_cutoff": 0.8, "box_length": 5.0, "hidden": 10, "aggregation": "mean"}
    r = torch.linspace(0.05, 1.0, 17, dtype=torch.float64)
    torch.testing.assert_close(loaded.cutoff_function(r), model.cutoff_function(r).detach(), rtol=0, atol=0)
    snap = case.snapshot(loaded)
    assert snap[0] == pytest.approx(0.8) and snap.shape == (1 + len(S.SNAPSHOT_R),)


def test_pretraining_gives_a_decreasing_function_that_reaches_zero_at_R0():
    """Issue 14: pretrained to (R0 - r)/r, the model decreases on (0, R0] and is ~0 from R0 on."""
    torch.manual_seed(0)
    r0 = 0.8
    model = S.build_model(initial_cutoff=r0, pretrain_steps=800, pretrain_lr=2e-2, pretrain_scale=1.0)
    r = torch.linspace(0.1, r0, 50, dtype=torch.float64)
    with torch.no_grad():
        f = model.cutoff_function(r).numpy()
        beyond = model.cutoff_function(torch.linspace(r0, 1.2, 20, dtype=torch.float64)).numpy()
    target = (r0 - r.numpy()) / r.numpy()                                    # 7 ... 0
    assert np.all(np.diff(f) < 1e-3)                                          # decreasing (to fit noise)
    assert np.max(np.abs(f - target)) < 0.5                                    # on the target within 0.5
    assert f[0] > 6 and beyond.max() < 0.2                                    # from ~7 at 0.1 down to ~0 at R0


def test_forward_model_masks_the_beamstop_and_is_the_point_model_elsewhere():
    from speckleml.scattering import point_intensity

    geometry = S.SwarmGeometry(detector=16, beamstop=2.0)
    forward = S.training_forward_model(geometry)
    pos = torch.tensor(np.random.default_rng(2).random((3, 7, 2)))
    image = forward(pos)
    full = point_intensity(pos, forward.q, radii=0.15, form_factor="sphere", probe_sigma=1.25)
    mask = forward.mask
    assert not bool(mask[8, 8]) and float(image[..., 8, 8].abs().max()) == 0.0
    torch.testing.assert_close(image[..., mask], full[..., mask])
    with pytest.raises(InputError):
        S.SwarmGeometry(detector=2)


def _tiny_run(tmp_path):
    from speckleml.dynamics.swarm_run import run_swarm_simulation

    run_swarm_simulation(states=tmp_path / "s.zarr", frames=tmp_path / "f.zarr", test_states=tmp_path / "t.zarr",
                         series=2, particles=12, disk_radius=0.4, box_length=5.0, cutoff=0.75, aggregation="mean",
                         t_max=0.6, dt=0.1, extrapolation=2.0, test_series=1, rtol=1e-5, atol=1e-7,
                         geometry=dict(detector=16, dq_factor=1.0, probe_sigma=0.25, beamstop=2.0,
                                       particle_radius=0.03), seed=5)


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    from speckleml.dynamics.models import load_model
    from speckleml.dynamics.swarm_run import run_swarm_training

    _tiny_run(tmp_path)
    common = dict(states=tmp_path / "s.zarr", frames=tmp_path / "f.zarr", member=1, seed=3, hidden=10,
                  pretrain_steps=30, pretrain_lr=1e-2, pretrain_scale=1.0, device="cpu", **TRAINING)
    assert run_swarm_training(model=tmp_path / "a.pt", history=tmp_path / "a.zarr", **common)
    assert not run_swarm_training(model=tmp_path / "b.pt", history=tmp_path / "b.zarr", stop_after=2, **common)
    assert not (tmp_path / "b.pt").exists() and (tmp_path / "b.pt.ckpt").exists()
    assert run_swarm_training(model=tmp_path / "b.pt", history=tmp_path / "b.zarr", **common)
    a, _ = load_model(tmp_path / "a.pt")
    b, _ = load_model(tmp_path / "b.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    from speckleml.dynamics.swarm_run import initial_cutoff_from_frames

    assert float(a.cutoff.detach()) != initial_cutoff_from_frames(tmp_path / "f.zarr")  # R was trained too


def test_evaluation_helpers_against_analytic_values():
    from speckleml.dynamics.swarm_evaluate import c2_row_mae, centre_of_mass_mse, cluster_distribution, kww_vs_age

    true = np.zeros((1, 3, 4, 2))
    pred = true + np.array([0.3, 0.4])                                         # every particle shifted
    np.testing.assert_allclose(centre_of_mass_mse(pred, true), 0.25)
    # two pairs 0.1 apart, far from each other, plus one lone particle: half... sizes 2, 2, 1
    pos = np.array([[[0, 0], [0.1, 0], [5, 5], [5.1, 5], [9, 0]]], float)
    np.testing.assert_allclose(cluster_distribution(pos, 0.15, 5), [0.2, 0.8, 0, 0, 0])
    t = np.arange(60) * 0.1
    tau, gamma = 0.7, 1.5
    c2 = np.exp(-(np.abs(t[:, None] - t[None]) / tau) ** gamma)
    fit_tau, fit_gamma = kww_vs_age(c2, 0.1, [0, 10, 20], 20)
    np.testing.assert_allclose(fit_tau, tau, rtol=1e-4)
    np.testing.assert_allclose(fit_gamma, gamma, rtol=1e-4)
    np.testing.assert_allclose(c2_row_mae(c2, c2 + 0.1), 0.1)


def test_c2_agreement_time_is_the_last_time_before_the_mae_first_exceeds_the_threshold():
    from speckleml.dynamics.swarm_evaluate import c2_agreement_time

    t = np.arange(11) * 5.0                                                    # 0 ... 50
    mae = np.array([0.01, 0.02, 0.03, 0.02, 0.04, 0.06, 0.03, 0.2, 0.3, 0.3, 0.3])
    assert c2_agreement_time(t, mae, 0.05) == 20.0                             # t = 25 is the first above
    assert c2_agreement_time(t, mae, 0.5) == 50.0                              # agrees throughout
    assert c2_agreement_time(t, mae, 0.005) == 0.0                             # the first row already above
    assert c2_agreement_time(t, np.where(t == 10.0, np.nan, mae), 0.5) == 5.0  # NaN is disagreement


def test_initial_cutoff_is_the_spacing_of_a_lattice_of_clusters(tmp_path):
    """R0 from the frames store: clusters on a square lattice of spacing 0.9 -> R0 = 0.9 (3 %)."""
    from speckleml.dynamics.swarm_run import initial_cutoff_from_frames, swarm_frames
    from speckleml.stores import write_frames

    rng = np.random.default_rng(0)
    grid = np.arange(-3, 4) * 0.9
    centres = np.array([[x, y] for x in grid for y in grid])
    pos = (centres[:, None, :] + rng.normal(0, 0.02, (len(centres), 5, 2))).reshape(-1, 2)
    geometry = S.SwarmGeometry(detector=64, beamstop=3.0)
    frames, mask = swarm_frames(pos[None, None], geometry)
    write_frames(tmp_path / "f.zarr", frames, mask=mask, attrs={"geometry": geometry.as_attrs()})
    assert initial_cutoff_from_frames(tmp_path / "f.zarr") == pytest.approx(0.9, rel=0.03)
    assert 2 * math.pi / (geometry.dq * 3) > 0.9  # the beamstop edge is not what was found


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    from speckleml.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["dynamics", "swarm-simulate", str(tmp_path / "s.zarr"), "--frames", str(tmp_path / "f.zarr"),
              "--particles", "0"])
    assert exit_.value.code == 2
    assert "speckleml: error:" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()
