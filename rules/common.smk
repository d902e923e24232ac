# Shared helpers: config validation, paths, source-file inputs, study targets.
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(workflow.basedir)
SRC = ROOT / "src" / "speckleml"
ENV = "../envs/speckleml.yaml"


def _validate(data, schema, prefix=""):
    try:
        validate(data, str(ROOT / "schemas" / schema))
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


def source_files(*patterns):
    """Package source files a rule depends on, so an edit re-runs exactly its jobs.

    Patterns are relative to src/speckleml; the shared plumbing is always included.
    """
    shared = ("__init__.py", "cli.py", "errors.py", "atomic.py", "provenance.py", "stores.py", "progress.py")
    files = set()
    for pattern in shared + patterns:
        matches = sorted(SRC.glob(pattern))
        if not matches:
            raise WorkflowError(f"source_files: no file matches src/speckleml/{pattern}")
        files.update(str(m) for m in matches)
    return sorted(files)


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
