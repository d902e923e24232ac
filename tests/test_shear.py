"""Shear study (paper 003): Monte Carlo physics against eq. 5 and the form factor, GPR recovery, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402
from speckleml.shear.dataset import chunk_draws, simulate_draws  # noqa: E402
from speckleml.shear.inversion import (calibration, feature_rank, fit_target, pddf_acf,  # noqa: E402
                                      profile_likelihood_rank, relative_error, train_test_split)
from speckleml.shear.simulate import (incoherent_terms, make_generator, pair_products,  # noqa: E402
                                      sample_configurations, simulate_correlation)
from speckleml.shear.system import PARAM_NAMES, PolarGrid, ShearSystem, theory_g  # noqa: E402

torch.set_num_threads(1)
GRID = PolarGrid(n_q=30, n_theta=31)


def finite_size_eq5(system: ShearSystem, grid: PolarGrid) -> np.ndarray:
    """Eq. 5 with the two finite-size terms of our geometry (both < 2 % of g - 1 here).

    ``g - 1 = |phi|^2 (f^2 - f / N)``: ``f`` is the share of particles still in the beam after
    the move (shear shifts ``gamma L |y| / L`` average ``gamma L / 4``; a Gaussian step leaves
    through one of two edges with mean excursion ``0.8 D2``) and ``1/N`` is the self term of
    ``N = nL^2`` particles. Eq. 5 is the limit ``f -> 1``, ``N -> infinity``.
    """
    phi2 = theory_g(grid.q(), grid.theta(), system.d2, system.gamma_l) - 1.0
    f = 1.0 - (system.gamma_l / 4 + 2 * 0.8 * system.d2) / grid.beam
    return 1.0 + phi2 * (f * f - f / system.density)


@pytest.mark.parametrize("params", [(150, 0, 1, 10), (120, 0, 0.5, 25), (180, 0, 2, 5)])
def test_monodisperse_speckle_g_matches_eq5_within_mc_error(params):
    system = ShearSystem(*params)
    out = simulate_correlation(system, 300, GRID, seed=1, estimator="speckle", batch=16)
    theory = finite_size_eq5(system, GRID)
    z = (out["g"] - theory) / out["g_err"]
    assert abs(z.mean()) < 0.3 and 0.8 < np.sqrt((z**2).mean()) < 1.3
    # q-averaged g(theta): speckle points at different q are independent
    err_theta = np.sqrt((out["g_err"] ** 2).sum(axis=0)) / GRID.n_q
    z_theta = (out["g_theta"] - theory.mean(axis=0)) / err_theta
    assert np.sqrt((z_theta**2).mean()) < 1.5 and np.abs(z_theta).max() < 4.5


@pytest.mark.parametrize("estimator", ["pairs", "steps"])
@pytest.mark.parametrize("params", [(150, 0, 1, 10), (180, 0, 2, 5)])
def test_monodisperse_pairs_g_matches_eq5_within_mc_error(params, estimator):
    system = ShearSystem(*params)
    out = simulate_correlation(system, 64, GRID, seed=2, estimator=estimator, batch=16)
    # steps: once q D2 > 1 nothing fluctuates (monodisperse), g_err ~ 1e-8: floor it at float32 rounding
    z = (out["g"] - finite_size_eq5(system, GRID)) / np.maximum(out["g_err"], 1e-6)
    # errors of one configuration are smooth in q (same displacements), so the grid mean of z
    # has few independent samples: a looser bound on it than for the speckle estimator
    assert abs(z.mean()) < 0.6 and np.sqrt((z**2).mean()) < 1.4
    # far less noise than the speckle estimator with 5x the configurations
    assert np.median(out["g_err"]) < 0.01


def test_polydisperse_mean_intensity_is_volume_weighted_form_factor():
    from numpy.polynomial.hermite_e import hermegauss

    system = ShearSystem(150, 0.25, 1, 10)
    out = simulate_correlation(system, 64, GRID, seed=5, estimator="speckle", batch=16)
    nodes, weights = hermegauss(80)  # ln R ~ N(0, R_s)
    radius, weights = np.exp(system.r_s * nodes), weights / weights.sum()
    x = np.outer(GRID.q(), radius)
    form = 3 * (np.sin(x) - x * np.cos(x)) / x**3
    volume2 = (4 * math.pi / 3 * radius**3) ** 2
    expected = (form**2 * volume2 * weights).sum(axis=1) / (volume2 * weights).sum()
    measured = out["mean_i"].mean(axis=1)
    relative = np.abs(measured / expected - 1)
    assert relative.mean() < 0.05
    assert relative[expected > 1e-2 * expected.max()].max() < 0.1


def test_incoherent_terms_equal_the_theta_independent_part_of_pair_products():
    """The cheap path (no phase sums) gives the same X = S_F/S and A = S_F S_F'/(S S') as pair_products."""
    system = ShearSystem(150, 0.25, 2, 20)
    positions, moved, radii = sample_configurations(system, 4, GRID.beam, make_generator(3), dtype=torch.float64)
    q, theta = torch.as_tensor(GRID.q()), torch.as_tensor(GRID.theta())
    before, after, _ = pair_products(positions, moved, radii, GRID.beam, q, theta)
    x, a = incoherent_terms(positions, moved, radii, GRID.beam, q)
    torch.testing.assert_close(x, before[..., 0], rtol=1e-12, atol=0)
    torch.testing.assert_close(a, (before * after)[..., 0], rtol=1e-12, atol=0)


def _pair_products_before_packing(positions, moved, radii, beam, q, theta):
    """pair_products as it was before the form factor was restricted to the scatterers (commit 61f4bcf)."""
    from speckleml.scattering import polar_intensity, sphere_volume
    from speckleml.shear.simulate import in_beam, pack, particle_amplitudes

    before, after = in_beam(positions, beam), in_beam(moved, beam)
    both = before & after
    amplitude, _ = particle_amplitudes(radii, torch.ones_like(before), q)
    volume2 = sphere_volume(radii) ** 2
    norm_before, norm_after = (volume2 * before).sum(dim=1), (volume2 * after).sum(dim=1)
    squared = amplitude**2
    incoherent_before = (squared * before[..., None]).sum(dim=1)
    incoherent_after = (squared * after[..., None]).sum(dim=1)
    mask, shift, weight = pack(both, moved - positions, squared)
    weight = weight * mask[..., None]
    coherent = polar_intensity(shift, q, theta, weight)
    product = (incoherent_before * incoherent_after - (weight**2).sum(dim=1))[..., None] + coherent
    norm = (norm_before * norm_after)[:, None, None]
    return ((incoherent_before / norm_before[:, None])[..., None], (incoherent_after / norm_after[:, None])[..., None],
            product / norm)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_pair_products_equal_the_previous_implementation(dtype, rtol):
    """The speed-up (form factor of the scatterers only, not of all 4 nL^2 particles) changes only the
    summation order: same numbers on a fixed seed up to rounding, polydisperse, with shear and steps
    that move particles across the beam edge."""
    system = ShearSystem(150, 0.3, 3, 30)
    positions, moved, radii = sample_configurations(system, 6, GRID.beam, make_generator(11), dtype=dtype)
    q, theta = (torch.as_tensor(v, dtype=dtype) for v in (GRID.q(), GRID.theta()))
    new = pair_products(positions, moved, radii, GRID.beam, q, theta)
    old = _pair_products_before_packing(positions, moved, radii, GRID.beam, q, theta)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()))
    # the edge matters: some particles scatter before only and some after only
    before = (positions.abs() < GRID.beam / 2).all(-1)
    after = (moved.abs() < GRID.beam / 2).all(-1)
    assert (before & ~after).any() and (after & ~before).any()


def test_extra_incoherent_configurations_keep_the_expectation_and_cut_the_plateau_noise():
    """Polydisperse R_s = 0.25: 16 full + 1024 incoherent-only configurations agree with 2048 full
    ones within the combined errors (same expectation), with calibrated errors, and the high-q
    plateau (the polydispersity signal) is several times less noisy than with 16 full ones."""
    system = ShearSystem(150, 0.25, 1, 10)
    reference = simulate_correlation(system, 2048, GRID, seed=99, estimator="pairs", batch=64)
    runs = [simulate_correlation(system, 16, GRID, seed=s, estimator="pairs", batch=16, incoherent_configs=1024)
            for s in range(6)]
    # errors of one run are correlated over the grid (same configurations): one z per run, then their mean
    z = np.array([(r["g"] - reference["g"]) / np.hypot(r["g_err"], reference["g_err"]) for r in runs])
    assert abs(z.mean()) < 0.8 and (np.abs(z.mean(axis=(1, 2))) < 2.5).all()
    assert 0.6 < np.sqrt((z**2).mean()) < 1.5
    high = GRID.q() > 3.5
    plain = [simulate_correlation(system, 16, GRID, seed=s, estimator="pairs", batch=16) for s in range(6)]
    spread = np.std([r["g_q"][high].mean() for r in runs])
    assert spread < 0.4 * np.std([r["g_q"][high].mean() for r in plain])
    assert (reference["g_q"][high] > 1.01).all()  # the plateau is there (monodisperse: 1)
    with pytest.raises(ValueError, match="pairs"):
        simulate_correlation(system, 2, GRID, seed=0, estimator="speckle", incoherent_configs=8)


@pytest.mark.parametrize("params, scaling", [((150, 0.2, 0.5, 5), "paper"), ((150, 0.25, 2, 10), "reference"),
                                             ((150, 0, 3, 5), "paper")])
def test_steps_estimator_keeps_the_pairs_expectation_with_less_noise(params, scaling):
    """The ``steps`` estimator averages the cross terms over the Gaussian non-affine steps analytically:
    on the same configurations it agrees with ``pairs`` within the errors (the beam-edge particles,
    whose membership depends on their step, do not show at this precision), and where the steps
    decorrelate the speckle (q D2 > 1) its errors are smaller."""
    system = ShearSystem(*params)
    pairs = simulate_correlation(system, 512, GRID, seed=4, estimator="pairs", nonaffine_scaling=scaling, batch=64)
    steps = simulate_correlation(system, 512, GRID, seed=4, estimator="steps", nonaffine_scaling=scaling, batch=64)
    z = (steps["g"] - pairs["g"]) / np.hypot(steps["g_err"], pairs["g_err"])
    assert abs(z.mean()) < 0.3 and np.abs(z).max() < 4.5
    decorrelated = (GRID.q() * system.d2 > 2)[:, None] & np.ones(GRID.n_theta, bool)
    # polydisperse, the variance of the incoherent terms (not touched) stays; monodisperse, nothing
    # fluctuates once the steps have decorrelated the speckle
    ratio = 0.05 if system.r_s == 0 else 1.0
    assert np.median(steps["g_err"][decorrelated]) < ratio * np.median(pairs["g_err"][decorrelated])


def test_chunks_do_not_change_draws():
    grid = PolarGrid(n_q=8, n_theta=9)
    whole = simulate_draws(range(6), 3, 2, grid, estimator="pairs")
    parts = [simulate_draws(chunk_draws(6, 2, c), 3, 2, grid, estimator="pairs") for c in range(2)]
    np.testing.assert_array_equal(whole["g_theta"], np.concatenate([p["g_theta"] for p in parts]))
    np.testing.assert_array_equal(whole["params"], np.concatenate([p["params"] for p in parts]))


@pytest.fixture(scope="module")
def small_dataset():
    """150 draws x 8 configurations (pairs estimator, 24 x 25 grid): ~5 s."""
    return simulate_draws(range(150), 11, 8, PolarGrid(n_q=24, n_theta=25), estimator="pairs", batch=8)


def test_gpr_recovers_held_out_parameters(small_dataset):
    """Stated tolerance at this size: Err < 15 % for D2, < 25 % for gamma L (paper: 1 %, 3 % at 6000 x 1e4).

    R_s is left out: its signal (the high-q plateau) is below the noise of 8 configurations.
    """
    data = small_dataset
    train, test = train_test_split(len(data["params"]), 0.7, 11)
    for name, tolerance in (("D2", 0.15), ("gamma_L", 0.25)):
        k = PARAM_NAMES.index(name)
        model = fit_target(name, data["g_theta"][train], data["params"][train, k], restarts=2, seed=0)
        mean, std = model.predict(data["g_theta"][test])
        truth = data["params"][test, k]
        assert relative_error(truth, mean) < tolerance
        # the naive predictor (training mean) is much worse
        assert relative_error(truth, np.full_like(truth, truth.mean())) > 1.5 * relative_error(truth, mean)
        within1, within2 = calibration(truth, mean, std)
        assert within2 > 0.6


def test_ard_on_svd_projections_finds_a_weak_direction():
    """A target carried by the 4th-strongest direction of 40-dimensional features (three stronger
    irrelevant directions plus noise): ARD over 6 projections gives that component the shortest
    length and a small error; one isotropic length on the full vectors is swamped by the others."""
    from speckleml.shear.inversion import Projection

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(40, 4)))[0].T
    latent = rng.uniform(-1, 1, size=(300, 4))
    features = (latent * [3.0, 2.0, 1.5, 0.6]) @ basis + 0.01 * rng.normal(size=(300, 40))
    target = np.sin(2 * latent[:, 3]) + 2.5
    train, test = np.arange(200), np.arange(200, 300)
    ard = fit_target("t", features[train], target[train], restarts=1, seed=0, components=6)
    iso = fit_target("t", features[train], target[train], restarts=1, seed=0)
    err_ard = relative_error(target[test], ard.predict(features[test])[0])
    err_iso = relative_error(target[test], iso.predict(features[test])[0])
    assert err_ard < 0.02 and err_iso > 3 * err_ard
    projections = Projection.fit(features[train], 6)(features[train])
    relevant = np.argmax(np.abs(np.corrcoef(projections.T, latent[train, 3])[-1, :6]))
    assert relevant == 3 and np.argmin(ard.length_scales) == relevant
    np.testing.assert_allclose(projections.std(axis=0), 1.0)


def test_log_target_transform_predicts_in_the_targets_units():
    """y = exp(2 x) over a decade: the GP in log y is linear; predictions come back in y's units."""
    x = np.linspace(0, 1.2, 60)[:, None]
    y = np.exp(2 * x[:, 0])
    model = fit_target("y", x[::2], y[::2], restarts=0, seed=0, transform="log")
    mean, std = model.predict(x[1::2])
    np.testing.assert_allclose(mean, y[1::2], rtol=1e-3)
    assert (std > 0).all() and (std < 1e-2 * mean).all()
    with pytest.raises(ValueError, match="positive"):
        fit_target("y", x, y - 2, restarts=0, seed=0, transform="log")


