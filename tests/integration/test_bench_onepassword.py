"""The 1Password benchmarks' code path on a tiny backlog: the drain and the same-work baseline each run
in their own process against the simulators, every event arrives exactly once in both, no body is
over the service's limit, and the report carries the figures docs/benchmarks.md quotes. No timing is
asserted: that is what the benchmarks are for.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from auditsync.tables import HEALTH_TABLE, ONEPASSWORD_TABLE
from bench.__main__ import benchmarks
from bench.__main__ import run as run_bench
from bench.measure import ROOT, child_env
from bench.onepassword_backlog import Backlog
from bench.onepassword_bench import Measurement, _delivered, measure_size
from bench.onepassword_sims import BenchSims, Network
from bench.onepassword_wan_bench import main as wan_main
from bench.profile import Profile
from simulators.onepassword_data import EVENT_TYPES

# The benchmarks' smoke tests one after another on one worker: each drives a benchmark at full CPU.
pytestmark = pytest.mark.xdist_group("bench")

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
    "onepassword_requests",
    "throttled",
)


def test_small_backlog_is_drained_exactly_once_by_drain_and_baseline_in_pairs(tmp_path: Path) -> None:
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

    result = measure_size(backlog, repeat=2, keep_rows=True, inspect=inspect, profile_dir=tmp_path)

    assert len(seen["sent"]) == 2000
    assert set(seen["uuids"]) == seen["sent"]
    assert max(seen["uuids"].values()) == 1
    assert seen["by_type"] == {"auditevents": 667, "itemusages": 667, "signinattempts": 666}
    assert seen["health_sources"] == ["healthevents"] * 3
    assert seen["health_rows"] == 3
    assert seen["undeclared"] == {} and seen["type_errors"] == []

    report = result.as_dict()
    assert len(report["runs"]) == 2
    for run in report["runs"]:
        drain, baseline = run["drain"], run["baseline"]
        assert set(FIGURES) <= set(drain) and set(FIGURES) <= set(baseline)
        assert drain["events"] == drain["delivered"] == 2000 and drain["exactly_once"]
        assert baseline["events"] == baseline["delivered"] == 2000 and baseline["exactly_once"]
        assert drain["oversize_bodies"] == baseline["oversize_bodies"] == 0  # both within 1 MiB
        assert drain["heartbeat_requests"] == 2 and baseline["heartbeat_requests"] == 0
        assert drain["onepassword_requests"] == 4  # introspect and one page per stream
        assert baseline["onepassword_requests"] == 3
        assert run["ratio"] == drain["events_per_s"] / baseline["events_per_s"]
        assert run["cpu_ratio"] == baseline["cpu_seconds"] / drain["cpu_seconds"]
        assert 0 < drain["rss_start_mb"] <= drain["peak_rss_mb"]
    ratios = sorted(run["ratio"] for run in report["runs"])
    assert report["ratio"]["low"] == ratios[0] and report["ratio"]["high"] == ratios[-1]
    assert report["ceiling_events_per_s"] is None  # loopback: no rate limits, no ceiling
    assert set(report["streams"]) == {f"onepassword/{t}" for t in EVENT_TYPES}
    assert {s["status"] for s in report["streams"].values()} == {"ok"}
    # One more drain ran under py-spy: its raw stacks are kept and summarised by area.
    assert (tmp_path / "onepassword-loopback-2000.txt").stat().st_size > 0
    assert "samples of the stream threads, by area:" in report["profile"][0]


def test_wan_run_applies_latency_and_rate_limits_and_prints_the_ceiling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = wan_main(
        [
            "--sizes",
            "1500",
            "--repeat",
            "1",
            "--no-profile",
            "--page-latency",
            "0.02",
            "--ingest-latency",
            "0.01",
        ]
    )
    (size,) = out["sizes"]
    assert size["network"] == {
        "page_latency": 0.02,
        "ingest_latency": 0.01,
        "rate_limits": True,
        "page_bandwidth": 0.0,
        "cursor_last": False,
    }
    assert size["ceiling_events_per_s"] == 10_000
    (run,) = size["runs"]
    assert run["drain"]["exactly_once"] and run["baseline"]["exactly_once"]
    # 4 requests at 20 ms each, one stream after another at least: latency was applied.
    assert run["drain"]["seconds"] > 0.02 * 2
    assert size["ceiling_ratio"]["median"] == run["drain"]["events_per_s"] / 10_000
    printed = capsys.readouterr().out
    assert "ceiling 10,000 events/s" in printed and "drain/ceiling" in printed


def test_child_peak_rss_is_its_own_not_the_parents() -> None:
    ballast = b"x" * (300 * 2**20)  # a parent as big as one holding a large backlog
    code = "from bench.measure import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env({}), cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert len(ballast) > 0
    assert float(out.stdout) < 100


def test_benchmarks_are_found_by_module_name_and_unknown_names_refused() -> None:
    assert set(benchmarks()) == {
        "idle",
        "import",
        "keeper",
        "memory",
        "onepassword",
        "onepassword_wan",
        "tenants",
    }
    assert run_bench(["no-such-benchmark"]) == 2


def test_a_run_that_lost_or_repeated_events_gives_no_figures() -> None:
    good = Measurement(10, 1.0, 0.5, 30.0, 60.0, 3, 2, 1000.0, 0, 10, 0, 0, 0.2)
    assert _delivered(good, "drain") is good
    for broken in (replace(good, missing=1, delivered=9), replace(good, duplicates=1, delivered=11)):
        with pytest.raises(RuntimeError, match="exactly once"):
            _delivered(broken, "drain")


def test_network_ceiling_is_the_per_minute_limit_times_the_page() -> None:
    assert Network().ceiling_events_per_s() is None
    assert Network(0.3, 0.1, rate_limits=True).ceiling_events_per_s() == 10_000
    assert round(Network.sustained_ceiling_events_per_s()) == 8_333


def test_profile_samples_are_sorted_into_areas_by_their_stack(tmp_path: Path) -> None:
    stream = "thread (1): onepassword_0;_worker (x.py:1);_run_stream (auditsync/runner.py:207)"
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f"{stream};OnePasswordStream.pages (auditsync/sources/onepassword.py:190);SocketIO.readinto (socket.py:706) 6\n"
        f"{stream};LogsIngestionSink.send (auditsync/sinks/logs_ingestion.py:128);encode_rows "
        "(auditsync/sinks/logs_ingestion.py:61);JSONEncoder.iterencode (json/encoder.py:258) 3\n"
        f"{stream};HttpClient.request (auditsync/http.py:1);DeadlineRetryPolicy.sleep (auditsync/retry.py:1);sleep (time:1) 1\n"
        "thread (2): MainThread;<module> (function_app.py:1);_find_and_load (<frozen importlib._bootstrap>:1) 50\n",
        encoding="utf-8",
    )
    profile = Profile.read(raw)
    assert profile.samples == 10  # the import outside the stream threads does not count
    assert profile.areas == {
        "waiting: vendor API (page fetch)": 6,
        "JSON encoding (rows)": 3,
        "waiting: retry backoff (429/5xx)": 1,
    }
