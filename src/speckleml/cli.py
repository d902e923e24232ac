"""``speckleml`` command line: ``speckleml <study> <stage> ...`` and shared tools.

Every stage is a small command that reads its inputs, writes its outputs atomically and
does nothing else; the Snakemake rules call them. Bad input ends with one line on stderr
and exit code 2 (``--debug`` shows the traceback).

Study packages plug in through :data:`COMMAND_MODULES`: each module defines
``register(subparsers)``, which adds its parser(s) and sets ``func`` on every leaf parser.
Modules import only ``argparse`` (and this module) at import time, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable

from . import __version__
from .errors import InputError
from .cli_types import (  # noqa: F401 (the stage CLIs import them from here)
    positive_float, non_negative_float, finite_float, float_in, int_at_least, positive_int, non_negative_int,
)

#: Modules that register commands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "speckleml.xpcs.import_cli",
    "speckleml.dynamics.cli",
    "speckleml.dynamics.lotka_volterra_cli",
    "speckleml.clustering.cli",
    "speckleml.disk_count.cli",
    "speckleml.shear.cli",
)
#: ``speckleml <study> <stage>`` imports only its study's CLI module (the top-level commands
#: belong to the xpcs chain), so a stage runs, and a workflow rule depends on, only its own code.
STUDY_MODULES = {
    "dynamics": "speckleml.dynamics.cli",
    "lotka-volterra": "speckleml.dynamics.lotka_volterra_cli",
    "clustering": "speckleml.clustering.cli",
    "disk-count": "speckleml.disk_count.cli",
    "shear": "speckleml.shear.cli",
}

log = logging.getLogger("speckleml")


def add_stage(subparsers, name: str, func: Callable, help: str, description: str | None = None,
              epilog: str | None = None) -> argparse.ArgumentParser:
    """Add one leaf command whose handler is ``func(args) -> int | None``."""
    parser = subparsers.add_parser(
        name, help=help, description=description or help, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def add_study(subparsers, name: str, help: str) -> argparse._SubParsersAction:
    """Add a study command (``speckleml <name>``) and return its stage subparsers."""
    parser = subparsers.add_parser(name, help=help, description=help)
    stages = parser.add_subparsers(dest="stage", metavar="<stage>", required=True)
    return stages


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    parser.add_argument("--seed", type=int, default=default, help="seed for every random draw (default %(default)s)")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="compute device; auto picks CUDA when available (default %(default)s)")


def add_config_option(parser: argparse.ArgumentParser, *flags: str, key: str, bounds: bool = True,
                      **kwargs) -> argparse.Action:
    """An option whose default and bounds are the config schema's for ``key`` (their one home).

    ``key`` is dotted from the study section, e.g. ``"clustering.train.epochs"``; the action
    records it as ``schema_key`` so that a test can check every such default against the schema.
    The value must also meet the key's schema bounds, unless ``bounds=False`` (an option that also
    serves another config key with looser bounds).
    """
    from .cli_types import schema_type
    from .schema import schema_default

    if bounds and callable(kwargs.get("type")):  # the schema's bounds too, not only its default
        kwargs["type"] = schema_type(kwargs["type"], key, item="nargs" in kwargs)
    action = parser.add_argument(*flags, default=schema_default(key), **kwargs)
    action.schema_key, action.schema_bounds = key, bounds
    return action


def add_schema_options(group, section: str, prefix: str = "", **kinds) -> None:
    """``--{prefix}{name}`` for each schema key ``section.name``, default and help from the schema.

    ``kinds`` maps a key name to its argparse type, or to a tuple of choices.
    """
    from .schema import schema_node

    for name, kind in kinds.items():
        kwargs = {"choices": kind} if isinstance(kind, tuple) else {"type": kind}
        text = schema_node(f"{section}.{name}").get("description", "").replace("%", "%%")
        add_config_option(group, f"--{prefix}{name.replace('_', '-')}", key=f"{section}.{name}",
                          help=f"{text} (default %(default)s)", **kwargs)


def stage_config(args: argparse.Namespace) -> dict:
    """The parsed options of a stage: the parameters its provenance records."""
    return {k: v for k, v in vars(args).items() if k not in {"func", "debug", "verbose", "quiet"}}


def option_values(args: argparse.Namespace, names, prefix: str = "") -> dict:
    """``{name: args.<prefix + name>}`` for ``names``: a group of options passed on as keywords."""
    return {name: getattr(args, prefix + name) for name in names}


def provenance_from_args(args: argparse.Namespace, inputs=()) -> dict:
    """Provenance of a stage run from the command line: its parsed options are the config subset.

    Lives with the CLI because it reads an argparse ``Namespace``; library code builds its
    provenance with :func:`speckleml.provenance.make_provenance` from keyword arguments.
    """
    from .provenance import make_provenance

    config = stage_config(args)
    return make_provenance(config=config, seed=config.get("seed"), inputs=inputs)


def add_threads(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """``--threads N``: torch CPU threads of the stage (0 keeps torch's default)."""
    parser.add_argument("--threads", type=non_negative_int, default=default,
                        help="torch CPU threads, 0 = torch default (default %(default)s)")


def _leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                children = _leaf_commands(sub, full)
                rows.extend(children if children else [(full, helps.get(name) or "")])
    return rows


def _command_modules(argv: list[str] | None) -> tuple[str, ...]:
    """The command modules a command line needs: one study's, the xpcs chain's, or all (help)."""
    words = [w for w in (argv or []) if not w.startswith("-")]
    if not words or any(w in ("-h", "--help") for w in (argv or [])[:1]):
        return COMMAND_MODULES
    if words[0] in STUDY_MODULES:
        return (STUDY_MODULES[words[0]],)
    return (COMMAND_MODULES[0],)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, ``speckleml: error: argument --dt: ...``, exit code 2."""

    def error(self, message):
        self.exit(2, f"speckleml: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Build the parser for ``argv`` (all commands when ``argv`` is None or asks for help).

    The epilog lists every stage of the registered studies.
    """
    parser = _Parser(
        prog="speckleml",
        description="Coherent X-ray scattering (speckle) to physics: simulation, correlation, "
                    "training, evaluation and figures for four published methods.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"speckleml {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    modules = COMMAND_MODULES if argv is None else _command_modules(argv)
    for module in modules:
        importlib.import_module(module).register(commands)
    words = [w for w in (argv or []) if not w.startswith("-")]
    if words and words[0] not in commands.choices:  # unknown command: the error lists them all
        for module in COMMAND_MODULES:
            if module not in modules:
                importlib.import_module(module).register(commands)
    rows = _leaf_commands(parser)
    width = max(len(name) for name, _ in rows)
    parser.epilog = "stages and tools:\n" + "\n".join(
        f"  speckleml {name:<{width}}  {text}" for name, text in rows
    )
    return parser


def configure_logging(quiet: bool = False) -> None:
    """Log to stderr (a rule redirects it to its log file) with timestamps."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S", stream=sys.stderr, force=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``speckleml`` console script: the one error boundary.

    Exit codes: 0 success; 2 bad input, one line ``speckleml: error: <file or option>: <what
    is wrong>`` (argparse usage errors too); 130 interrupted; 1 with a traceback: a bug.
    What counts as bad input is :func:`speckleml.errors.user_error`'s rule (an InputError, an
    OSError naming a file, or a reader library failing on a command-line path); any other
    exception surfaces with its traceback. ``--debug`` shows the traceback for bad input too.
    """
    from .atomic import check_output
    from .outputs_cli import check_distinct_outputs, output_paths
    from .errors import READ_ERRORS, user_error

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    configure_logging(args.quiet)
    try:
        check_distinct_outputs(parser, args)  # no output overwrites an input or another output
        for path in output_paths(parser, args):  # every output is writable, before any work
            check_output(path)
        code = args.func(args)
    except KeyboardInterrupt:
        print("speckleml: interrupted", file=sys.stderr)
        return 130
    except READ_ERRORS as exc:  # InputError is a ValueError
        message = None if args.debug else user_error(exc, list(vars(args).values()))
        if message is None:
            raise
        print(f"speckleml: error: {message}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
