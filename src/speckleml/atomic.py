"""Atomic outputs: write to ``<path>.tmp-<pid>``, rename on success, remove on failure.

A killed or failing job therefore never leaves anything at the final path that looks
complete, which is what Snakemake (and a scientist) relies on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def temporary_path(path: str | os.PathLike) -> Path:
    """Return the temporary sibling ``<path>.tmp-<pid>`` used while writing ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """Context manager yielding a temporary path that replaces ``path`` on success.

    Works for files and directories (zarr stores). An existing ``path`` is replaced only
    once the new content is complete. On any exception the temporary path is removed and
    the exception propagates.

    Examples
    --------
    >>> with atomic_output("results/table.csv") as tmp:   # doctest: +SKIP
    ...     df.to_csv(tmp, index=False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if path.exists() and path.is_dir() and tmp.is_dir():
        # os.replace cannot overwrite a non-empty directory: move the old one aside first.
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        if path.is_dir():
            _remove(path)
        os.replace(tmp, path)


def write_csv(frame, path: str | os.PathLike, **kwargs) -> Path:
    """Write a pandas DataFrame to CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write text to ``path`` atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)