def _low_rank_plus_noise(rank, rng, offset=0.0):
    """(400, 60) matrix of known rank (singular values 40..25) plus N(0, 0.05^2) noise (its
    singular values are at most ~0.05 (sqrt(400) + sqrt(60)) ~ 1.4)."""
    u = np.linalg.qr(rng.normal(size=(400, rank)))[0]
    v = np.linalg.qr(rng.normal(size=(60, rank)))[0]
    return offset + u @ np.diag(np.linspace(40, 25, rank)) @ v.T + 0.05 * rng.normal(size=(400, 60))


@pytest.mark.parametrize("rank", [1, 2, 3, 5])
def test_profile_likelihood_recovers_known_rank(rank):
    rng = np.random.default_rng(rank)
    values = np.linalg.svd(_low_rank_plus_noise(rank, rng), compute_uv=False)
    chosen, log_likelihood = profile_likelihood_rank(values)
    assert chosen == rank and log_likelihood.shape == (59,)


def test_profile_likelihood_of_two_exact_levels():
    """Two groups of equal values: the split between them has zero within-group variance."""
    chosen, log_likelihood = profile_likelihood_rank([1.0, 9.0, 9.0, 1.0, 1.0, 9.0, 1.0])
    assert chosen == 3 and np.argmax(log_likelihood) == 2
    with pytest.raises(ValueError):
        profile_likelihood_rank([1.0, 2.0])


