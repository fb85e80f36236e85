"""The Data Collector sink against the simulator over real loopback sockets."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from auditsync.config import Settings
from auditsync.errors import AuthError, SinkError
from auditsync.http import HttpClient, Redactor
from auditsync.secrets import Secrets
from auditsync.sinks import open_sink
from auditsync.sinks.data_collector import MAX_POST_BYTES, DataCollectorSink, sign
from auditsync.sinks.legacy_rows import FIELD_LIMIT_BYTES, TRUNCATION_MARKER
from auditsync.tables import HEALTH_TABLE, KEEPER_TABLE, ONEPASSWORD_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from simulators.clock import FakeClock
from simulators.data_collector import DataCollectorSim
from tests.fixtures.data_collector import Workspace
from tests.fixtures.pipeline import still

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
MakeSink = Callable[..., DataCollectorSink]


def keeper_rows(count: int, **extra: Any) -> list[dict[str, Any]]:
    events = [
        {
            "audit_event": "record_update",
            "category": "usage",
            "remote_address": "203.0.113.7",
            "client_version": "Web App.17.1.0",
            "username": f"jürgen.müller+{i}@example.com",
            "enterprise_id": 8123,
            "timestamp": f"2026-11-22T02:{i // 60 % 60:02d}:{i % 60:02d}.123Z",
            "record_uid": f"rec-{i:06d}",
            "city": "Zürich — 東京",
            "result_code": "success",
            **extra,
        }
        for i in range(count)
    ]
    rows, counters = shape_rows(TABLES[KEEPER_TABLE], events, now=NOW)
    assert not counters
    return rows


def onepassword_rows(count: int, **extra: Any) -> list[dict[str, Any]]:
    events = [
        {
            "uuid": f"56YE2TYN2VFYRLNSHKPW5NVT5{i}",
            "timestamp": "2026-11-22T02:10:00.5Z",
            "category": "success",
            "type": "credentials_ok",
            "country": "ÇH",
            "target_user": {
                "uuid": "OJQGU46KAPROEJLCK674RHSAY5",
                "name": "Zoë Ångström",
                "email": "zoe@example.com",
            },
            "client": {"app_name": "1Password for Mac", "ip_address": "198.51.100.4"},
            "location": {"country": "CH", "city": "Genève", "latitude": 46.2, "longitude": 6.14},
            **extra,
        }
        for i in range(count)
    ]
    rows, counters = shape_rows(TABLES[ONEPASSWORD_TABLE], events, now=NOW, event_type="signinattempts")
    assert not counters
    return rows


# -- signature, shapes ------------------------------------------------------------------------------


def test_non_ascii_rows_are_signed_over_bytes_and_land_in_keeper_cl(
    dc_sim: DataCollectorSim, dc_sink: MakeSink
) -> None:
    result = dc_sink().send(KEEPER_TABLE, keeper_rows(3))

    assert result.rows == 3 and dict(result.counters) == {}
    assert dc_sim.rejected == [] and dc_sim.accepted_posts == 1
    request = dc_sim.requests[-1]
    assert request.header("log-type") == "Keeper"
    assert len(request.body) > len(request.body.decode("utf-8"))  # really non-ASCII on the wire
    stored = dc_sim.rows("Keeper_CL")
    assert [r["record_uid_s"] for r in stored] == ["rec-000000", "rec-000001", "rec-000002"]
    first = stored[0]
    assert first["username_s"] == "jürgen.müller+0@example.com"
    assert first["city_s"] == "Zürich — 東京"
    assert first["audit_event_s"] == "record_update"
    assert first["remote_address_s"] == "203.0.113.7"
    assert first["enterprise_id_d"] == 8123.0
    assert first["timestamp_t"] == "2026-11-22T02:00:00.123Z"
    assert first["result_code_s"] == "success"
    # The service sets TimeGenerated itself (ingestion time); we never send one, nor a "data" blob.
    assert not any(c.startswith(("TimeGenerated_", "data_")) for c in first)


def test_onepassword_rows_keep_their_column_names_and_nested_values_as_json(
    dc_sim: DataCollectorSim, dc_sink: MakeSink
) -> None:
    dc_sink().send(ONEPASSWORD_TABLE, onepassword_rows(2))

    stored = dc_sim.rows("OnePasswordEvents_CL")
    assert len(stored) == 2
    row = stored[0]
    assert row["uuid_s"] == "56YE2TYN2VFYRLNSHKPW5NVT50"  # not uuid_s_s
    assert row["action_type_s"] == "credentials_ok"
    assert row["log_source_s"] == "signinattempts"
    assert row["timestamp_t"] == "2026-11-22T02:10:00.500Z"
    assert json.loads(row["target_user_s"])["name"] == "Zoë Ångström"
    assert json.loads(row["location_s"])["city"] == "Genève"


def test_health_rows_keep_counters_as_json_text(dc_sim: DataCollectorSim, dc_sink: MakeSink) -> None:
    health = {
        "TimeGenerated": "2026-11-22T03:00:00.000Z",
        "Source": "keeper",
        "Stream": "keeper/events",
        "Status": "ok",
        "EventsIngested": 12,
        "Pages": 1,
        "NewestEventTime": "2026-11-22T02:55:00.000Z",
        "ErrorKind": "",
        "Details": {"truncated_fields": 2},
        "RunId": "run-1",
    }
    rows, _ = shape_rows(TABLES[HEALTH_TABLE], [health], now=NOW)
    dc_sink().send(HEALTH_TABLE, rows)

    (row,) = dc_sim.rows("AuditSyncHealth_CL")
    assert row["Status_s"] == "ok"
    assert row["EventsIngested_d"] == 12.0
    assert row["NewestEventTime_t"] == "2026-11-22T02:55:00.000Z"
    assert json.loads(row["Details_s"]) == {"truncated_fields": 2}
    assert "TimeGenerated_t" not in row


def test_the_simulator_refuses_a_signature_over_the_string_length(
    dc_sim: DataCollectorSim, dc_workspace: Workspace
) -> None:
    """The classic bug (Keeper Commander's): signing len(str). Proves the signature check can fail."""
    text = json.dumps([{"name": "Zoë"}], ensure_ascii=False)
    body = text.encode("utf-8")
    date = "Sun, 22 Nov 2026 03:00:00 GMT"
    key = base64.b64decode(dc_workspace.key)

    def post(length: int) -> int:
        headers = {
            "Content-Type": "application/json",
            "Log-Type": "Probe",
            "x-ms-date": date,
            "Authorization": sign(dc_workspace.id, key, content_length=length, x_ms_date=date),
        }
        return requests.post(
            f"{dc_sim.url}/api/logs?api-version=2016-04-01", data=body, headers=headers
        ).status_code

    assert post(len(text)) == 403
    assert post(len(body)) == 200
    assert len(dc_sim.rows("Probe_CL")) == 1


# -- field limit ------------------------------------------------------------------------------------


def test_a_field_over_32kb_is_truncated_with_a_marker_and_counted(
    dc_sim: DataCollectorSim, dc_sink: MakeSink
) -> None:
    long_name = "Ω" * 30_000  # 60,000 bytes in UTF-8
    rows = keeper_rows(2, name=long_name)
    rows += onepassword_rows(0)
    result = dc_sink().send(KEEPER_TABLE, rows)
    op_result = dc_sink().send(ONEPASSWORD_TABLE, onepassword_rows(1, details={"note": "x" * 40_000}))

    assert result.counters == {"truncated_fields": 2}
    assert op_result.counters == {"truncated_fields": 1}
    assert dc_sim.oversize_fields == []  # the service never had to cut anything itself
    for row in dc_sim.rows("Keeper_CL"):
        assert row["name_s"].endswith(TRUNCATION_MARKER)
        assert row["name_s"].startswith("ΩΩΩ")
        assert len(row["name_s"].encode("utf-8")) <= FIELD_LIMIT_BYTES
    (op,) = dc_sim.rows("OnePasswordEvents_CL")
    assert op["details_s"].endswith(TRUNCATION_MARKER)


def test_a_field_at_the_limit_is_sent_whole(dc_sim: DataCollectorSim, dc_sink: MakeSink) -> None:
    value = "a" * FIELD_LIMIT_BYTES
    result = dc_sink().send(KEEPER_TABLE, keeper_rows(1, name=value))

    assert result.counters == {}
    assert dc_sim.rows("Keeper_CL")[0]["name_s"] == value


# -- batching ---------------------------------------------------------------------------------------


def test_a_page_is_split_into_posts_under_the_limit_and_every_row_lands_once(
    dc_sim: DataCollectorSim, dc_sink: MakeSink
) -> None:
    limit = 20_000
    rows = keeper_rows(150, note="ü" * 300)
    result = dc_sink(max_post_bytes=limit).send(KEEPER_TABLE, rows)

    posts = [r for r in dc_sim.requests if r.path == "/api/logs"]
    assert result.rows == 150
    assert len(posts) > 3 and dc_sim.accepted_posts == len(posts)
    assert all(len(p.body) <= limit for p in posts)
    assert [r["record_uid_s"] for r in dc_sim.rows("Keeper_CL")] == [f"rec-{i:06d}" for i in range(150)]


@pytest.mark.slow
def test_a_page_over_30mb_goes_out_in_several_posts_with_the_real_limit(
    dc_sim: DataCollectorSim, dc_sink: MakeSink
) -> None:
    rows = keeper_rows(1_100, blob="€" * 10_000)  # ~30 KB per row, ~33 MB in all
    total = sum(len(json.dumps(r, ensure_ascii=False).encode("utf-8")) for r in rows)
    assert total > 30 * 1000 * 1000

    dc_sim.record_bodies = False
    dc_sink().send(KEEPER_TABLE, rows)

    posts = [r for r in dc_sim.requests if r.path == "/api/logs"]
    assert len(posts) == 2 and dc_sim.rejected == []
    assert all(int(p.header("content-length") or 0) <= MAX_POST_BYTES for p in posts)
    stored = dc_sim.rows("Keeper_CL")
    assert sorted(r["record_uid_s"] for r in stored) == [f"rec-{i:06d}" for i in range(1_100)]


def test_a_record_too_big_for_one_post_is_cut_to_fit_sent_and_counted(
    dc_sim: DataCollectorSim, dc_sink: MakeSink
) -> None:
    rows = keeper_rows(3, note="n" * 5_000)
    result = dc_sink(max_post_bytes=4_000).send(KEEPER_TABLE, rows)
    assert result.rows == 3 and result.counters["rows_cut_to_fit"] == 3
    stored = dc_sim.rows("Keeper_CL")
    assert [r["record_uid_s"] for r in stored] == [f"rec-{i:06d}" for i in range(3)]
    assert all(r["note_s"].endswith(TRUNCATION_MARKER) and len(r["note_s"]) < 4_000 for r in stored)


def test_partial_failure_raises_and_keeps_what_was_stored(
    dc_sim: DataCollectorSim, dc_sink: MakeSink
) -> None:
    rows = keeper_rows(30, note="x" * 400)
    seen: list[int] = []

    def second_post(request: Any) -> bool:
        seen.append(1)
        return len(seen) == 2

    dc_sim.inject(400, {"Error": "InvalidDataFormat", "Message": "bad record"}, when=second_post)
    sink = dc_sink(max_post_bytes=6_000)
    reported: list[int] = []

    with pytest.raises(SinkError) as raised:
        sink.send(KEEPER_TABLE, rows, on_accepted=reported.append)

    assert "post 2 of" in raised.value.message and "Keeper" in raised.value.message
    posts = [r for r in dc_sim.requests if r.path == "/api/logs"]
    assert len(posts) == 2  # the third batch is never sent once the second failed
    stored = dc_sim.rows("Keeper_CL")
    assert 0 < len(stored) < 30
    assert [r["record_uid_s"] for r in stored] == [f"rec-{i:06d}" for i in range(len(stored))]
    assert reported == [len(stored)], "the sink reported the accepted first post before sending the second"


# -- errors -----------------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error_that_names_no_secret(
    dc_sim: DataCollectorSim, dc_sink: MakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = base64.b64encode(b"not the workspace key at all, 64 bytes long......................").decode()
    caplog.set_level(logging.DEBUG)

    with pytest.raises(AuthError) as raised:
        dc_sink(key=wrong).send(KEEPER_TABLE, keeper_rows(2))

    error = raised.value
    assert error.kind == "auth" and "403" in error.message
    assert "WORKSPACE_ID" in error.hint and "key" in error.hint
    assert dc_sim.rows("Keeper_CL") == [] and dc_sim.rejected == [(403, "InvalidAuthorization")]
    signature = (dc_sim.requests[-1].header("authorization") or "").split(":")[-1]
    for text in (error.message, error.hint, caplog.text, repr(dc_sink(key=wrong))):
        assert wrong not in text and signature not in text


def test_wrong_workspace_id_is_an_auth_error(dc_sim: DataCollectorSim, dc_sink: MakeSink) -> None:
    with pytest.raises(AuthError):
        dc_sink(workspace_id="00000000-0000-0000-0000-000000000000").send(KEEPER_TABLE, keeper_rows(1))


def test_400_names_the_log_type_and_the_service_message(dc_sim: DataCollectorSim, dc_sink: MakeSink) -> None:
    dc_sim.inject(400, {"Error": "InvalidLogType", "Message": "Log-Type is not valid"})

    with pytest.raises(SinkError) as raised:
        dc_sink().send(ONEPASSWORD_TABLE, onepassword_rows(1))

    assert "OnePasswordEvents" in raised.value.message
    assert "InvalidLogType: Log-Type is not valid" in raised.value.message
    assert raised.value.kind == "sink"


def test_429_and_503_are_retried_then_succeed_without_real_sleep(
    dc_sim: DataCollectorSim, dc_sink: MakeSink, fake_clock: FakeClock
) -> None:
    dc_sim.inject(429, {"Error": "TooManyRequests"}, headers={"Retry-After": "7"})
    dc_sim.inject(503, {"Error": "ServiceUnavailable"})

    result = dc_sink().send(KEEPER_TABLE, keeper_rows(4))

    assert result.rows == 4
    assert fake_clock.sleeps[0] == 7 and len(fake_clock.sleeps) == 2
    assert [r["record_uid_s"] for r in dc_sim.rows("Keeper_CL")] == [f"rec-{i:06d}" for i in range(4)]
    dates = [r.header("x-ms-date") for r in dc_sim.requests]
    assert len(set(dates)) == 3  # re-signed with a fresh x-ms-date on every attempt


def test_throttling_that_outlives_the_retries_is_a_sink_error(
    dc_sim: DataCollectorSim, dc_sink: MakeSink, fake_clock: FakeClock
) -> None:
    dc_sim.inject(429, {"Error": "TooManyRequests"}, headers={"Retry-After": "1"}, times=10)

    with pytest.raises(SinkError, match="429"):
        dc_sink(max_attempts=3).send(KEEPER_TABLE, keeper_rows(1))

    assert len(dc_sim.requests) == 3 and dc_sim.rows("Keeper_CL") == []


def test_probe_proves_the_key_without_writing_rows(dc_sim: DataCollectorSim, dc_sink: MakeSink) -> None:
    assert "workspace key accepted" in dc_sink().probe()
    assert dc_sim.rows("AuditSyncHealth_CL") == []
    with pytest.raises(AuthError):
        dc_sink(key=base64.b64encode(b"x" * 64).decode()).probe()


def test_creating_the_sink_warns_that_the_api_is_retired(
    dc_sink: MakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    dc_sink()
    (record,) = [r for r in caplog.records if "Data Collector" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "2026-09-14" in record.getMessage() and "SINK=logs_ingestion" in record.getMessage()


# -- the factory ------------------------------------------------------------------------------------


def test_open_sink_builds_the_data_collector_sink_from_settings(
    dc_sim: DataCollectorSim, dc_workspace: Workspace, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {
            "SOURCES": "onepassword",
            "ONEPASSWORD_TOKEN": "op-token-for-tests",
            "SINK": "data_collector",
            "WORKSPACE_ID": dc_workspace.id,
            "WORKSPACE_KEY": dc_workspace.key,
            "DATA_COLLECTOR_URL": dc_sim.url,
        }
    )
    redactor = Redactor()
    http = HttpClient(clock=still(fake_clock), redactor=redactor)
    caplog.set_level(logging.WARNING)

    def no_credential() -> Any:
        raise AssertionError("the direct key must not need a credential")

    sink = open_sink(
        settings.sink,
        credential_factory=no_credential,
        secrets=Secrets(settings.key_vault_url, no_credential, redactor),
        http=http,
        clock=still(fake_clock),
    )
    sink.send(KEEPER_TABLE, keeper_rows(2))

    assert sink.name == "data_collector"
    assert len(dc_sim.rows("Keeper_CL")) == 2
    assert any("2026-09-14" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert redactor(f"x {dc_workspace.key} y") == "x *** y"
    http.close()
