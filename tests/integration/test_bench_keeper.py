"""Smoke test of the Keeper benchmark: the same code path on a small backlog; delivery, not timings."""

from __future__ import annotations

from bench.keeper_bench import main


def test_keeper_bench_drains_every_event_in_each_measurement() -> None:
    figures = main(["--events", "2000", "--repeat", "1"])
    assert {name: figures[name]["events"] for name in ("baseline", "source", "source+rows")} == {
        "baseline": 2000,
        "source": 2000,
        "source+rows": 2000,
    }
    assert all(figures[name]["events_per_s"] > 0 for name in ("baseline", "source", "source+rows"))
    assert 0 < figures["largest_position_bytes"] < 64 * 1024 // 2
