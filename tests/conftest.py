"""Loads every fixture module under tests/fixtures/ as a pytest plugin, so each part of the suite
(simulators, Azurite, Keeper, ...) owns its fixtures in its own file; and gives unit tests a tighter
time limit than the suite's default (pyproject.toml); and lets Python keep the bytecode it compiles.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

# With PYTHONDONTWRITEBYTECODE set (some shells and sandboxes set it), every worker would compile and
# assertion-rewrite every test module again on each run, and every process a test starts would compile our
# modules again: seconds of CPU per process (docs/benchmarks.md, "Test suite"). __pycache__ is ignored by git.
sys.dont_write_bytecode = False

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (TESTS / "fixtures").glob("*.py") if p.stem != "__init__"
)

#: Seconds a unit test may take: none waits on a deadline or an outside service (the slowest, processes
#: racing on one checkpoint file, takes about a second), so one that takes this long hangs.
UNIT_TIMEOUT = 30


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unit = TESTS / "unit"
    for item in items:
        if item.path.is_relative_to(unit) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))
