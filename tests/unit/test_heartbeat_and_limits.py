"""Health rows say what a portal user needs; oversized fields are cut visibly; token host mismatch is explained."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from auditsync.errors import ConfigError
from auditsync.heartbeat import health_rows, onepassword_health_events
from auditsync.model import StreamReport
from auditsync.sinks.limits import TRUNCATION_MARKER, truncate_fields
from auditsync.sources.onepassword import check_token_host
from auditsync.tables import HEALTH_TABLE, ONEPASSWORD_TABLE, TABLES
from auditsync.tables.rows import shape_rows

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_health_rows_use_only_declared_columns() -> None:
    reports = [
        StreamReport(
            "onepassword",
            "onepassword/auditevents",
            "ok",
            12,
            1,
            340,
            NOW,
            5,
            counters={"duplicates_dropped": 1},
        ),
        StreamReport(
            "keeper", "keeper/events", "error", error_kind="auth", message="401", hint="regenerate the token"
        ),
        StreamReport("keeper", "keeper/other", "skipped"),
    ]
    rows = health_rows(reports, now=NOW, run_id="r1")
    assert [r["Stream"] for r in rows] == ["onepassword/auditevents", "keeper/events"]
    declared = TABLES[HEALTH_TABLE].column_types
    for row in rows:
        assert set(row) <= set(declared)
        assert row["RunId"] == "r1" and row["Version"]
    assert rows[0]["Details"] == {"duplicates_dropped": 1} and rows[0]["LagSeconds"] == 5
    assert rows[1]["ErrorKind"] == "auth" and rows[1]["Hint"] == "regenerate the token"


def test_onepassword_health_event_shape() -> None:
    reports = [
        StreamReport("onepassword", "onepassword/signinattempts", "error", error_kind="auth", message="401"),
        StreamReport("onepassword", "onepassword/itemusages", "idle"),
        StreamReport(
            "onepassword", "onepassword/auditevents", "error", error_kind="credentials", message="kv"
        ),
        StreamReport("keeper", "keeper/events", "ok", 3),
    ]
    events = onepassword_health_events(reports, now=NOW, run_id="r1")
    rows, _ = shape_rows(TABLES[ONEPASSWORD_TABLE], events, now=NOW, event_type="healthevents")
    assert [(r["log_source"], r["category"], r["action_type"]) for r in rows] == [
        ("healthevents", "credentials_failed", "API Key Invalid"),
        ("healthevents", "success", "Events Collected"),
        # A Key Vault outage is not a bad API key, nor the vendor's failure.
        ("healthevents", "credentials_unavailable", "Key Vault or Managed Identity Unavailable"),
    ]


def test_oversized_fields_are_cut_with_a_marker() -> None:
    rows = [{"a": "ü" * 40_000, "b": {"blob": "x" * 70_000}, "c": 5, "d": "short"}]
    fixed, count = truncate_fields(rows, 64_000)
    assert count == 2
    assert fixed[0]["a"].endswith(TRUNCATION_MARKER) and len(fixed[0]["a"].encode()) <= 64_000
    assert isinstance(fixed[0]["b"], str) and fixed[0]["b"].endswith(TRUNCATION_MARKER)
    assert fixed[0]["c"] == 5 and fixed[0]["d"] == "short"
    assert rows[0]["a"] == "ü" * 40_000, "the caller's rows are not modified"


def _token(aud: object) -> str:
    def part(doc: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256'})}.{part({'aud': aud})}.c2ln"


def test_token_for_another_region_is_a_config_error_naming_the_host() -> None:
    with pytest.raises(ConfigError) as caught:
        check_token_host(_token(["events.1password.eu"]), "https://events.1password.com")
    assert "belongs to events.1password.eu" in str(caught.value)
    assert caught.value.hint == "Set ONEPASSWORD_BASE_URL=https://events.1password.eu."


@pytest.mark.parametrize(
    "aud", [["com.1password.streamingservice"], ["events.1password.com"], "events.1password.com", None]
)
def test_matching_or_old_style_tokens_pass(aud: object) -> None:
    check_token_host(_token(aud), "https://events.1password.com")


def test_fit_row_cuts_field_by_field_then_whole_fields_and_says_so() -> None:
    from auditsync.sinks.limits import COMPACT_JSON, fit_row

    def size(row: dict[str, object]) -> int:
        return len(COMPACT_JSON.encode(row).encode("utf-8"))

    small = {"a": "x" * 100, "n": 5}
    assert fit_row(small, 1_000, 500) == (small, 0, False)

    wide = {f"f{i}": "é" * 40_000 for i in range(30)} | {"n": 7, "when": "2026-01-01T00:00:00Z"}
    fixed, cut, whole = fit_row(wide, 999_998, 64_000)
    assert whole and size(fixed) <= 999_998 and cut >= 15
    assert fixed["n"] == 7 and fixed["when"] == "2026-01-01T00:00:00Z", "short fields are kept as they were"
    assert all(v.endswith(TRUNCATION_MARKER) for k, v in fixed.items() if k.startswith("f"))

    many = {f"f{i:04d}": "q" * 1_000 for i in range(1_100)}  # each at the floor: only emptying helps
    fixed, cut, whole = fit_row(many, 999_998, 64_000)
    assert whole and size(fixed) <= 999_998 and sum(v is None for v in fixed.values()) > 0
