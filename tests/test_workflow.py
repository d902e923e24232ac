"""The Snakemake workflow: lint, config validation, the tiny end-to-end DAG, rebuild logic."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from speckleml.stores import read_frames

TINY = ROOT / "tests" / "config" / "tiny.yaml"


def snakemake(*args: str, cwd: Path | None = None, timeout: int = 1500, snakefile: Path | None = None,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run snakemake from the repository's Snakefile, with the venv's bin on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {}))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile or ROOT / "Snakefile"), *args]
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
    # a rule across keys, checked at load instead of failing at the first training job
    ({"xpcs": {"frames": None}, "clustering": {"train": {"pools": [8, 8, 8]}}}, "clustering.train.pools",
     ["must divide clustering.crop 64"]),
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
    """Run the whole tiny DAG once with the real rules; later tests inspect the results.

    Every stage runs with ``PYTHONPROFILEIMPORTTIME``, so its log records the modules it
    really imported: the independent check of the rules' derived source inputs.
    """
    workdir = tmp_path_factory.mktemp("tiny")
    start = time.monotonic()
    proc = snakemake("--cores", "2", "--directory", str(workdir), "--configfile", str(TINY),
                     env={"PYTHONPROFILEIMPORTTIME": "1"})
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


# -- rebuilds: rule source inputs derived from the import graph (rules/common.smk) ------------

SRC = ROOT / "src" / "speckleml"
#: A sample of modules to edit: figures modules, shared fitting and physics, a study's model.
REBUILD_SAMPLE = ["clustering/figures.py", "shear/figures.py", "fitting.py", "scattering.py",
                  "clustering/model.py", "dynamics/training.py"]
#: Rules that train or simulate: a figure edit must never re-plan them.
EXPENSIVE = re.compile(r"(train|simulate|dataset|chunk|sweep_level|speckle)")


def dry_run_jobs(output: str) -> list[dict]:
    """Jobs of a dry run's listing: rule, input files, log and reason of each."""
    jobs, job = [], None
    for line in output.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if match:
            job = {"rule": match.group(1), "input": [], "output": [], "log": None, "reason": ""}
            jobs.append(job)
        elif job is not None and ":" in line:
            key, _, value = line.strip().partition(": ")
            if key in ("input", "output"):
                job[key] = [v.strip() for v in value.split(",")]
            elif key in ("log", "reason"):
                job[key] = value.strip()
    return [j for j in jobs if j["rule"] != "all"]


def imported_modules(log: Path) -> set[str]:
    """speckleml modules a stage imported, from its PYTHONPROFILEIMPORTTIME lines."""
    names = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name.startswith("speckleml"):
                names.add(name)
    return names


def module_file(name: str) -> str | None:
    base = SRC.joinpath(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return str(path.relative_to(SRC))
    return None


@pytest.fixture(scope="session")
def rebuild_tree(tiny_run, tmp_path_factory):
    """A copy of the workflow and of the built tiny results, mtimes kept, to edit safely."""
    workdir, _ = tiny_run
    base = tmp_path_factory.mktemp("rebuild")
    repo, work = base / "repo", base / "work"
    repo.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    for folder in ("rules", "src", "profiles", "report", "envs"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(workdir / "results", work / "results", symlinks=True)
    proc = snakemake("-n", "--forceall", "--directory", str(work), "--configfile", str(TINY),
                     snakefile=repo / "Snakefile")
    assert proc.returncode == 0, proc.stderr
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    src = repo / "src" / "speckleml"
    for job in jobs:
        job["sources"] = {str(Path(f).relative_to(src)) for f in job["input"] if f.startswith(str(src))}
        log = workdir / job["log"] if job["log"] else None
        job["imported"] = ({module_file(m) for m in imported_modules(log)} - {None}
                           if log and log.exists() else None)
    return repo, work, jobs


def _replanned(repo, work, module):
    """Jobs a dry run re-plans, and why, after ``module`` is edited (its mtime moved on)."""
    path = repo / "src" / "speckleml" / module
    stat = path.stat()
    os.utime(path, (stat.st_atime, time.time() + 10))
    try:
        proc = snakemake("-n", "--rerun-triggers", "mtime", "--directory", str(work), "--configfile", str(TINY),
                         snakefile=repo / "Snakefile")
    finally:
        os.utime(path, (stat.st_atime, stat.st_mtime))
    assert proc.returncode == 0, proc.stderr
    return dry_run_jobs(proc.stdout + proc.stderr)


@pytest.mark.slow
def test_source_inputs_cover_every_module_a_stage_imports(rebuild_tree):
    """No stale result: each stage's derived inputs hold every module it imported when it ran."""
    _, _, jobs = rebuild_tree
    checked = 0
    for job in jobs:
        if job["imported"]:
            missing = job["imported"] - job["sources"]
            assert not missing, f"{job['rule']} imported {sorted(missing)} but does not depend on them"
            checked += 1
    assert checked >= 30, f"only {checked} jobs had import records"


@pytest.mark.slow
def test_unedited_tree_plans_nothing(rebuild_tree):
    repo, work, _ = rebuild_tree
    proc = snakemake("-n", "--rerun-triggers", "mtime", "--directory", str(work), "--configfile", str(TINY),
                     snakefile=repo / "Snakefile")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("module", REBUILD_SAMPLE)
def test_editing_a_module_replans_exactly_the_stages_that_run_it(rebuild_tree, module):
    """Snakemake names one reason per job, so a job that also depends on a re-planned job is
    listed as "updated by another job": the check is on the whole re-planned set, which must be
    the stages whose code includes ``module`` plus everything downstream of them."""
    repo, work, jobs = rebuild_tree
    key = lambda job: (job["rule"], job["log"])  # noqa: E731
    planned = {key(j) for j in _replanned(repo, work, module) if j["rule"] != "all"}
    expected = {key(j) for j in jobs if module in j["sources"]}
    ran_it = {key(j) for j in jobs if j["imported"] and module in j["imported"]}
    assert expected, f"no stage depends on {module}"
    assert ran_it <= expected, f"stages that imported {module} do not depend on it: {sorted(ran_it - expected)}"
    downstream = set(expected)
    while True:  # close over the DAG: jobs that read an output of a re-planned job
        outputs = {o for j in jobs if key(j) in downstream for o in j["output"]}
        more = {key(j) for j in jobs if outputs & set(j["input"])} - downstream
        if not more:
            break
        downstream |= more
    assert planned == downstream
    if "figures" in module:
        assert not [rule for rule, _ in planned if EXPENSIVE.search(rule)], planned
