"""A throwaway one-node SLURM cluster on localhost, for testing the SLURM executor profile.

`LocalSlurmCluster` writes a private ``slurm.conf`` (template ``slurm.conf.in`` beside this
file) into a directory of its own, starts ``munged``, ``slurmctld`` and ``slurmd`` in the
foreground as child processes, waits until the node is idle and, on `stop`, cancels what is
still queued and terminates exactly the processes it started. Clients find the cluster
through ``SLURM_CONF`` (see `LocalSlurmCluster.env`). Needs root and the Debian packages
``slurm-wlm`` and ``munge``; `ensure_slurm_installed` installs them with apt-get.

Run it by hand to try the profile (Ctrl-C stops the daemons)::

    sudo .venv/bin/python tests/slurm/local_cluster.py
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES = ("slurm-wlm", "munge")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
# Character devices that stand in for GPUs (see `LocalSlurmCluster.gpus`).
PLACEHOLDER_GPU_DEVICES = ("/dev/null", "/dev/zero")
# Daemons live in sbin, which is not always on a non-login PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here; the message says why (a skip reason)."""


def which(program: str) -> str | None:
    """Path of `program` on PATH or in the sbin directories, or None."""
    return shutil.which(program, path=SEARCH_PATH)


def missing_programs() -> list[str]:
    """SLURM and munge programs that are not installed."""
    return [p for p in CLIENTS + DAEMONS if which(p) is None]


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_slurm_installed(timeout: float = 900.0) -> None:
    """Install ``slurm-wlm`` and ``munge`` with apt-get when any of their programs is missing.

    Parameters
    ----------
    timeout : float
        Seconds allowed for ``apt-get update`` and ``apt-get install`` together.

    Raises
    ------
    SlurmUnavailable
        Not root, no apt-get, the install failed or timed out, or programs are still missing.
    """
    if not missing_programs():
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM not installed ({', '.join(missing_programs())} missing) "
                               "and installing it needs root")
    apt = which("apt-get")
    if apt is None:
        raise SlurmUnavailable("SLURM not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    deadline = time.monotonic() + timeout
    # Wait for a dpkg lock held by someone else rather than failing at once.
    lock = ("-o", "DPkg::Lock::Timeout=120")
    commands = ([apt, *lock, "update", "-q"],
                [apt, *lock, "install", "-y", "-q", "--no-install-recommends", *PACKAGES])
    for command in commands:
        left = deadline - time.monotonic()
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env,
                                  stdin=subprocess.DEVNULL, timeout=max(left, 1))
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"`{' '.join(command)}` timed out after {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise SlurmUnavailable(f"`{' '.join(command)}` failed:\n{_tail(proc.stdout + proc.stderr)}")
    if missing_programs():
        raise SlurmUnavailable(f"still missing after apt-get install: {', '.join(missing_programs())}")


