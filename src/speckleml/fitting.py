"""Stretched-exponential (KWW) fits of one-time correlation functions.

Two conventions are in use and both are provided, each stated where it is used:

* :func:`fit_g2` — the convention of the APS (pyXpcsViewer) and ESRF viewers for the
  intensity autocorrelation::

      g2(t) - offset = beta * exp(-2 (t / tau)^gamma) + baseline

  with ``offset = 1`` for classically normalised g2 (baseline-1 curves) and ``offset = 0``
  for the fluctuation forms (APS ``D`` or covariance C2, whose off-diagonal already
  estimates ``g2 - 1``). ``tau`` is the relaxation time of the field correlation ``g1``.
* :func:`fit_c2_slice` — paper 000 (Supp. Fig. 4d, 10e) for slices of the standardised
  covariance C2 (eq. 19)::

      y(dt) = exp(-(dt / tau)^gamma)

  so ``tau`` here is the decay time of ``|g1|^2``, i.e. half the ``tau`` of the APS form
  for ``gamma = 1``.

Fits use :func:`scipy.optimize.curve_fit` (trust-region reflective, box bounds); parameter
errors are ``sqrt(diag(pcov))``. Non-finite points, non-positive lags and non-positive
errors are dropped; too few points give NaN parameters and ``success=False`` rather than
an exception, so a table of many q-bins is always complete.

A fit is reported successful only when it measured something. It fails, with the reason in
``message``, when

* less than :data:`MIN_DECAY_FRACTION` of the fitted contrast decays between the first
  and the last fitted lag (the decay lies wholly before or after the lags), or
* the fitted model falls between the first and the last fitted lag by less than
  :data:`MIN_DECAY_SNR` times the noise of one point ("no decay in the fitted lag range":
  a flat curve, flat plus noise, or a tau far outside the lags);
* a free parameter ends on a bound, or its error cannot be estimated;
* the one-sigma error of a free amplitude, tau or gamma exceeds :data:`MAX_RELATIVE_ERROR`
  times its value (the parameter is not determined by the data, e.g. a tau below the first
  lag fitted from the tail of the decay).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

G2_PARAMS = ("beta", "tau", "gamma", "baseline")
#: Least fall of the fitted model between the first and last fitted lag, in units of the
#: noise of one point (median stated error, else the rms residual).
MIN_DECAY_SNR = 3.0
#: Least fraction of the fitted contrast that must decay between the first and last fitted lag.
MIN_DECAY_FRACTION = 0.01
#: Largest accepted ratio of one-sigma error to value for the amplitude, tau and gamma.
MAX_RELATIVE_ERROR = 1.0
SLICE_PARAMS = ("amplitude", "tau", "gamma")


@dataclass
class FitResult:
    """Best-fit parameters with one-sigma errors.

    ``values``/``errors`` map parameter names to floats (NaN when not fitted or failed);
    ``fixed`` names parameters held constant (error 0).
    """

    values: dict[str, float]
    errors: dict[str, float]
    fixed: tuple[str, ...] = ()
    chi2_reduced: float = float("nan")
    n_points: int = 0
    success: bool = False
    message: str = ""
    model: str = ""
    extra: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def row(self) -> dict:
        """Flat dict (``beta``, ``beta_err``, ...) for a results table."""
        out = {}
        for name, value in self.values.items():
            out[name] = value
            out[f"{name}_err"] = self.errors.get(name, float("nan"))
        out.update(chi2_reduced=self.chi2_reduced, n_points=self.n_points, success=self.success,
                   message=self.message)
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def g2_model(t, beta, tau, gamma, baseline):
    """``beta * exp(-2 (t / tau)^gamma) + baseline`` (APS/ESRF convention for ``g2 - 1``)."""
    return beta * np.exp(-2.0 * (np.asarray(t, float) / tau) ** gamma) + baseline


def c2_slice_model(t, amplitude, tau, gamma):
    """``amplitude * exp(-(t / tau)^gamma)`` (paper 000, amplitude 1 by default)."""
    return amplitude * np.exp(-(np.asarray(t, float) / tau) ** gamma)


def _clean(lag, y, err):
    lag = np.asarray(lag, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if lag.shape != y.shape:
        raise ValueError(f"lag and values differ in length: {lag.size} vs {y.size}")
    keep = np.isfinite(lag) & np.isfinite(y) & (lag > 0)
    if err is not None:
        err = np.asarray(err, dtype=np.float64).ravel()
        if err.shape != y.shape:
            raise ValueError(f"err and values differ in length: {err.size} vs {y.size}")
        keep &= np.isfinite(err) & (err > 0)
        err = err[keep]
    return lag[keep], y[keep], err


def _tau_guess(lag, y, amplitude, floor, level):
    """Lag where ``y - floor`` first drops below ``level * amplitude`` (geometric mean if never)."""
    below = np.flatnonzero(y - floor < level * amplitude)
    if below.size and amplitude > 0:
        return float(lag[below[0]])
    return float(np.sqrt(lag[0] * lag[-1]))


def _fit(model, names, lag, y, err, p0, lower, upper, fixed, absolute_sigma, label) -> FitResult:
    """curve_fit over the free parameters, the fixed ones held at their p0 value."""
    from scipy.optimize import curve_fit

    free = [i for i, n in enumerate(names) if n not in fixed]
    nan = {n: float("nan") for n in names}
    if lag.size < len(free) + 1:
        return FitResult(dict(nan), dict(nan), tuple(fixed), n_points=int(lag.size), model=label,
                         message=f"too few valid points ({lag.size}) for {len(free)} parameters")
    p0 = np.asarray(p0, float)
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    p0 = np.clip(p0, lower + 1e-12 * np.abs(lower), upper - 1e-12 * np.abs(upper))

    def partial(t, *free_values):
        params = p0.copy()
        params[free] = free_values
        return model(t, *params)

    try:
        popt, pcov = curve_fit(partial, lag, y, p0=p0[free], sigma=err, absolute_sigma=absolute_sigma,
                               bounds=(lower[free], upper[free]), method="trf", x_scale="jac",
                               max_nfev=20000)
    except (RuntimeError, ValueError) as exc:
        return FitResult(dict(nan), dict(nan), tuple(fixed), n_points=int(lag.size), model=label,
                         message=" ".join(str(exc).split()))
    params = p0.copy()
    params[free] = popt
    errors = np.zeros(len(names))
    with np.errstate(invalid="ignore"):
        errors[free] = np.sqrt(np.diag(pcov))
    residual = (y - model(lag, *params)) / (err if err is not None else 1.0)
    dof = max(lag.size - len(free), 1)
    # Noise of one point: the stated errors, else the scatter about the fit.
    noise = float(np.median(err)) if err is not None else float(np.sqrt(np.sum(residual**2) / dof))
    noise = max(noise, 1e-8 * max(1.0, float(np.max(np.abs(y)))))  # noise-free data: float precision
    message = _failure(model, names, params, errors, free, lower, upper, lag, noise) or "ok"
    return FitResult(
        values={n: float(v) for n, v in zip(names, params)},
        errors={n: float(e) for n, e in zip(names, errors)},
        fixed=tuple(fixed), chi2_reduced=float(np.sum(residual**2) / dof), n_points=int(lag.size),
        success=message == "ok", model=label, message=message,
    )


def _failure(model, names, params, errors, free, lower, upper, lag, noise) -> str:
    """Why a converged fit measured nothing ('' when it did); see the module docstring."""
    decay = abs(float(model(lag.min(), *params) - model(lag.max(), *params)))
    # The decaying factor alone (amplitude 1, baseline of the g2 form 0).
    shape = params.copy()
    shape[0] = 1.0
    shape[3:] = 0.0
    fraction = float(model(lag.min(), *shape) - model(lag.max(), *shape))
    tau = params[names.index("tau")]
    where = (f"; tau={tau:.3g} is below the first lag" if tau < lag.min() else
             f"; tau={tau:.3g} is beyond the last lag" if tau > lag.max() else "")
    if not fraction >= MIN_DECAY_FRACTION:
        return (f"no decay in the fitted lag range {lag.min():.4g}..{lag.max():.4g} ({100 * fraction:.2g}% of "
                f"the contrast decays there{where})")
    if not decay >= MIN_DECAY_SNR * noise:
        return (f"no decay in the fitted lag range {lag.min():.4g}..{lag.max():.4g} (the model falls by "
                f"{decay:.3g}, less than {MIN_DECAY_SNR:g} x the noise {noise:.3g} of one point{where})")
    # A free parameter on a bound, or with a zero or infinite error, has no meaningful error.
    span = np.maximum(1.0, np.abs(np.concatenate([lower, upper])))
    tol = 1e-6 * np.maximum(span[: len(names)], span[len(names):])
    on_bound = [names[i] for i in free if min(params[i] - lower[i], upper[i] - params[i]) <= tol[i]]
    if on_bound:
        return f"{', '.join(on_bound)} at a bound"
    if not (np.all(np.isfinite(errors[free])) and np.all(errors[free] > 0)):
        return "covariance could not be estimated"
    for i in free:
        if names[i] in (names[0], "tau", "gamma") and errors[i] > MAX_RELATIVE_ERROR * abs(params[i]):
            return (f"{names[i]} undetermined: its error {errors[i]:.3g} exceeds {MAX_RELATIVE_ERROR:g} x "
                    f"its value {params[i]:.3g}{where}")
    return ""


def fit_g2(lag, g2, err=None, offset: float = 1.0, fit_gamma: bool = True, fit_baseline: bool = True,
           gamma: float = 1.0, bounds: dict | None = None, absolute_sigma: bool = False) -> FitResult:
    """Fit ``g2(t) - offset = beta exp(-2 (t/tau)^gamma) + baseline`` (APS/ESRF convention).

    Parameters
    ----------
    lag : array
        Delays (seconds or frames; ``tau`` comes out in the same unit). Lags <= 0 are
        dropped (lag 0 carries the shot-noise spike of the C2 diagonal).
    g2 : array
        Correlation values; NaN points are dropped.
    err : array, optional
        One-sigma errors used as weights (NaN/<=0 points dropped).
    offset : float
        1 for classical g2 (baseline 1), 0 for the APS ``D`` and covariance forms.
    fit_gamma : bool
        Fit the stretching exponent; otherwise hold it at ``gamma``.
    fit_baseline : bool
        Fit a constant baseline; otherwise hold it at 0.
    gamma : float
        Start value (or fixed value) of the exponent.
    bounds : dict, optional
        ``{name: (low, high)}`` overriding the defaults: beta (0, 10), tau (lag_min/10,
        lag_max*10), gamma (0.2, 4), baseline (-1, 1). A fit that ends on a bound is
        reported with ``success=False``.
    absolute_sigma : bool
        Treat ``err`` as absolute (True) or scale the covariance by the reduced chi^2
        (default: diagonal-mean errors of C2 underestimate the true scatter).

    Returns
    -------
    FitResult
        ``beta``, ``tau``, ``gamma``, ``baseline`` with errors from ``sqrt(diag(pcov))``.
    """
    lag, y, err = _clean(lag, np.asarray(g2, float) - offset, err)
    fixed = tuple(n for n, keep in (("gamma", fit_gamma), ("baseline", fit_baseline)) if not keep)
    if lag.size == 0:
        return _fit(g2_model, G2_PARAMS, lag, y, err, [1, 1, gamma, 0], [0] * 4, [1] * 4, fixed,
                    absolute_sigma, "g2")
    tail = y[-max(1, lag.size // 10):]
    floor = float(np.median(tail)) if fit_baseline else 0.0
    head = float(np.median(y[: max(1, min(3, lag.size))]))
    beta0 = max(head - floor, 1e-3)
    # g2 - 1 drops to beta/e^2 at t = tau for gamma = 1.
    tau0 = _tau_guess(lag, y, beta0, floor, np.exp(-2.0))
    limits = {"beta": (0.0, 10.0), "tau": (lag.min() / 10, lag.max() * 10), "gamma": (0.2, 4.0),
              "baseline": (-1.0, 1.0), **(bounds or {})}
    lower = [limits[n][0] for n in G2_PARAMS]
    upper = [limits[n][1] for n in G2_PARAMS]
    return _fit(g2_model, G2_PARAMS, lag, y, err, [beta0, tau0, gamma, floor if fit_baseline else 0.0],
                lower, upper, fixed, absolute_sigma, "g2-offset=beta*exp(-2(t/tau)^gamma)+baseline")


def fit_c2_slice(lag, y, err=None, fit_amplitude: bool = False, fit_gamma: bool = True, gamma: float = 1.0,
                 bounds: dict | None = None, absolute_sigma: bool = False) -> FitResult:
    """Fit ``y(dt) = exp(-(dt/tau)^gamma)`` to a one-time slice of C2 (paper 000).

    Parameters
    ----------
    lag : array
        Delays ``dt = |t2 - t1|`` (lags <= 0 dropped).
    y : array
        Slice values of the standardised covariance C2 (1 at ``dt = 0``, 0 when decorrelated).
    err : array, optional
        One-sigma errors used as weights.
    fit_amplitude : bool
        Also fit a prefactor (paper 000 fixes it at 1).
    fit_gamma : bool
        Fit the KWW exponent (otherwise held at ``gamma``).
    gamma : float
        Start or fixed exponent.
    bounds : dict, optional
        ``{name: (low, high)}`` overriding amplitude (0, 2), tau (lag_min/10, lag_max*10),
        gamma (0.2, 4).
    absolute_sigma : bool
        See :func:`fit_g2`.

    Returns
    -------
    FitResult
        ``amplitude``, ``tau``, ``gamma`` with errors.
    """
    lag, y, err = _clean(lag, y, err)
    fixed = tuple(n for n, keep in (("amplitude", fit_amplitude), ("gamma", fit_gamma)) if not keep)
    if lag.size == 0:
        return _fit(c2_slice_model, SLICE_PARAMS, lag, y, err, [1, 1, gamma], [0] * 3, [2] * 3, fixed,
                    absolute_sigma, "c2-slice")
    tau0 = _tau_guess(lag, y, 1.0, 0.0, np.exp(-1.0))
    limits = {"amplitude": (0.0, 2.0), "tau": (lag.min() / 10, lag.max() * 10), "gamma": (0.2, 4.0),
              **(bounds or {})}
    lower = [limits[n][0] for n in SLICE_PARAMS]
    upper = [limits[n][1] for n in SLICE_PARAMS]
    return _fit(c2_slice_model, SLICE_PARAMS, lag, y, err, [1.0, tau0, gamma], lower, upper, fixed,
                absolute_sigma, "exp(-(dt/tau)^gamma)")