def test_feature_rank_counts_the_mean_direction_once():
    """g(theta)-like data (a large constant plus rank-3 structure): the uncentred scree stops at
    the mean, feature_rank sees the structure and counts the mean as one more component."""
    rng = np.random.default_rng(7)
    features = _low_rank_plus_noise(3, rng, offset=1.3)
    assert profile_likelihood_rank(np.linalg.svd(features, compute_uv=False))[0] == 1
    assert feature_rank(features)[0] == 4


def test_pddf_acf_of_a_uniform_line():
    """Points uniform on [0, 1] with the target equal to the position: p(z) = 2 (1 - z) (eq. 7) and
    C(z) = (1 - z)^2 - 3 z^2 (eq. 8 with the global mean and variance, as the paper writes it: pairs
    at distance z are u, u + z with u uniform on [0, 1 - z]); bins with < 1 % of the pairs left out."""
    x = np.linspace(0, 1, 401)[:, None]
    z, pddf, acf = pddf_acf(x, x, bins=20)
    np.testing.assert_allclose(pddf, 2 * (1 - z), atol=0.02)
    kept = np.isfinite(acf[0])
    np.testing.assert_allclose(acf[0, kept], (1 - z[kept]) ** 2 - 3 * z[kept] ** 2, atol=0.03)
    # eq. 8 is not bounded by -1: far pairs sit at opposite ends of the target
    assert np.nanmin(acf) < -1.5
    # the last bins hold ~(1 - z)^2 share of the pairs: those under 1 % are NaN
    share = 2 * (1 - z) * (z[1] - z[0])
    assert not kept[share < 0.008].any() and kept[share > 0.012].all()


