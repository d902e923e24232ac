"""The Snakemake workflow: lint, config validation, the tiny end-to-end DAG, rebuild logic."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from speckleml.stores import read_frames

TINY = ROOT / "tests" / "config" / "tiny.yaml"


def snakemake(*args: str, cwd: Path | None = None, timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run snakemake from the repository's Snakefile, with the venv's bin on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=timeout)


def planned_jobs(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run into {rule: count}."""
    jobs, table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            table = True
            continue
        if table:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if match and match.group(1) != "total":
                jobs[match.group(1)] = int(match.group(2))
            elif line.strip().startswith("total"):
                break
    return jobs


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_default_config_dry_run():
    proc = snakemake("-n")
    assert proc.returncode == 0, proc.stderr
    assert planned_jobs(proc.stdout + proc.stderr) or "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize("config, key, words", [
    ({"seed": "abc"}, "seed", ["is not of type 'integer'"]),
    ({"xpcs": {"dt": -1}}, "xpcs.dt", ["less than or equal to the minimum"]),
    ({"xpcs": {"synthetic": {"frames": 1}}}, "xpcs.synthetic.frames", ["less than the minimum"]),
    ({"shear": {"no_such_key": 1}}, "shear", ["'no_such_key' was unexpected"]),
    ({"bogus": 1}, "<top level>", ["'bogus' was unexpected"]),
    ({"device": "tpu"}, "device", ["is not one of"]),
])
def test_bad_config_names_the_key(tmp_path, config, key, words):
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("invalid config:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"invalid config: {key}:")
    for word in words:
        assert word in lines[0]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Run the whole tiny DAG once with the real rules; later tests inspect the results."""
    workdir = tmp_path_factory.mktemp("tiny")
    start = time.monotonic()
    proc = snakemake("--cores", "2", "--directory", str(workdir), "--configfile", str(TINY))
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in (workdir / "results" / "logs").rglob("*.log"))
        pytest.fail(f"tiny DAG failed:\n{proc.stderr[-6000:]}\n{logs}")
    return workdir, elapsed


@pytest.mark.slow
def test_tiny_dag_builds_every_target(tiny_run):
    workdir, elapsed = tiny_run
    store = read_frames(workdir / "results" / "xpcs" / "frames.zarr")
    tiny = yaml.safe_load(TINY.read_text())
    assert store["frames"].shape[1] == tiny["xpcs"]["synthetic"]["frames"]
    assert store.provenance["config"]["seed"] == tiny["seed"]
    # every rule leaves a log and a benchmark record
    logs = list((workdir / "results" / "logs").rglob("*.log"))
    benchmarks = list((workdir / "results" / "benchmarks").rglob("*.tsv"))
    assert logs and len(logs) == len(benchmarks)
    print(f"tiny DAG: {elapsed:.0f} s")


@pytest.mark.slow
def test_nothing_to_do_after_build(tiny_run):
    workdir, _ = tiny_run
    start = time.monotonic()
    proc = snakemake("-n", "--directory", str(workdir), "--configfile", str(TINY))
    print(f"no-op dry run: {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout


def _study_of(rule: str, studies: list[str]) -> str | None:
    return next((s for s in studies if rule == s or rule.startswith(s + "_")), None)


# (study, path to one parameter, new value): a change must re-plan only that study's jobs.
PARAMETER_CHANGES = [
    ("xpcs", ("xpcs", "synthetic", "tau"), 3.0),
    ("dynamics", ("dynamics", "kuramoto", "train", "learning_rate"), 0.03),
    ("clustering", ("clustering", "train", "lr"), 0.002),
    ("disk_count", ("disk_count", "epochs"), 2),
    ("shear", ("shear", "dataset", "configs"), 3),
]


@pytest.mark.slow
@pytest.mark.parametrize("study, key, value", PARAMETER_CHANGES)
def test_parameter_change_reruns_only_its_study(tiny_run, tmp_path, study, key, value):
    workdir, _ = tiny_run
    config = copy.deepcopy(yaml.safe_load(TINY.read_text()))
    node = config
    for part in key[:-1]:
        node = node.setdefault(part, {})
    assert node.get(key[-1]) != value
    node[key[-1]] = value
    proc = snakemake("-n", "--directory", str(workdir), "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert proc.returncode == 0, proc.stderr
    jobs = planned_jobs(proc.stdout + proc.stderr)
    jobs.pop("all", None)
    assert jobs, "changing a parameter must re-plan at least one job"
    studies = config["studies"]
    assert {_study_of(rule, studies) for rule in jobs} == {study}, jobs
