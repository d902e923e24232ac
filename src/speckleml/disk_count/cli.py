"""`speckleml disk-count <stage>`: command line of the disk_count study."""

from __future__ import annotations

from ..cli import add_study


def register(commands) -> None:
    stages = add_study(commands, "disk-count", "ResNet disk counting from one speckle pattern (paper 002)")  # noqa: F841  (stages are added here)
