"""Exceptions that the command line turns into a one-line message and exit code 2."""


class InputError(ValueError):
    """Bad input from the user: a missing or malformed file, an invalid option or store.

    The message must be a single line that names the offending file or option and says
    what is wrong; ``speckleml`` prints it without a traceback and exits with code 2.
    """


class StoreError(InputError):
    """A zarr store does not satisfy its schema (missing array, wrong dims or dtype, NaN...)."""
