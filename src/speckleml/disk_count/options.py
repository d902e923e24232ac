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
    from ..schema import schema_violation

    for option, (key, value) in values.items():
        if value is None:
            continue
        value = list(value) if isinstance(value, tuple) else value
        why = schema_violation(key, value)
        if why is not None:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            raise InputError(f"{option} {shown}: {why} (config schema {key})")
