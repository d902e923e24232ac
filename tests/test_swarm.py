"""dynamics case 2 (paper 000, self-organising particles): h(r), radius graph, truth, graph NODE."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from speckleml.dynamics.systems.swarm import (CUTOFF, SwarmGraphODE, SwarmRHS, cutoff_function,  # noqa: E402
                                              equilibrium_distance, normalization, pretrain_cutoff,
                                              pretrain_target, radius_graph, random_disk_positions,
                                              render_frames, ring_length_scale, simulate_truth)
from speckleml.errors import InputError  # noqa: E402
from speckleml.metrics import first_peak, pair_distance_histogram  # noqa: E402
from speckleml.scattering import detector_q_grid, point_intensity  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: a second intra-op thread only waits on the busy shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_paper_sizes_and_the_cutoff_function_of_eq_5():
    assert CUTOFF == pytest.approx(0.75) and normalization(5.0) == pytest.approx(0.16)
    R = CUTOFF
    r = 0.3
    by_hand = R / (2 * r) * (1 + math.tanh(1 / (r - R) - 1 / (r - 2 * R)))
    h = cutoff_function(torch.tensor([r, R, 0.9, 2.0], dtype=torch.float64), R)
    assert float(h[0]) == pytest.approx(by_hand, rel=1e-14)
    assert h[1:].tolist() == [0.0, 0.0, 0.0]
    # smooth at R: tiny just inside, with a finite gradient everywhere (also beyond R)
    x = torch.tensor([0.1, R - 1e-3, R, 1.0], dtype=torch.float64, requires_grad=True)
    cutoff_function(x, R).sum().backward()
    assert torch.isfinite(x.grad).all() and abs(float(x.grad[1])) < 1e-100
    # the pair rest distance: h = 1, attraction above, repulsion below
    r_star = equilibrium_distance(R)
    assert r_star == pytest.approx(0.11522, abs=1e-5)
    above, below = cutoff_function(torch.tensor([r_star * 1.1, r_star * 0.9], dtype=torch.float64), R)
    assert float(above) < 1 < float(below)


def test_radius_graph_equals_a_brute_force_pair_search():
    rng = np.random.default_rng(2)
    pos = torch.tensor(rng.random((3, 40, 2)) * 2.0)
    index, displacement, distance = radius_graph(pos, 0.4)
    found = set(map(tuple, index.T.tolist()))
    p = pos.numpy()
    brute = {(b, i, j) for b in range(3) for i in range(40) for j in range(40)
             if i != j and math.hypot(*(p[b, j] - p[b, i])) <= 0.4}
    assert found == brute and len(brute) > 100
    b, i, j = index
    torch.testing.assert_close(displacement, pos[b, j] - pos[b, i])
    torch.testing.assert_close(distance, torch.linalg.norm(pos[b, j] - pos[b, i], dim=-1))
    # unbatched input, trainable cutoff tensor, no edges for a tiny radius
    assert radius_graph(pos[0], torch.tensor(0.4, requires_grad=True))[0].shape[1] == \
        sum(1 for (bb, _, _) in brute if bb == 0)
    assert radius_graph(pos, 1e-9)[0].shape[1] == 0
    # differentiable in the positions
    leaf = pos.clone().requires_grad_(True)
    radius_graph(leaf, 0.4)[2].sum().backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_truth_rhs_equals_the_pairwise_sum_of_eq_4(aggregation):
    rng = np.random.default_rng(3)
    pos = torch.tensor(rng.random((2, 25, 2)) * 1.5)
    velocity = SwarmRHS(CUTOFF, 5.0, aggregation)(0.0, pos)
    n = (2 / 5.0) ** 2
    expected = torch.zeros_like(pos)
    for b in range(2):
        for i in range(25):
            terms = []
            for j in range(25):
                d = pos[b, j] - pos[b, i]
                r = float(torch.linalg.norm(d))
                if j != i and r <= CUTOFF:
                    h = R_h(r)
                    terms.append(h * (1 - h) / n * d)
            if terms:
                total = torch.stack(terms).sum(0)
                expected[b, i] = total / len(terms) if aggregation == "mean" else total
    torch.testing.assert_close(velocity, expected, rtol=1e-12, atol=1e-14)


def R_h(r):
    R = CUTOFF
    return R / (2 * r) * (1 + math.tanh(1 / (r - R) - 1 / (r - 2 * R))) if r < R else 0.0


def test_late_time_pair_distances_peak_at_the_rest_distance_of_isolated_groups():
    """Pairs and triangles farther than R apart relax to side r* (h(r*) = 1): the first histogram peak."""
    rng = np.random.default_rng(4)
    groups = []
    for k in range(6):
        centre = np.array([2.0 * (k % 3), 2.0 * (k // 3)])
        size = 2 if k % 2 else 3
        groups.append(centre + rng.uniform(-0.15, 0.15, size=(size, 2)))
    p0 = np.concatenate(groups)[None]
    t = np.array([0.0, 5.0, 10.0])
    for aggregation in ("sum", "mean"):
        final = simulate_truth(p0, t, aggregation=aggregation)[0, -1]
        counts, edges = pair_distance_histogram(final, bins=np.arange(0.0, 0.5, 0.01))
        r_star = equilibrium_distance()
        assert counts.sum() == 3 * 3 + 3 * 1  # within 0.5: 3 pairs in each of 3 triangles, 3 pairs
        assert first_peak(counts, edges) == pytest.approx(r_star, abs=0.01)
        # every group is an equilateral triangle or a pair of side r* by then
        close = [d for d in _pairs(final) if d < 0.5]
        assert len(close) == 12 and np.allclose(close, r_star, atol=1e-3)


def _pairs(points):
    return [math.dist(a, b) for k, a in enumerate(points) for b in points[k + 1:]]


def test_initial_disk_positions():
    pos = random_disk_positions(3, np.random.default_rng(0), n_particles=2000, radius=2.5)
    r = np.linalg.norm(pos, axis=-1)
    assert pos.shape == (3, 2000, 2) and r.max() <= 2.5
    assert np.mean(r <= 2.5 / math.sqrt(2)) == pytest.approx(0.5, abs=0.03)  # uniform in area


def test_graph_node_architecture_output_and_gradient_flow():
    torch.manual_seed(0)
    model = SwarmGraphODE(initial_cutoff=0.6)
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 10), (10, 10), (10, 10), (10, 1)]
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in model.net) == 3
    assert isinstance(model.net[-1], torch.nn.Softplus) and model.cutoff.requires_grad
    f = model.cutoff_function(torch.linspace(0.05, 1.0, 7, dtype=torch.float64))
    assert f.shape == (7,) and bool((f > 0).all())
    pos = torch.tensor(np.random.default_rng(1).random((2, 30, 2)), requires_grad=True)
    velocity = model(0.0, pos)
    assert velocity.shape == (2, 30, 2)
    velocity.pow(2).sum().backward()
    assert pos.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert float(model.cutoff.grad) != 0.0  # R learns through the MLP input
    with pytest.raises(InputError):
        SwarmGraphODE(initial_cutoff=0.0)


def test_graph_node_with_the_true_cutoff_function_is_the_truth():
    """Eq. 6 with F = h reproduces eq. 4 (the model's graph and aggregation are the truth's)."""
    model = SwarmGraphODE(initial_cutoff=CUTOFF)
    model.cutoff_function = lambda r: cutoff_function(r, CUTOFF)
    pos = torch.tensor(np.random.default_rng(6).random((2, 30, 2)) * 1.5)
    torch.testing.assert_close(model(0.0, pos), SwarmRHS()(0.0, pos), rtol=1e-13, atol=1e-15)


def test_pretraining_target_and_fit_of_eq_20():
    r = np.array([0.2, 0.4, 0.8])
    np.testing.assert_allclose(pretrain_target(r, 0.4, 5.0), (0.4 - r) / r / 0.16)
    torch.manual_seed(0)
    model = SwarmGraphODE(initial_cutoff=0.4)
    pretrain_cutoff(model, r_min=0.1, r_max=0.6, n_points=100, steps=200, lr=3e-2)
    assert float(model.cutoff.detach()) == 0.4  # R0 is not changed by pretraining
    with torch.no_grad():
        grid = torch.linspace(0.1, 0.6, 51, dtype=torch.float64)
        f = model.cutoff_function(grid)
        target = pretrain_target(grid, 0.4)
    inside = grid <= 0.4
    # close to the target where it is positive (target spans 0 ... 18.75), ~0 beyond R0
    assert float((f[inside] - target[inside]).abs().max()) < 1.5
    assert float(f[~inside].max()) < 0.5
    assert float(f[0]) > 10 * float(f[-1])


def test_frames_are_the_point_model_with_the_sphere_form_factor():
    pos = torch.tensor(np.random.default_rng(7).random((2, 9, 2)))
    q = detector_q_grid(6, math.pi / 5.0, dtype=torch.float64)
    frames = render_frames(pos, q, particle_radius=0.15)
    torch.testing.assert_close(frames, point_intensity(pos, q, radii=0.15, form_factor="sphere"))
    assert frames.shape == (2, 6, 6)


@pytest.mark.parametrize("spacing", [0.6, 0.9])
def test_ring_length_scale_recovers_the_spacing_of_a_lattice_of_clusters(spacing):
    """Clusters on a square lattice of spacing a: the brightest ring off the centre is at Q = 2 pi / a."""
    rng = np.random.default_rng(0)
    grid = np.arange(-3, 4) * spacing
    centres = np.array([[x, y] for x in grid for y in grid])
    pos = (centres[:, None, :] + rng.normal(0, 0.02, (len(centres), 5, 2))).reshape(-1, 2)
    dq = math.pi / 5.0
    frame = render_frames(torch.tensor(pos), detector_q_grid(64, dq, dtype=torch.float64), probe_sigma=1.25)
    assert ring_length_scale(frame.numpy(), dq, q_min=5 * dq) == pytest.approx(spacing, rel=0.03)
    with pytest.raises(InputError):
        ring_length_scale(frame.numpy(), dq, q_min=100.0)


@pytest.mark.slow
def test_training_through_speckle_moves_the_learned_cutoff_toward_the_true_one():
    """Issue 14 check on a tiny problem: pretrain (eq. 20), then fit frames only (eq. 6, L1 loss)."""
    from torchdiffeq import odeint

    rng = np.random.default_rng(0)
    p0 = random_disk_positions(2, rng, n_particles=30, radius=0.9)
    t = torch.arange(0.0, 2.01, 0.25, dtype=torch.float64)
    truth = torch.tensor(simulate_truth(p0, t.numpy()))                 # (S, T, N, 2)
    q = detector_q_grid(16, math.pi / 5.0, dtype=torch.float64)
    observed = render_frames(truth, q)
    r = torch.linspace(0.06, CUTOFF, 60, dtype=torch.float64)
    true_h = cutoff_function(r)

    def cutoff_error(model):
        with torch.no_grad():
            return float((model.cutoff_function(r) - true_h).abs().mean())

    torch.manual_seed(0)
    model = SwarmGraphODE(initial_cutoff=1.0)
    pretrain_cutoff(model, r_min=0.05, r_max=1.5, steps=300, lr=3e-2)
    pretrained = cutoff_error(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(12):
        optimizer.zero_grad()
        predicted = odeint(model, truth[:, 0], t, method="dopri5", rtol=1e-3, atol=1e-5).movedim(0, 1)
        (render_frames(predicted, q) - observed).abs().mean().backward()
        optimizer.step()
    # measured: mean |F - h| on [0.06, R] 13.2 after pretraining -> 1.4 after 12 iterations
    assert cutoff_error(model) < 0.25 * pretrained
