"""`speckleml shear <stage>`: command line of the shear study."""

from __future__ import annotations

from ..cli import add_study


def register(commands) -> None:
    stages = add_study(commands, "shear", "sheared colloids: Monte Carlo speckle, SVD, GP inversion (paper 003)")  # noqa: F841  (stages are added here)
