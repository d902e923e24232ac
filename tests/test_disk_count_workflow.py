"""disk_count rules: per-dispersity training settings reach the train commands (dry run)."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT
from test_workflow import snakemake, write_config


def train_commands(output: str) -> dict[str, str]:
    """{dispersity: shell command} of the disk_count train jobs in a dry run's printed commands."""
    commands = {}
    for line in output.splitlines():
        match = re.search(r"speckleml disk-count train results/disk_count/(mono|poly)/", line)
        if match:
            commands[match.group(1)] = line
    return commands


def option(command: str, name: str) -> str:
    return re.search(rf"{name} (\S+)", command).group(1)


@pytest.mark.parametrize("override, expected", [
    (None, {"mono": ("0.5", "8"), "poly": ("1.0", "12")}),  # config.yaml: crops for mono only
    ({"poly": {"k_range_min": 0.7, "epochs": 3}}, {"mono": ("0.5", "8"), "poly": ("0.7", "3")}),
])
def test_poly_block_overrides_the_polydisperse_training_only(tmp_path, override, expected):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())  # --directory: name the config file
    config["disk_count"].update(override or {})
    proc = snakemake("-n", "-p", "--directory", str(tmp_path), "--configfile",
                     str(write_config(tmp_path / "c.yaml", config)), "--config", 'studies=["disk_count"]', timeout=300)
    assert proc.returncode == 0, proc.stderr
    commands = train_commands(proc.stdout + proc.stderr)
    assert set(commands) == {"mono", "poly"}
    for dispersity, (k_range_min, epochs) in expected.items():
        assert option(commands[dispersity], "--k-range-min") == k_range_min
        assert option(commands[dispersity], "--epochs") == epochs
