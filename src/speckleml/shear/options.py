"""Option values checked against the config schema (the one home of their bounds).

The shear CLI parses each config-backed option through :func:`schema_type`, and the library
checks the values it is called with through :func:`check_value`, so a value the schema forbids
(``--n-theta 1``, ``--plateau-scale -1``, ``--sweep-d2 nan``) is refused before any work, in
one line naming the option, instead of failing late or being clamped.
"""

from __future__ import annotations

import argparse
import math

from ..errors import InputError


def schema_error(key: str, value, item: bool = False) -> str | None:
    """Why ``value`` breaks the schema of config key ``key`` (None when it does not).

    Parameters
    ----------
    key : str
        Dotted config key, e.g. ``"shear.fit.plateau_scale"``.
    value
        The value (a list for array keys, unless ``item``).
    item : bool
        Check one element of an array key against its ``items`` schema.

    Returns
    -------
    str or None
        The first violation, in words; numbers must also be finite (JSON has no NaN).
    """
    import jsonschema

    from ..schema import schema_node

    node = schema_node(key)
    if item:
        node = node.get("items", {})
    for number in (value if isinstance(value, (list, tuple)) else [value]):
        if isinstance(number, float) and not math.isfinite(number):
            return f"must be finite, got {number}"
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(node).iter_errors(value))
    return None if error is None else error.message


def check_value(option: str, key: str, value) -> None:
    """Raise :class:`~speckleml.errors.InputError` ``"<option>: <why>"`` when ``value`` breaks the schema of ``key``."""
    why = schema_error(key, value)
    if why is not None:
        raise InputError(f"{option}: {why}")


def schema_type(kind, key: str, item: bool = False):
    """Argparse ``type`` that converts with ``kind`` and checks the result against the schema of ``key``.

    ``item``: the option takes several values (``nargs``); each is checked against ``items``.
    argparse reports a failure as ``argument --option: <why>`` and exits with status 2.
    """
    def convert(text: str):
        value = kind(text)
        why = schema_error(key, value, item)
        if why is not None:
            raise argparse.ArgumentTypeError(why)
        return value

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert
