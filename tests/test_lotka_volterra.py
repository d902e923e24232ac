"""dynamics case 3 (paper 000, fluctuating source): Lotka-Volterra truth, object, frames, models."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from speckleml.dynamics.systems.lotka_volterra import (EnsembleRHS, LotkaVolterraMLP,  # noqa: E402
                                                       LotkaVolterraParameters, LotkaVolterraRHS,
                                                       conserved_quantity, initial_states,
                                                       lotka_volterra_rhs, object_positions,
                                                       random_objects, render_frames, simulate_truth,
                                                       vector_field_grid)
from speckleml.errors import InputError  # noqa: E402
from speckleml.metrics import oscillation_period  # noqa: E402
from speckleml.scattering import detector_q_grid, sphere_form_factor  # noqa: E402

PARAMS = LotkaVolterraParameters()


def test_paper_parameters_fixed_point_and_small_orbit_period():
    assert (PARAMS.alpha, PARAMS.beta, PARAMS.gamma, PARAMS.delta) == (1 / 3, 2 / 3, 0.5, 0.5)
    assert PARAMS.fixed_point == (1.0, 0.5)
    np.testing.assert_allclose(lotka_volterra_rhs(np.array(PARAMS.fixed_point), PARAMS), [0, 0], atol=1e-16)
    assert PARAMS.small_orbit_period == pytest.approx(15.39, abs=5e-3)  # paper: "~15.39"
    with pytest.raises(InputError):
        LotkaVolterraParameters(alpha=0.0)


def test_truth_conserves_v_to_solver_tolerance():
    t = np.linspace(0, 100, 501)
    truth = simulate_truth([[1.0, 1.0], [1.3, 0.4], [0.7, 0.8]], t)
    assert truth.shape == (3, 501, 2)
    np.testing.assert_allclose(truth[:, 0], [[1.0, 1.0], [1.3, 0.4], [0.7, 0.8]])
    v = conserved_quantity(truth)
    assert np.max(np.ptp(v, axis=1)) < 1e-8
    # while the orbit itself is far from a fixed point (the trajectory does move)
    assert np.ptp(truth[0, :, 0]) > 1.0
    # torch and numpy give the same V
    assert float(conserved_quantity(torch.tensor([1.0, 1.0], dtype=torch.float64))) == pytest.approx(v[0, 0], rel=1e-15)


def test_truth_agrees_with_torchdiffeq_on_the_torch_rhs():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    t = np.linspace(0, 20, 41)
    y0 = np.array([[1.0, 1.0], [0.8, 0.6]])
    ref = torchdiffeq.odeint(LotkaVolterraRHS(PARAMS), torch.tensor(y0), torch.tensor(t),
                             method="dopri5", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(simulate_truth(y0, t), ref.numpy().transpose(1, 0, 2), atol=1e-8)


def test_period_measured_from_trajectories():
    t = np.linspace(0, 200, 20001)
    small, reference = simulate_truth([[1.01, 0.5], [1.0, 1.0]], t)
    # a small orbit about the fixed point (1, 1/2) from (1.01, 0.5): 2 pi / sqrt(alpha gamma)
    assert oscillation_period(t, small[:, 0]) == pytest.approx(PARAMS.small_orbit_period, rel=1e-4)
    assert oscillation_period(t, small[:, 1]) == pytest.approx(PARAMS.small_orbit_period, rel=1e-4)
    # the orbit through (1, 1) (an object centred at the origin, offset (1, 1)) is slower: 16.05
    assert oscillation_period(t, reference[:, 0]) == pytest.approx(16.053, abs=2e-3)


def test_simulate_truth_rejects_non_positive_states():
    with pytest.raises(InputError):
        simulate_truth([[1.0, 0.0]], [0.0, 1.0])
    with pytest.raises(InputError):
        simulate_truth([[1.0, 1.0]], [1.0, 0.0])


def test_objects_move_rigidly_with_the_state():
    rng = np.random.default_rng(5)
    objects = random_objects(2, rng, n_particles=50)
    assert objects.shape == (2, 50, 2) and np.all(np.abs(objects) <= 1.0)
    s0 = initial_states(objects)
    np.testing.assert_allclose(s0, objects.mean(axis=1) + 1.0)
    states = torch.tensor(np.stack([s0, s0 + [0.3, -0.2]], axis=1))  # (S, T=2, 2)
    pos = object_positions(torch.tensor(objects), states)
    assert pos.shape == (2, 2, 50, 2)
    np.testing.assert_allclose(pos[:, 0].numpy(), objects, atol=1e-15)  # t = 0: the object itself
    np.testing.assert_allclose((pos[:, 1] - pos[:, 0]).numpy(), np.broadcast_to([0.3, -0.2], (2, 50, 2)),
                               atol=1e-15)


def test_frames_equal_the_direct_sum_of_eq_18():
    rng = np.random.default_rng(0)
    objects = torch.tensor(random_objects(1, rng, n_particles=7))
    states = torch.tensor(initial_states(objects.numpy()))[:, None, :] + torch.tensor([[[0.1, -0.05]]])
    q = detector_q_grid(5, math.pi / 2.0, dtype=torch.float64)
    frames = render_frames(objects, states, q, particle_radius=0.14, probe_sigma=0.5)
    assert frames.shape == (1, 1, 5, 5)
    r = object_positions(objects, states)[0, 0].numpy()               # (N, 2)
    qv = q.numpy().reshape(-1, 2)
    weight = np.exp(-(r**2).sum(-1) / (2 * 0.5**2))                    # probe at the origin
    form = sphere_form_factor(torch.tensor(np.linalg.norm(qv, axis=-1)), 0.14).numpy()
    amplitude = form * (weight[:, None] * np.exp(1j * r @ qv.T)).sum(0)
    np.testing.assert_allclose(frames.numpy().ravel(), np.abs(amplitude) ** 2, rtol=1e-12)


def test_frames_gradient_wrt_the_position_matches_finite_differences():
    rng = np.random.default_rng(1)
    objects = torch.tensor(random_objects(2, rng, n_particles=6))
    q = detector_q_grid(4, math.pi / 2.0, dtype=torch.float64)
    states = (torch.tensor(initial_states(objects.numpy()))[:, None, :]
              + torch.tensor([[[0.0, 0.0], [0.2, -0.1]]])).requires_grad_(True)
    weights = torch.tensor(rng.random((2, 2, 4, 4)))

    def loss(s):
        return (weights * render_frames(objects, s, q, probe_sigma=0.5)).sum()

    (grad,) = torch.autograd.grad(loss(states), states)
    numeric = torch.zeros_like(grad)
    h = 1e-6
    with torch.no_grad():
        for index in np.ndindex(*states.shape):
            step = torch.zeros_like(states)
            step[index] = h
            numeric[index] = (loss(states + step) - loss(states - step)) / (2 * h)
    assert grad.abs().max() > 1e-3  # the frames do depend on the position
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


def test_mlp_architecture():
    torch.manual_seed(0)
    model = LotkaVolterraMLP()
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 10), (10, 10), (10, 10), (10, 2)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in model.net) == 3
    assert sum(p.numel() for p in model.parameters()) == 272
    y = torch.rand(3, 5, 2, dtype=torch.float64)
    assert model(0.0, y).shape == (3, 5, 2)


def test_ensemble_rhs_averages_members():
    torch.manual_seed(0)
    a = LotkaVolterraMLP()
    b = LotkaVolterraMLP()
    twin = LotkaVolterraMLP()
    twin.load_state_dict(a.state_dict())
    y = torch.rand(4, 2, dtype=torch.float64) + 0.5
    torch.testing.assert_close(EnsembleRHS([a, twin, a])(0.0, y), a(0.0, y), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(EnsembleRHS([a, b])(0.0, y), (a(0.0, y) + b(0.0, y)) / 2)
    # the truth is a valid member too
    torch.testing.assert_close(EnsembleRHS([LotkaVolterraRHS()])(0.0, y), lotka_volterra_rhs(y))
    with pytest.raises(InputError):
        EnsembleRHS([])


def test_vector_field_grid_layout():
    grid = vector_field_grid((0.2, 2.0), (0.1, 1.2), 4)
    assert grid.shape == (4, 4, 2)
    assert grid[0, 3].tolist() == [2.0, 0.1] and grid[3, 0].tolist() == [0.2, 1.2]


@pytest.mark.slow
def test_training_through_speckle_reduces_the_vector_field_error():
    """Tiny end-to-end check: the MLP, trained only on frames, moves toward eq. 7 along the orbits."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(0)
        objects = torch.tensor(random_objects(4, rng, n_particles=20))
        t = torch.arange(0.0, 8.5, 1.0, dtype=torch.float64)
        y0 = torch.tensor(initial_states(objects.numpy()))
        truth = torch.tensor(simulate_truth(y0.numpy(), t.numpy()))               # (S, T, 2)
        q = detector_q_grid(12, math.pi / 2.0, dtype=torch.float64)
        observed = render_frames(objects, truth, q)
        states = truth.reshape(-1, 2)

        def field_error(model):
            with torch.no_grad():
                return float((model(0.0, states) - lotka_volterra_rhs(states)).abs().mean())

        torch.manual_seed(0)
        model = LotkaVolterraMLP()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        before = field_error(model)
        for _ in range(30):
            optimizer.zero_grad()
            predicted = torchdiffeq.odeint(model, y0, t, method="dopri5", rtol=1e-5, atol=1e-7).movedim(0, 1)
            loss = (render_frames(objects, predicted, q) - observed).abs().mean()
            loss.backward()
            optimizer.step()
        # measured: 0.22 -> 0.05 (mean |F - f| over the true states); trajectories 0.5 -> 0.09
        assert field_error(model) < 0.5 * before
        assert float((predicted.detach() - truth).abs().mean()) < 0.2
    finally:
        torch.set_num_threads(threads)
