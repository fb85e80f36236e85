"""1Password -> Logs Ingestion end to end: real SDKs over loopback sockets, simulators that behave like
the services, file checkpoints. Asserts what a SOC engineer would observe in the workspace."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from azure.identity import DefaultAzureCredential

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.runner import run_cycle
from auditsync.sinks.logs_ingestion import LogsIngestionSink
from auditsync.tables import TABLES
from simulators.clock import FakeClock
from simulators.identity import ManagedIdentitySim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import (
    event_rows,
    health,
    onepassword_env,
    settings_for,
    still,
    ticking,
    uuid_counts,
)

STREAMS = ("onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts")


def checkpoints(data_dir: Path) -> dict[str, object]:
    return {c.stream: c for c in FileCheckpointStore(data_dir / "checkpoints").list()}


def test_25000_events_over_several_runs_arrive_exactly_once(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    step = timedelta(seconds=5)
    sent = {
        "auditevents": onepassword_sim.generate("auditevents", 10_000, step=step),
        "itemusages": onepassword_sim.generate("itemusages", 8_000, step=step),
        "signinattempts": onepassword_sim.generate("signinattempts", 7_000, step=step),
    }
    token = onepassword_sim.issue_token()
    settings = settings_for(
        onepassword_env(onepassword_sim, logs_ingestion_sim, data_dir, token, RUN_TIME_BUDGET="40s")
    )

    statuses = []
    for _ in range(30):
        report = run_cycle(settings, clock=ticking(fake_clock))
        statuses.append({r.stream: r.status for r in report.reports})
        assert not report.failed, report.reports
        if all(s != "behind" for s in statuses[-1].values()):
            break
    assert len(statuses) >= 3, "the run budget should have split the backlog over several runs"
    assert any("behind" in s.values() for s in statuses)

    # Item usages arrive late: timestamps from an hour ago, handed out behind the cursors already issued.
    late = onepassword_sim.generate(
        "itemusages", 500, start=fake_clock.now() - timedelta(hours=1), step=timedelta(seconds=1)
    )
    sent["itemusages"] += late
    report = run_cycle(settings, clock=still(fake_clock))
    assert {r.stream: (r.status, r.events) for r in report.reports} == {
        "onepassword/auditevents": ("idle", 0),
        "onepassword/itemusages": ("ok", 500),
        "onepassword/signinattempts": ("idle", 0),
    }

    rows = event_rows(logs_ingestion_sim)
    expected = Counter(e["uuid"] for events in sent.values() for e in events)
    assert sum(expected.values()) == 25_500
    assert uuid_counts(rows) == expected, "every event exactly once"
    by_type = Counter(r["log_source"] for r in rows)
    assert by_type == {"auditevents": 10_000, "itemusages": 8_500, "signinattempts": 7_000}
    assert logs_ingestion_sim.undeclared == {} and logs_ingestion_sim.type_errors == []
    declared = set(TABLES["OnePasswordEventLogs_CL"].column_types)
    assert all(set(r) <= declared for r in rows)

    saved = checkpoints(data_dir)
    assert {s: saved[s].total_events for s in STREAMS} == {  # type: ignore[attr-defined]
        "onepassword/auditevents": 10_000,
        "onepassword/itemusages": 8_500,
        "onepassword/signinattempts": 7_000,
    }
    assert all(saved[s].position["cursor"] and not saved[s].lease_owner for s in STREAMS)  # type: ignore[attr-defined]

    # Nothing new: the heartbeat still says so, for every stream, in both health tables.
    report = run_cycle(settings, clock=still(fake_clock))
    rows_now = health(logs_ingestion_sim, report.run_id)
    assert {s: r["Status"] for s, r in rows_now.items()} == dict.fromkeys(STREAMS, "idle")
    assert all(r["EventsIngested"] == 0 and "ErrorKind" not in r for r in rows_now.values())
    heartbeat = [
        r for r in logs_ingestion_sim.rows("OnePasswordEventLogs_CL") if r.get("log_source") == "healthevents"
    ]
    assert Counter(r["category"] for r in heartbeat[-3:]) == {"success": 3}
    assert len(event_rows(logs_ingestion_sim)) == 25_500


def test_events_repeated_at_the_resume_point_are_dropped(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    onepassword_sim.duplicate_at_resume = True
    first = onepassword_sim.generate("signinattempts", 2_500, step=timedelta(seconds=2))
    settings = settings_for(
        onepassword_env(
            onepassword_sim,
            logs_ingestion_sim,
            data_dir,
            onepassword_sim.issue_token(),
            ONEPASSWORD_EVENT_TYPES="signinattempts",
        )
    )
    run_cycle(settings, clock=still(fake_clock))
    second = onepassword_sim.generate("signinattempts", 10, step=timedelta(seconds=1))
    report = run_cycle(settings, clock=still(fake_clock))
    assert report.reports[0].counters.get("duplicates_dropped", 0) >= 1
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in first + second)


def test_sink_failing_on_page_n_keeps_the_checkpoint_and_loses_nothing(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    events = onepassword_sim.generate("signinattempts", 5_000, step=timedelta(seconds=2))
    settings = settings_for(
        onepassword_env(
            onepassword_sim,
            logs_ingestion_sim,
            data_dir,
            onepassword_sim.issue_token(),
            ONEPASSWORD_EVENT_TYPES="signinattempts",
        )
    )
    sink = LogsIngestionSink(
        logs_ingestion_sim.url,
        logs_ingestion_sim.dcr_id,
        DefaultAzureCredential(),
        retry_total=2,
        retry_backoff_factor=0.01,
    )
    # Page 3's upload (one batch per page of sign-in attempts) fails with 503 on the first try and both retries.
    logs_ingestion_sim.inject(
        503,
        {"error": {"code": "ServiceUnavailable"}},
        times=3,
        when=lambda r: logs_ingestion_sim.uploads in (3, 4, 5),
    )
    report = run_cycle(settings, clock=still(fake_clock), sink=sink)
    (stream,) = report.reports
    assert (stream.status, stream.error_kind) == ("error", "sink")
    assert "503" in stream.message and stream.hint
    assert report.failed
    saved = checkpoints(data_dir)["onepassword/signinattempts"]
    assert saved.total_events == 2_000, "the checkpoint stays at page N-1"  # type: ignore[attr-defined]
    assert saved.last_status == "error"  # type: ignore[attr-defined]
    assert health(logs_ingestion_sim)["onepassword/signinattempts"]["ErrorKind"] == "sink"

    report = run_cycle(settings, clock=still(fake_clock), sink=sink)
    assert report.reports[0].status == "ok"
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in events), (
        "no loss, no duplicate"
    )


def test_one_failed_chunk_fails_the_page_and_the_rerun_fills_the_gap(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    events = onepassword_sim.generate("auditevents", 3_000, step=timedelta(seconds=2))
    settings = settings_for(
        onepassword_env(
            onepassword_sim,
            logs_ingestion_sim,
            data_dir,
            onepassword_sim.issue_token(),
            ONEPASSWORD_EVENT_TYPES="auditevents",
        )
    )
    sink = LogsIngestionSink(
        logs_ingestion_sim.url, logs_ingestion_sim.dcr_id, DefaultAzureCredential(), retry_total=0
    )
    # A page of 1,000 audit events is more than 1 MB, so it goes in two chunks; the 2nd chunk of page 2 fails.
    logs_ingestion_sim.inject(500, times=1, when=logs_ingestion_sim.nth_upload(4))
    report = run_cycle(settings, clock=still(fake_clock), sink=sink)
    assert (report.reports[0].status, report.reports[0].error_kind) == ("error", "sink")
    assert checkpoints(data_dir)["onepassword/auditevents"].total_events == 1_000  # type: ignore[attr-defined]
    accepted_of_page_2 = len(event_rows(logs_ingestion_sim)) - 1_000
    assert 0 < accepted_of_page_2 < 1_000

    run_cycle(settings, clock=still(fake_clock), sink=sink)
    counts = uuid_counts(event_rows(logs_ingestion_sim))
    assert set(counts) == {e["uuid"] for e in events}, "nothing lost"
    assert sum(counts.values()) - len(events) == accepted_of_page_2, (
        "the only duplicates are the accepted chunk of the failed page"
    )


def test_looping_cursor_is_an_upstream_error_not_an_endless_loop(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    onepassword_sim.generate("auditevents", 2_500)
    onepassword_sim.repeat_cursor_forever = True
    settings = settings_for(
        onepassword_env(
            onepassword_sim,
            logs_ingestion_sim,
            data_dir,
            onepassword_sim.issue_token(),
            ONEPASSWORD_EVENT_TYPES="auditevents",
        )
    )
    report = run_cycle(settings, clock=still(fake_clock))
    assert (report.reports[0].status, report.reports[0].error_kind) == ("error", "upstream")
    assert "cursor did not advance" in report.reports[0].message


def test_first_run_lookback_is_clamped_to_120_days(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    old = onepassword_sim.generate(
        "auditevents", 10, start=fake_clock.now() - timedelta(days=119), step=timedelta(hours=1)
    )
    settings = settings_for(
        onepassword_env(
            onepassword_sim,
            logs_ingestion_sim,
            data_dir,
            onepassword_sim.issue_token(),
            ONEPASSWORD_EVENT_TYPES="auditevents",
            INITIAL_LOOKBACK="365d",
        )
    )
    report = run_cycle(settings, clock=still(fake_clock))
    assert report.reports[0].status == "ok"
    first = next(r.json() for r in onepassword_sim.requests if r.path == "/api/v2/auditevents")
    expected_start = fake_clock.now() - timedelta(days=120) + timedelta(minutes=1)
    assert first == {
        "limit": 1000,
        "start_time": expected_start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in old)
