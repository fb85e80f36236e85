"""Sources -> runner -> Data Collector sink -> simulator, end to end over loopback sockets.

Asserts what a SOC engineer would see in the legacy ``_CL`` tables and the health rows.
"""

from __future__ import annotations

import base64
import io
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
from auditsync.cli import cmd_check
from auditsync.http import HttpClient
from auditsync.runner import run_cycle
from auditsync.sinks.data_collector import DataCollectorSink
from auditsync.sinks.legacy_rows import FIELD_LIMIT_BYTES, TRUNCATION_MARKER
from auditsync.tables.rows import format_time
from simulators.clock import FakeClock
from simulators.data_collector import DataCollectorSim
from simulators.keyvault import KeyVaultSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import settings_for, still

STREAMS = ("onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts")


@pytest.fixture
def workspace() -> tuple[str, str]:
    return str(uuid.uuid4()), base64.b64encode(os.urandom(64)).decode("ascii")


@pytest.fixture
def collector(workspace: tuple[str, str], fake_clock: FakeClock) -> Iterator[DataCollectorSim]:
    sim = DataCollectorSim(*workspace, now=fake_clock.now)
    with sim:
        yield sim


def env_for(
    onepassword: OnePasswordSim, collector: DataCollectorSim, data_dir: Path, key: str, **overrides: str
) -> dict[str, str]:
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword.url,
        "ONEPASSWORD_TOKEN": onepassword.issue_token(),
        "SINK": "data_collector",
        "WORKSPACE_ID": collector.workspace_id,
        "WORKSPACE_KEY": key,
        "DATA_COLLECTOR_URL": collector.url,
        "CHECKPOINT_STORE": "file",
        "AUDITSYNC_DATA_DIR": str(data_dir),
        "INITIAL_LOOKBACK": "2d",
    }
    env.update(overrides)
    return env


def event_rows(collector: DataCollectorSim) -> list[dict[str, Any]]:
    return [r for r in collector.rows("OnePasswordEvents_CL") if r.get("log_source_s") != "healthevents"]


def health(collector: DataCollectorSim) -> dict[str, dict[str, Any]]:
    rows = collector.rows("AuditSyncHealth_CL")
    last = rows[-1]["RunId_s"] if rows else None
    return {r["Stream_s"]: r for r in rows if r["RunId_s"] == last}


def special_events(onepassword: OnePasswordSim, clock: FakeClock) -> list[dict[str, Any]]:
    """Audit events with non-ASCII names and cities, one with a field over the 32 KB limit (and the
    generated event they copy); all added to the simulator."""
    template = onepassword.generate("auditevents", 1, start=clock.now() - timedelta(minutes=30))[0]
    events = []
    for i, (name, city) in enumerate(
        (("Zoë Ångström", "Genève"), ("渡辺 健", "東京"), ("Łukasz Żółć", "Kraków"))
    ):
        event = dict(template)
        event["uuid"] = f"SPECIAL{i:019d}"
        event["actor_details"] = {**template.get("actor_details", {}), "name": name}
        event["location"] = {**template.get("location", {}), "city": city}
        events.append(event)
    events[1]["aux_info"] = "Ω" * 20_000  # 40,000 bytes in UTF-8
    onepassword.add("auditevents", events)
    return [template, *events]


