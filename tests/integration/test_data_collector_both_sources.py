"""Keeper and 1Password in one cycle through the Data Collector sink (issue 4, "Must show").

What a KQL user of the legacy tables would see: every Keeper event once in ``Keeper_CL`` with one column
per field, every 1Password event once in ``OnePasswordEvents_CL``, the signature accepted on every post,
the oversize field cut with a marker and counted in the health row; with a wrong key, ``error/auth``
logged at ERROR and no checkpoint moved.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.http import HttpClient
from auditsync.runner import run_cycle
from auditsync.sinks.data_collector import DataCollectorSink
from auditsync.sinks.legacy_rows import FIELD_LIMIT_BYTES, TRUNCATION_MARKER
from auditsync.tables.rows import format_time, parse_time
from simulators.clock import FakeClock
from simulators.data_collector import DataCollectorSim, column_for
from simulators.keeper import KeeperSim, sample_events
from simulators.onepassword import OnePasswordSim
from tests.fixtures.keeper import keeper_env
from tests.fixtures.pipeline import settings_for, still

STREAMS = ("keeper/events", "onepassword/auditevents", "onepassword/signinattempts")
POST_LIMIT = 400_000


@pytest.fixture
def workspace() -> tuple[str, str]:
    return str(uuid.uuid4()), base64.b64encode(os.urandom(64)).decode("ascii")


@pytest.fixture
def collector(workspace: tuple[str, str], fake_clock: FakeClock) -> Iterator[DataCollectorSim]:
    sim = DataCollectorSim(*workspace, now=fake_clock.now)
    with sim:
        yield sim


def both_env(
    keeper: KeeperSim, onepassword: OnePasswordSim, collector: DataCollectorSim, data_dir: Path, key: str
) -> dict[str, str]:
    env = {
        "SOURCES": "keeper,onepassword",
        "ONEPASSWORD_BASE_URL": onepassword.url,
        "ONEPASSWORD_TOKEN": onepassword.issue_token(),
        "ONEPASSWORD_EVENT_TYPES": "auditevents,signinattempts",
        "SINK": "data_collector",
        "WORKSPACE_ID": collector.workspace_id,
        "WORKSPACE_KEY": key,
        "DATA_COLLECTOR_URL": collector.url,
        "CHECKPOINT_STORE": "file",
        "AUDITSYNC_DATA_DIR": str(data_dir),
        "INITIAL_LOOKBACK": "2d",
    }
    return keeper_env(keeper, env)


def keeper_cl_view(event: dict[str, Any]) -> str:
    """What ``Keeper_CL`` should hold for a raw Keeper event, by the service's suffix rules (the
    simulator's ``column_for``), independent of the sink's own shaping code."""
    row = {}
    for name, value in event.items():
        if name == "timestamp":
            parsed = parse_time(value)
            assert parsed is not None
            value = format_time(parsed)
        column = column_for(name, value)
        if column is not None:
            row[column[0]] = column[1]
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def stored_view(row: dict[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in row.items() if k not in ("TimeGenerated", "Type")},
        sort_keys=True,
        ensure_ascii=False,
    )


def health(collector: DataCollectorSim) -> dict[str, dict[str, Any]]:
    rows = collector.rows("AuditSyncHealth_CL")
    last = rows[-1]["RunId_s"] if rows else None
    return {r["Stream_s"]: r for r in rows if r["RunId_s"] == last}


def onepassword_events(collector: DataCollectorSim) -> list[dict[str, Any]]:
    return [r for r in collector.rows("OnePasswordEvents_CL") if r.get("log_source_s") != "healthevents"]


def test_keeper_and_onepassword_through_the_data_collector(
    keeper_pipeline_sim: KeeperSim,
    onepassword_sim: OnePasswordSim,
    collector: DataCollectorSim,
    workspace: tuple[str, str],
    fake_clock: FakeClock,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = fake_clock.now()
    keeper_sent = sample_events(2_500, now - timedelta(hours=20), now - timedelta(minutes=10), seed=4)
    big = {
        **keeper_sent[0],
        "audit_event": "pam_tunnel_started",
        "name": "Ωmega — Kraków " + "Ω" * 20_000,  # over 40,000 bytes in UTF-8
        "timestamp": format_time(now - timedelta(minutes=30)),
    }
    keeper_pipeline_sim.add([*keeper_sent, big])
    op_sent = [
        *onepassword_sim.generate("auditevents", 1_500, step=timedelta(seconds=20)),
        *onepassword_sim.generate("signinattempts", 800, step=timedelta(seconds=30)),
    ]
    settings = settings_for(both_env(keeper_pipeline_sim, onepassword_sim, collector, data_dir, workspace[1]))
    clock = still(fake_clock)
    http = HttpClient(clock=clock)
    sink = DataCollectorSink(*workspace, collector.url, http, clock, max_post_bytes=POST_LIMIT)

    report = run_cycle(settings, clock=clock, sink=sink)

    assert not report.failed, report.reports
    assert {r.stream: r.status for r in report.reports} == dict.fromkeys(STREAMS, "ok")
    assert collector.rejected == [] and collector.accepted_posts == len(collector.requests)
    keeper_posts = [r for r in collector.requests if r.header("log-type") == "Keeper"]
    assert len(keeper_posts) > 3 and all(len(p.body) <= POST_LIMIT for p in keeper_posts)
    assert any(len(p.body) > len(p.body.decode("utf-8")) for p in keeper_posts), "non-ASCII on the wire"

    keeper_rows = collector.rows("Keeper_CL")
    cut = [r for r in keeper_rows if r.get("name_s", "").startswith("Ωmega")]
    assert len(cut) == 1 and cut[0]["name_s"].endswith(TRUNCATION_MARKER)
    assert len(cut[0]["name_s"].encode("utf-8")) <= FIELD_LIMIT_BYTES
    rest = [r for r in keeper_rows if r is not cut[0] and not r.get("name_s", "").startswith("Ωmega")]
    assert Counter(map(stored_view, rest)) == Counter(map(keeper_cl_view, keeper_sent)), "exactly once"
    sample = rest[0]
    assert {"audit_event_s", "remote_address_s", "username_s", "enterprise_id_d", "timestamp_t"} <= set(
        sample
    )
    assert not any(k.startswith("data") for row in keeper_rows for k in row), (
        "no Data blob: one column a field"
    )

    assert Counter(r["uuid_s"] for r in onepassword_events(collector)) == Counter(e["uuid"] for e in op_sent)
    assert collector.oversize_fields == []

    beats = health(collector)
    assert set(beats) == set(STREAMS)
    assert json.loads(beats["keeper/events"]["Details_s"])["truncated_fields"] == 1
    assert beats["keeper/events"]["EventsIngested_d"] == len(keeper_sent) + 1
    assert workspace[1] not in caplog.text
    http.close()


def test_wrong_key_fails_both_sources_with_auth_and_moves_no_checkpoint(
    keeper_pipeline_sim: KeeperSim,
    onepassword_sim: OnePasswordSim,
    collector: DataCollectorSim,
    workspace: tuple[str, str],
    fake_clock: FakeClock,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = fake_clock.now()
    keeper_pipeline_sim.add(sample_events(300, now - timedelta(hours=3), now - timedelta(minutes=10), seed=9))
    onepassword_sim.generate("auditevents", 100, step=timedelta(seconds=30))
    env = both_env(keeper_pipeline_sim, onepassword_sim, collector, data_dir, workspace[1])
    assert not run_cycle(settings_for(env), clock=still(fake_clock)).failed
    store = FileCheckpointStore(data_dir / "checkpoints")
    before = {c.stream: c.position for c in store.list()}
    stored_before = len(collector.rows("Keeper_CL")), len(onepassword_events(collector))

    fake_clock.advance(timedelta(minutes=20))
    keeper_pipeline_sim.add(
        sample_events(
            50, fake_clock.now() - timedelta(minutes=15), fake_clock.now() - timedelta(minutes=6), seed=10
        )
    )
    onepassword_sim.generate("auditevents", 30, start=fake_clock.now() - timedelta(minutes=10))
    wrong = base64.b64encode(os.urandom(64)).decode("ascii")
    caplog.set_level(logging.INFO)

    report = run_cycle(settings_for({**env, "WORKSPACE_KEY": wrong}), clock=still(fake_clock))

    outcome = {r.stream: (r.status, r.error_kind) for r in report.reports}
    assert outcome == {
        "keeper/events": ("error", "auth"),
        "onepassword/auditevents": ("error", "auth"),
        "onepassword/signinattempts": ("idle", ""),  # nothing new: the sink was never asked
    }
    assert report.heartbeat_error, "the health rows could not reach the failing sink"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    for stream in ("keeper/events", "onepassword/auditevents"):
        assert any(f"health {stream}: status=error" in m and "error_kind=auth" in m for m in errors), stream
    assert any("health onepassword/signinattempts: status=idle" in m for m in errors)
    assert {c.stream: c.position for c in store.list()} == before
    assert (len(collector.rows("Keeper_CL")), len(onepassword_events(collector))) == stored_before
    assert wrong not in caplog.text and workspace[1] not in caplog.text
