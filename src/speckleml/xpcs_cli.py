"""Correlation tools: ``correlate``, ``fit-g2``, ``import-c2``, ``export-aps`` (core physics)."""

from __future__ import annotations


def register(commands) -> None:
    """Add the correlation commands (filled in by the core-physics work)."""