def _terminate_with_parent() -> None:
    """In a daemon child: get SIGTERM when the process that started it dies (even by SIGKILL)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def short_hostname() -> str:
    """The name slurmd registers under (``hostname -s``)."""
    return socket.gethostname().split(".")[0]


@dataclass
class LocalSlurmCluster:
    """One node (`cpus` CPUs, `gpus` placeholder GPUs), partition ``debug``, accounting off.

    Parameters
    ----------
    directory : Path
        Empty directory for the config, state, logs and the munge socket.
    cpus : int
        CPUs of the node.
    gpus : int
        Placeholder GPUs (GRES ``gpu`` on /dev/null and /dev/zero, at most 2): lets
        ``--gpus=1`` requests schedule on a machine without GPUs.
    real_memory_mb : int
        Memory the node advertises; requests must fit, nothing is enforced (no cgroups).
    """

    directory: Path
    cpus: int = 2
    gpus: int = 2
    real_memory_mb: int = 256_000
    node: str = field(default_factory=short_hostname)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise ValueError(f"cpus must be >= 1, got {self.cpus}")
        if not 0 <= self.gpus <= len(PLACEHOLDER_GPU_DEVICES):
            raise ValueError(f"gpus must be in 0..{len(PLACEHOLDER_GPU_DEVICES)}, got {self.gpus}")

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM clients (and the jobs they submit) that targets this cluster."""
        path = os.pathsep.join([str(self.directory / "bin"), SEARCH_PATH])
        return dict(os.environ, SLURM_CONF=str(self.conf), PATH=path)

    def write_config(self) -> None:
        """Write slurm.conf, gres.conf and a munge key into `directory`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # The munge socket must be reachable by every client (munged warns otherwise).
        self.directory.chmod(0o755)
        for sub in ("ctld", "spool", "munge"):
            (self.directory / sub).mkdir(exist_ok=True)
        template = string.Template((HERE / "slurm.conf.in").read_text())
        self.conf.write_text(template.substitute(
            node=self.node, state=self.directory, ctld_port=free_port(), slurmd_port=free_port(),
            munge_socket=self.directory / "munge" / "munge.sock", cpus=self.cpus,
            gres=f"Gres=gpu:{self.gpus}" if self.gpus else "", real_memory=self.real_memory_mb))
        # slurmd reads gres.conf from the directory of slurm.conf. A GPU needs a character
        # device; any will do since nothing is bound to it (task/none).
        devices = PLACEHOLDER_GPU_DEVICES[: self.gpus]
        (self.directory / "gres.conf").write_text("AutoDetect=off\n" + "".join(
            f"NodeName={self.node} Name=gpu File={device}\n" for device in devices))
        self._write_srun_shim()
        key = self.directory / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)

    def _write_srun_shim(self) -> None:
        """Put an ``srun`` first on `env`'s PATH that restores ``SLURM_CONF``.

        Inside a job the slurm-jobstep executor starts ``srun`` with every ``SLURM_*``
        variable removed, so srun looks for /etc/slurm/slurm.conf, which a real cluster has
        and this private one must not touch.
        """
        shim = self.directory / "bin" / "srun"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{which("srun")}" "$@"\n')
        shim.chmod(0o755)

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.directory / f"{name}.out", "wb")
        self.processes[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, preexec_fn=_terminate_with_parent)
        log.close()

    def logs(self) -> str:
        """Tails of the daemon logs (the captured stderr where no log file was opened)."""
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            candidates = [self.directory / f"{name}.log", self.directory / f"{name}.out"]
            path = next((c for c in candidates if c.exists()), None)
            if path is not None:
                parts.append(f"== {path.name}\n{_tail(path.read_text(errors='replace'))}")
        return "\n".join(parts)

    def run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(list(args), capture_output=True, text=True, env=self.env,
                              timeout=timeout)

    def node_state(self) -> str:
        """State of the node as sinfo reports it ("" when the controller does not answer)."""
        try:
            proc = self.run("sinfo", "--noheader", "--nodes", self.node, "--format=%T", timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def start(self, timeout: float = 90.0) -> None:
        """Write the config, start munged, slurmctld and slurmd, wait until the node is idle.

        Raises
        ------
        SlurmUnavailable
            A daemon exited or the node was not idle within `timeout` seconds (the
            daemons already started are stopped again).
        """
        self.write_config()
        munge = self.directory / "munge"
        try:
            self._spawn("munged", [which("munged"), "--foreground", "--force",
                                   f"--socket={munge / 'munge.sock'}", f"--key-file={munge / 'munge.key'}",
                                   f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
                                   f"--log-file={self.directory / 'munged.log'}"])
            self._wait_for(lambda: (munge / "munge.sock").exists(), "munged socket", 20)
            self._spawn("slurmctld", [which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._spawn("slurmd", [which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
            self._wait_for(self._node_idle, f"node {self.node} idle", timeout)
        except Exception:
            logs = self.logs()
            self.stop()
            raise SlurmUnavailable(f"local SLURM cluster did not start:\n{logs}") from None

    def _node_idle(self) -> bool:
        """True once the node is idle; raises when slurmctld rejected it (no use waiting)."""
        state = self.node_state()
        if "drain" in state or "inval" in state:
            raise SlurmUnavailable(f"node {self.node} is {state}: its slurm.conf line does not fit")
        return state == "idle"

    def _wait_for(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [name for name, proc in self.processes.items() if proc.poll() is not None]
            if dead:
                raise SlurmUnavailable(f"{', '.join(dead)} exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.5)

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller remembers, finished ones too (for `MinJobAge` seconds).

        Returns
        -------
        list of dict
            Keys ``id``, ``name``, ``comment``, ``state`` and ``tres_per_job`` (e.g.
            ``gres:gpu:1`` for ``sbatch --gpus=1``; ``N/A`` when none).
        """
        fields = ("id", "name", "comment", "state", "tres_per_job")
        columns = ("JobID", "Name", "Comment", "State", "tres-per-job")
        proc = self.run("squeue", "--states=all", "--noheader",
                        "--Format=" + ",".join(f"{c}:|" for c in columns))
        if proc.returncode != 0:
            raise RuntimeError(f"squeue failed: {proc.stderr.strip()}")
        rows = [line.split("|") for line in proc.stdout.splitlines() if line.strip()]
        return [dict(zip(fields, (v.strip() for v in row))) for row in rows]

    def stop(self) -> None:
        """Cancel queued or running jobs, then terminate the daemons this object started."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                active = [j["id"] for j in self.jobs() if j["state"] in ("PENDING", "RUNNING")]
                if active:
                    self.run("scancel", *active)
                    time.sleep(2)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        # Reverse start order: slurmd, slurmctld, then munged (which they authenticate with).
        for name in reversed(list(self.processes)):
            proc = self.processes.pop(name)
            if proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def main() -> int:
    """Start a cluster in a temporary directory and keep it up until Ctrl-C."""
    ensure_slurm_installed()
    cluster = LocalSlurmCluster(Path(tempfile.mkdtemp(prefix="speckleml-slurm-")))
    cluster.start()
    print(f"SLURM is up: export SLURM_CONF={cluster.conf}   (Ctrl-C stops it)", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
