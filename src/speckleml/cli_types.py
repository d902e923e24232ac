"""Argparse types for numbers: the valid range of an option is checked where it enters.

Each returns the parsed value or raises ``argparse.ArgumentTypeError`` with the rule and the
value, so argparse prints one line naming the option. The same ranges are stated in the config
schemas (``minimum``/``exclusiveMinimum``), which validate the workflow's config.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan, no inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def float_in(low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """argparse type factory: a finite number in ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    text_range = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and (low < value if low_open else low <= value) and value <= high):
            raise argparse.ArgumentTypeError(f"must be a number in {text_range}, got {text}")
        return value
    parse.__name__ = f"number in {text_range}"
    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type factory: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def schema_type(kind: Callable, key: str, item: bool = False) -> Callable:
    """Argparse ``type``: convert with ``kind``, then check against the config schema of ``key``.

    The schema is the one home of an option's bounds (``minimum``, ``maximum``, ``enum``, ...),
    so a value the workflow's config validation would refuse is refused on the command line too,
    before any work, instead of being clamped or failing late. ``item``: the option takes several
    values (``nargs``) and each is checked against the key's ``items``. argparse reports a failure
    as ``argument --option: <why>`` and exits with status 2.
    """
    from .schema import schema_violation

    def convert(text: str):
        value = kind(text)
        why = schema_violation(key, value, item)
        if why is not None:
            raise argparse.ArgumentTypeError(f"{why} (config schema {key})")
        return value

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert
