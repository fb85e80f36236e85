"""TIMER_SCHEDULE is refused unless the Functions host would accept it; tokens are refused by shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auditsync.config import Settings
from auditsync.errors import ConfigError
from auditsync.schedule import describe_next_runs, next_runs, schedule_problem
from auditsync.token_shapes import check_token_shape

BASE = {"ONEPASSWORD_TOKEN": "op-token-value", "KEEPER_TOKEN": "keeper-token-value"}
JWT = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOlsiZXZlbnRzLjFwYXNzd29yZC5jb20iXX0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "schedule",
    [
        "0 */5 * * * *",
        "0 0 * * * *",
        "30 15 9 * * Mon-Fri",
        "0 0 0 1 Jan *",
        "0 0/10 8-18 * * 1-5",
        "*/30 * * * * *",
    ],
)
def test_ncrontab_schedules_the_host_accepts(schedule: str) -> None:
    assert schedule_problem(schedule) == ""
    assert Settings.from_env({**BASE, "TIMER_SCHEDULE": schedule}).timer_schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ("every 5 minutes", "3 field(s)"),
        ("*/5 * * * *", "5 field(s)"),
        ("0 */5 * * * * 2026", "7 field(s)"),
        ("@hourly", "1 field(s)"),
        ("0 0 12 L * *", "day field 'L'"),
        ("0 0 12 * * 5#2", "day-of-week field '5#2'"),
        ("0 61 * * * *", "not a valid NCRONTAB"),
        ("0 0 0 * Foo *", "month field 'Foo'"),
    ],
)
def test_schedules_the_host_refuses_name_the_problem(schedule: str, words: str) -> None:
    assert words in schedule_problem(schedule)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "TIMER_SCHEDULE": schedule})
    assert any(p.startswith("TIMER_SCHEDULE:") for p in caught.value.problems)


def test_next_runs_are_utc_and_follow_ncrontab_field_order() -> None:
    after = datetime(2026, 11, 29, 14, 3, 7, tzinfo=UTC)
    assert next_runs("0 */5 * * * *", after) == [
        datetime(2026, 11, 29, 14, 5, tzinfo=UTC),
        datetime(2026, 11, 29, 14, 10, tzinfo=UTC),
        datetime(2026, 11, 29, 14, 15, tzinfo=UTC),
    ]
    assert describe_next_runs("0 30 23 * * *", after) == (
        "2026-11-29 23:30:00, 2026-11-30 23:30:00, 2026-12-01 23:30:00 UTC"
    )
    # NCrontab: day-of-month and day-of-week must both match (Friday the 13th, not every Friday).
    assert next_runs("0 0 0 13 * Fri", after, 1) == [datetime(2027, 8, 13, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("source", "token", "words"),
    [
        ("onepassword", "abc", "expected a JWT"),
        ("onepassword", "a.b.c", "not a JWT header"),
        ("onepassword", f"Bearer {JWT}", "starts with 'Bearer '"),
        ("onepassword", f'"{JWT}"', "wrapped in quotes"),
        ("onepassword", JWT[:40] + "\n" + JWT[40:], "spaces or line breaks"),
        ("keeper", "abc", "not a Keeper API token"),
        ("keeper", JWT, "looks like a 1Password token"),
        ("keeper", "kpr token with spaces 1234", "spaces or line breaks"),
    ],
)
def test_malformed_tokens_are_config_errors_naming_the_setting(source: str, token: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_token_shape(source, token, "THE_SETTING")
    message = str(caught.value)
    assert message.startswith("THE_SETTING: ") and words in message
    assert "THE_SETTING" in caught.value.hint
    assert token.strip('"') not in message + caught.value.hint


@pytest.mark.parametrize(
    ("source", "token"),
    [("onepassword", JWT), ("keeper", "kpr-test-token-3b9f1c0a7d"), ("keeper", "A" * 43 + "=")],
)
def test_well_formed_tokens_pass(source: str, token: str) -> None:
    check_token_shape(source, token, "THE_SETTING")
