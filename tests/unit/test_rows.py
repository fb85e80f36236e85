"""Row shaping reads the table files: only declared columns, declared types, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime

from auditsync.tables import HEALTH_TABLE, KEEPER_TABLE, ONEPASSWORD_TABLE, TABLES
from auditsync.tables.rows import parse_time, shape_rows

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_signin_attempt_shape_matches_existing_content() -> None:
    event = {
        "uuid": "56YE2TYN2VFYRLNSHKPW5NVT5E",
        "session_uuid": "A5K6COGVRVEJXJW3XQZGS7VAMM",
        "timestamp": "2026-11-22T09:59:01.123456Z",
        "category": "credentials_failed",
        "type": "password_secret_bad",
        "country": "DE",
        "details": None,
        "target_user": {
            "uuid": "U1",
            "name": "Jörg Müller",
            "email": "jm@example.com",
            "user_type": "member",
        },
        "client": {"app_name": "1Password Browser Extension", "ip_address": "203.0.113.7"},
        "location": {"country": "DE", "city": "München"},
        "account_uuid": "ACC",
        "unexpected_new_field": "x",
    }
    (row,), counters = shape_rows(TABLES[ONEPASSWORD_TABLE], [event], now=NOW, event_type="signinattempts")
    assert not counters
    assert row["uuid_s"] == "56YE2TYN2VFYRLNSHKPW5NVT5E"
    assert row["action_type"] == "password_secret_bad"
    assert row["log_source"] == "signinattempts"
    assert row["timestamp"] == "2026-11-22T09:59:01.123Z"
    assert row["TimeGenerated"] == "2026-11-22T10:00:00.000Z"
    assert row["user_type"] == "member"
    assert row["location"] == {"country": "DE", "city": "München"}
    assert set(row) <= set(TABLES[ONEPASSWORD_TABLE].column_types)
    assert "unexpected_new_field" not in row and "details" not in row


def test_keeper_event_specific_fields_go_to_data() -> None:
    event = {
        "audit_event": "record_add",
        "enterprise_id": "1234",
        "timestamp": 1751910807587,
        "record_uid": "R1",
        "username": "a@b.c",
    }
    (row,), _ = shape_rows(TABLES[KEEPER_TABLE], [event], now=NOW)
    assert row["enterprise_id"] == 1234
    assert row["timestamp"] == "2025-07-07T17:53:27.587Z"
    assert row["data"] == {"record_uid": "R1"}


def test_uncoercible_value_is_kept_and_counted() -> None:
    event = {"audit_event": "login", "timestamp": "yesterday-ish"}
    (row,), counters = shape_rows(TABLES[KEEPER_TABLE], [event], now=NOW)
    assert "timestamp" not in row
    assert row["data"] == {"timestamp": "yesterday-ish"}
    assert counters == {"uncoercible_timestamp": 1}


def test_health_rows_pass_through_by_column_name() -> None:
    (row,), _ = shape_rows(TABLES[HEALTH_TABLE], [{"Status": "ok", "EventsIngested": 3, "Nope": 1}], now=NOW)
    assert row == {"Status": "ok", "EventsIngested": 3}


def test_time_formats() -> None:
    expected = datetime(2025, 1, 12, 0, 3, 44, 743000, tzinfo=UTC)
    assert parse_time("2025-01-12T00:03:44.743Z") == expected
    assert parse_time("2025-01-12T02:03:44.743+02:00") == expected
    assert parse_time(1736640224743) == expected
    assert parse_time("1736640224743") == expected
    assert parse_time("2025-01-12T00:03:44Z") == expected.replace(microsecond=0)
    assert parse_time("garbage") is None and parse_time(True) is None and parse_time(None) is None
