"""The tiny DAG through the SLURM executor and profiles/slurm on a one-node localhost cluster.

Skips, with the reason, when SLURM cannot be installed or started (see `slurm_cluster`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from local_cluster import LocalSlurmCluster, SlurmUnavailable, ensure_slurm_installed
from speckleml.stores import read_frames

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "config" / "tiny.yaml"
PROFILE = ROOT / "profiles" / "slurm"
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 90
RUN_TIMEOUT_S = 1200
# The whole tiny DAG (every study of tiny.yaml): 8 min 19 s here with the machine shared.
# Each SLURM job costs ~10-20 s over a local run (two snakemake start-ups per job, status
# polls that back off by 10 s); SPECKLEML_SLURM_STUDIES=xpcs,shear runs a subset.
SLURM_STUDIES = ["all"]
# What a cluster without accounting needs: squeue status checks (sacct would wait forever)
# and no account (plugin 2.8 ignores the flag, fails to guess one and submits without).
# A quick first status check; the plugin then polls 1 s after a job finished, +10 s per
# poll while none does. Jobs and threads fit the node's 2 CPUs.
TEST_CLUSTER_ARGS = ("--slurm-no-account", "--slurm-status-command", "squeue",
                     "--slurm-init-seconds-before-status-checks", "1",
                     "--slurm-keep-successful-logs",
                     "--jobs", "2", "--max-threads", "2", "--latency-wait", "5")


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running `LocalSlurmCluster`; only the daemons it started are stopped afterwards."""
    if os.environ.get("SPECKLEML_SKIP_SLURM"):
        pytest.skip("SPECKLEML_SKIP_SLURM is set")
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd (and installing SLURM) needs root")
    try:
        ensure_slurm_installed(timeout=INSTALL_TIMEOUT_S)
    except SlurmUnavailable as exc:
        pytest.skip(f"SLURM unavailable: {exc}")
    # Not pytest's tmp_path: its base directory is private (0700) and munged wants every
    # directory above its socket traversable.
    cluster = LocalSlurmCluster(Path(tempfile.mkdtemp(prefix="speckleml-slurm-")))
    try:
        cluster.start(timeout=START_TIMEOUT_S)
    except SlurmUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)


def studies_override() -> tuple[str, ...]:
    """``--config studies=[...]`` for the studies this test runs (none: tiny.yaml's own)."""
    chosen = os.environ.get("SPECKLEML_SLURM_STUDIES", ",".join(SLURM_STUDIES))
    if chosen == "all":
        return ()
    studies = [s.strip() for s in chosen.split(",") if s.strip()]
    return ("--config", "studies=[" + ",".join(f'"{s}"' for s in studies) + "]")


def snakemake(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with the venv's bin first on PATH (jobs inherit it)."""
    env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def planned_remote_jobs(dry_run_output: str) -> Counter:
    """{rule: job count} of the jobs a dry run plans to submit.

    ``localrule`` jobs run on the submit host, and so does the target rule ``all``: it has no
    command, snakemake just checks its inputs.
    """
    rules = re.findall(r"^rule (\w+):$", dry_run_output, re.MULTILINE)
    return Counter(rule for rule in rules if rule != "all")


def submitted_ids(run_output: str) -> set[str]:
    """SLURM job ids that snakemake reports having submitted with sbatch."""
    return set(re.findall(r"has been submitted with SLURM jobid (\d+)", run_output))


def rule_of(comment: str) -> str:
    """Rule name from the comment the executor gives each SLURM job."""
    match = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", comment)
    assert match, f"unexpected SLURM job comment {comment!r}"
    return match.group(1)


def gpu_rules() -> set[str]:
    """Rules that profiles/slurm gives a GPU."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return {rule for rule, res in profile.get("set-resources", {}).items() if res.get("gpu")}


def failure_report(proc: subprocess.CompletedProcess, workdir: Path, cluster: LocalSlurmCluster) -> str:
    logs = [f"== {p}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(workdir.glob("results/logs/**/*.log")) + sorted(workdir.glob(".snakemake/slurm_logs/**/*.log"))]
    return "\n".join([f"snakemake exit {proc.returncode}", proc.stderr[-6000:], *logs, cluster.logs()])


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_dag_runs_through_sbatch(slurm_cluster, tmp_path):
    workdir = tmp_path / "run"
    common = ("--directory", str(workdir), "--configfile", str(TINY), *studies_override())
    dry = snakemake("-n", *common, env=slurm_cluster.env, timeout=300)
    assert dry.returncode == 0, dry.stderr[-4000:]
    planned = planned_remote_jobs(dry.stdout + dry.stderr)
    assert planned, "the tiny DAG plans no jobs to submit"

    start = time.monotonic()
    try:
        proc = snakemake("--profile", str(PROFILE), *TEST_CLUSTER_ARGS, *common,
                         env=slurm_cluster.env, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"snakemake under SLURM ran past {RUN_TIMEOUT_S} s\n{slurm_cluster.logs()}")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, failure_report(proc, workdir, slurm_cluster)

    # Every planned job ran as its own SLURM job, submitted by this run, and completed.
    jobs = slurm_cluster.jobs()
    assert {j["id"] for j in jobs} == submitted_ids(proc.stdout + proc.stderr)
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    assert len({j["name"] for j in jobs}) == 1, "jobs from more than one snakemake run"
    assert Counter(rule_of(j["comment"]) for j in jobs) == planned
    # Each job left its sbatch log (kept by --slurm-keep-successful-logs).
    slurm_logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in slurm_logs} == {j["id"] for j in jobs}
    # The profile's GPU rules asked SLURM for one GPU (sbatch --gpus=1), the others for none.
    assert gpu_rules() & set(planned), "the studies run here have no GPU rule to check"
    for job in jobs:
        expected = "gres:gpu:1" if rule_of(job["comment"]) in gpu_rules() else "N/A"
        assert job["tres_per_job"] == expected, job

    # The outputs are there and valid: nothing left to do, and the frames store reads back.
    again = snakemake("-n", *common, env=slurm_cluster.env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    tiny = yaml.safe_load(TINY.read_text())
    frames = read_frames(workdir / "results" / "xpcs" / "frames.zarr")
    assert frames["frames"].shape[1] == tiny["xpcs"]["synthetic"]["frames"]
    assert frames.provenance["config"]["seed"] == tiny["seed"]
    print(f"tiny DAG through SLURM: {sum(planned.values())} jobs in {elapsed:.0f} s")
