"""Numeric settings have sane ranges (overflow and absurd values are config errors), RUN_TIME_BUDGET fits
host.json's functionTimeout, secrets given in settings are checked without being echoed, and no value
with a query string or credentials is echoed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from auditsync.config import DURATION_RANGES, SETTINGS, Settings
from auditsync.durations import format_duration, parse_duration
from auditsync.errors import ConfigError
from auditsync.hostjson import HOST_JSON, host_function_timeout

BASE = {"SOURCES": "keeper", "KEEPER_TOKEN": "kpr-range-test-token-0001"}


def problems(env: dict[str, str], host_json: Path = HOST_JSON) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, **env}, host_json=host_json)
    return caught.value.problems


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (
            "INITIAL_LOOKBACK",
            "9999999999d",
            "INITIAL_LOOKBACK: '9999999999d' is out of range; use from 1m to 3650d",
        ),
        ("INITIAL_LOOKBACK", "99999999999999999999999s", "is out of range"),
        ("INITIAL_LOOKBACK", "3651d", "INITIAL_LOOKBACK: 3651d is out of range"),
        ("RUN_TIME_BUDGET", "5s", "RUN_TIME_BUDGET: 5s is out of range; use from 10s to 9m"),
        ("RUN_TIME_BUDGET", "30d", "RUN_TIME_BUDGET: 30d is out of range"),
        ("RUN_TIME_BUDGET", "9m1s", "host.json's functionTimeout is 10m"),
        ("KEEPER_LAG", "2d", "KEEPER_LAG: 2d is out of range; use from 0s to 6h"),
        ("KEEPER_OVERLAP", "0s", "KEEPER_OVERLAP: 0s is out of range; use from 1s to 6h"),
        ("KEEPER_OVERLAP", "7h", "KEEPER_OVERLAP: 7h is out of range"),
    ],
)
def test_absurd_durations_are_config_errors(name: str, value: str, says: str) -> None:
    assert any(says in p for p in problems({name: value})), problems({name: value})


def test_every_duration_setting_has_a_range_and_its_default_is_inside() -> None:
    for name, (low, high) in DURATION_RANGES.items():
        assert low <= parse_duration(SETTINGS[name][0]) <= high, name
    assert Settings.from_env(
        {**BASE, "RUN_TIME_BUDGET": "9m", "KEEPER_LAG": "0s"}
    ).run_time_budget == timedelta(minutes=9)


def test_budget_follows_the_host_json_next_to_the_app(tmp_path: Path) -> None:
    short = tmp_path / "short" / "host.json"
    short.parent.mkdir()
    short.write_text('{"version": "2.0", "functionTimeout": "00:05:00"}')
    assert any("use from 10s to 4m" in p for p in problems({"RUN_TIME_BUDGET": "8m"}, short))
    assert Settings.from_env({**BASE, "RUN_TIME_BUDGET": "4m"}, host_json=short).run_time_budget == timedelta(
        minutes=4
    )

    unbounded = tmp_path / "unbounded" / "host.json"
    unbounded.parent.mkdir()
    unbounded.write_text('{"version": "2.0", "functionTimeout": "-1"}')
    assert host_function_timeout(unbounded) is None
    settings = Settings.from_env({**BASE, "RUN_TIME_BUDGET": "1h"}, host_json=unbounded)
    assert settings.run_time_budget == timedelta(hours=1)
    assert any("use from 10s to 1h" in p for p in problems({"RUN_TIME_BUDGET": "2h"}, unbounded))

    absent = tmp_path / "nowhere" / "host.json"
    assert Settings.from_env(
        {**BASE, "RUN_TIME_BUDGET": "50m"}, host_json=absent
    ).run_time_budget == timedelta(minutes=50)

    broken = tmp_path / "broken" / "host.json"
    broken.parent.mkdir()
    broken.write_text('{"functionTimeout": "ten minutes"}')
    assert any(p.startswith("host.json: functionTimeout") for p in problems({}, broken))


def test_the_shipped_host_json_is_the_one_checked() -> None:
    assert host_function_timeout() == timedelta(minutes=10)


@pytest.mark.parametrize("name", ["KEEPER_TOKEN", "ONEPASSWORD_TOKEN"])
def test_a_pasted_bearer_prefix_is_named_as_such(name: str) -> None:
    env = {"SOURCES": "keeper,onepassword", "KEEPER_TOKEN": "k" * 20, "ONEPASSWORD_TOKEN": "o" * 20}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**env, name: "Bearer prefix-test-token-0000000001"})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{name}: starts with 'Bearer '") and "whitespace" not in problem


@pytest.mark.parametrize("name", ["KEEPER_TOKEN", "ONEPASSWORD_TOKEN", "WORKSPACE_KEY"])
@pytest.mark.parametrize("inner", ["\n", "\r", "\x00", "\x1b", "\x7f", " ", "\u2028", "é"])
def test_a_secret_setting_with_an_inner_control_character_is_named_not_shown(name: str, inner: str) -> None:
    value = "c2VjcmV0LXZhbHVl" + inner + "LXRoYXQtbXVzdA=="
    env = {"SOURCES": "keeper,onepassword", "KEEPER_TOKEN": "k" * 20, "ONEPASSWORD_TOKEN": "o" * 20}
    env.update({"SINK": "data_collector", "WORKSPACE_ID": "5f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"})
    env.update({"WORKSPACE_KEY": "a2V5a2V5a2V5", name: value})
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    mine = [p for p in caught.value.problems if p.startswith(f"{name}:")]
    fix = "copy it again" if inner == "é" else "store the value alone, on one line"
    assert mine and fix in mine[0], caught.value.problems
    text = str(caught.value)
    assert "c2VjcmV0" not in text and "LXRoYXQt" not in text


def test_surrounding_whitespace_of_a_secret_setting_is_stripped() -> None:
    settings = Settings.from_env({**BASE, "KEEPER_TOKEN": "  kpr-range-test-token-0001\r\n"})
    assert settings.keeper.token.value == "kpr-range-test-token-0001"


@pytest.mark.parametrize(
    "value",
    [
        "myvault.vault.azure.net/?sv=2022&sig=c2lnbmF0dXJlLXNlY3JldA",
        "ftp://user:c2lnbmF0dXJlLXNlY3JldA@myvault.vault.azure.net/",
        "myvault.vault.azure.net#c2lnbmF0dXJlLXNlY3JldA",
    ],
)
def test_a_url_setting_is_never_echoed_with_its_query_or_credentials(value: str) -> None:
    found = problems({"KEY_VAULT_URL": value})
    assert any(p.startswith("KEY_VAULT_URL:") for p in found)
    assert "c2lnbmF0dXJl" not in " ".join(found)


def test_a_token_pasted_into_a_secret_name_setting_is_not_echoed() -> None:
    found = problems({"KEEPER_TOKEN_SECRET": "kpr/abc+def=ghi.jkl=="})
    assert any("KEEPER_TOKEN_SECRET: not a Key Vault secret name" in p for p in found)
    assert "abc+def" not in " ".join(found)


def test_readme_states_every_range() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for name, (low, high) in DURATION_RANGES.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"{format_duration(low)}\u2013{format_duration(high)}" in row, name  # en dash
