"""The 1Password benchmark's code path on a tiny backlog: the drain and the bare-SDK upload each run in
their own process against the simulators, every event arrives exactly once, and the report carries
the figures docs/benchmarks.md quotes. No timing is asserted: that is what the benchmark is for.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from auditsync.tables import HEALTH_TABLE, ONEPASSWORD_TABLE
from bench.__main__ import benchmarks
from bench.__main__ import run as run_bench
from bench.measure import ROOT, child_env
from bench.onepassword_backlog import Backlog
from bench.onepassword_bench import measure_size
from bench.onepassword_sims import BenchSims
from simulators.onepassword_data import EVENT_TYPES

FIGURES = (
    "events",
    "events_per_s",
    "seconds",
    "cpu_seconds",
    "sim_cpu_seconds",
    "dce_requests",
    "heartbeat_requests",
    "mean_body_bytes",
    "oversize_bodies",
    "rss_start_mb",
    "peak_rss_mb",
    "delivered",
    "duplicates",
    "missing",
    "exactly_once",
)


def test_small_backlog_is_drained_exactly_once_and_reported() -> None:
    backlog = Backlog.ending_now(2000)
    seen: dict[str, Any] = {}

    def inspect(sims: BenchSims) -> None:
        rows = sims.ingestion.rows(ONEPASSWORD_TABLE)
        seen["uuids"] = Counter(r["uuid_s"] for r in rows if r["log_source"] != "healthevents")
        seen["health_sources"] = sorted(r["log_source"] for r in rows if r["log_source"] == "healthevents")
        seen["by_type"] = Counter(r["log_source"] for r in rows if r["log_source"] != "healthevents")
        seen["sent"] = {e["uuid"] for t in EVENT_TYPES for e in sims.onepassword.events(t)}
        seen["health_rows"] = len(sims.ingestion.rows(HEALTH_TABLE))
        seen["undeclared"] = dict(sims.ingestion.undeclared)
        seen["type_errors"] = list(sims.ingestion.type_errors)

    result = measure_size(backlog, sdk=True, keep_rows=True, inspect=inspect)

    assert len(seen["sent"]) == 2000
    assert set(seen["uuids"]) == seen["sent"]
    assert max(seen["uuids"].values()) == 1
    assert seen["by_type"] == {"auditevents": 667, "itemusages": 667, "signinattempts": 666}
    assert seen["health_sources"] == ["healthevents"] * 3
    assert seen["health_rows"] == 3
    assert seen["undeclared"] == {} and seen["type_errors"] == []

    report = result.as_dict()
    assert set(FIGURES) <= set(report["drain"]) and set(FIGURES) <= set(report["sdk"])
    drain, sdk = report["drain"], report["sdk"]
    assert drain["events"] == drain["delivered"] == 2000 and drain["exactly_once"]
    assert sdk["events"] == sdk["delivered"] == 2000 and sdk["exactly_once"]
    assert drain["heartbeat_requests"] == 2  # AuditSyncHealth_CL and the healthevents rows
    assert drain["dce_requests"] >= 3 + 2  # at least one upload per stream, plus the heartbeat
    assert drain["onepassword_requests"] >= 4  # introspect and a page per stream
    assert drain["mean_body_bytes"] > 0 and sdk["mean_body_bytes"] > 0
    assert 0 < drain["rss_start_mb"] <= drain["peak_rss_mb"]
    assert report["ratio"] == drain["events_per_s"] / sdk["events_per_s"]
    assert set(report["streams"]) == {f"onepassword/{t}" for t in EVENT_TYPES}
    assert {s["status"] for s in report["streams"].values()} == {"ok"}


def test_child_peak_rss_is_its_own_not_the_parents() -> None:
    ballast = b"x" * (300 * 2**20)  # a parent as big as one holding a large backlog
    code = "from bench.measure import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env({}), cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert len(ballast) > 0
    assert float(out.stdout) < 100


def test_benchmarks_are_found_by_module_name_and_unknown_names_refused() -> None:
    assert benchmarks()["onepassword"] == "bench.onepassword_bench"
    assert run_bench(["no-such-benchmark"]) == 2


def test_a_run_that_lost_or_repeated_events_gives_no_figures() -> None:
    from bench.onepassword_bench import Measurement, _delivered

    good = Measurement(10, 1.0, 0.5, 30.0, 60.0, 3, 2, 1000.0, 0, 10, 0, 0, 0.2)
    assert _delivered(good, "drain") is good
    for broken in (replace(good, missing=1, delivered=9), replace(good, duplicates=1, delivered=11)):
        with pytest.raises(RuntimeError, match="exactly once"):
            _delivered(broken, "drain")
