"""Smoke test of the idle-run benchmark: the real product, table checkpoints on Azurite, four streams;
the first run delivers a small backlog exactly once, the second finds nothing and its requests are
counted per service. The count itself is the benchmark's figure, not asserted here beyond its shape."""

from __future__ import annotations

import pytest

from bench.idle_bench import main

# The benchmarks' smoke tests one after another on one worker: each drives a benchmark at full CPU.
pytestmark = pytest.mark.xdist_group("bench")

SERVICES = {"1Password", "Keeper", "Logs Ingestion", "Table Storage (checkpoints)", "managed identity"}


def test_idle_run_requests_are_counted_per_service_after_an_exactly_once_catch_up() -> None:
    result = main([])
    assert result["streams"] == 4
    assert result["events"] == 4 * 20
    assert set(result["idle_statuses"].values()) == {"idle"}
    assert set(result["first_run"]) == SERVICES
    assert {"1Password", "Keeper", "Table Storage (checkpoints)"} <= set(result["idle_run"]) <= SERVICES
    assert result["idle_requests"] == sum(result["idle_run"].values())
    # A run with four streams reads at least one page per stream and its four checkpoints.
    assert result["idle_run"]["1Password"] >= 3 and result["idle_run"]["Keeper"] >= 1
    assert result["idle_run"]["Table Storage (checkpoints)"] >= 4