def test_figure_cases_without_argparse():
    from speckleml.shear.cases import figure_cases
    from speckleml.errors import InputError

    base = ShearSystem(150, 0, 1, 10)
    cases = figure_cases(ShearSystem(150, 0, 0.5, 10), base, {"R_s": [0, 0.3], "D2": [2.0], "gamma_L": [20]},
                         configs=5, estimator="pairs", nonaffine_scaling="paper", speckle_configs=7,
                         compare_scaling=True)
    assert [c["group"] for c in cases] == ["fig2", "fig2_speckle", "R_s", "R_s_reference", "R_s",
                                          "R_s_reference", "D2", "gamma_L"]
    assert cases[1]["estimator"] == "speckle" and cases[1]["configs"] == 7
    assert cases[4]["system"] == ShearSystem(150, 0.3, 1, 10) and cases[5]["scaling"] == "reference"
    assert cases[6]["system"].d2 == 2.0 and cases[7]["system"].gamma_l == 20
    with pytest.raises(InputError, match="D2=-1"):
        figure_cases(base, base, {"D2": [-1]}, configs=1, estimator="pairs", nonaffine_scaling="paper")


def test_relative_error_is_the_papers_definition():
    assert relative_error(np.array([1.0, 2.0]), np.array([2.0, 2.0])) == pytest.approx(0.25)


