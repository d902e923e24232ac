"""dynamics case 3 wired end to end: the registered case, its stages, the evaluation's scores."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from speckleml.dynamics.lotka_volterra_evaluate import (LV_EVALUATION, agreement_time, run_evaluation,  # noqa: E402
                                                        trajectory_scores)
from speckleml.dynamics.lotka_volterra_simulate import run_simulation  # noqa: E402
from speckleml.dynamics.models import load_model  # noqa: E402
from speckleml.dynamics.systems import get_case  # noqa: E402
from speckleml.dynamics.systems.lotka_volterra import (CASE, FluctuatingSourceSpeckle,  # noqa: E402
                                                       LotkaVolterraGeometry, lotka_volterra_rhs)
from speckleml.dynamics.train import run_training  # noqa: E402
from speckleml.errors import InputError  # noqa: E402
from speckleml.metrics import spectrum  # noqa: E402
from speckleml.stores import read_frames, read_states, read_store  # noqa: E402

TRAINING = dict(iterations=30, learning_rate=1e-2, batch_series=4, batch_time=5, loss="l1", poisson_below=10.0,
                rescale_t0="no", method="dopri5", rtol=1e-5, atol=1e-7, max_num_steps=20000, spike_rule="robust",
                spike_factor=2.0, spike_mad=4.0, spike_window=20, spike_patience=3, lr_recovery=100,
                min_learning_rate=1e-6, checkpoint_every=5, snapshot_every=5)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny truth and frames: 4 objects of 20 particles, 12x12 detector, t = 0, 2, ..., 8."""
    d = tmp_path_factory.mktemp("lv")
    torch.set_num_threads(1)
    run_simulation(states=d / "s.zarr", frames=d / "f.zarr", test_states=d / "test.zarr", series=4, t_max=8.0,
                   dt=2.0, test_series=2, test_t_max=40.0, test_dt=0.5, n_particles=20, box=2.0,
                   particle_radius=0.07, probe_sigma=0.25, detector=12, dq_factor=1.0, render_dtype="float64", seed=3)
    return d


def test_case_is_registered_and_the_geometry_rebuilds_the_frames(tiny):
    assert get_case("lotka_volterra") is CASE
    frames = read_frames(tiny / "f.zarr")
    states = read_states(tiny / "s.zarr")
    geometry = CASE.geometry(**frames.attrs["geometry"])
    assert geometry == LotkaVolterraGeometry(**geometry.as_attrs())
    # the objects come back from the seed: the initial state is each object's centre of mass + (1, 1)
    np.testing.assert_allclose(geometry.objects().mean(axis=1) + 1.0, states["states"][:, 0], rtol=0, atol=1e-12)
    forward = CASE.forward_model(geometry, dtype=torch.float64, device="cpu")
    truth = torch.as_tensor(states["states"])
    with torch.no_grad():
        rendered = forward(truth)
        np.testing.assert_allclose(rendered.numpy(), frames["frames"], rtol=2e-6)  # stored as float32
        # per-series call: series 2 and 0 see their own objects
        np.testing.assert_allclose(forward(truth[[2, 0]], series=torch.tensor([2, 0])).numpy(),
                                   rendered.numpy()[[2, 0]], rtol=1e-12)
    assert FluctuatingSourceSpeckle.per_series
    with pytest.raises(InputError, match="render dtype"):
        LotkaVolterraGeometry(n_series=1, render_dtype="float16")


def _field_error(model, states) -> float:
    x = torch.as_tensor(states.reshape(-1, 2))
    with torch.no_grad():
        return float((model(0.0, x) - lotka_volterra_rhs(x)).abs().mean())


def test_training_through_the_registered_case_reduces_the_vector_field_error(tiny):
    states = read_states(tiny / "s.zarr")["states"]
    torch.manual_seed(3)  # run_training seeds seed + member = 3 before building the model
    before = _field_error(CASE.build_model(hidden=10), states)
    assert run_training(states=tiny / "s.zarr", frames=tiny / "f.zarr", model=tiny / "m0.pt",
                        history=tiny / "h0.zarr", member=0, seed=3, model_options={"hidden": 10}, device="cpu",
                        **TRAINING)
    model, payload = load_model(tiny / "m0.pt")
    assert payload["case"] == "lotka_volterra" and payload["architecture"] == {"hidden": 10}
    # measured: 0.195 -> 0.100 after 30 iterations (mean |F - f| over the true training states)
    assert _field_error(model, states) < 0.6 * before
    history = read_store(tiny / "h0.zarr", "training_history")
    assert history["loss"][-5:].mean() < 0.5 * history["loss"][:5].mean()


