"""Eq. 5 fitted to each g(theta): the plateau, gamma L and D2 of one curve (beyond the paper).

In ``g(theta) = <g(q, theta)>_q`` the polydispersity enters only through the theta-independent
plateau ``P`` (a variance of the incoherent intensity over configurations, ~ h(R_s) / nL^2),
an offset of ~1e-3 under the sinc^2 tails of eq. 5, which depend on gamma L and D2. The GPR on
SVD projections has to untangle the two from a few hundred draws; fitting
``g(theta) - 1 = P + <sinc^2(q gamma L cos(theta) / 2) exp(-q^2 D2^2)>_q`` to each curve
separates them explicitly, and ``(P, gamma L, D2)`` of the fit become three more GPR inputs.
The fit uses the curve only (no other feature, no target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Search box of the fit (units of R0): wider than the paper's ranges U(5, 30) and U(0.5, 3).
GAMMA_L_RANGE = (1.0, 100.0)
D2_RANGE = (0.1, 10.0)


def eq5_theta(q: np.ndarray, theta: np.ndarray, gamma_l: float, d2: float) -> np.ndarray:
    """``<g(q, theta)>_q - 1`` of eq. 5: ``<sinc^2(q gamma L cos(theta) / 2) exp(-q^2 D2^2)>_q``.

    Parameters
    ----------
    q, theta : ndarray, 1-D
        The detector grid (1/R0, radians); the mean is over ``q`` as in the data set.
    gamma_l, d2 : float

    Returns
    -------
    ndarray, (len(theta),)
    """
    x = np.outer(q, np.cos(theta)) * (gamma_l / 2.0)
    return (np.sinc(x / np.pi) ** 2 * np.exp(-((q * d2) ** 2))[:, None]).mean(axis=0)


def _eq5_many(q: np.ndarray, theta: np.ndarray, log_gl: np.ndarray, log_d2: np.ndarray) -> np.ndarray:
    """:func:`eq5_theta` for arrays of ``(log gamma L, log D2)``, (M,) each -> (M, n_theta)."""
    x = q[None, :, None] * np.cos(theta)[None, None, :] * (np.exp(log_gl) / 2.0)[:, None, None]
    damping = np.exp(-((q[None, :] * np.exp(log_d2)[:, None]) ** 2))
    return (np.sinc(x / np.pi) ** 2 * damping[..., None]).mean(axis=1)


def fit_eq5_theta(g_theta: np.ndarray, q: np.ndarray, theta: np.ndarray, grid: int = 30,
                  iterations: int = 8) -> np.ndarray:
    """Least-squares fit of ``g(theta) - 1 = P + eq5_theta(gamma L, D2)`` to each curve.

    ``P`` is linear and profiled out (the mean residual); ``(log gamma L, log D2)`` start from
    the best point of a ``grid x grid`` log-spaced search over :data:`GAMMA_L_RANGE` x
    :data:`D2_RANGE` and are refined by damped Gauss-Newton steps (Levenberg-Marquardt,
    finite-difference Jacobian), all curves at once.

    Parameters
    ----------
    g_theta : ndarray, (M, n_theta) or (n_theta,)
    q, theta : ndarray, 1-D
        Grid the curves were averaged on (``theta`` matches the curves).
    grid : int
        Points per axis of the starting search (>= 2).
    iterations : int
        Gauss-Newton steps.

    Returns
    -------
    ndarray, (M, 3)
        ``P``, ``log gamma L``, ``log D2`` per curve.

    Raises
    ------
    ValueError
        ``theta`` does not match the curves or ``grid < 2``.
    """
    q, theta = np.asarray(q, np.float64), np.asarray(theta, np.float64)
    curves = np.atleast_2d(np.asarray(g_theta, dtype=np.float64)) - 1.0
    if curves.shape[1] != len(theta) or grid < 2:
        raise ValueError(f"need curves of len(theta) = {len(theta)} and grid >= 2, got {curves.shape}, {grid}")
    axes = np.meshgrid(np.linspace(*np.log(GAMMA_L_RANGE), grid), np.linspace(*np.log(D2_RANGE), grid), indexing="ij")
    starts = np.stack([a.ravel() for a in axes], axis=1)
    shapes = _eq5_many(q, theta, starts[:, 0], starts[:, 1])
    shapes = shapes - shapes.mean(axis=1, keepdims=True)
    centred = curves - curves.mean(axis=1, keepdims=True)
    # ||c - s||^2 = ||c||^2 - 2 c.s + ||s||^2 for every curve and start at once
    cost = (shapes**2).sum(axis=1)[None, :] - 2.0 * centred @ shapes.T
    point = starts[np.argmin(cost, axis=1)]

    def residual(p):
        model = _eq5_many(q, theta, p[:, 0], p[:, 1])
        model = model - model.mean(axis=1, keepdims=True)
        return centred - model

    r = residual(point)
    damping = np.full(len(curves), 1e-3)
    step = 1e-5
    for _ in range(iterations):
        jac = np.stack([(residual(point + step * np.eye(2)[k]) - r) / step for k in range(2)], axis=-1)
        jtj = np.einsum("mtk,mtl->mkl", jac, jac)
        jtr = np.einsum("mtk,mt->mk", jac, r)
        trial = point - np.linalg.solve(jtj + damping[:, None, None] * np.eye(2) * np.trace(jtj, axis1=1, axis2=2)[:, None, None],
                                        jtr[..., None])[..., 0]
        trial = np.clip(trial, np.log([GAMMA_L_RANGE[0], D2_RANGE[0]]), np.log([GAMMA_L_RANGE[1], D2_RANGE[1]]))
        r_trial = residual(trial)
        better = (r_trial**2).sum(axis=1) < (r**2).sum(axis=1)
        point[better], r[better] = trial[better], r_trial[better]
        damping = np.where(better, damping / 3, damping * 10)
    model = _eq5_many(q, theta, point[:, 0], point[:, 1])
    return np.column_stack([(curves - model).mean(axis=1), point])


@dataclass
class PlateauFeatures:
    """Standardised ``(asinh(P / scale), log gamma L, log D2)`` of :func:`fit_eq5_theta` (GPR inputs).

    Attributes
    ----------
    q, theta : ndarray
        Grid of the curves.
    scale : float
        ``P`` enters as ``asinh(P / scale)`` (linear below ``scale``; > 0).
    mean, std : ndarray, (3,)
        Standardisation, fitted on the training curves.
    """

    q: np.ndarray
    theta: np.ndarray
    scale: float
    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def raw(g_theta: np.ndarray, q: np.ndarray, theta: np.ndarray, scale: float) -> np.ndarray:
        """Unstandardised features ``(M, 3)`` of curves ``(M, n_theta)``."""
        fitted = fit_eq5_theta(g_theta, q, theta)
        fitted[:, 0] = np.arcsinh(fitted[:, 0] / scale)
        return fitted

    @classmethod
    def fit(cls, g_theta: np.ndarray, q: np.ndarray, theta: np.ndarray, scale: float) -> tuple["PlateauFeatures", np.ndarray]:
        """Fit the standardisation on training curves ``(M, n_theta)``.

        Returns
        -------
        PlateauFeatures
        ndarray, (M, 3)
            The standardised features of the training curves (computed once).

        Raises
        ------
        ValueError
            ``scale <= 0``.
        """
        if not scale > 0:
            raise ValueError(f"plateau scale must be > 0, got {scale}")
        raw = cls.raw(g_theta, q, theta, scale)
        std = raw.std(axis=0)
        model = cls(np.asarray(q, float), np.asarray(theta, float), float(scale), raw.mean(axis=0),
                    np.where(std > 0, std, 1.0))
        return model, (raw - model.mean) / model.std

    def __call__(self, g_theta: np.ndarray) -> np.ndarray:
        """Standardised features ``(M, 3)`` of curves ``(M, n_theta)``."""
        return (self.raw(g_theta, self.q, self.theta, self.scale) - self.mean) / self.std