@pytest.mark.slow
def test_cli_chain_and_invert(tmp_path):
    grid = ["--n-q", "10", "--n-theta", "11"]
    for chunk in range(2):
        run_cli("shear", "dataset", tmp_path / f"c{chunk}.zarr", "--draws", "30", "--chunks", "2", "--chunk",
                str(chunk), "--configs", "3", "--estimator", "pairs", "--device", "cpu", *grid, check=True)
    run_cli("shear", "merge", tmp_path / "c0.zarr", tmp_path / "c1.zarr", "--output", tmp_path / "ds.zarr",
            check=True)
    run_cli("shear", "fit", tmp_path / "ds.zarr", tmp_path / "gpr.pkl", tmp_path / "ana.zarr", "--restarts", "0",
            "--lml-grid", "3", check=True)
    # a measured g(theta) on a finer grid is interpolated onto the model's
    theta = np.linspace(0, np.pi, 41)
    g = theory_g(PolarGrid(n_q=10).q(), theta, 1.5, 15).mean(axis=0)
    np.savetxt(tmp_path / "m.csv", np.column_stack([theta, g]), delimiter=",", header="theta,g", comments="")
    proc = run_cli("shear", "invert", tmp_path / "gpr.pkl", tmp_path / "m.csv", "--json", tmp_path / "r.json",
                   check=True)
    assert "D2 =" in proc.stdout and "+/-" in proc.stdout and "(paper 3)" in proc.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    parameters, model = result["parameters"], result["model"]
    assert set(parameters) == {"R_s", "D2", "gamma_L"} and all(v["std"] > 0 for v in parameters.values())
    # the model's rank and held-out calibration come along (30 draws: 21 train, 9 held out)
    assert model["features"] == "angular" and 1 <= model["rank"] <= 10 and model["n_train"] == 21
    for held in model["held_out"].values():
        assert held["n_test"] == 9 and 0 <= held["within_1sigma"] <= held["within_2sigma"] <= 1
    # bad input: one line, exit 2, nothing written
    np.save(tmp_path / "bad.npy", np.ones(5))
    proc = run_cli("shear", "invert", tmp_path / "gpr.pkl", tmp_path / "bad.npy")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "expects 11" in proc.stderr
    proc = run_cli("shear", "dataset", tmp_path / "x.zarr", "--draws", "4", "--chunks", "2", "--chunk", "5")
    assert proc.returncode == 2 and "chunk 5 of 2" in proc.stderr and not (tmp_path / "x.zarr").exists()
    proc = run_cli("shear", "dataset", tmp_path / "x.zarr", "--draws", "4", "--chunk", "1")
    assert proc.returncode == 2 and "--chunks and --chunk" in proc.stderr and not (tmp_path / "x.zarr").exists()


