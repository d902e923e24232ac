"""Stage options checked against the config schema: the schema is the one home of their bounds."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InputError


def check_options(values: Mapping[str, tuple[str, Any]]) -> None:
    """Refuse an option value that its config schema key forbids, as the workflow's schema would.

    Parameters
    ----------
    values : mapping
        ``{option: (schema key, value)}``, e.g. ``{"--n-disks": ("disk_count.n_disks", [2])}``;
        a ``None`` value (option not given, no default) is not checked.

    Raises
    ------
    InputError
        One line naming the option, the value and the schema's rule (e.g. ``maximum 200``).
    """
    import jsonschema

    from ..schema import schema_node

    for option, (key, value) in values.items():
        if value is None:
            continue
        value = list(value) if isinstance(value, tuple) else value
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema_node(key)).iter_errors(value))
        if error is None:
            continue
        shown = " ".join(map(str, value)) if isinstance(value, list) else value
        what = {"minItems": f"needs at least {error.validator_value} values",
                "maxItems": f"takes at most {error.validator_value} values",
                "uniqueItems": "values must differ"}.get(error.validator, error.message)
        raise InputError(f"{option} {shown}: {what} (config schema {key})")
