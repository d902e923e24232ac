"""Dynamics case 4 (issue 16): a ptychographic scan trajectory (paper 000 eq. 9) learned from diffraction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speckleml.dynamics.systems import get_case
from speckleml.dynamics.systems import scan as S
from speckleml.errors import InputError

TRAINING = dict(learning_rate=1e-2, batch_series=5, batch_time=4, loss="l1", poisson_below=10.0, rescale_t0="no",
                method="dopri5", rtol=1e-5, atol=1e-6, max_num_steps=2000, spike_rule="robust", spike_factor=2.0,
                spike_mad=4.0, spike_window=20, spike_patience=3, lr_recovery=100, min_learning_rate=1e-6,
                checkpoint_every=1, snapshot_every=2)


def test_eq9_integrated_numerically_is_the_analytic_spiral():
    """simulate_states (DOP853 on eq. 9) = c sqrt(t) (cos, sin)(4 sqrt(t)) over 2 windows."""
    states, t = S.simulate_states(1, window=80, turns=1.0, radius=40.0, extrapolation=2.0)
    t0 = S.start_time(80, 1.0)
    assert t[0] == pytest.approx(t0) and t0 == pytest.approx(609.1, abs=0.1) and states.shape == (1, 160, 3)
    exact = S.spiral(t, 40.0 / math.sqrt(t0))
    np.testing.assert_allclose(states[0, :, :2], exact, rtol=0, atol=1e-6)   # pixels, radius 40..55
    np.testing.assert_array_equal(states[0, :, 2], t)                        # the clock component
    # 80 points span one turn: the angle omega sqrt(t) grows by 2 pi from t0 to t0 + 80
    assert 4 * (math.sqrt(t0 + 80) - math.sqrt(t0)) == pytest.approx(2 * math.pi)
    # and eq. 9's right-hand side is the spiral's derivative (central difference)
    h = 1e-4
    deriv = (S.spiral([t0 + h], 3.0) - S.spiral([t0 - h], 3.0)) / (2 * h)
    np.testing.assert_allclose(S.eq9_rhs(t0, S.spiral([t0], 3.0)), deriv, rtol=1e-7)


def test_start_time_rejects_a_window_too_short_for_the_turns():
    with pytest.raises(InputError, match="cannot span"):
        S.start_time(2.0, turns=1.0)
    with pytest.raises(InputError, match="series must be 1"):
        S.simulate_states(2)


def _forward(detector=8, size=40, seed=0):
    rng = np.random.default_rng(seed)
    obj = S.make_object(size, rng, feature_size=1.5)
    probe = S.make_probe(detector, 0.2, 0.5)
    return obj, probe, S.ScanSpeckle(obj, probe)


def test_patches_at_whole_pixels_are_the_object_slices_and_patterns_the_fft():
    """Independent check: at integer r the bilinear patch is a slice; the pattern is |FFT|^2 (numpy)."""
    obj, probe, forward = _forward()
    r = torch.tensor([[3.0, -2.0], [0.0, 0.0]], dtype=torch.float64)
    patches = forward.patches(r).numpy()
    size, n = obj.shape[0], probe.shape[0]
    centre = (size - 1) / 2                                                   # 19.5: the object's centre
    for k, (x, y) in enumerate(r.numpy()):
        row0, col0 = int(centre + y - n // 2 + 0.5), int(centre + x - n // 2 + 0.5)
        # the patch grid is centre + r + (-n/2 .. n/2 - 1), here half-integers: average of 4 neighbours
        ref = 0.25 * (obj[row0 - 1:row0 - 1 + n, col0 - 1:col0 - 1 + n] + obj[row0:row0 + n, col0 - 1:col0 - 1 + n]
                      + obj[row0 - 1:row0 - 1 + n, col0:col0 + n] + obj[row0:row0 + n, col0:col0 + n])
        np.testing.assert_allclose(patches[k], ref, atol=1e-12)
    expected = np.abs(np.fft.fftshift(np.fft.fft2(patches[0] * probe, norm="ortho"))) ** 2
    np.testing.assert_allclose(forward(r)[0].numpy(), expected, rtol=1e-10, atol=1e-14)


def test_interpolant_gradient_with_respect_to_position_matches_finite_differences():
    _, _, forward = _forward(seed=3)
    weights = torch.as_tensor(np.random.default_rng(4).random((8, 8)))
    # inside a pixel cell (bilinear is smooth there): fractional parts away from 0 and 1
    r = torch.tensor([[1.3, -2.6]], dtype=torch.float64, requires_grad=True)
    loss = (forward(r) * weights).sum()
    (grad,) = torch.autograd.grad(loss, r)
    h = 1e-6
    for axis in range(2):
        step = torch.zeros_like(r)
        step[0, axis] = h
        with torch.no_grad():
            fd = ((forward(r + step) * weights).sum() - (forward(r - step) * weights).sum()) / (2 * h)
        assert float(grad[0, axis]) == pytest.approx(float(fd), rel=1e-6, abs=1e-10)
    assert float(grad.abs().max()) > 1e-3                                     # the object is not flat there


def test_model_file_round_trips_and_the_state_carries_its_clock(tmp_path):
    from speckleml.dynamics.models import load_model, save_model
    from speckleml.dynamics.training import TrainSettings

    case = get_case("scan")
    assert case is S.CASE and case.geometry is S.ScanGeometry
    torch.manual_seed(1)
    model = case.build_model(t_offset=600.0, t_scale=80.0, r_scale=40.0, features=4, hidden=8, depth=2)
    save_model(tmp_path / "m.pt", model, TrainSettings(iterations=1, learning_rate=1e-3, batch_series=1,
                                                        batch_time=2), 0, 0, case="scan")
    loaded, payload = load_model(tmp_path / "m.pt")
    assert payload["architecture"] == {"t_offset": 600.0, "t_scale": 80.0, "r_scale": 40.0, "features": 4,
                                       "hidden": 8, "depth": 2}
    y = torch.tensor([[30.0, -10.0, 650.0]], dtype=torch.float64)
    out = loaded(torch.tensor(0.0), y)
    torch.testing.assert_close(out, model(torch.tensor(5.0), y).detach())    # ignores the solver's relative t
    assert float(out[0, 2]) == 1.0                                             # dt/dt = 1
    assert case.snapshot(loaded).shape == (4, 2)


def test_metrics_against_analytic_values():
    from speckleml.dynamics.scan_evaluate import angular_lag, off_diagonal_mae, spectra_emd

    t = np.arange(160.0)
    theta = 2 * np.pi * t / 80
    true = np.stack([np.cos(theta), np.sin(theta)], axis=-1) * 40
    lagging = np.stack([np.cos(theta * 0.95), np.sin(theta * 0.95)], axis=-1) * 44
    # two turns, the prediction 5 % slower: 0.05 x 2 x 2 pi x 159/160 behind at the end
    assert angular_lag(true, lagging) == pytest.approx(0.05 * 4 * 159 / 160)
    assert angular_lag(true, true) == 0
    _, _, _, emd = spectra_emd(t, true, true)
    np.testing.assert_allclose(emd, 0, atol=1e-12)
    _, _, _, emd = spectra_emd(t, true, lagging)
    assert np.all(emd > 0)
    a = np.eye(3) + 0.2
    assert off_diagonal_mae(a, a + 0.1 * (1 - np.eye(3))) == pytest.approx(0.1)


def _simulate(tmp_path, window=16, detector=16, radius=12.0, **extra):
    from speckleml.dynamics.scan_run import run_scan_simulation

    options = dict(window=window, turns=1.0, radius=radius, extrapolation=2.0, omega=4.0, detector=detector,
                   probe_sigma=0.15, defocus=1.0, feature_size=2.0, phase=1.0, absorption=0.2, beamstop=0.0,
                   lambda_max=None, seed=5)
    options.update(extra)
    run_scan_simulation(states=tmp_path / "s.zarr", frames=tmp_path / "f.zarr", test_states=tmp_path / "t.zarr",
                        sample=tmp_path / "sample.zarr", **options)


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    from speckleml.dynamics.models import load_model
    from speckleml.dynamics.scan_run import run_scan_training

    _simulate(tmp_path, window=12, detector=8, radius=6.0)
    common = dict(states=tmp_path / "s.zarr", frames=tmp_path / "f.zarr", member=1, seed=3, features=4, hidden=8,
                  depth=2, device="cpu", iterations=4, **TRAINING)
    assert run_scan_training(model=tmp_path / "a.pt", history=tmp_path / "a.zarr", **common)
    assert not run_scan_training(model=tmp_path / "b.pt", history=tmp_path / "b.zarr", stop_after=2, **common)
    assert not (tmp_path / "b.pt").exists() and (tmp_path / "b.pt.ckpt").exists()
    assert run_scan_training(model=tmp_path / "b.pt", history=tmp_path / "b.zarr", **common)
    a, _ = load_model(tmp_path / "a.pt")
    b, _ = load_model(tmp_path / "b.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_a_single_trajectory_gives_batch_series_windows():
    """The shared sampler draws batch_series windows of the one scan trajectory (paper: 5 x 35)."""
    from speckleml.dynamics.training import WindowData, sample_windows

    data = WindowData(states=torch.zeros(1, 80, 3), frames=torch.zeros(1, 80, 4, 4),
                      mask=torch.ones(4, 4, dtype=torch.bool), t=torch.arange(80.0))
    t, y0, target = sample_windows(data, 5, 35, np.random.default_rng(0))
    assert y0.shape == (5, 3) and target.shape == (5, 35, 4, 4) and len(t) == 35


def test_a_tiny_problem_learns_the_trajectory(tmp_path):
    """Trained through 16x16 patterns only, the NODE follows eq. 9 over the window: the mean position
    error falls to < 1/4 of the untrained model's and below 3 px (one turn of radius 10 px in 24
    scan points, 2.6 px per point; measured 2.2 px from 13.4 px)."""
    from speckleml.dynamics.models import load_model
    from speckleml.dynamics.scan_evaluate import run_scan_evaluation
    from speckleml.dynamics.scan_run import run_scan_training
    from speckleml.stores import read_store

    _simulate(tmp_path, window=24, radius=10.0)
    common = dict(states=tmp_path / "s.zarr", frames=tmp_path / "f.zarr", seed=0, features=8, hidden=32, depth=3,
                  device="cpu", **{**TRAINING, "batch_time": 4, "checkpoint_every": 50, "learning_rate": 5e-3})
    assert run_scan_training(model=tmp_path / "u.pt", history=tmp_path / "u.zarr", iterations=1, **common)
    assert run_scan_training(model=tmp_path / "m.pt", history=tmp_path / "h.zarr", iterations=300, **common)
    errors = {}
    for name in ("u", "m"):
        summary = run_scan_evaluation(test_states=tmp_path / "t.zarr", frames=tmp_path / "f.zarr",
                                      models=[tmp_path / f"{name}.pt"], metrics=tmp_path / f"{name}.csv",
                                      store=tmp_path / f"{name}.zarr", q_fractions=[0.2, 0.4, 0.6], ring_width=2.0,
                                      rtol=1e-7, atol=1e-9, device="cpu")
        errors[name] = summary["position_mae_window"]
    assert errors["m"] < errors["u"] / 4 and errors["m"] < 3.0, errors
    ev = read_store(tmp_path / "m.zarr", "scan_evaluation")
    assert ev["c2_true"].shape == (3, 48, 48) and ev["wave_true"].shape == (2, 16, 16, 2)
    load_model(tmp_path / "m.pt")


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    from speckleml.cli import main
    from speckleml.dynamics.scan_run import run_scan_training

    with pytest.raises(SystemExit) as exit_:  # the schema's bound, checked as the option is parsed
        main(["dynamics", "scan-simulate", str(tmp_path / "s.zarr"), "--frames", str(tmp_path / "f.zarr"),
              "--test-states", str(tmp_path / "t.zarr"), "--sample", str(tmp_path / "o.zarr"), "--window", "2"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["speckleml: error: argument --window: must be >= 4, got 2 (config schema dynamics.scan.system.window) "
                   "(see speckleml dynamics scan-simulate --help)"]
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "o.zarr").exists()
    # frames whose sample store was replaced by another object: refused, not silently used
    _simulate(tmp_path, window=12, detector=8, radius=6.0)
    obj, probe = S.load_sample(tmp_path / "sample.zarr")
    S.write_sample(tmp_path / "sample.zarr", obj * 0.5, probe)
    with pytest.raises(InputError, match="differ from those the frames were made with"):
        run_scan_training(states=tmp_path / "s.zarr", frames=tmp_path / "f.zarr", model=tmp_path / "m.pt",
                          history=tmp_path / "h.zarr", seed=0, features=4, hidden=8, depth=2, iterations=1,
                          device="cpu", **TRAINING)


def test_poisson_frames_are_counts_of_the_scaled_patterns(tmp_path):
    """lambda_max: integer counts whose total matches the rates (patterns / max x lambda_max) to 5 sigma."""
    from speckleml.dynamics.scan_run import scan_frames
    from speckleml.stores import read_frames, read_states

    _simulate(tmp_path, window=12, detector=8, radius=6.0, lambda_max=50.0)
    frames = read_frames(tmp_path / "f.zarr")
    counts = np.asarray(frames["frames"], np.float64)
    obj, probe = S.load_sample(tmp_path / "sample.zarr")
    clean = scan_frames(np.asarray(read_states(tmp_path / "s.zarr")["states"]), obj, probe).astype(np.float64)
    rates = clean / clean.max() * 50.0
    assert np.array_equal(counts, np.round(counts)) and frames.attrs["lambda_max"] == 50.0
    assert abs(counts.sum() - rates.sum()) < 5 * np.sqrt(rates.sum())


def test_the_sample_store_is_found_beside_the_frames_store_from_any_directory(tmp_path, monkeypatch):
    """Fresh-user trial: the frames recorded the sample relative to the working directory."""
    from speckleml.dynamics.systems.scan import ScanGeometry
    from speckleml.dynamics.train import geometry_from_attrs

    spec = ScanGeometry(sample="sample.zarr", digest="0" * 16, detector=8)
    resolved = geometry_from_attrs({"geometry": spec.as_attrs()}, tmp_path / "run" / "frames.zarr", "scan")
    assert resolved.sample == str(tmp_path / "run" / "sample.zarr")
    absolute = ScanGeometry(sample=str(tmp_path / "elsewhere.zarr"), digest="0" * 16, detector=8)
    assert absolute.resolved(tmp_path / "run" / "frames.zarr") == absolute
