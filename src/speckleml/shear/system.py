"""Parameters, polar grid and eq. 5 of paper 003 (no torch import: cheap for every stage)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Names of the four system parameters, in the order of every ``params`` array.
PARAM_NAMES = ("nL2", "R_s", "D2", "gamma_L")
#: Labels for plots and tables.
PARAM_LABELS = {"nL2": r"$nL^2$", "R_s": r"$R_s$", "D2": r"$D_2$", "gamma_L": r"$\gamma L$"}
ESTIMATORS = ("speckle", "pairs", "steps")
#: Estimators that average per configuration over absolute positions (and take ``incoherent_configs``).
PAIR_ESTIMATORS = ("pairs", "steps")
SCALINGS = ("paper", "reference")


@dataclass(frozen=True)
class ShearSystem:
    """One set of system parameters ``(nL^2, R_s, D2, gamma L)`` (units of R0)."""

    density: float
    r_s: float
    d2: float
    gamma_l: float

    def __post_init__(self):
        if not np.isfinite([self.density, self.r_s, self.d2, self.gamma_l]).all():
            raise ValueError(f"parameters must be finite, got {self.as_array().tolist()}")
        if not self.density > 0:
            raise ValueError(f"nL^2 must be > 0, got {self.density}")
        if self.r_s < 0 or self.d2 < 0:
            raise ValueError(f"R_s and D2 must be >= 0, got {self.r_s}, {self.d2}")

    @classmethod
    def from_array(cls, values) -> "ShearSystem":
        """Build from ``(nL^2, R_s, D2, gamma L)``.

        Raises
        ------
        ValueError
            Not four numbers, a non-finite one, ``nL^2 <= 0``, ``R_s < 0`` or ``D2 < 0``.
        """
        values = [float(v) for v in values]
        if len(values) != 4:
            raise ValueError(f"need 4 parameters (nL^2, R_s, D2, gamma L), got {len(values)}")
        return cls(*values)

    def as_array(self) -> np.ndarray:
        """``(nL^2, R_s, D2, gamma L)`` as a float64 array, (4,)."""
        return np.array([self.density, self.r_s, self.d2, self.gamma_l], dtype=np.float64)


@dataclass(frozen=True)
class PolarGrid:
    """Beam size and the polar detector grid (paper: 100 q log-spaced in [0.5, 5], 101 theta)."""

    beam: float = 800.0
    q_min: float = 0.5
    q_max: float = 5.0
    n_q: int = 100
    n_theta: int = 101

    def __post_init__(self):
        if not (0 < self.q_min < self.q_max) or self.n_q < 2 or self.n_theta < 2 or self.beam <= 0:
            raise ValueError(f"invalid polar grid {self}")

    def q(self) -> np.ndarray:
        """Wave-vector magnitudes (1/R0), log-spaced."""
        return np.logspace(math.log10(self.q_min), math.log10(self.q_max), self.n_q)

    def theta(self) -> np.ndarray:
        """Angles from the flow (x) axis, linear in [0, pi]."""
        return np.linspace(0.0, math.pi, self.n_theta)


def theory_g(q: np.ndarray, theta: np.ndarray, d2: float, gamma_l: float) -> np.ndarray:
    """Eq. 5, monodisperse dilute limit: ``1 + sinc^2(q gamma L cos(theta) / 2) exp(-q^2 D2^2)``.

    Parameters
    ----------
    q, theta : 1-D arrays
        Grid axes.
    d2, gamma_l : float
        Non-affine step (std) and strain times beam size.

    Returns
    -------
    ndarray, (len(q), len(theta))
    """
    q = np.asarray(q, float)[:, None]
    theta = np.asarray(theta, float)[None, :]
    x = q * gamma_l * np.cos(theta) / 2.0
    return 1.0 + np.sinc(x / np.pi) ** 2 * np.exp(-(q * d2) ** 2)
