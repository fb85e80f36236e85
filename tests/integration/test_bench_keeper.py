"""Smoke test of the Keeper benchmark: the same code paths on a small backlog; delivery, not timings."""

from __future__ import annotations

import pytest

from bench.keeper_bench import main

# The benchmarks' smoke tests one after another on one worker: each drives a benchmark at full CPU.
pytestmark = pytest.mark.xdist_group("bench")


def test_keeper_bench_drains_every_event_in_each_measurement() -> None:
    figures = main(
        [
            "--events",
            "2000",
            "--repeat",
            "1",
            "--wan-events",
            "1500",
            "--page-latency",
            "0.02",
            "--ingest-latency",
            "0.01",
        ]
    )
    assert {name: figures[name]["events"] for name in ("baseline", "source", "source+rows")} == {
        "baseline": 2000,
        "source": 2000,
        "source+rows": 2000,
    }
    assert all(figures[name]["events_per_s"] > 0 for name in ("baseline", "source", "source+rows"))
    assert 0 < figures["largest_position_bytes"] < 64 * 1024 // 2
    wan = figures["wan"]
    assert wan["events"] == 1500  # exactly once, or main would have raised
    assert wan["bound_events_per_s"] == 1000 / 0.02
    assert wan["bound_share"] == wan["events_per_s"] / wan["bound_events_per_s"]
    assert wan["keeper_requests"] >= 2 and wan["dce_requests"] >= 2
    assert 2 <= wan["serial_requests"] <= wan["keeper_requests"]
    assert wan["extra_requests"] == wan["serial_requests"] - 2  # 1,500 events need two pages
    assert figures["wan_sizes"] == [wan]
    assert "samples of the stream threads, by area:" in wan["profile"][0]  # one more drain under py-spy