def test_kill_and_resume_equals_uninterrupted(tiny, tmp_path):
    settings = {**TRAINING, "iterations": 12}
    kw = dict(states=tiny / "s.zarr", frames=tiny / "f.zarr", seed=3, model_options={"hidden": 10}, device="cpu")
    assert run_training(model=tmp_path / "a.pt", history=tmp_path / "a.zarr", member=1, **kw, **settings)
    assert not run_training(model=tmp_path / "b.pt", history=tmp_path / "b.zarr", member=1, stop_after=7,
                            **kw, **settings)
    assert not (tmp_path / "b.pt").exists() and (tmp_path / "b.pt.ckpt").exists()
    assert run_training(model=tmp_path / "b.pt", history=tmp_path / "b.zarr", member=1, **kw, **settings)
    a, b = load_model(tmp_path / "a.pt")[0], load_model(tmp_path / "b.pt")[0]
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_scores_of_a_hand_case():
    """cos at f = 0.05 vs 0.08 (both on the frequency grid): EMD = 0.03, period 1/0.08 = 12.5."""
    t = np.arange(0, 200, 0.5)
    true = np.stack([np.cos(2 * np.pi * 0.05 * t), np.sin(2 * np.pi * 0.05 * t)], -1) + 2.0
    pred = np.stack([np.cos(2 * np.pi * 0.08 * t), np.sin(2 * np.pi * 0.08 * t)], -1) + 2.0
    freqs, spec_true = spectrum(true, 0.5, axis=0)
    _, spec_pred = spectrum(pred, 0.5, axis=0)
    scores = trajectory_scores(t, true, pred, freqs, spec_true, spec_pred, tolerance=0.1)
    assert scores["emd"] == pytest.approx(0.03, rel=1e-9)
    assert scores["period"] == pytest.approx(12.5, rel=1e-3)
    same = trajectory_scores(t, true, true, freqs, spec_true, spec_true, tolerance=0.1)
    assert same["emd"] == 0.0 and same["agreement_time"] == t[-1]
    # |pred - true| = 2 |sin(pi (0.08 - 0.05) t)| first exceeds 0.1 at t = asin(0.05) / (0.03 pi) = 0.5306
    assert agreement_time(t, true, pred, 0.1) == 1.0  # the first sample past 0.5306
    assert np.isnan(trajectory_scores(t, true, np.full_like(pred, np.nan), freqs, spec_true,
                                      np.full_like(spec_pred, np.nan), 0.1)["emd"])


def test_evaluation_of_identical_members(tiny, tmp_path):
    """Two copies of one model: ensemble model = mean of solutions = each member (EMD, fields)."""
    import shutil

    if not (tiny / "m0.pt").exists():
        run_training(states=tiny / "s.zarr", frames=tiny / "f.zarr", model=tiny / "m0.pt", history=tiny / "h0.zarr",
                     member=0, seed=3, model_options={"hidden": 10}, device="cpu", **TRAINING)
    shutil.copy(tiny / "m0.pt", tmp_path / "copy.pt")
    run_evaluation(test_states=tiny / "test.zarr", train_states=tiny / "s.zarr",
                   models=[tiny / "m0.pt", tmp_path / "copy.pt"], metrics=tmp_path / "m.csv", store=tmp_path / "e.zarr",
                   grid_points=5, agreement_tolerance=0.1, rtol=1e-7, atol=1e-9, seed=3)
    ev = read_store(tmp_path / "e.zarr", LV_EVALUATION)
    np.testing.assert_allclose(ev["emd_members"][0], ev["emd_members"][1], rtol=0)
    np.testing.assert_allclose(ev["emd_ensemble_rhs"], ev["emd_members"][0], rtol=1e-6)
    np.testing.assert_allclose(ev["emd_ensemble_mean"], ev["emd_members"][0], rtol=1e-12)
    assert ev["true"].shape == (2, 81, 2)
    import pandas as pd

    table = pd.read_csv(tmp_path / "m.csv")
    assert set(table.model) == {"truth", "member", "ensemble_rhs", "ensemble_mean", "random"}
    truth_period = table[(table.model == "truth") & (table.metric == "period")].value
    assert truth_period.between(15.3, 16.5).all()  # orbits near (1, 1): 16.05 (module docstring)
    with pytest.raises(InputError, match="expected 'lotka_volterra'"):
        bad = tmp_path / "bad.zarr"
        from speckleml.stores import write_states

        write_states(bad, np.zeros((1, 8, 2)) + 1, np.arange(8.0), system="kuramoto")
        run_evaluation(test_states=bad, train_states=tiny / "s.zarr", models=[tiny / "m0.pt"],
                       metrics=tmp_path / "x.csv", store=tmp_path / "x.zarr", grid_points=5,
                       agreement_tolerance=0.1, rtol=1e-7, atol=1e-9, seed=3)
    assert not (tmp_path / "x.csv").exists()
