# Shared helpers: config validation, paths, source-file inputs, study targets.
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(workflow.basedir)
SRC = ROOT / "src" / "speckleml"
SCHEMAS = SRC / "schemas"
ENV = "../envs/speckleml.yaml"


def _validate(data, schema, prefix=""):
    try:
        validate(data, str(SCHEMAS / schema))
    except WorkflowError as exc:
        cause = exc.__context__
        if not hasattr(cause, "absolute_path"):
            raise
        key = ".".join([prefix, *map(str, cause.absolute_path)]).strip(".") or "<top level>"
        raise WorkflowError(f"invalid config: {key}: {cause.message}") from None


def validate_config(config):
    """Validate (and fill defaults) with the schema; one line that names the key on error.

    jsonschema does not apply defaults inside $ref'd files, so each study section is also
    validated against its own schema file as the root.
    """
    _validate(config, "config.schema.yaml")
    for section in ("xpcs", "dynamics", "clustering", "disk_count", "shear"):
        _validate(config[section], f"{section}.schema.yaml", prefix=section)


validate_config(config)


wildcard_constraints:
    series=r"\d+",
    member=r"\d+",
    chunk=r"\d+",


import ast
from functools import lru_cache


def _module_file(module):
    """File of a ``speckleml`` module, or None when it is not a module of the package."""
    parts = module.split(".")
    if parts[0] != "speckleml":
        return None
    base = SRC.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_inits(module):
    """``__init__.py`` of every package above ``module`` (Python runs them on import)."""
    parts = module.split(".")
    return [f for f in (_module_file(".".join(parts[:i])) for i in range(1, len(parts))) if f]


def _resolve(node, module, is_package):
    """Absolute speckleml module names an import node may load."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        parts = module.split(".")
        base_parts = parts if is_package else parts[:-1]
        base_parts = base_parts[: len(base_parts) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module
    # ``from pkg import name``: name is a submodule or an attribute of pkg.
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _imports(path, module, function=None):
    """speckleml modules imported in ``path``: at module level, or anywhere when ``function`` is
    ``"*"``, or inside the named function (a stage handler) only."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    if function in (None, "*"):
        nodes = list(ast.walk(tree)) if function else tree.body
    else:
        # the handler and the module's own functions it calls, recursively
        defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        if function not in defs:
            raise WorkflowError(f"stage_sources: {module} has no function {function}")
        nodes, todo, done = [], [function], set()
        while todo:
            name = todo.pop()
            if name in done:
                continue
            done.add(name)
            body = list(ast.walk(defs[name]))
            nodes += body
            todo += [n.func.id for n in body if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and n.func.id in defs]
    found = []
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [m for m in _resolve(node, module, is_package) if _module_file(m)]
    return found


@lru_cache(maxsize=None)
def _closure(module, everywhere):
    """Files a module needs: itself, its packages' __init__, what it imports, transitively.

    ``everywhere`` follows imports inside functions too (library modules import heavy
    dependencies lazily, and running a stage runs them).
    """
    files, todo, seen = set(), [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        files.add(path)
        # importing a module runs its packages' __init__ first, and what those import
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]
        files.update(_package_inits(name))
        todo += _imports(path, name, "*" if everywhere else None)
    return frozenset(files)


def _registrar(module):
    """The module of ``speckleml.cli.COMMAND_MODULES`` that registers ``module``'s commands."""
    tree = ast.parse((SRC / "cli.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMMAND_MODULES" for t in node.targets):
            package = module.rsplit(".", 1)[0]
            for name in ast.literal_eval(node.value):
                if name.rsplit(".", 1)[0] == package:
                    return name
    raise WorkflowError(f"stage_sources: no command module in speckleml.cli registers {module}")


def stage_sources(handler, *data):
    """Every package file a stage runs, derived from the import graph, plus ``data`` files.

    ``handler`` is ``"speckleml.<package>.<cli module>:<function>"``, the function a stage's
    command calls. The stage runs ``speckleml.cli``, the package's registering CLI module and
    what its ``register`` imports, and the handler's module (module-level imports, each
    transitively), then the handler, which imports the library code it calls: that code and
    all it imports, at module level or inside functions, transitively. The config schemas
    come along when the stage reads its defaults from them (``speckleml.schema``): its study's. So a rule
    re-runs when, and only when, code its stage runs has changed.
    """
    cli_module, function = handler.split(":")
    registrar = _registrar(cli_module)
    # speckleml.cli whole (its option helpers import speckleml.schema when a parser is built)
    files = set(_closure("speckleml.cli", True)) | _closure(registrar, False) | _closure(cli_module, False)
    for name in _imports(_module_file(registrar), registrar, "register"):
        files |= _closure(name, False)
    for name in _imports(_module_file(cli_module), cli_module, function):
        files |= _closure(name, True)
    if SRC / "schema.py" in files:  # the stage's options take their defaults from its study's schema
        study_schema = SCHEMAS / f"{registrar.split('.')[1]}.schema.yaml"
        files.update([study_schema] if study_schema.exists() else SCHEMAS.glob("*.yaml"))
    return sorted(str(f) for f in files) + [str(ROOT / d) for d in data]


def study_config(study):
    """Config subset of one study plus the global seed and device."""
    return {"seed": config["seed"], "device": config["device"], **config[study]}


def q(value):
    """Shell-quote a parameter value for a command line."""
    return shlex.quote(str(value))


def cli_list(values):
    """Render a list parameter as space-separated shell words."""
    return " ".join(q(v) for v in values)


def log_path(study, name):
    return f"results/logs/{study}/{name}.log"


def bench_path(study, name):
    return f"results/benchmarks/{study}/{name}.tsv"


# Each study's rule file registers a function returning its final targets.
STUDY_TARGETS = {}


def all_targets():
    missing = [s for s in config["studies"] if s not in STUDY_TARGETS]
    if missing:
        raise WorkflowError(f"config studies: no rules for {missing}")
    return [t for s in config["studies"] for t in STUDY_TARGETS[s]()]
