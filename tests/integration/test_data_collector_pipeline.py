"""Keeper and 1Password -> runner -> Data Collector sink -> simulator, end to end over loopback (issue 4).

What a KQL user of the legacy tables would see: every Keeper event once in ``Keeper_CL`` with one column
per field, every 1Password event once in ``OnePasswordEvents_CL`` (non-ASCII intact), the signature
accepted on every post, an oversize field cut with a marker and counted in the health row; with a wrong
key, ``error/auth`` logged at ERROR and no checkpoint moved, and the right key catching up once.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from auditsync.cli import cmd_check
from auditsync.sinks.data_collector import DataCollectorSink
from auditsync.sinks.legacy_rows import FIELD_LIMIT_BYTES, TRUNCATION_MARKER
from auditsync.tables.rows import format_time, parse_time
from simulators.clock import FakeClock
from simulators.data_collector import DataCollectorSim, column_for
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.canonical import canonical, row_content
from tests.fixtures.data_collector import random_key
from tests.fixtures.keeper import keeper_env
from tests.fixtures.pipeline import DataCollectorPipeline, settings_for, still

ONEPASSWORD_STREAMS = ("onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts")
STREAMS = ("keeper/events", *ONEPASSWORD_STREAMS)
# The real 25 MB post limit would fit a whole 1,000-event page; a lower one makes every page several
# posts, so "a page counts only when every post returned 200" is exercised on every page.
POST_LIMIT = 300_000


def both_env(dc_pipeline: DataCollectorPipeline, keeper: KeeperSim) -> dict[str, str]:
    return keeper_env(
        keeper,
        dc_pipeline.env(SOURCES="keeper,onepassword"),
        ONEPASSWORD_EVENT_TYPES="auditevents,signinattempts",
    )


def keeper_cl_view(event: dict[str, Any]) -> bytes:
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
    return canonical(row)


def stored_view(row: dict[str, Any]) -> bytes:
    return row_content(row, "Type")


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


def test_keeper_and_onepassword_through_the_data_collector_every_event_once_truncation_counted(
    keeper_pipeline_sim: KeeperSim,
    dc_pipeline: DataCollectorPipeline,
    dc_sink: Callable[..., DataCollectorSink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = dc_pipeline.clock.now()
    keeper_sent = sample_events(2_500, now - timedelta(hours=20), now - timedelta(minutes=10), seed=4)
    big = {
        **keeper_sent[0],
        "audit_event": "pam_tunnel_started",
        "name": "Ωmega — Kraków " + "Ω" * 20_000,  # over 40,000 bytes in UTF-8
        "timestamp": format_time(now - timedelta(minutes=30)),
    }
    keeper_pipeline_sim.add([*keeper_sent, big])
    step = timedelta(seconds=10)
    sent = {
        "auditevents": dc_pipeline.onepassword.generate("auditevents", 2_500, step=step),
        "itemusages": dc_pipeline.onepassword.generate("itemusages", 1_200, step=step),
        "signinattempts": dc_pipeline.onepassword.generate("signinattempts", 900, step=step),
    }
    sent["auditevents"] += special_events(dc_pipeline.onepassword, dc_pipeline.clock)
    env = both_env(dc_pipeline, keeper_pipeline_sim)
    env["ONEPASSWORD_EVENT_TYPES"] = "auditevents,itemusages,signinattempts"

    report = dc_pipeline.run(env, sink=dc_sink(max_post_bytes=POST_LIMIT))

    assert not report.failed, report.reports
    assert {r.stream: r.status for r in report.reports} == dict.fromkeys(STREAMS, "ok")
    assert dc_pipeline.collector.rejected == [], "the signature was accepted every time"
    assert dc_pipeline.collector.accepted_posts == len(dc_pipeline.collector.requests)
    op_posts = [r for r in dc_pipeline.collector.requests if r.header("log-type") == "OnePasswordEvents"]
    assert len(op_posts) > 10 and all(len(p.body) <= POST_LIMIT for p in op_posts)
    keeper_posts = [r for r in dc_pipeline.collector.requests if r.header("log-type") == "Keeper"]
    # At least one post a page: 2,501 events are three pages (Keeper reads this backlog in one window).
    assert len(keeper_posts) >= 3 and all(len(p.body) <= POST_LIMIT for p in keeper_posts)
    assert any(len(p.body) > len(p.body.decode("utf-8")) for p in keeper_posts), "non-ASCII on the wire"

    keeper_rows = dc_pipeline.collector.rows("Keeper_CL")
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

    rows = event_rows(dc_pipeline.collector)
    expected = Counter(e["uuid"] for events in sent.values() for e in events)
    assert Counter(r["uuid_s"] for r in rows) == expected, "every event exactly once"
    by_uuid = {r["uuid_s"]: r for r in rows}
    assert json.loads(by_uuid["SPECIAL0000000000000000000"]["actor_details_s"])["name"] == "Zoë Ångström"
    assert json.loads(by_uuid["SPECIAL0000000000000000001"]["location_s"])["city"] == "東京"
    assert json.loads(by_uuid["SPECIAL0000000000000000002"]["location_s"])["city"] == "Kraków"
    op_cut = by_uuid["SPECIAL0000000000000000001"]["aux_info_s"]
    assert op_cut.startswith("ΩΩΩ") and op_cut.endswith(TRUNCATION_MARKER)
    assert len(op_cut.encode("utf-8")) <= FIELD_LIMIT_BYTES
    assert dc_pipeline.collector.oversize_fields == [], "nothing left for the service to cut silently"

    beats = health(dc_pipeline.collector)
    assert set(beats) == set(STREAMS)
    assert json.loads(beats["keeper/events"]["Details_s"])["truncated_fields"] == 1
    assert beats["keeper/events"]["EventsIngested_d"] == len(keeper_sent) + 1
    assert json.loads(beats["onepassword/auditevents"]["Details_s"])["truncated_fields"] == 1
    assert beats["onepassword/auditevents"]["EventsIngested_d"] == len(sent["auditevents"])
    assert beats["onepassword/itemusages"]["Status_s"] == "ok"
    assert "Details_s" not in beats["onepassword/itemusages"]  # nothing truncated there
    health_events = [
        r
        for r in dc_pipeline.collector.rows("OnePasswordEvents_CL")
        if r.get("log_source_s") == "healthevents"
    ]
    assert len(health_events) == 3
    assert dc_pipeline.workspace.key not in caplog.text


def test_a_wrong_key_fails_both_sources_with_auth_and_moves_no_checkpoint_until_the_right_key(
    keeper_pipeline_sim: KeeperSim,
    dc_pipeline: DataCollectorPipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = dc_pipeline.clock.now()
    keeper_sent = sample_events(300, now - timedelta(hours=3), now - timedelta(minutes=10), seed=9)
    keeper_pipeline_sim.add(keeper_sent)
    dc_pipeline.onepassword.generate("auditevents", 100, step=timedelta(seconds=30))
    env = both_env(dc_pipeline, keeper_pipeline_sim)
    assert not dc_pipeline.run(env).failed
    store = dc_pipeline.store()
    before = {c.stream: c.position for c in store.list()}
    assert before["keeper/events"] is not None and before["onepassword/auditevents"] is not None
    stored_before = len(dc_pipeline.collector.rows("Keeper_CL")), len(event_rows(dc_pipeline.collector))
    assert stored_before == (300, 100)

    dc_pipeline.clock.advance(timedelta(minutes=20))
    keeper_new = sample_events(
        50,
        dc_pipeline.clock.now() - timedelta(minutes=15),
        dc_pipeline.clock.now() - timedelta(minutes=6),
        seed=10,
    )
    keeper_pipeline_sim.add(keeper_new)
    dc_pipeline.onepassword.generate("auditevents", 30, start=dc_pipeline.clock.now() - timedelta(minutes=10))
    wrong = random_key()
    caplog.set_level(logging.INFO)

    report = dc_pipeline.run({**env, "WORKSPACE_KEY": wrong})

    outcome = {r.stream: (r.status, r.error_kind) for r in report.reports}
    assert outcome == {
        "keeper/events": ("error", "auth"),
        "onepassword/auditevents": ("error", "auth"),
        "onepassword/signinattempts": ("idle", ""),  # nothing new: the sink was never asked
    }
    assert all("WORKSPACE_ID" in r.hint for r in report.reports if r.status == "error")
    assert report.heartbeat_error, "the health rows could not reach the failing sink"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    for stream in ("keeper/events", "onepassword/auditevents"):
        assert any(f"health {stream}: status=error" in m and "error_kind=auth" in m for m in errors), stream
    assert any("health onepassword/signinattempts: status=idle" in m for m in errors)
    assert {c.stream: c.position for c in store.list()} == before
    assert (
        len(dc_pipeline.collector.rows("Keeper_CL")),
        len(event_rows(dc_pipeline.collector)),
    ) == stored_before
    assert dc_pipeline.collector.rejected and {status for status, _ in dc_pipeline.collector.rejected} == {
        403
    }
    assert wrong not in caplog.text and dc_pipeline.workspace.key not in caplog.text

    # The right key again: the new events arrive, once.
    assert not dc_pipeline.run(env).failed
    keeper_rows = dc_pipeline.collector.rows("Keeper_CL")
    assert Counter(map(stored_view, keeper_rows)) == Counter(map(keeper_cl_view, keeper_sent + keeper_new))
    assert len(event_rows(dc_pipeline.collector)) == 130
    assert len({r["uuid_s"] for r in event_rows(dc_pipeline.collector)}) == 130


def test_the_workspace_key_is_read_from_key_vault(
    dc_pipeline: DataCollectorPipeline,
    keyvault_sim: KeyVaultSim,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dc_pipeline.onepassword.generate("signinattempts", 5)
    token = dc_pipeline.onepassword.issue_token()
    keyvault_sim.set_secret("onepassword-api-token", token)
    keyvault_sim.set_secret("la-workspace-key", dc_pipeline.workspace.key)
    env = dc_pipeline.env(
        key="",
        ONEPASSWORD_EVENT_TYPES="signinattempts",
        KEY_VAULT_URL=keyvault_sim.url,
        WORKSPACE_KEY_SECRET="la-workspace-key",
        ONEPASSWORD_TOKEN="",
    )
    caplog.set_level(logging.INFO)

    report = dc_pipeline.run(env)

    assert not report.failed, report.reports
    assert len(event_rows(dc_pipeline.collector)) == 5
    assert dc_pipeline.workspace.key not in caplog.text
    assert any("2026-09-14" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records), (
        "the retirement warning is logged when the sink is created"
    )


def test_health_rows_keep_their_timestamps_as_datetimes(
    dc_pipeline: DataCollectorPipeline,
) -> None:
    events = dc_pipeline.onepassword.generate("itemusages", 3, step=timedelta(seconds=1))
    env = dc_pipeline.env(ONEPASSWORD_EVENT_TYPES="itemusages")

    dc_pipeline.run(env)

    beat = health(dc_pipeline.collector)["onepassword/itemusages"]
    assert beat["NewestEventTime_t"].endswith("Z")
    assert beat["NewestEventTime_t"] <= format_time(dc_pipeline.clock.now())
    assert beat["EventsIngested_d"] == 3.0 == float(len(events))


def test_check_prints_the_retirement_warning_and_probes_the_key(
    dc_pipeline: DataCollectorPipeline,
) -> None:
    env = dc_pipeline.env()
    out = io.StringIO()

    assert cmd_check(settings_for(env), out, clock=still(dc_pipeline.clock)) == 0

    text = out.getvalue()
    assert "! SINK=data_collector uses the legacy HTTP Data Collector API" in text
    assert "2026-09-14" in text and "SINK=logs_ingestion" in text
    assert "ok sink data_collector: workspace " in text and "accepted one AuditSyncHealth_CL row" in text
    # the proof is one signed post of one health row, which content tells apart by its Status
    assert [r["Status_s"] for r in dc_pipeline.collector.rows("AuditSyncHealth_CL")] == ["check"]

    wrong = random_key()
    out = io.StringIO()
    assert cmd_check(settings_for({**env, "WORKSPACE_KEY": wrong}), out, clock=still(dc_pipeline.clock)) == 1
    text = out.getvalue()
    assert "x sink data_collector:" in text and "403" in text and "WORKSPACE_ID" in text
    assert wrong not in text