def test_contrast_is_log_like_above_its_scale_and_linear_below():
    from speckleml.shear.inversion import contrast

    x = np.array([-3.0, -0.1, 0.0, 0.5, 4.0])
    np.testing.assert_allclose(contrast(1 + 2e-3 * np.sinh(x), 2e-3), x, rtol=1e-12, atol=1e-12)
    g = np.array([1.0 + 1e-6, 1.5, 1.05])
    np.testing.assert_allclose(contrast(g, 1e-3)[1] - contrast(g, 1e-3)[2], np.log(10), rtol=2e-4)  # ratio -> difference
    np.testing.assert_array_equal(contrast(g, 0.0), g)
    with pytest.raises(ValueError, match=">= 0"):
        contrast(g, -1.0)


def test_feature_scale_makes_a_multiplicative_target_linear():
    """g - 1 = A exp(-b theta^2)-like features with A = exp(-t): after contrast, t is linear in the inputs,
    so a GPR with the transform recovers t from 30 draws far better than one on g itself; the model
    applies the same transform when it predicts."""
    rng = np.random.default_rng(0)
    theta = np.linspace(0, np.pi, 21)
    t = rng.uniform(0, 6, 60)
    g = 1 + np.exp(-t)[:, None] * (0.2 + np.cos(theta) ** 2)[None] + 1e-4 * rng.standard_normal((60, 21))
    errs = {}
    for scale in (0.0, 1e-3):
        model = fit_target("t", g[:30], t[:30], restarts=0, seed=0, components=2, feature_scale=scale)
        assert model.feature_scale == scale
        errs[scale] = np.abs(model.predict(g[30:])[0] - t[30:]).mean()
    assert errs[1e-3] < 0.05 < errs[0.0]


def test_eq5_fit_of_g_theta_recovers_plateau_gamma_l_and_d2():
    """fit_eq5_theta on eq. 5 curves (system.theory_g, an independent implementation, averaged over q)
    plus a constant plateau: exact without noise, gamma L and D2 to < 1 % with 1e-5 noise, all curves at once;
    PlateauFeatures standardises the three on the training curves."""
    from speckleml.shear.plateau import PlateauFeatures, eq5_theta, fit_eq5_theta

    grid = PolarGrid(n_q=40, n_theta=51)
    q, theta = grid.q(), grid.theta()
    truth = np.array([(2e-3, 10.0, 1.0), (5e-4, 25.0, 0.6), (0.0, 6.0, 2.5), (1e-2, 18.0, 1.7)])
    rng = np.random.default_rng(0)
    curves = np.array([theory_g(q, theta, d2, gl).mean(axis=0) + p for p, gl, d2 in truth])
    np.testing.assert_allclose(curves[:, :] - truth[:, :1] - 1,
                               [eq5_theta(q, theta, gl, d2) for _, gl, d2 in truth], atol=1e-12)
    exact = fit_eq5_theta(curves, q, theta)
    np.testing.assert_allclose(exact[:, 0], truth[:, 0], atol=1e-9)
    np.testing.assert_allclose(np.exp(exact[:, 1:]), truth[:, 1:], rtol=1e-4)
    # with noise the plateau trades against a weak tail (large D2): ~1e-4, the size of P at small R_s
    fitted = fit_eq5_theta(curves + 1e-5 * rng.standard_normal(curves.shape), q, theta)
    np.testing.assert_allclose(fitted[:, 0], truth[:, 0], atol=1.5e-4)
    np.testing.assert_allclose(np.exp(fitted[:, 1:]), truth[:, 1:], rtol=1e-2)
    features, standardised = PlateauFeatures.fit(curves, q, theta, scale=1e-3)
    assert np.allclose(standardised.mean(axis=0), 0) and np.allclose(standardised.std(axis=0), 1)
    np.testing.assert_allclose(features(curves[:2]), standardised[:2], atol=1e-9)
    with pytest.raises(ValueError, match="scale"):
        PlateauFeatures.fit(curves, q, theta, scale=0)
