"""Which arguments of a ``speckleml`` command are outputs, so that all are checked before any work."""

from __future__ import annotations

import argparse
import os


def _chosen_command(parser, func):
    """The leaf parser whose handler is ``func`` (depth first), or None."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found = _chosen_command(sub, func)
                if found is not None:
                    return found
    return parser if parser.get_default("func") is func else None


def _is_output(action) -> bool:
    """The house convention for an output argument (see :func:`output_paths`)."""
    named = action.dest == "output" or action.dest.endswith("_output")
    return named or (action.help or "").lower().startswith("output ")


def _given_paths(args, action) -> list[str]:
    """The string values given for ``action`` (one, or a list)."""
    value = getattr(args, action.dest, None)
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def _argument_name(action) -> str:
    """How the user spelled an argument: its long option, or the positional's name."""
    return max(action.option_strings, key=len) if action.option_strings else (action.metavar or action.dest).upper()


def check_distinct_outputs(parser, args) -> None:
    """Refuse a command whose outputs would overwrite one of its inputs or each other.

    Writing is atomic (temporary file, then rename), so an output path equal to an existing
    input would replace the input with no error; two outputs on one path would silently keep
    only the last. Paths are compared after resolving links and ``..``; an input counts when
    the given value exists on disk (values that are not files cannot be overwritten).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The whole ``speckleml`` parser.
    args : argparse.Namespace
        The parsed command line.

    Raises
    ------
    InputError
        Naming the output path and the two arguments that share it.
    """
    from .errors import InputError

    leaf = _chosen_command(parser, getattr(args, "func", None))
    actions = [a for a in (leaf._actions if leaf is not None else ()) if a.dest != "help"]
    outputs: dict[str, str] = {}
    for action in filter(_is_output, actions):
        for path in _given_paths(args, action):
            key = os.path.realpath(path)
            if key in outputs:
                raise InputError(f"{path}: given as two outputs ({outputs[key]} and {_argument_name(action)}); "
                                 "each output needs its own path")
            outputs[key] = _argument_name(action)
    for action in (a for a in actions if not _is_output(a)):
        for value in _given_paths(args, action):
            key = os.path.realpath(value)
            if key in outputs and os.path.exists(value):
                raise InputError(f"{value}: the output {outputs[key]} would overwrite the input "
                                 f"{_argument_name(action)}; choose another output path")


def output_paths(parser, args) -> list[str]:
    """Paths the chosen command will write, so that all are checked before any work.

    An output is an argument named ``output`` or ``*_output``, or one whose help text starts
    with "output" (the house convention, e.g. ``--store``: "output evaluation store").

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The whole ``speckleml`` parser (:func:`build_parser`).
    args : argparse.Namespace
        The parsed command line (its ``func`` names the command).

    Returns
    -------
    list of str
        The given output paths (options left out are skipped).
    """
    leaf = _chosen_command(parser, getattr(args, "func", None))
    paths = []
    for action in filter(_is_output, leaf._actions if leaf is not None else ()):
        paths += _given_paths(args, action)
    return paths
