"""The house rules of issue 10: thin stage CLIs, one home for each default."""

import argparse
import ast
from pathlib import Path

import pytest
import yaml

from speckleml.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "speckleml"
SCHEMAS = SRC / "schemas"
#: Options that belong to the command line, not to the workflow config.
CLI_ONLY = {"help", "debug", "quiet", "threads", "version", "func"}


def _leaves(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                children = list(_leaves(sub, prefix + (name,)))
                yield from children if children else [(prefix + (name,), sub)]


def _schema_node(key):
    """Independent walk of the YAML files (not speckleml.schema)."""
    section, *path = key.split(".")
    node = yaml.safe_load((SCHEMAS / f"{section}.schema.yaml").read_text())
    for name in path:
        if "$ref" in node:
            node = yaml.safe_load((SCHEMAS / node["$ref"]).read_text())
        node = node["properties"][name]
    return node


def _leaf_keys(node, out=None):
    out = set() if out is None else out
    for name, sub in node.get("properties", {}).items():
        out.add(name)
        _leaf_keys(sub, out)
    return out


STAGES = list(_leaves(build_parser()))


@pytest.mark.parametrize("words,parser", STAGES, ids=[" ".join(w) for w, _ in STAGES])
def test_cli_defaults_come_from_the_schema(words, parser):
    """Every stage option that the config also sets takes its default from the schema."""
    study = words[0].replace("-", "_") if len(words) > 1 else "xpcs"
    study = {"lotka_volterra": "dynamics"}.get(study, study)  # a dynamics case with its own command
    schema_keys = _leaf_keys(yaml.safe_load((SCHEMAS / f"{study}.schema.yaml").read_text()))
    for action in parser._actions:
        if not action.option_strings or action.dest in CLI_ONLY:
            continue
        key = getattr(action, "schema_key", None)
        if key is not None:
            assert action.default == _schema_node(key)["default"], (words, action.dest, key)
        elif action.default not in (None, False) and not action.required:
            assert action.dest not in schema_keys, (
                f"speckleml {' '.join(words)} {action.option_strings[0]}: a hard-coded default "
                f"{action.default!r} for an option the config schema also has; use add_config_option "
                f"or make it required")


def _cli_modules():
    return sorted(SRC.glob("**/cli.py")) + sorted(SRC.glob("**/*_cli.py"))


@pytest.mark.parametrize("path", _cli_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_cli_modules_are_thin(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 260, f"{path.relative_to(SRC)} has {lines} lines: move the orchestration to the study"


def test_no_library_function_takes_a_namespace():
    """argparse stays in the CLI modules: no library function has an ``args`` parameter or
    mentions ``argparse.Namespace``."""
    offenders = []
    cli = set(_cli_modules())
    for path in SRC.rglob("*.py"):
        if path in cli:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                if "args" in names:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}(args)")
        if "Namespace" in path.read_text():
            offenders.append(f"{path.relative_to(SRC)} mentions Namespace")
    assert not offenders, offenders


def _rules_requesting_a_gpu() -> set[str]:
    """Names of the rules whose ``resources:`` declare ``gpu=`` (rules/*.smk)."""
    import re

    names = set()
    for path in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule \w+:)", path.read_text(), flags=re.M):
            match = re.match(r"rule (\w+):", block)
            if match and re.search(r"^\s+gpu=", block, flags=re.M):
                names.add(match.group(1))
    return names


def test_every_gpu_rule_gets_a_gpu_on_slurm():
    """A training rule added without its SLURM entry would queue on a CPU node for hours."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    with_gpu = {name for name, res in profile["set-resources"].items() if res.get("gpu") == 1}
    needed = _rules_requesting_a_gpu()
    assert len(needed) >= 8  # the parser still finds the training rules
    assert needed <= with_gpu, f"no gpu: 1 in profiles/slurm for {sorted(needed - with_gpu)}"


@pytest.mark.parametrize("caption", sorted((ROOT / "report").rglob("*.rst")), ids=lambda p: p.stem)
def test_report_captions_are_valid_restructuredtext(caption):
    """A caption with ``|x|`` unquoted is an RST substitution: the report then shows an error."""
    import io

    import docutils.core

    warnings = io.StringIO()
    docutils.core.publish_doctree(caption.read_text(), settings_overrides={"warning_stream": warnings,
                                                                          "report_level": 2})
    assert warnings.getvalue() == ""
