"""Provenance records attached to every store: who made it, from what, with which settings."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the source tree the package runs from (``-dirty`` suffix if modified).

    ``SPECKLEML_GIT_COMMIT`` overrides (for installs without a ``.git``); ``"unknown"``
    when neither is available.
    """
    env = os.environ.get("SPECKLEML_GIT_COMMIT")
    if env:
        return env
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def checksum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a directory tree (relative names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars, paths and tuples so that zarr's JSON attrs accept them."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return repr(value)


def make_provenance(
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    inputs: Iterable[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Build the ``provenance`` attribute of a store.

    Parameters
    ----------
    config : mapping, optional
        The configuration subset (stage parameters) that produced the store.
    seed : int, optional
        The seed that drove all randomness of the stage.
    inputs : iterable of path
        Input files or stores; each is recorded with its SHA-256 checksum.

    Returns
    -------
    dict
        JSON-serialisable record with package version, git commit, config, seed,
        UTC creation time, host/python and input checksums.
    """
    return {
        "package": "speckleml",
        "version": __version__,
        "git_commit": git_commit(),
        "config": _jsonable(dict(config or {})),
        "seed": seed,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "inputs": {os.fspath(p): checksum(p) for p in inputs if Path(p).exists()},
    }
