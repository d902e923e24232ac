"""Shared fixtures: repository paths, real-data locations (skipped when absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("SPECKLEML_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))

# Keep tests deterministic and light on the 2 CI cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real``; tests using it skip when it is absent."""
    if not REAL.is_dir():
        pytest.skip(f"real data not available at {REAL}")
    return REAL


def real_file(*parts: str) -> Path:
    """Path to one real data file, or skip the test when it is absent."""
    path = REAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data file not available: {path}")
    return path


def run_cli(*args: str, check: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``speckleml ARGS`` in a subprocess (as a rule would) and capture its output."""
    exe = shutil.which("speckleml") or str(Path(sys.executable).with_name("speckleml"))
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"speckleml {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc
