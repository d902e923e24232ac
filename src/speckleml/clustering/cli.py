"""`speckleml clustering <stage>`: command line of the clustering study."""

from __future__ import annotations

from ..cli import add_study


def register(commands) -> None:
    stages = add_study(commands, "clustering", "AI-NERD autoencoder classes of two-time maps (paper 001)")  # noqa: F841  (stages are added here)
