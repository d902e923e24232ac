"""The workflow's config schemas: the one home of every default.

The YAML files in ``speckleml/schemas/`` validate ``config.yaml`` in the Snakefile and give the
defaults of stage options that the workflow does not always pass, so that a CLI default and a
config default can never disagree.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).with_name("schemas")


@lru_cache(maxsize=None)
def load_schema(section: str) -> dict:
    """The parsed schema of one config section (``"xpcs"``, ``"clustering"``, ... or ``"config"``).

    Raises
    ------
    KeyError
        When there is no schema file for ``section``.
    """
    import yaml

    path = SCHEMA_DIR / f"{section}.schema.yaml"
    if not path.is_file():
        raise KeyError(f"no schema for config section {section!r} ({path})")
    return yaml.safe_load(path.read_text())


def schema_node(key: str) -> dict:
    """The schema of the config key ``key``, dotted from the section (``"clustering.train"``).

    Follows ``properties`` through nested objects and a ``$ref`` to a sibling schema file.
    Raises ``KeyError`` naming the key when the schema has no such key.
    """
    section, *path = key.split(".")
    node = load_schema(section)
    for i, name in enumerate(path):
        if "$ref" in node:
            node = load_schema(node["$ref"].removesuffix(".schema.yaml"))
        props = node.get("properties", {})
        if name not in props:
            raise KeyError(f"config schema has no key {'.'.join([section, *path[:i + 1]])}")
        node = props[name]
    return node


def schema_default(key: str):
    """Default of the config key ``key``, dotted from the section (``"clustering.train.epochs"``).

    Raises ``KeyError`` naming the key when the schema has no such key or no default.
    """
    node = schema_node(key)
    if "default" not in node:
        raise KeyError(f"config schema key {key} has no default")
    return node["default"]


def schema_violation(key: str, value, item: bool = False) -> str | None:
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

    node = schema_node(key)
    if item:
        node = node.get("items", {})
    for number in (value if isinstance(value, (list, tuple)) else [value]):
        if isinstance(number, float) and not math.isfinite(number):
            return f"must be finite, got {number}"
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(node).iter_errors(value))
    if error is None:
        return None
    if error.validator in _RULES:
        return f"must be {_RULES[error.validator]} {error.validator_value}, got {error.instance}"
    return {"minItems": f"needs at least {error.validator_value} values",
            "maxItems": f"takes at most {error.validator_value} values",
            "uniqueItems": "values must differ"}.get(error.validator, error.message)


# The bounds an option meets most often, said as the CLI's other range errors say them.
_RULES = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<", "enum": "one of"}


def check_schema_value(option: str, key: str, value) -> None:
    """Raise :class:`~speckleml.errors.InputError` ``"<option>: <why>"`` when ``value`` breaks the schema of ``key``.

    For library entry points called from Python with values the CLI would have refused.
    """
    from .errors import InputError

    why = schema_violation(key, value)
    if why is not None:
        raise InputError(f"{option}: {why}")
