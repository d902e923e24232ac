"""KWW fits: parameter recovery, error bars, NaN/empty handling, real measured g2 and C2."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import real_file
from speckleml.fitting import c2_slice_model, fit_c2_slice, fit_g2, g2_model


def test_fit_g2_recovers_parameters_within_their_errors():
    rng = np.random.default_rng(0)
    lag = np.geomspace(1e-3, 10, 60)
    truth = dict(beta=0.3, tau=0.2, gamma=0.8, baseline=0.01)
    sigma = 0.003
    g2 = 1 + g2_model(lag, **truth) + rng.normal(0, sigma, lag.size)
    result = fit_g2(lag, g2, np.full(lag.size, sigma), absolute_sigma=True)
    assert result.success
    for name, value in truth.items():
        assert abs(result[name] - value) < 4 * result.errors[name], name
    assert 0.5 < result.chi2_reduced < 1.6


def test_fit_g2_drops_nan_zero_lag_and_bad_errors():
    lag = np.arange(0, 40, dtype=float)
    g2 = 1 + g2_model(lag, 0.5, 5.0, 1.0, 0.0)
    g2[0] = 10.0               # lag 0: shot-noise spike, must be ignored
    g2[[5, 9]] = np.nan
    err = np.full(lag.size, 0.01)
    err[12] = 0.0
    result = fit_g2(lag, g2, err, fit_baseline=False, fit_gamma=False)
    assert result.n_points == 40 - 4
    assert result["tau"] == pytest.approx(5.0, rel=1e-6) and result["beta"] == pytest.approx(0.5, rel=1e-6)
    assert result.errors["gamma"] == 0 and result.fixed == ("gamma", "baseline")


def test_fit_g2_offset_zero_for_fluctuation_forms():
    lag = np.linspace(0.1, 20, 50)
    result = fit_g2(lag, g2_model(lag, 0.2, 3.0, 1.3, 0.0), offset=0.0)
    assert result["tau"] == pytest.approx(3.0, rel=1e-4) and result["gamma"] == pytest.approx(1.3, rel=1e-4)


def test_too_few_points_give_nan_not_an_exception():
    result = fit_g2([1.0, 2.0, np.nan], [1.2, 1.1, 1.0])
    assert not result.success and np.isnan(result["tau"]) and "too few" in result.message
    assert fit_g2([], []).n_points == 0


def test_fit_c2_slice_uses_paper_000_convention():
    lag = np.arange(1, 60, dtype=float)
    y = c2_slice_model(lag, 1.0, 12.0, 1.4)
    result = fit_c2_slice(lag, y + np.random.default_rng(1).normal(0, 0.005, lag.size))
    assert result["amplitude"] == 1.0 and "amplitude" in result.fixed
    assert result["tau"] == pytest.approx(12.0, rel=0.03) and result["gamma"] == pytest.approx(1.4, rel=0.05)
    # exp(-(t/tau)^1) equals the APS form exp(-2 (t/tau')^1) with tau' = 2 tau.
    aps = fit_g2(lag, g2_model(lag, 1.0, 24.0, 1.0, 0.0), offset=0.0, fit_baseline=False)
    assert aps["tau"] == pytest.approx(2 * fit_c2_slice(lag, c2_slice_model(lag, 1.0, 12.0, 1.0))["tau"], rel=1e-4)


@pytest.mark.realdata
def test_tosson_sio2_g2_fits_with_finite_errors_for_every_q_bin():
    rows = np.loadtxt(real_file("tosson_g2", "m011_SiO2_Abs.csv"), delimiter=",")
    lag = rows[0, :61]                                       # PROVENANCE.md: first 61 values are delays
    taus = []
    for k in range(6):
        result = fit_g2(lag, rows[1 + 2 * k, :61], rows[2 + 2 * k, :61])
        assert result.success, (k, result.message)
        assert all(np.isfinite(e) and e > 0 for e in result.errors.values()), k
        taus.append(result["tau"])
    # Brownian colloids: the relaxation time falls with q (q-bins are in increasing q).
    assert np.all(np.diff(taus) < 0)
    # The highest-q bin has decayed to 3 % of its contrast by the first lag: tau (below the first
    # lag) and beta are not determined by these lags, and the fit says so.
    last = fit_g2(lag, rows[13, :61], rows[14, :61])
    assert not last.success and last["tau"] < lag[0]
    assert "undetermined" in last.message and "below the first lag" in last.message


@pytest.mark.parametrize("noise", [0.0, 0.01])
@pytest.mark.parametrize("with_err", [True, False])
def test_flat_g2_is_a_failed_fit_with_the_reason(noise, with_err):
    """A flat g2 (exactly, or with 1 % noise) holds no decay: never success=True."""
    lag = np.arange(1.0, 60.0)
    for seed in range(5):
        g2 = 1.0 + noise * np.random.default_rng(seed).standard_normal(lag.size)
        result = fit_g2(lag, g2, np.full(lag.size, 0.01) if with_err else None)
        assert not result.success, result
        assert "no decay in the fitted lag range" in result.message


def test_flat_c2_slice_is_a_failed_fit():
    result = fit_c2_slice(np.arange(1.0, 40.0), np.zeros(39))
    assert not result.success and "no decay" in result.message


def test_small_but_significant_decay_is_a_success():
    """The criteria do not reject a real decay of 5 % contrast measured with 0.5 % errors."""
    lag = np.arange(1.0, 80.0)
    rng = np.random.default_rng(3)
    g2 = 1.0 + g2_model(lag, 0.05, 10.0, 1.0, 0.0) + 0.005 * rng.standard_normal(lag.size)
    result = fit_g2(lag, g2, np.full(lag.size, 0.005), fit_gamma=False)
    assert result.success, result.message
    assert result["tau"] == pytest.approx(10.0, rel=0.3)


@pytest.mark.realdata
def test_bnl_measured_c2_gives_a_g2_that_fits():
    from speckleml.correlation import g2_from_c2

    c2 = np.load(real_file("bnl_two_time", "test_g2.npy"))
    g2, err = g2_from_c2(c2, max_lag=175)
    result = fit_g2(np.arange(176), g2, err)
    assert result.success, result.message
    assert 0 < result["beta"] < 1 and 1 < result["tau"] < 350
    assert np.all(np.isfinite([result.errors[n] for n in ("beta", "tau", "gamma", "baseline")]))
