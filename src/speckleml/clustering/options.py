"""Option types that enforce the config schema's bounds, so the CLI accepts what the config accepts."""

from __future__ import annotations

import argparse
from typing import Callable


def schema_bounded(kind: Callable, key: str) -> Callable:
    """An argparse type: ``kind`` (e.g. ``positive_int``), then the schema's bounds of ``key``.

    The bounds (``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``enum``)
    are read from the schema node of ``key`` (dotted, e.g. ``"clustering.similar.neighbours"``),
    never restated, so a value the workflow's config validation would refuse is refused on the
    command line too, instead of being clamped or failing later.

    Raises
    ------
    argparse.ArgumentTypeError
        From the returned type, naming the bound and the schema key (argparse prefixes the
        option: ``speckleml: error: argument -k/--neighbours: must be <= 100 ...``, exit 2).
    """
    from ..schema import schema_node

    node = schema_node(key)
    tests = [(lambda v, b=node.get("minimum"): b is None or v >= b, ">= {minimum}"),
             (lambda v, b=node.get("maximum"): b is None or v <= b, "<= {maximum}"),
             (lambda v, b=node.get("exclusiveMinimum"): b is None or v > b, "> {exclusiveMinimum}"),
             (lambda v, b=node.get("exclusiveMaximum"): b is None or v < b, "< {exclusiveMaximum}"),
             (lambda v, b=node.get("enum"): b is None or v in b, "one of {enum}")]

    def check(text: str):
        value = kind(text)
        for test, rule in tests:
            if not test(value):
                raise argparse.ArgumentTypeError(f"must be {rule.format(**node)} (config schema {key}), got {text}")
        return value

    check.__name__ = getattr(kind, "__name__", "value")
    return check
