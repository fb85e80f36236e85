"""The timer function as the Functions host would index and call it, against the simulators, with the
tokens read from the fake Key Vault through the fake managed identity endpoint."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

import function_app
from auditsync.cli import main as cli_main
from simulators.identity import ManagedIdentitySim
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import event_rows, health, uuid_counts

_FUNCTIONS: list[Any] = []


def indexed_function(name: str) -> Any:
    """``get_functions`` may be called once per FunctionApp: cache it for the module."""
    if not _FUNCTIONS:
        _FUNCTIONS.extend(function_app.app.get_functions())
    (fn,) = [f for f in _FUNCTIONS if f.get_function_name() == name]
    return fn


def collect_function() -> Any:
    return indexed_function("collect")


def timer(past_due: bool = False) -> TimerRequest:
    return TimerRequest(past_due=past_due, schedule_status={}, schedule={"AdjustForDST": True})


@pytest.fixture
def deployed(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """App settings as the template sets them, pointing at the simulators; returns the env."""
    token = onepassword_sim.issue_token(features=("auditevents", "signinattempts"))
    keyvault_sim.set_secret("onepassword-api-token", token)
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "CHECKPOINT_STORE": "file",
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        "RUN_TIME_BUDGET": "2m",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**env, "_token": token}


def test_timer_binding_is_what_the_host_indexes() -> None:
    fn = collect_function()
    binding = fn.get_trigger().get_dict_repr()
    assert fn.get_function_name() == "collect"
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == "0 */5 * * * *"
    assert binding["useMonitor"] is True and binding["runOnStartup"] is False
    assert json.loads(fn.get_function_json())["bindings"][0]["name"] == "timer"


def test_a_tick_runs_a_full_cycle_with_key_vault_tokens(
    deployed: dict[str, str],
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONEPASSWORD_EVENT_TYPES", "auditevents,signinattempts")
    audit = onepassword_sim.generate("auditevents", 1_200, step=timedelta(seconds=30))
    signins = onepassword_sim.generate("signinattempts", 300, step=timedelta(minutes=1))
    with caplog.at_level(logging.DEBUG):
        collect_function().get_user_function()(timer(past_due=True))
    assert "timer is past due" in caplog.text
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in audit + signins)
    rows = health(logs_ingestion_sim)
    assert {s: (r["Status"], r["EventsIngested"]) for s, r in rows.items()} == {
        "onepassword/auditevents": ("ok", 1_200),
        "onepassword/signinattempts": ("ok", 300),
    }
    assert any(r.path.startswith("/secrets/onepassword-api-token") for r in keyvault_sim.requests)
    assert identity_sim.requested, "the managed identity endpoint issued the tokens"


def test_failures_are_per_stream_and_the_invocation_fails_at_the_end(
    deployed: dict[str, str],
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The token lacks itemusages; auditevents answers 401; signinattempts works.
    onepassword_sim.generate("auditevents", 50)
    signins = onepassword_sim.generate("signinattempts", 40)
    onepassword_sim.inject(
        401, {"status": 401, "message": "Unauthorized"}, times=100, path="/api/v2/auditevents"
    )
    with caplog.at_level(logging.INFO), pytest.raises(function_app.CollectionFailed) as caught:
        collect_function().get_user_function()(timer())
    assert "onepassword/auditevents (auth)" in str(caught.value)
    assert "onepassword/itemusages (config)" in str(caught.value)
    rows = health(logs_ingestion_sim)
    assert {s: (r["Status"], r.get("ErrorKind")) for s, r in rows.items()} == {
        "onepassword/auditevents": ("error", "auth"),
        "onepassword/itemusages": ("error", "config"),
        "onepassword/signinattempts": ("ok", None),
    }
    assert "Events Reporting" in rows["onepassword/auditevents"]["Hint"]
    assert "itemusages" in rows["onepassword/itemusages"]["Hint"]
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in signins)
    heartbeat = {
        r["details"]["stream"]: r
        for r in logs_ingestion_sim.rows("OnePasswordEventLogs_CL")
        if r.get("log_source") == "healthevents"
    }
    assert heartbeat["onepassword/auditevents"]["category"] == "credentials_failed"
    assert heartbeat["onepassword/auditevents"]["action_type"] == "API Key Invalid"


def test_secrets_never_leave_the_process(
    deployed: dict[str, str],
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = deployed["_token"]
    onepassword_sim.generate("auditevents", 20)
    # A server that echoes the token in its error must not get it into our messages either.
    onepassword_sim.inject(
        400,
        {"status": 400, "message": f"bad request for token {token}"},
        times=100,
        path="/api/v2/signinattempts",
    )
    env = {k: v for k, v in deployed.items() if not k.startswith("_")}
    outputs = []
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(function_app.CollectionFailed):
            collect_function().get_user_function()(timer())
        for command in ("run", "check", "status"):
            out = io.StringIO()
            cli_main([command], env=env, out=out)
            outputs.append(out.getvalue())
    captured = capsys.readouterr()
    signature = token.rsplit(".", 1)[1]
    places = {
        "log records": caplog.text + "".join(str(r.__dict__) for r in caplog.records),
        "health rows": json.dumps(logs_ingestion_sim.rows("AuditSyncHealth_CL")),
        "1Password health events": json.dumps(logs_ingestion_sim.rows("OnePasswordEventLogs_CL")),
        "checkpoints": "".join(
            p.read_text() for p in Path(env["AUDITSYNC_DATA_DIR"]).rglob("*") if p.is_file()
        ),
        "cli output": "".join(outputs),
        "stdout/stderr": captured.out + captured.err,
    }
    assert "bad request for token ***" in places["health rows"]
    for where, text in places.items():
        assert token not in text, where
        assert signature not in text, where


def test_bad_settings_fail_the_invocation_with_every_problem_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SOURCES", "onepassword")
    monkeypatch.setenv(
        "ONEPASSWORD_TOKEN", "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/op/)"
    )
    monkeypatch.setenv("SINK", "logs_ingestion")
    monkeypatch.delenv("LOGS_INGESTION_ENDPOINT", raising=False)
    monkeypatch.delenv("KEY_VAULT_URL", raising=False)
    with caplog.at_level(logging.ERROR), pytest.raises(function_app.CollectionFailed) as caught:
        collect_function().get_user_function()(timer())
    assert "3 setting problem(s)" in str(caught.value)
    problems = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("ONEPASSWORD_TOKEN: the Key Vault reference was not resolved" in p for p in problems)
    assert any("LOGS_INGESTION_ENDPOINT: missing" in p for p in problems)
    assert any("LOGS_INGESTION_RULE_ID: missing" in p for p in problems)
