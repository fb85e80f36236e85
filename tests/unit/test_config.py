"""Settings: every problem reported at once, each naming the setting and the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from auditsync.config import SETTINGS, Settings
from auditsync.durations import parse_duration
from auditsync.errors import ConfigError

BASE = {"ONEPASSWORD_TOKEN": "op-token-value", "KEEPER_TOKEN": "keeper-token-value"}


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    return caught.value.problems


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env(BASE)
    assert settings.sources == ("keeper", "onepassword")
    assert settings.sink.kind == "file" and settings.store.kind == "file"
    assert settings.onepassword.initial_lookback == timedelta(days=1)
    assert settings.run_time_budget == timedelta(minutes=8)
    assert settings.onepassword.event_types == ("auditevents", "itemusages", "signinattempts")
    for name, (default, _) in SETTINGS.items():
        if name in BASE:
            continue
        assert Settings.from_env({**BASE, name: default}) == settings, name


def test_the_parts_defaults_are_the_catalogs() -> None:
    """Defaults are written once (auditsync.config.catalog): Settings built in code equals Settings read
    from an empty environment."""
    assert Settings.from_env({}, require_tokens=False) == Settings()


def test_each_part_holds_only_its_own_settings() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "KEEPER_LAG": "2m",
            "ONEPASSWORD_EVENT_TYPES": "itemusages",
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": "https://x.westeurope-1.ingest.monitor.azure.com",
            "LOGS_INGESTION_RULE_ID": "dcr-" + "a" * 32,
            "CHECKPOINT_STORE": "table",
            "CHECKPOINT_TABLE_URL": "https://acct.table.core.windows.net",
            "TENANT_REGISTRY": "table",
            "AUDITSYNC_DATA_DIR": "/data",
        }
    )
    assert settings.keeper.lag == timedelta(minutes=2)
    assert settings.onepassword.event_types == ("itemusages",)
    assert (
        settings.sink.kind == "logs_ingestion" and settings.sink.logs_ingestion.rule_id == "dcr-" + "a" * 32
    )
    assert settings.store.table_url == "https://acct.table.core.windows.net"
    # The fan-out's registry table and queue live in the checkpoint account unless told otherwise.
    assert settings.fanout.table_url == settings.store.table_url
    assert settings.fanout.queue_url == "https://acct.queue.core.windows.net"
    assert settings.store.directory == Path("/data/checkpoints")
    assert settings.sink.directory == Path("/data/tables")


def test_all_problems_are_reported_at_once() -> None:
    found = problems(
        {
            "SOURCES": "keeper,lastpass",
            "ONEPASSWORD_BASE_URL": "http://events.1password.com",
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": "https://x.westeurope-1.ingest.monitor.azure.com",
            "RUN_TIME_BUDGET": "eight minutes",
            "CHECKPOINT_STORE": "table",
        }
    )
    joined = "\n".join(found)
    assert "SOURCES: unknown value(s) lastpass" in joined
    assert "ONEPASSWORD_BASE_URL: must use https" in joined
    assert "LOGS_INGESTION_RULE_ID: missing" in joined
    assert "RUN_TIME_BUDGET: 'eight minutes' is not a duration" in joined
    assert "CHECKPOINT_TABLE_URL: missing" in joined
    assert "KEEPER_TOKEN: no Keeper token" in joined
    assert len(found) == 6


def test_unresolved_key_vault_reference_is_named() -> None:
    ref = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/onepassword-api-token/)"
    (problem,) = problems({**BASE, "ONEPASSWORD_TOKEN": ref})
    assert problem.startswith("ONEPASSWORD_TOKEN: the Key Vault reference was not resolved")
    assert "Key Vault Secrets User" in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://events.1password.com",
        "https://events.ent.1password.com",
        "https://events.1password.ca",
        "https://events.1password.eu",
    ],
)
def test_known_onepassword_hosts_accepted(url: str) -> None:
    assert Settings.from_env({**BASE, "ONEPASSWORD_BASE_URL": url + "/"}).onepassword.base_url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1234", "http://[::1]:99"])
def test_loopback_stand_ins_may_use_http(url: str) -> None:
    assert Settings.from_env({**BASE, "ONEPASSWORD_BASE_URL": url}).onepassword.base_url == url


def test_unknown_vendor_host_refused_unless_allowed() -> None:
    (problem,) = problems({**BASE, "KEEPER_BASE_URL": "https://keeper.example.org"})
    assert "KEEPER_BASE_URL: 'keeper.example.org' is not a known host" in problem
    allowed = Settings.from_env(
        {**BASE, "KEEPER_BASE_URL": "https://keeper.example.org", "ALLOW_CUSTOM_VENDOR_HOSTS": "true"}
    )
    assert allowed.keeper.base_url == "https://keeper.example.org"


def test_http_to_a_real_host_is_refused_even_when_custom_hosts_allowed() -> None:
    found = problems(
        {**BASE, "ALLOW_CUSTOM_VENDOR_HOSTS": "true", "KEEPER_BASE_URL": "http://keeper.example.org"}
    )
    assert found == ["KEEPER_BASE_URL: must use https (plain http is accepted only for loopback stand-ins)."]


def test_url_with_query_is_refused_without_echoing_it() -> None:
    (problem,) = problems({**BASE, "KEY_VAULT_URL": "https://kv.vault.azure.net/?sig=supersecret"})
    assert "query string" in problem and "supersecret" not in problem


def test_data_collector_needs_workspace_and_key() -> None:
    found = problems(
        {**BASE, "SINK": "data_collector", "WORKSPACE_ID": "nope", "WORKSPACE_KEY": "not base64!"}
    )
    assert any(p.startswith("WORKSPACE_ID: not a workspace id") for p in found)
    assert any(p.startswith("WORKSPACE_KEY: not a base64 shared key") for p in found)


def test_secrets_are_not_in_repr() -> None:
    settings = Settings.from_env(
        {**BASE, "CHECKPOINT_CONNECTION_STRING": "AccountName=a;AccountKey=c2VjcmV0a2V5MTIz;"}
    )
    text = repr(settings)
    assert (
        "op-token-value" not in text and "keeper-token-value" not in text and "c2VjcmV0a2V5MTIz" not in text
    )
    assert "c2VjcmV0a2V5MTIz" in settings.secret_values()


@pytest.mark.parametrize(("text", "expected"), [("30s", 30), ("8m", 480), ("1h30m", 5400), ("2d", 172800)])
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text).total_seconds() == expected


@pytest.mark.parametrize("text", ["", "5", "m", "1w", "-1m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_tenant_log_export_is_a_checked_flag() -> None:
    """A typo is a setting problem, not an export that is silently off."""
    assert Settings.from_env({**BASE, "TENANT_LOG_EXPORT": "true"}).fanout.log_export
    assert not Settings.from_env(BASE).fanout.log_export
    assert problems({**BASE, "TENANT_LOG_EXPORT": "ture"}) == [
        "TENANT_LOG_EXPORT: 'ture' is not true or false."
    ]
