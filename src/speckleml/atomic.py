"""Atomic outputs: write to ``<path>.tmp-<pid>``, rename on success, remove on failure.

A killed or failing job therefore never leaves anything at the final path that looks
complete, which is what Snakemake (and a scientist) relies on.

What may be replaced
--------------------
An output path may already hold something. It is replaced only when it is *ours*:

* a **store** (a directory written by :func:`speckleml.stores.write_store`, recognised by the
  ``schema`` and ``provenance`` attrs in its ``zarr.json``) or an **empty directory**, where a
  store (directory) goes;
* a **regular file** (or a symlink, which is replaced, never followed), where a file goes: the
  user named it as the output, as with a shell redirection.

Anything else is *not ours* and is never deleted: a directory that is not a store where a
store or a file goes (it may hold a user's notes), a regular file where a store goes, or a
parent path that is not a directory. These raise :class:`~speckleml.errors.InputError`
(one line, exit code 2). :func:`check_output` applies the same rule before any work is done
(``speckleml.cli.main`` calls it for every ``output``/``*_output`` argument); :func:`atomic_output` checks
again just before the rename, and removes its temporary path on every failure, including a
failing rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from .errors import InputError

#: Output suffixes written as directories (zarr stores).
STORE_SUFFIXES = (".zarr",)


def temporary_path(path: str | os.PathLike) -> Path:
    """Return the temporary sibling ``<path>.tmp-<pid>`` used while writing ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def is_our_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding a store written by this package.

    A store is recognised by its group metadata ``zarr.json`` whose attributes carry both
    ``schema`` (name and version) and ``provenance``, as :func:`speckleml.stores.write_store`
    writes them. Unreadable metadata means "not ours".
    """
    meta = Path(path) / "zarr.json"
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(attrs, dict) and isinstance(attrs.get("schema"), dict) and "provenance" in attrs


def _refuse(path: Path, directory: bool | None) -> str | None:
    """Why ``path`` must not be replaced by a new directory (``directory``), a file, or either
    (``directory=None``: only what neither may replace); None if it may."""
    if path.is_symlink() or not path.exists():
        return None
    if path.is_dir():
        if directory is not False and (is_our_store(path) or not any(path.iterdir())):
            return None
        if directory is None:
            return "output path is a directory that is not a speckleml store; not replacing it"
        if directory:
            return "output path is a directory that is not a speckleml store; not replacing it"
        return "output path is a directory; not replacing it (name a file)"
    if directory is None:
        return None
    if directory:
        return "output path is an existing file where a store (directory) goes; not replacing it"
    if not path.is_file():
        return "output path exists and is not a regular file; not replacing it"
    return None


def check_output(path: str | os.PathLike, directory: bool | None = None) -> Path:
    """Check, before any work, that ``path`` can be written (nothing is created).

    Parameters
    ----------
    path : path
        The output path.
    directory : bool, optional
        Whether the output is a directory (a store) or a file; None (default) means a store
        when the name ends with a suffix of :data:`STORE_SUFFIXES`, else either kind (only
        what neither may replace is refused; the final rename checks the exact kind).

    Raises
    ------
    InputError
        The path holds something that is not ours (see the module docstring), or a parent
        is not a directory.
    """
    path = Path(path)
    if directory is None and path.name.lower().endswith(STORE_SUFFIXES):
        directory = True
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{path}: parent path {parent} is not a directory")
    reason = _refuse(path, directory)
    if reason:
        raise InputError(f"{path}: {reason}")
    return path


def _replace(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` to ``path``, replacing only what :func:`_refuse` allows."""
    directory = tmp.is_dir()
    reason = _refuse(path, directory)
    if reason:
        raise InputError(f"{path}: {reason}")
    if directory and path.is_dir() and not path.is_symlink():
        # os.replace cannot overwrite a non-empty directory: move the old store aside first.
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        _remove(old)
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """Context manager yielding a temporary path that replaces ``path`` on success.

    Works for files and directories (zarr stores). An existing ``path`` is replaced only
    once the new content is complete, and only if it is ours (module docstring). On any
    exception, including a failing final rename, the temporary path is removed and the
    exception propagates.

    Raises
    ------
    InputError
        ``path`` holds something that is not ours, or its parent is not a directory.

    Examples
    --------
    >>> with atomic_output("results/table.csv") as tmp:   # doctest: +SKIP
    ...     df.to_csv(tmp, index=False)
    """
    path = Path(path)
    check_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the parent directory ({exc.strerror or exc})") from None
    tmp = temporary_path(path)
    _remove(tmp)
    try:
        yield tmp
        _replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


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
