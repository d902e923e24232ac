"""Tests of the differentiable forward models in ``speckleml.scattering``.

Every test compares against an analytic result or an independent implementation (numpy /
scipy quadrature / the dense direct sum).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from speckleml import scattering as sc

F64 = torch.float64


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Max absolute difference relative to the largest expected value."""
    return float((actual - expected).abs().max() / expected.abs().max())


def random_field(shape, seed=0, complex_=False):
    gen = torch.Generator().manual_seed(seed)
    phi = torch.rand(shape, generator=gen, dtype=F64) * 2 * math.pi
    if complex_:
        return torch.polar(torch.rand(shape, generator=gen, dtype=F64) + 0.5, phi)
    return torch.cos(phi)


# ---------------------------------------------------------------------------------------
# lattice model == dense direct sum
# ---------------------------------------------------------------------------------------


def test_lattice_fft_equals_direct_sum_at_kuramoto_paper_size():
    """80x80 field (box L=2), 84x84 detector, dQ = pi/L, probe L/4, beamstop 5 px (paper 000)."""
    box, n = 2.0, 80
    field = random_field((2, n, n))
    kw = dict(probe=box / 4, beamstop_radius=5)
    fast = sc.lattice_intensity(field, box / n, math.pi / box, 84, **kw)
    dense = sc.lattice_intensity_direct(field, box / n, math.pi / box, 84, **kw)
    assert fast.shape == (2, 84, 84)
    assert relative_error(fast, dense) < 1e-5
    # the beamstop blocks exactly the 81 pixels with k^2 + l^2 <= 25 (Gauss circle, r = 5)
    assert int((fast[0] == 0).sum()) == 81


@pytest.mark.parametrize("dq_factor, detector, complex_, fft_length", [
    (0.5, (26, 26), False, 48),     # 2x oversampling: zero padding (M = 2N)
    (1.0, (21, 17), False, 24),     # plain FFT, rectangular and odd detector
    (1.5, (20, 20), True, 16),      # M < N: the field is folded modulo M
    (0.7, (18, 22), False, None),   # M = 2 pi/(dq a) = 34.3 not an integer: matrix DFT
    (0.5, (70, 70), True, 48),      # detector wider than M: beyond the first Brillouin zone
])
def test_lattice_fft_equals_direct_sum_in_every_sampling_regime(dq_factor, detector, complex_,
                                                                 fft_length):
    box, n = 3.0, 24
    field = random_field((2, n, n), seed=1, complex_=complex_)
    dq = dq_factor * 2 * math.pi / box
    oversampled = sc.lattice_oversampling(n, box / n, dq) * n
    if fft_length is None:
        assert abs(oversampled - round(oversampled)) > 0.1
        with pytest.raises(ValueError, match="integer"):
            sc.lattice_intensity(field, box / n, dq, detector, method="fft")
    else:
        assert oversampled == pytest.approx(fft_length)
    kw = dict(probe=box / 4, beamstop_radius=2)
    fast = sc.lattice_intensity(field, box / n, dq, detector, **kw)
    dense = sc.lattice_intensity_direct(field, box / n, dq, detector, **kw)
    assert relative_error(fast, dense) < 1e-5
    matmul = sc.lattice_intensity(field, box / n, dq, detector, method="matmul", **kw)
    assert relative_error(matmul, dense) < 1e-5