def test_onepassword_through_the_data_collector_every_event_once_truncation_counted(
    onepassword_sim: OnePasswordSim,
    collector: DataCollectorSim,
    workspace: tuple[str, str],
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    step = timedelta(seconds=10)
    sent = {
        "auditevents": onepassword_sim.generate("auditevents", 2_500, step=step),
        "itemusages": onepassword_sim.generate("itemusages", 1_200, step=step),
        "signinattempts": onepassword_sim.generate("signinattempts", 900, step=step),
    }
    sent["auditevents"] += special_events(onepassword_sim, fake_clock)
    settings = settings_for(env_for(onepassword_sim, collector, data_dir, workspace[1]))
    # The real 25 MB post limit would fit a whole 1,000-event page; a lower one makes every page several
    # posts, so "a page counts only when every post returned 200" is exercised on every page.
    clock = still(fake_clock)
    http = HttpClient(clock=clock)
    sink = DataCollectorSink(*workspace, collector.url, http, clock, max_post_bytes=300_000)

    report = run_cycle(settings, clock=clock, sink=sink)

    assert not report.failed, report.reports
    assert {r.stream: r.status for r in report.reports} == dict.fromkeys(STREAMS, "ok")
    assert collector.rejected == [], "the signature was accepted every time"
    posts = [r for r in collector.requests if r.header("log-type") == "OnePasswordEvents"]
    assert len(posts) > 10 and all(len(p.body) <= 300_000 for p in posts)
    assert collector.accepted_posts == len(collector.requests)

    rows = event_rows(collector)
    expected = Counter(e["uuid"] for events in sent.values() for e in events)
    assert Counter(r["uuid_s"] for r in rows) == expected, "every event exactly once"
    by_uuid = {r["uuid_s"]: r for r in rows}
    assert json.loads(by_uuid["SPECIAL0000000000000000000"]["actor_details_s"])["name"] == "Zoë Ångström"
    assert json.loads(by_uuid["SPECIAL0000000000000000001"]["location_s"])["city"] == "東京"
    assert json.loads(by_uuid["SPECIAL0000000000000000002"]["location_s"])["city"] == "Kraków"

    cut = by_uuid["SPECIAL0000000000000000001"]["aux_info_s"]
    assert cut.startswith("ΩΩΩ") and cut.endswith(TRUNCATION_MARKER)
    assert len(cut.encode("utf-8")) <= FIELD_LIMIT_BYTES
    assert collector.oversize_fields == [], "nothing left for the service to cut silently"

    beats = health(collector)
    assert set(beats) == set(STREAMS)
    assert json.loads(beats["onepassword/auditevents"]["Details_s"])["truncated_fields"] == 1
    assert beats["onepassword/auditevents"]["EventsIngested_d"] == len(sent["auditevents"])
    assert beats["onepassword/itemusages"]["Status_s"] == "ok"
    assert "Details_s" not in beats["onepassword/itemusages"]  # nothing truncated there
    health_events = [
        r for r in collector.rows("OnePasswordEvents_CL") if r.get("log_source_s") == "healthevents"
    ]
    assert len(health_events) == 3
    http.close()


def test_a_wrong_key_is_an_auth_error_logged_at_error_and_the_checkpoint_stays(
    onepassword_sim: OnePasswordSim,
    collector: DataCollectorSim,
    workspace: tuple[str, str],
    fake_clock: FakeClock,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    onepassword_sim.generate("auditevents", 50, step=timedelta(seconds=30))
    env = env_for(onepassword_sim, collector, data_dir, workspace[1], ONEPASSWORD_EVENT_TYPES="auditevents")
    assert not run_cycle(settings_for(env), clock=still(fake_clock)).failed
    store = FileCheckpointStore(data_dir / "checkpoints")
    before = store.load("onepassword/auditevents")
    assert before.position is not None and len(event_rows(collector)) == 50

    fake_clock.advance(timedelta(minutes=5))
    onepassword_sim.generate("auditevents", 20, start=fake_clock.now() - timedelta(minutes=4))
    wrong = base64.b64encode(os.urandom(64)).decode("ascii")
    caplog.set_level(logging.INFO)
    report = run_cycle(settings_for({**env, "WORKSPACE_KEY": wrong}), clock=still(fake_clock))

    (stream,) = report.reports
    assert (stream.status, stream.error_kind) == ("error", "auth")
    assert "WORKSPACE_ID" in stream.hint
    assert report.heartbeat_error, "the health rows could not reach the failing sink"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("health onepassword/auditevents: status=error" in m and "error_kind=auth" in m for m in errors)
    assert store.load("onepassword/auditevents").position == before.position
    assert len(event_rows(collector)) == 50
    assert collector.rejected and {status for status, _ in collector.rejected} == {403}
    assert wrong not in caplog.text and workspace[1] not in caplog.text

    # The right key again: the 20 new events arrive, once.
    assert not run_cycle(settings_for(env), clock=still(fake_clock)).failed
    assert len(event_rows(collector)) == 70
    assert len({r["uuid_s"] for r in event_rows(collector)}) == 70


def test_the_workspace_key_is_read_from_key_vault(
    onepassword_sim: OnePasswordSim,
    collector: DataCollectorSim,
    workspace: tuple[str, str],
    keyvault_sim: KeyVaultSim,
    fake_clock: FakeClock,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    onepassword_sim.generate("signinattempts", 5)
    token = onepassword_sim.issue_token()
    keyvault_sim.set_secret("onepassword-api-token", token)
    keyvault_sim.set_secret("la-workspace-key", workspace[1])
    env = env_for(
        onepassword_sim,
        collector,
        data_dir,
        "",
        ONEPASSWORD_EVENT_TYPES="signinattempts",
        KEY_VAULT_URL=keyvault_sim.url,
        WORKSPACE_KEY_SECRET="la-workspace-key",
        ONEPASSWORD_TOKEN="",
    )
    caplog.set_level(logging.INFO)

    report = run_cycle(settings_for(env), clock=still(fake_clock))

    assert not report.failed, report.reports
    assert len(event_rows(collector)) == 5
    assert workspace[1] not in caplog.text
    assert any("2026-09-14" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records), (
        "the retirement warning is logged when the sink is created"
    )


def test_health_rows_keep_their_timestamps_as_datetimes(
    onepassword_sim: OnePasswordSim,
    collector: DataCollectorSim,
    workspace: tuple[str, str],
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    events = onepassword_sim.generate("itemusages", 3, step=timedelta(seconds=1))
    env = env_for(onepassword_sim, collector, data_dir, workspace[1], ONEPASSWORD_EVENT_TYPES="itemusages")

    run_cycle(settings_for(env), clock=still(fake_clock))

    beat = health(collector)["onepassword/itemusages"]
    assert beat["NewestEventTime_t"].endswith("Z")
    assert beat["NewestEventTime_t"] <= format_time(fake_clock.now())
    assert beat["EventsIngested_d"] == 3.0 == float(len(events))


def test_check_prints_the_retirement_warning_and_probes_the_key(
    onepassword_sim: OnePasswordSim,
    collector: DataCollectorSim,
    workspace: tuple[str, str],
    fake_clock: FakeClock,
    data_dir: Path,
) -> None:
    env = env_for(onepassword_sim, collector, data_dir, workspace[1])
    out = io.StringIO()

    assert cmd_check(settings_for(env), out, clock=still(fake_clock)) == 0

    text = out.getvalue()
    assert "! SINK=data_collector uses the legacy HTTP Data Collector API" in text
    assert "2026-09-14" in text and "SINK=logs_ingestion" in text
    assert f"ok sink data_collector: Data Collector API at {collector.url}: workspace key accepted" in text
    assert collector.rows("AuditSyncHealth_CL") == []  # the probe writes nothing

    wrong = base64.b64encode(os.urandom(64)).decode("ascii")
    out = io.StringIO()
    assert cmd_check(settings_for({**env, "WORKSPACE_KEY": wrong}), out, clock=still(fake_clock)) == 1
    text = out.getvalue()
    assert "x sink data_collector:" in text and "403" in text and "WORKSPACE_ID" in text
    assert wrong not in text
