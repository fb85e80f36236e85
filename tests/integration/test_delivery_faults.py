"""Vendor and sink faults that used to cost duplicates or stop a stream, end to end through the runner.

Real SDKs over loopback against the simulators, file checkpoints; each test asserts what a SOC engineer
sees: which events arrived how often, the health row, the saved checkpoint.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from azure.identity import DefaultAzureCredential

from auditsync.runner import run_cycle
from auditsync.sinks.limits import TRUNCATION_MARKER
from auditsync.sinks.logs_ingestion import LogsIngestionSink
from auditsync.sources.onepassword import FINGERPRINT_PREFIX
from auditsync.tables import KEEPER_TABLE
from simulators.clock import FakeClock
from simulators.keeper import KeeperSim, sample_events
from simulators.logs_ingestion import LogsIngestionSim
from tests.fixtures.canonical import row_content
from tests.fixtures.keeper import keeper_env
from tests.fixtures.pipeline import (
    Pipeline,
    event_rows,
    health,
    logs_ingestion_sink_env,
    pipeline_env,
    settings_for,
    still,
)
from tests.integration.test_keeper_pipeline import expected_rows

PAGE = 1_000


def test_a_cycling_1password_cursor_fails_the_stream_as_upstream_after_at_most_one_page_of_duplicates(
    pipeline: Pipeline,
) -> None:
    events = pipeline.onepassword.generate("auditevents", 6_000, step=timedelta(seconds=2))
    pipeline.onepassword.cycle_cursors = True
    settings = pipeline.settings("auditevents")
    for run in range(1, 4):
        report = pipeline.run(settings, sink=pipeline.sink())
        (stream,) = report.reports
        assert (stream.status, stream.error_kind) == ("error", "upstream"), stream
        assert "circle" in stream.message and stream.hint
        assert health(pipeline.logs)["onepassword/auditevents"]["ErrorKind"] == "upstream"
        delivered = pipeline.delivered()
        duplicates = sum(delivered.values()) - len(delivered)
        assert duplicates <= (run - 1) * PAGE, f"run {run}: at most one page of duplicates per run"
        assert set(delivered) <= {e["uuid"] for e in events}

    pipeline.onepassword.cycle_cursors = False
    report = pipeline.run(settings, sink=pipeline.sink())
    assert report.reports[0].status == "ok"
    assert set(pipeline.delivered()) == {e["uuid"] for e in events}, "nothing lost once the vendor is fixed"


def test_a_cycling_keeper_token_fails_the_stream_as_upstream_with_nothing_sent_twice(
    keeper_pipeline_sim: KeeperSim,
    logs_ingestion_sim: LogsIngestionSim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    now = fake_clock.now()
    events = sample_events(5_000, now - timedelta(hours=3), now - timedelta(hours=2), seed=9)
    keeper_pipeline_sim.add(events)
    keeper_pipeline_sim.cycle_tokens = True
    env = keeper_env(
        keeper_pipeline_sim, pipeline_env(data_dir, "keeper", logs_ingestion_sink_env(logs_ingestion_sim))
    )
    for _ in range(3):
        report = run_cycle(settings_for(env), clock=still(fake_clock))
        (stream,) = report.reports
        assert (stream.status, stream.error_kind) == ("error", "upstream"), stream
        assert "circle" in stream.message
        rows = Counter(map(row_content, logs_ingestion_sim.rows(KEEPER_TABLE)))
        assert sum(rows.values()) - len(rows) <= PAGE, "at most one page of duplicates"

    keeper_pipeline_sim.cycle_tokens = False
    report = run_cycle(settings_for(env), clock=still(fake_clock))
    assert report.reports[0].status == "ok", report.reports
    delivered = Counter(map(row_content, logs_ingestion_sim.rows(KEEPER_TABLE)))
    assert set(delivered) == set(expected_rows(events, fake_clock)), "nothing lost once the vendor is fixed"


def test_an_event_too_big_for_one_request_is_cut_to_fit_delivered_and_counted(pipeline: Pipeline) -> None:
    events = pipeline.onepassword.generate("auditevents", 30)
    big = dict(events[10])
    # About 1.4 MB over 20 fields, each over Log Analytics' 64 KB field limit: 1.28 MB after the field cut.
    for name in ("aux_info", "action", "category", "country", "object_type", "session_uuid", "actor_type"):
        big[name] = "é" * 35_000
    for name in ("details", "target_user", "client", "location", "actor_details", "object_details"):
        big[name] = {"blob": "x" * 70_000}
    for name in (
        "aux_details",
        "session",
        "user",
        "user_type",
        "user_account_uuid",
        "vault_uuid",
        "item_uuid",
    ):
        big[name] = "y" * 70_000
    big["uuid"] = "BIGEVENT0000000000000000AA"
    pipeline.onepassword.add("auditevents", [big])
    settings = pipeline.settings("auditevents")

    report = pipeline.run(settings, sink=pipeline.sink())
    assert report.reports[0].status == "ok", report.reports
    counts = pipeline.delivered()
    assert set(counts) == {e["uuid"] for e in events} | {big["uuid"]} and max(counts.values()) == 1
    (row,) = [r for r in event_rows(pipeline.logs) if r["uuid_s"] == big["uuid"]]
    assert row["timestamp"] and row["log_source"] == "auditevents", "the row keeps its identity"
    assert any(isinstance(v, str) and v.endswith(TRUNCATION_MARKER) for v in row.values())
    details = health(pipeline.logs)["onepassword/auditevents"]["Details"]
    assert details["rows_cut_to_fit"] == 1 and details["truncated_fields"] >= 13

    report = pipeline.run(settings, sink=pipeline.sink())
    assert report.reports[0].status == "idle", "the stream is not stuck behind the big event"


def test_an_event_without_uuid_is_delivered_once_across_reruns(pipeline: Pipeline) -> None:
    events = pipeline.onepassword.generate("signinattempts", 1_500, step=timedelta(seconds=2))
    orphan = {k: v for k, v in events[-1].items() if k != "uuid"}
    orphan["country"] = "NZ"
    pipeline.onepassword.add("signinattempts", [orphan])
    # Every resumed page starts with the last event the previous page delivered: the guard must know it.
    pipeline.onepassword.duplicate_at_resume = True
    settings = pipeline.settings("signinattempts")
    for _ in range(3):
        report = pipeline.run(settings, sink=pipeline.sink())
        assert report.reports[0].status in ("ok", "idle"), report.reports
    rows = event_rows(pipeline.logs)
    orphans = [r for r in rows if r.get("country") == "NZ" and not r.get("uuid_s")]
    assert len(orphans) == 1, "delivered, and only once"
    assert Counter(r["uuid_s"] for r in rows if r.get("uuid_s")) == Counter(e["uuid"] for e in events)
    checkpoint = pipeline.checkpoint("onepassword/signinattempts")
    assert checkpoint.position is not None
    assert any(k.startswith(FINGERPRINT_PREFIX) for k in checkpoint.position["recent_uuids"])
    details = [h.get("Details") or {} for h in pipeline.logs.rows("AuditSyncHealth_CL")]
    assert sum(d.get("events_without_uuid", 0) for d in details) == 1


def test_a_failed_later_request_of_a_keeper_page_is_the_only_part_sent_again(
    keeper_pipeline_sim: KeeperSim,
    logs_ingestion_sim: LogsIngestionSim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    now = fake_clock.now()
    events = sample_events(2_500, now - timedelta(hours=3), now - timedelta(hours=2), seed=21)
    for number, event in enumerate(events):
        event["note"] = f"{number:05d} " + "ü" * 1_500  # ~3 KB a row: a page of 1,000 takes 3-4 requests
    keeper_pipeline_sim.add(events)
    env = keeper_env(
        keeper_pipeline_sim, pipeline_env(data_dir, "keeper", logs_ingestion_sink_env(logs_ingestion_sim))
    )
    sink = LogsIngestionSink(
        logs_ingestion_sim.url, logs_ingestion_sim.dcr_id, DefaultAzureCredential(), max_attempts=1
    )
    logs_ingestion_sim.inject(503, times=1, when=logs_ingestion_sim.nth_upload(3))
    report = run_cycle(settings_for(env), clock=still(fake_clock), sink=sink)
    (stream,) = report.reports
    assert (stream.status, stream.error_kind) == ("error", "sink"), stream
    accepted = len(logs_ingestion_sim.rows(KEEPER_TABLE))
    assert 0 < accepted < len(events) and stream.events == accepted

    report = run_cycle(settings_for(env), clock=still(fake_clock), sink=sink)
    assert report.reports[0].status == "ok", report.reports
    delivered = Counter(map(row_content, logs_ingestion_sim.rows(KEEPER_TABLE)))
    assert delivered == expected_rows(events, fake_clock), (
        "every event once: the accepted requests are not re-sent"
    )
    assert len(logs_ingestion_sim.request_rows) > 4
