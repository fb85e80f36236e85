"""Smoke test of the memory benchmark on a small backlog: the watched drain delivers every event exactly once
(or the benchmark refuses it), the peak picture and the per-page costs are there, and encoded rows hold
about their own bytes (orjson's rounded-up buffers are not kept). No figure is asserted beyond that."""

from __future__ import annotations

import pytest

from bench.memory_bench import main
from simulators.onepassword_data import EVENT_TYPES

# The benchmarks' smoke tests one after another on one worker: each drives a benchmark at full CPU.
pytestmark = pytest.mark.xdist_group("bench")


def test_the_drain_is_watched_at_its_peak_and_a_page_is_costed_stage_by_stage() -> None:
    result = main(["--events", "3000"])
    run = result["runs"]["default"]
    assert run["peak_rss_mb"] >= run["rss_start_mb"] > 0
    assert run["threads_at_peak"] >= 2 and run["arenas_at_peak"] >= 1
    assert 0 <= run["malloc_free_mb_at_peak"] <= run["malloc_system_mb_at_peak"]
    assert (
        result["imports"]["sdks_and_ours_mb"]
        >= result["imports"]["sdks_mb"]
        > result["imports"]["interpreter_mb"]
    )
    assert set(result["pages"]) == set(EVENT_TYPES)
    for cost in result["pages"].values():
        stages = {s["stage"]: s for s in cost["stages"]}
        assert list(stages) == ["body", "events", "rows", "encoded rows", "gzip bodies"]
        assert stages["events"]["count"] == 1000
        encoded = stages["encoded rows"]
        assert encoded["mb"] < 1.3 * encoded["count"] / 2**20  # the rows' bytes, not orjson's buffers
