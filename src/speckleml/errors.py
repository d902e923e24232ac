"""Exceptions that the command line turns into a one-line message and exit code 2.

The rule (:func:`user_error`, applied by :func:`speckleml.cli.main`)
----------------------------------------------------------------------
A failure to read or validate a user's input is an :class:`InputError` whose message names
the file (or option, or config key) and says what is wrong. Code that reads a user's file
either validates what it read and raises :class:`InputError` itself, or wraps the read in
:func:`reading`, which turns the exception kinds that file readers raise for a bad file
(:data:`READ_ERRORS`: ``OSError``, ``ValueError`` incl. ``UnicodeDecodeError`` and the
pandas parser errors, ``EOFError``, ``KeyError``/``IndexError`` of a missing entry,
``TypeError`` of h5py for a group read as a dataset, ``zipfile.BadZipFile``,
``pickle.UnpicklingError``) into an :class:`InputError` naming the file. Anything else is a
programming error and keeps its traceback. As a safety net for reads not yet wrapped,
:func:`input_path_of` attributes a reader-kind exception raised *inside a reader library* to
the command-line path that library was reading.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import zipfile


class InputError(ValueError):
    """Bad input from the user: a missing or malformed file, an invalid option or store.

    The message must be a single line that names the offending file or option and says
    what is wrong; ``speckleml`` prints it without a traceback and exits with code 2.
    """


class StoreError(InputError):
    """A zarr store does not satisfy its schema (missing array, wrong dims or dtype, NaN...)."""


#: Exception kinds that numpy, h5py, zarr, pandas, zipfile, json and pickle raise for a file
#: that is missing, truncated, empty, of another format or lacking an entry.
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError,
               zipfile.BadZipFile, pickle.UnpicklingError)


def describe(exc: BaseException) -> str:
    """One line for ``exc``: its message on one line, with the type when that says more."""
    detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # str(KeyError) is a repr
    text = " ".join(str(detail).split())
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    kind = type(exc).__name__
    if not text:
        return kind
    if isinstance(exc, (KeyError, IndexError, EOFError, TypeError)) or kind not in ("ValueError", "OSError"):
        return f"{kind}: {text}" if not isinstance(exc, InputError) else text
    return text


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str = "file"):
    """Turn a reader's failure inside the block into ``InputError("<path>: cannot read <what> (...)")``.

    Wrap only the reading of the user's file (open, load, parse, look up entries), so that a
    programming error elsewhere keeps its traceback. An :class:`InputError` raised inside
    passes unchanged.

    Examples
    --------
    >>> with reading(args.mask, "mask"):                    # doctest: +SKIP
    ...     mask = np.load(args.mask, allow_pickle=False)
    """
    try:
        yield
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot read {what} ({describe(exc)})") from exc


def user_error(exc: BaseException, values) -> str | None:
    """The one-line message for ``exc`` if it is bad input, else None (a bug: keep the traceback).

    Bad input is: an :class:`InputError` (raised where the input was validated, or by
    :func:`reading`); an ``OSError`` naming a file (missing, a directory, not a directory,
    permission, disk full: the system's verdict on a path the user gave); a reader-kind
    exception that a reader library raised on a command-line path (:func:`input_path_of`).
    Any other exception, including a ``ValueError`` or ``KeyError`` raised by speckleml's own
    code, is not bad input.

    Parameters
    ----------
    exc : BaseException
        The exception, with its traceback.
    values : iterable
        The command line's argument values (strings, lists of strings, anything else).
    """
    if isinstance(exc, InputError):
        return " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or describe(exc)}"
    if not isinstance(exc, READ_ERRORS):
        return None
    strings = [v for value in values for v in (value if isinstance(value, (list, tuple)) else [value])
               if isinstance(v, str)]
    path = input_path_of(exc, strings)
    return None if path is None else f"{path}: cannot read ({describe(exc)})"


def input_path_of(exc: BaseException, values) -> str | None:
    """The user's file a reader library failed on, or None (then it is a programming error).

    A reader-kind exception is attributed to a file only when it was raised outside this
    package (numpy, h5py, zarr, pandas, ...) and a frame of that library holds, as a local,
    one of ``values`` (the command line's arguments) that names an existing path, or a path
    inside one (a chunk of a store). A failure raised in speckleml's own code is never
    attributed: it keeps its traceback.

    Parameters
    ----------
    exc : BaseException
        The exception, with its traceback.
    values : iterable of str
        The command line's argument values.

    Returns
    -------
    str or None
        The value as the user spelled it, or None.
    """
    import traceback

    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    if not frames or frames[-1].f_globals.get("__name__", "").startswith("speckleml"):
        return None
    given = {os.path.abspath(v): v for v in values if isinstance(v, str) and v and os.path.exists(v)}
    for frame in reversed(frames):
        if frame.f_globals.get("__name__", "").startswith("speckleml"):
            continue
        for value in frame.f_locals.values():
            if not isinstance(value, (str, os.PathLike)):
                continue
            try:
                full = os.path.abspath(os.fspath(value))
            except (TypeError, ValueError):
                continue
            for path, spelling in given.items():
                if full == path or full.startswith(path + os.sep):
                    return spelling
    return None
