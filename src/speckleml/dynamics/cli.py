"""`speckleml dynamics <stage>`: command line of the dynamics study."""

from __future__ import annotations

from ..cli import add_study


def register(commands) -> None:
    stages = add_study(commands, "dynamics", "neural ODEs learned through speckle (paper 000)")  # noqa: F841  (stages are added here)
