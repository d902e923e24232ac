"""Exceptions that the command line turns into a one-line message and exit code 2.

The rule (applied by :func:`speckleml.cli.main`)
-----------------------------------------------
A failure to read or validate a user's input is an :class:`InputError` whose message names
the file (or option, or config key) and says what is wrong. Code that reads a user's file
either validates what it read and raises :class:`InputError` itself, or wraps the read in
:func:`reading`, which turns the exception kinds that file readers raise for a bad file
(:data:`READ_ERRORS`: ``OSError``, ``ValueError`` incl. ``UnicodeDecodeError`` and the
pandas parser errors, ``EOFError``, ``KeyError``/``IndexError`` of a missing entry,
``TypeError`` of h5py for a group read as a dataset, ``zipfile.BadZipFile``,
``pickle.UnpicklingError``) into an :class:`InputError` naming the file. Anything else is a
programming error and keeps its traceback.
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
