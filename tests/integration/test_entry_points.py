"""How the commands start from a fresh clone: without their packages they say how to set up, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_python_m_auditsync_without_its_packages_says_how_to_set_up() -> None:
    """The interpreter the venv was made from, without the venv: what a newcomer's ``python3`` is."""
    base = getattr(sys, "_base_executable", sys.executable)
    probe = subprocess.run([base, "-s", "-E", "-c", "import azure.core"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip("the base interpreter has the Azure SDKs installed: nothing to prove here")
    done = subprocess.run(
        [base, "-s", "-E", "-m", "auditsync", "status"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert "./dev setup" in line and "./dev cli status" in line


@pytest.mark.parametrize("command", ["tset", "runn"])
def test_an_unknown_dev_command_fails_with_the_help(command: str) -> None:
    done = subprocess.run([str(REPO / "dev"), command], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "./dev run" in done.stderr
