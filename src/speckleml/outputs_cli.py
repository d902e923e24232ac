"""Which arguments of a ``speckleml`` command are outputs, so that all are checked before any work."""

from __future__ import annotations

import argparse


def _chosen_command(parser, func):
    """The leaf parser whose handler is ``func`` (depth first), or None."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found = _chosen_command(sub, func)
                if found is not None:
                    return found
    return parser if parser.get_default("func") is func else None


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
    for action in leaf._actions if leaf is not None else ():
        named = action.dest == "output" or action.dest.endswith("_output")
        if not (named or (action.help or "").lower().startswith("output ")):
            continue
        value = getattr(args, action.dest, None)
        paths += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    return paths
