"""Loads every fixture module under tests/fixtures/ as a pytest plugin, so each part of the suite
(simulators, Azurite, Keeper, ...) owns its fixtures in its own file; and gives unit tests a tighter
time limit than the suite's default (pyproject.toml); puts the modules that mostly wait in one load
group; and lets Python keep the bytecode it compiles.
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


#: Modules whose tests mostly wait on real deadlines and retries rather than compute: one load group, so
#: under xdist they run one after another on one worker and their waits overlap the CPU-bound tests
#: instead of each other (docs/benchmarks.md, "Test suite").
WAITING_MODULES = frozenset(
    {
        "test_function_app_tenants",
        "test_function_secrets",
        "test_network_faults",
        "test_onepassword_prefetch",
        "test_retry_policy",
        "test_secret_fault_paths",
        "test_token_rotation",
    }
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unit = TESTS / "unit"
    for item in items:
        if item.path.is_relative_to(unit) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))
        if item.path.stem in WAITING_MODULES:
            item.add_marker(pytest.mark.xdist_group("waits"))