def test_lattice_pattern_is_periodic_beyond_the_brillouin_zone():
    """For a lattice, A(Q + 2 pi/a) = A(Q): a detector of 2M pixels shows the pattern twice."""
    n, spacing = 10, 0.5
    dq = 2 * math.pi / (spacing * 20)           # M = 20
    wide = sc.lattice_intensity(random_field((n, n), seed=2), spacing, dq, 40)
    torch.testing.assert_close(wide[:, :20], wide[:, 20:], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(wide[:20, :], wide[20:, :], rtol=1e-12, atol=1e-12)


def test_lattice_float32_close_to_float64():
    box, n = 2.0, 32
    field = random_field((n, n), seed=3)
    kw = dict(probe=box / 4)
    ref = sc.lattice_intensity_direct(field, box / n, math.pi / box, 34, **kw)
    single = sc.lattice_intensity(field.float(), box / n, math.pi / box, 34, **kw)
    assert single.dtype == torch.float32
    assert relative_error(single.double(), ref) < 1e-4


def test_lattice_probe_as_tensor_equals_probe_sigma():
    field = random_field((12, 12), seed=4)
    probe = sc.gaussian_probe(12, 0.25, 0.7, dtype=F64)
    a = sc.lattice_intensity(field, 0.25, math.pi / 3, 14, probe=probe)
    b = sc.lattice_intensity(field, 0.25, math.pi / 3, 14, probe=0.7)
    torch.testing.assert_close(a, b)


def test_lattice_oversampling_of_the_kuramoto_setting_is_two():
    assert sc.lattice_oversampling(80, 2.0 / 80, math.pi / 2.0) == pytest.approx(2.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_lattice_on_cuda_matches_cpu():
    field = random_field((3, 40, 40), seed=5)
    cpu = sc.lattice_intensity(field, 0.05, math.pi / 2, 42, probe=0.5, beamstop_radius=3)
    gpu = sc.lattice_intensity(field.cuda(), 0.05, math.pi / 2, 42, probe=0.5,
                               beamstop_radius=3)
    assert relative_error(gpu.cpu(), cpu) < 1e-10


# ---------------------------------------------------------------------------------------
# form factors and the point model
# ---------------------------------------------------------------------------------------


def sphere_by_quadrature(q: float, radius: float) -> float:
    """(1/V) * integral over the ball of cos(q z): slices of area pi (R^2 - z^2)."""
    value, _ = integrate.quad(lambda z: math.pi * (radius**2 - z**2) * math.cos(q * z),
                              -radius, radius, epsabs=1e-13, epsrel=1e-12)
    return value / (4 / 3 * math.pi * radius**3)


def disk_by_quadrature(q: float, radius: float) -> float:
    """(1/A) * integral over the disk of cos(q x): chords of length 2 sqrt(R^2 - x^2)."""
    value, _ = integrate.quad(lambda x: 2 * math.sqrt(radius**2 - x**2) * math.cos(q * x),
                              -radius, radius, epsabs=1e-13, epsrel=1e-12)
    return value / (math.pi * radius**2)


@pytest.mark.parametrize("x", [0.0, 1e-4, 0.3, 0.999, 1.001, 2.5, 7.0, 15.3])
def test_form_factors_match_quadrature(x):
    radius = 0.8
    q = torch.tensor(x / radius, dtype=F64)
    assert float(sc.sphere_form_factor(q, radius)) == pytest.approx(
        sphere_by_quadrature(x / radius, radius), abs=1e-10)
    assert float(sc.disk_form_factor(q, radius)) == pytest.approx(
        disk_by_quadrature(x / radius, radius), abs=1e-10)


def test_one_sphere_gives_the_analytic_form_factor_squared():
    radius = 0.6
    position = torch.tensor([[0.37, -1.2]], dtype=F64)      # off-centre: only a phase
    q = sc.detector_q_grid(31, 0.4, dtype=F64)
    intensity = sc.point_intensity(position, q, radii=radius, form_factor="sphere",
                                   volume_weighted=True)
    x = np.linalg.norm(q.numpy(), axis=-1) * radius
    with np.errstate(invalid="ignore", divide="ignore"):
        fs = np.where(x > 0, 3 * (np.sin(x) - x * np.cos(x)) / x**3, 1.0)
    volume = 4 / 3 * np.pi * radius**3
    np.testing.assert_allclose(intensity.numpy(), (volume * fs) ** 2, rtol=1e-10, atol=1e-14)


def test_two_point_scatterers_give_cos2_fringes_at_the_right_period():
    separation = 3.0
    positions = torch.tensor([[-separation / 2, 0.0], [separation / 2, 0.0]], dtype=F64)
    qx = torch.linspace(-10, 10, 4001, dtype=F64)
    q = torch.stack((qx, torch.zeros_like(qx)), dim=-1)
    intensity = sc.point_intensity(positions, q)
    torch.testing.assert_close(intensity, 4 * torch.cos(qx * separation / 2) ** 2)
    # the fringe minima are 2 pi / d apart
    minima = qx[1:-1][(intensity[1:-1] < intensity[:-2]) & (intensity[1:-1] < intensity[2:])]
    spacing = torch.diff(minima)
    torch.testing.assert_close(spacing, torch.full_like(spacing, 2 * math.pi / separation),
                               atol=2 * float(qx[1] - qx[0]), rtol=0)


@pytest.mark.parametrize("grid", ["polar", "scattered"])
def test_polydisperse_volume_weighted_amplitude_matches_numpy(grid):
    """Polar grid: form factors tabulated at the 9 distinct |q|; scattered q: evaluated per q."""
    gen = torch.Generator().manual_seed(6)
    positions = torch.rand(2, 7, 2, generator=gen, dtype=F64) * 10
    radii = 0.5 + torch.rand(2, 7, generator=gen, dtype=F64)
    q = sc.polar_q_grid(torch.linspace(0.1, 4, 9, dtype=F64), torch.linspace(0, math.pi, 5))
    if grid == "scattered":
        q = q + 0.01 * torch.rand(q.shape, generator=gen, dtype=F64)
    for name in ("sphere", "disk"):
        amplitude = sc.point_amplitude(positions, q, radii=radii, form_factor=name,
                                       volume_weighted=True, chunk_size=4)
        qv = q.reshape(-1, 2).numpy()
        qn = np.linalg.norm(qv, axis=-1)
        r = radii.numpy()[..., None]
        if name == "sphere":
            x = qn * r
            weight = 4 / 3 * np.pi * r**3 * 3 * (np.sin(x) - x * np.cos(x)) / x**3
        else:
            weight = np.pi * r**2 * 2 * special.j1(qn * r) / (qn * r)
        phase = np.einsum("bnd,md->bnm", positions.numpy(), qv)
        expected = (weight * np.exp(1j * phase)).sum(axis=1).reshape(2, 9, 5)
        np.testing.assert_allclose(amplitude.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_polar_grid_points_along_theta():
    grid = sc.polar_q_grid([1.0, 2.0], [0.0, math.pi / 2], dtype=F64)
    expected = torch.tensor([[[1, 0], [0, 1]], [[2, 0], [0, 2]]], dtype=F64)
    torch.testing.assert_close(grid, expected, atol=1e-15, rtol=0)


def test_per_particle_radii_equal_monodisperse_and_chunking_is_invisible():
    gen = torch.Generator().manual_seed(7)
    positions = torch.randn(3, 20, 2, generator=gen, dtype=F64)
    q = sc.detector_q_grid((9, 11), 0.7, dtype=F64)
    mono = sc.point_intensity(positions, q, radii=0.4, form_factor="disk",
                              volume_weighted=True)
    per = sc.point_intensity(positions, q, radii=torch.full((3, 20), 0.4, dtype=F64),
                             form_factor="disk", volume_weighted=True, chunk_size=5)
    torch.testing.assert_close(per, mono)


def test_per_q_amplitudes_and_probe():
    gen = torch.Generator().manual_seed(8)
    positions = torch.randn(6, 2, generator=gen, dtype=F64)
    q = torch.randn(13, 2, generator=gen, dtype=F64)
    amps = torch.randn(6, 13, generator=gen, dtype=F64)
    result = sc.point_amplitude(positions, q, amps, probe_sigma=1.5, chunk_size=4)
    illumination = torch.exp(-(positions**2).sum(-1) / (2 * 1.5**2))
    expected = (amps * illumination[:, None] * torch.exp(1j * (positions @ q.T))).sum(0)
    torch.testing.assert_close(result, expected)


# ---------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fft", "matmul"])
def test_gradcheck_lattice_model(method):
    field = random_field((2, 6, 6), seed=9).requires_grad_(True)
    spacing, dq = 0.5, 2 * math.pi / (0.5 * 16)   # M = 16

    def model(f):
        return sc.lattice_intensity(f, spacing, dq, 9, probe=1.0, beamstop_radius=1,
                                    sigma_coh=2.0, psf_sigma=0.7, method=method)

    assert torch.autograd.gradcheck(model, (field,))


def test_gradcheck_lattice_model_complex_field():
    field = random_field((5, 5), seed=10, complex_=True).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: sc.lattice_intensity(f, 0.5, 2 * math.pi / 6, 7, probe=1.0), (field,))


@pytest.mark.parametrize("form_factor", ["sphere", "disk"])
def test_gradcheck_point_model(form_factor):
    gen = torch.Generator().manual_seed(11)
    positions = torch.randn(2, 4, 2, generator=gen, dtype=F64).requires_grad_(True)
    radii = (0.3 + torch.rand(2, 4, generator=gen, dtype=F64)).requires_grad_(True)
    amps = torch.rand(2, 4, generator=gen, dtype=F64).requires_grad_(True)
    q = sc.detector_q_grid(5, 0.9, dtype=F64)   # includes q = 0 and x < 1 (series branch)

    def model(p, r, a):
        return sc.point_intensity(p, q, a, radii=r, form_factor=form_factor,
                                  volume_weighted=True, probe_sigma=2.0, chunk_size=7)

    assert torch.autograd.gradcheck(model, (positions, radii, amps))


def test_gradcheck_form_factors_across_the_series_threshold():
    x = torch.tensor([0.0, 0.2, 0.99, 1.01, 3.0, 9.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: sc.disk_form_factor(v, 1.0), (x,))
    assert torch.autograd.gradcheck(lambda v: sc.sphere_form_factor(v, 1.0), (x,))


def test_checkpointed_gradient_equals_plain_gradient():
    gen = torch.Generator().manual_seed(12)
    positions = torch.randn(30, 2, generator=gen, dtype=F64)
    q = sc.detector_q_grid(8, 0.5, dtype=F64)
    grads = []
    for use_checkpoint in (True, False):
        p = positions.clone().requires_grad_(True)
        sc.point_intensity(p, q, radii=0.3, form_factor="sphere", chunk_size=10,
                           use_checkpoint=use_checkpoint).sum().backward()
        grads.append(p.grad)
    torch.testing.assert_close(grads[0], grads[1])


# ---------------------------------------------------------------------------------------
# measurement effects
# ---------------------------------------------------------------------------------------


def test_poisson_mean_and_variance_and_t0_rule():
    base = torch.tensor([[1.0, 4.0], [0.5, 2.0]], dtype=F64)
    series = torch.stack((base, 2 * base))                # frame 1 twice as bright as t0
    intensity = series.expand(20000, 2, 2, 2)
    counts, scale = sc.poisson_noise(intensity, lambda_max=50.0,
                                     generator=torch.Generator().manual_seed(13))
    rate = series * 50.0 / 4.0                              # t0 scale on both frames
    assert torch.allclose(scale, torch.full_like(scale, 12.5))
    mean, var = counts.mean(0), counts.var(0)
    standard_error = (rate / counts.shape[0]).sqrt()
    assert ((mean - rate).abs() < 5 * standard_error).all()
    # variance of the sample variance of a Poisson variable ~ (rate + 2 rate^2) / n
    var_error = ((rate + 2 * rate**2) / counts.shape[0]).sqrt()
    assert ((var - rate).abs() < 5 * var_error).all()
    assert counts.max() > 100                               # frame 1 exceeds lambda_max


def test_poisson_is_reproducible_with_a_seeded_generator_and_reusable_scale():
    intensity = torch.rand(2, 3, 8, 8, dtype=F64)
    a, scale = sc.poisson_noise(intensity, 10.0, torch.Generator().manual_seed(1))
    b, _ = sc.poisson_noise(intensity, 10.0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    expected_scale = 10.0 / intensity[:, :1].amax(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(scale, expected_scale)
    later, _ = sc.poisson_noise(intensity, generator=torch.Generator().manual_seed(1),
                                scale=scale)
    torch.testing.assert_close(later, a)


def test_rescale_at_t0_recovers_the_count_scale():
    predicted = torch.rand(3, 4, 6, 6, dtype=F64) + 0.1
    observed = 37.0 * predicted
    rescaled, s = sc.rescale_at_t0(predicted, observed)
    torch.testing.assert_close(rescaled, observed)
    torch.testing.assert_close(s, torch.full((3, 1, 1, 1), 37.0, dtype=F64))


def test_coherence_blur_preserves_total_intensity_and_has_the_stated_width():
    dq, sigma_coh = 0.5, 0.8                                # 1 / (sigma_coh dq) = 2.5 px
    intensity = torch.zeros(2, 41, 41, dtype=F64)
    intensity[0, 20, 20] = 1.0
    intensity[1] = random_field((41, 41), seed=14) ** 2
    intensity[1, 0, 0] = 50.0                                # bright corner: edge handling
    blurred = sc.coherence_blur(intensity, sigma_coh, dq)
    torch.testing.assert_close(blurred.sum(dim=(-2, -1)), intensity.sum(dim=(-2, -1)),
                               rtol=1e-13, atol=0)
    k = torch.arange(41, dtype=F64) - 20
    variance_x = (blurred[0].sum(0) * k**2).sum()
    assert float(variance_x) == pytest.approx(2.5**2, rel=1e-6)
    assert torch.equal(sc.coherence_blur(intensity, math.inf, dq), intensity)


def test_detector_blur_preserves_total_and_rejects_negative_sigma():
    intensity = random_field((3, 16, 20), seed=15) ** 2
    blurred = sc.detector_blur(intensity, (1.5, 0.5))
    torch.testing.assert_close(blurred.sum(dim=(-2, -1)), intensity.sum(dim=(-2, -1)))
    with pytest.raises(ValueError, match="sigma"):
        sc.detector_blur(intensity, -1.0)


def test_bad_inputs_raise_one_line_errors():
    field = torch.zeros(8, 8, dtype=F64)
    with pytest.raises(ValueError, match="dq"):
        sc.lattice_intensity(field, 0.1, 0.0, 8)
    with pytest.raises(ValueError, match="integer"):
        sc.lattice_intensity(field, 0.1, 2 * math.pi / (0.1 * 10.5), 8, method="fft")
    with pytest.raises(ValueError, match="positions"):
        sc.point_amplitude(torch.zeros(3, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="together"):
        sc.point_amplitude(torch.zeros(3, 2), torch.zeros(4, 2), radii=1.0)
    with pytest.raises(ValueError, match="t0"):
        sc.poisson_noise(torch.zeros(1, 2, 4, 4), 10.0)


# ---------------------------------------------------------------------------------------
# polar fast path == point model
# ---------------------------------------------------------------------------------------


def test_polar_intensity_equals_point_intensity_with_q_dependent_amplitudes():
    """Shear geometry (positions in a beam of 800 R0), per-(particle, |q|) weights, odd q chunks."""
    gen = torch.Generator().manual_seed(0)
    positions = (torch.rand(3, 40, 2, generator=gen, dtype=F64) - 0.5) * 800
    q = torch.logspace(math.log10(0.5), math.log10(5), 30, dtype=F64)
    theta = torch.linspace(0, math.pi, 31, dtype=F64)
    amplitude = torch.rand(3, 40, len(q), generator=gen, dtype=F64)
    fast = sc.polar_intensity(positions, q, theta, amplitude, q_chunk=7)
    per_q = amplitude[..., None].expand(3, 40, len(q), len(theta)).reshape(3, 40, -1)
    shared = sc.point_intensity(positions, sc.polar_q_grid(q, theta), per_q)
    torch.testing.assert_close(fast, shared, rtol=1e-9, atol=1e-9 * float(shared.max()))


def test_polar_intensity_sphere_weights_and_batch_dims_match_point_intensity():
    """Volume-weighted sphere form factors (paper 003 eq. 1-2) and two leading batch dims."""
    gen = torch.Generator().manual_seed(1)
    positions = torch.rand(2, 2, 25, 2, generator=gen, dtype=F64) * 50
    radii = torch.exp(0.2 * torch.randn(2, 2, 25, generator=gen, dtype=F64))
    q = torch.linspace(0.3, 4, 9, dtype=F64)
    theta = torch.linspace(0, math.pi, 6, dtype=F64)
    weights = sc.sphere_volume(radii)[..., None] * sc.sphere_form_factor(q, radii[..., None])
    fast = sc.polar_intensity(positions, q, theta, weights)
    expected = sc.point_intensity(positions, sc.polar_q_grid(q, theta), radii=radii, form_factor="sphere",
                                  volume_weighted=True)
    torch.testing.assert_close(fast, expected, rtol=1e-9, atol=1e-9 * float(expected.max()))
    # per-particle weights (no |q| dependence) are broadcast over q
    ones = sc.polar_intensity(positions, q, theta, torch.ones(2, 2, 25, dtype=F64))
    torch.testing.assert_close(ones, sc.point_intensity(positions, sc.polar_q_grid(q, theta)))


def test_polar_intensity_rejects_bad_shapes():
    positions = torch.zeros(4, 2, dtype=F64)
    with pytest.raises(ValueError, match="amplitudes must be"):
        sc.polar_intensity(positions, [1.0, 2.0], [0.0, 1.0], torch.ones(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 2\)"):
        sc.polar_intensity(torch.zeros(4, 3, dtype=F64), [1.0], [0.0])
    with pytest.raises(ValueError, match="real amplitudes"):
        sc.polar_intensity(positions, [1.0], [0.0], torch.ones(4, dtype=torch.complex128))
