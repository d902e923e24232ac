"""Torch model files: atomic saves and validated loads with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .atomic import atomic_output
from .errors import READ_ERRORS, InputError


def save_torch(payload: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` a dict atomically (a killed job leaves no half-written model)."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(dict(payload), tmp)
    return Path(path)


def load_torch(path: str | os.PathLike, what: str, fmt: Any = None, keys: Iterable[str] = (),
               weights_only: bool = True, map_location="cpu") -> dict[str, Any]:
    """Load a dict saved by :func:`save_torch` and check it is the expected kind of file.

    Parameters
    ----------
    path : path
        The model or checkpoint file.
    what : str
        What the file should be, for messages (``"disk_count checkpoint"``).
    fmt : optional
        Required value of the payload's ``"format"`` entry (``None``: not checked).
    keys : iterable of str
        Entries the payload must have.
    weights_only : bool
        Passed to ``torch.load``; ``True`` refuses arbitrary pickled objects.

    Raises
    ------
    InputError
        One line naming the file: missing, unreadable, of another format, or incomplete.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=weights_only)
    except (*READ_ERRORS, RuntimeError) as exc:  # RuntimeError: torch's zip reader on a truncated file
        raise InputError(f"{path}: not a readable {what} ({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}: not a {what} (expected a dict, found {type(payload).__name__})")
    if fmt is not None and payload.get("format") != fmt:
        raise InputError(f"{path}: not a {what} of format {fmt} (found {payload.get('format')!r})")
    missing = [key for key in keys if key not in payload]
    if missing:
        raise InputError(f"{path}: {what} lacks {', '.join(map(repr, missing))}")
    return payload
