"""Keeper -> Logs Ingestion end to end through the real runner: real SDKs over loopback, file checkpoints.

What a SOC engineer would observe: every event once in KeeperSecurityEventNewLogs_CL with only declared
columns, a heartbeat per run, and Keeper and 1Password failing independently.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.runner import run_cycle
from auditsync.tables import KEEPER_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from simulators.clock import FakeClock
from simulators.keeper import KeeperSim, sample_events
from simulators.logs_ingestion import LogsIngestionSim
from tests.fixtures.canonical import row_content
from tests.fixtures.keeper import keeper_env
from tests.fixtures.pipeline import (
    Pipeline,
    health,
    logs_ingestion_sink_env,
    pipeline_env,
    settings_for,
    still,
    ticking,
)

ONEPASSWORD_STREAMS = ("onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts")


def expected_rows(events: list[dict[str, Any]], clock: FakeClock) -> Counter[bytes]:
    rows, _ = shape_rows(TABLES[KEEPER_TABLE], events, now=clock.now(), event_type="events")
    return Counter(map(row_content, rows))


def keeper_only_env(
    sim: KeeperSim, logs: LogsIngestionSim, data_dir: Path, **overrides: str
) -> dict[str, str]:
    return keeper_env(sim, pipeline_env(data_dir, "keeper", logs_ingestion_sink_env(logs)), **overrides)


@pytest.mark.slow
def test_100000_keeper_events_over_deadline_bounded_runs_arrive_exactly_once(
    keeper_pipeline_sim: KeeperSim,
    logs_ingestion_sim: LogsIngestionSim,
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    sim, logs = keeper_pipeline_sim, logs_ingestion_sim
    sim.order = "desc"
    sim.end_inclusive = False
    sent = sample_events(
        100_000,
        fake_clock.now() - timedelta(days=1, hours=12),
        fake_clock.now() - timedelta(minutes=6),
        seed=100,
    )
    sim.add(sent)
    settings = settings_for(keeper_only_env(sim, logs, data_dir, RUN_TIME_BUDGET="90s"))

    statuses = []
    for _ in range(60):
        report = run_cycle(settings, clock=ticking(fake_clock, 0.5))
        (stream,) = report.reports
        assert not report.failed, stream
        statuses.append(stream.status)
        if stream.status != "behind":
            break
    assert statuses.count("behind") >= 3, f"the budget should split the backlog over several runs: {statuses}"
    assert statuses[-1] == "ok"

    rows = logs.rows(KEEPER_TABLE)
    assert len(rows) == 100_000
    assert Counter(map(row_content, rows)) == expected_rows(sent, fake_clock), "exactly once"
    assert logs.undeclared == {} and logs.type_errors == []
    declared = set(TABLES[KEEPER_TABLE].column_types)
    assert all(set(r) <= declared for r in rows)
    assert any(r.get("username") == "山田太郎@example.jp" for r in rows)

    saved = FileCheckpointStore(data_dir / "checkpoints").load("keeper/events")
    assert saved.total_events == 100_000 and saved.position and saved.position["window"] is None
    assert not saved.lease_owner

    # later: a late event inside the overlap, then nothing new (idle heartbeat)
    late = sample_events(
        1, fake_clock.now() - timedelta(minutes=8), fake_clock.now() - timedelta(minutes=7), seed=5
    )
    sim.add(late)
    fake_clock.advance(timedelta(minutes=5))
    report = run_cycle(settings, clock=still(fake_clock))
    assert [(r.status, r.events) for r in report.reports] == [("ok", 1)]
    fake_clock.advance(timedelta(minutes=5))
    report = run_cycle(settings, clock=still(fake_clock))
    assert [(r.status, r.events) for r in report.reports] == [("idle", 0)]
    row = health(logs, report.run_id)["keeper/events"]
    assert row["Status"] == "idle" and row["EventsIngested"] == 0
    assert len(logs.rows(KEEPER_TABLE)) == 100_001


def test_keeper_failure_does_not_affect_onepassword(
    pipeline: Pipeline, keeper_pipeline_sim: KeeperSim
) -> None:
    keeper = keeper_pipeline_sim
    keeper.add(
        sample_events(
            300, pipeline.clock.now() - timedelta(hours=3), pipeline.clock.now() - timedelta(hours=1)
        )
    )
    op_events = pipeline.onepassword.generate("auditevents", 200, step=timedelta(seconds=5))
    env_settings = pipeline.settings("auditevents")
    env = {"SOURCES": "keeper,onepassword", "ONEPASSWORD_TOKEN": env_settings.onepassword.token.value}
    settings = settings_for(
        keeper_env(
            keeper,
            {
                "ONEPASSWORD_BASE_URL": pipeline.onepassword.url,
                "ONEPASSWORD_EVENT_TYPES": "auditevents",
                "SINK": "logs_ingestion",
                "LOGS_INGESTION_ENDPOINT": pipeline.logs.url,
                "LOGS_INGESTION_RULE_ID": pipeline.logs.dcr_id,
                "AUDITSYNC_DATA_DIR": str(pipeline.data_dir),
                "INITIAL_LOOKBACK": "2d",
                **env,
            },
        )
    )
    keeper.inject(401, {"error": "unauthorized", "message": "Unauthorized"}, times=100)

    report = pipeline.run(settings)
    by_stream = {r.stream: r for r in report.reports}
    assert by_stream["keeper/events"].status == "error"
    assert by_stream["keeper/events"].error_kind == "auth"
    assert "public-api-key generate" in by_stream["keeper/events"].hint
    assert by_stream["onepassword/auditevents"].status == "ok"
    assert by_stream["onepassword/auditevents"].events == 200
    rows = health(pipeline.logs, report.run_id)
    assert rows["keeper/events"]["ErrorKind"] == "auth" and rows["onepassword/auditevents"]["Status"] == "ok"
    assert pipeline.logs.rows(KEEPER_TABLE) == []
    assert pipeline.checkpoint("keeper/events").position is None

    # Keeper recovers; now 1Password's token is revoked: Keeper is not affected
    keeper.faults.clear()
    pipeline.onepassword.revoke(env_settings.onepassword.token.value)
    pipeline.clock.advance(timedelta(minutes=5))
    report = pipeline.run(settings)
    by_stream = {r.stream: r for r in report.reports}
    assert by_stream["onepassword/auditevents"].status == "error"
    assert by_stream["onepassword/auditevents"].error_kind == "auth"
    assert by_stream["keeper/events"].status == "ok" and by_stream["keeper/events"].events == 300
    assert len(pipeline.logs.rows(KEEPER_TABLE)) == 300
    assert pipeline.delivered() == Counter(str(e["uuid"]) for e in op_events)
