"""The timer function on the fault paths: no secret in log records (at DEBUG), health rows, checkpoints
or output, and no failure ends in anything but one classified line. Tokens come from the Key Vault
simulator through the managed identity simulator, as in Azure."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.functions.timer import TimerRequest

import function_app
from auditsync.config import Settings
from auditsync.model import JSON, Deadline, SendResult
from auditsync.runner import run_cycle
from simulators.identity import ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.secret_scan import assert_no_secrets, files_text, records_text, rows_text
from tests.integration.test_function_app import collect_function

HEALTH = "AuditSyncHealth_CL"


def tick() -> None:
    """One timer invocation of the function the host indexes (``get_functions`` is cached there)."""
    collect_function().get_user_function()(TimerRequest(past_due=False, schedule_status={}, schedule={}))


@pytest.fixture
def keeper_sim() -> Iterator[KeeperSim]:
    token = f"kpr/{secrets.token_urlsafe(20)}+{secrets.token_hex(6)}=="
    with KeeperSim(token=token) as sim:
        now = datetime.now(UTC)
        sim.add(sample_events(30, now - timedelta(hours=2), now - timedelta(minutes=10), seed=2))
        yield sim


@pytest.fixture
def app_settings(
    onepassword_sim: OnePasswordSim,
    keeper_sim: KeeperSim,
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    env = {
        "SOURCES": "keeper,onepassword",
        "ONEPASSWORD_EVENT_TYPES": "auditevents",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "KEEPER_BASE_URL": keeper_sim.url,
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        "RUN_TIME_BUDGET": "2m",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_ticks_with_newline_secrets_and_echoing_vendors_leak_nothing(
    app_settings: dict[str, str],
    azurite_connection_string: str,
    azurite_table_name: str,
    monkeypatch: pytest.MonkeyPatch,
    onepassword_sim: OnePasswordSim,
    keeper_sim: KeeperSim,
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHECKPOINT_STORE", "table")  # checkpoint records in Table Storage (Azurite)
    monkeypatch.setenv("CHECKPOINT_CONNECTION_STRING", azurite_connection_string)
    monkeypatch.setenv("CHECKPOINT_TABLE", azurite_table_name)
    op_token, kp_token = onepassword_sim.issue_token(), keeper_sim.token
    keyvault_sim.set_secret("onepassword-api-token", op_token + "\n")
    keyvault_sim.set_secret("keeper-api-token", "\t" + kp_token + "\n")
    onepassword_sim.generate("auditevents", 40)
    failures = []
    with caplog.at_level(logging.DEBUG):
        tick()
        assert len(logs_ingestion_sim.rows("KeeperSecurityEventNewLogs_CL")) == 30
        # 1Password now refuses the event endpoint (introspect still passes, so the stream runs and its
        # checkpoint records the outcome); Keeper's token was rotated. Both quote what they were sent.
        onepassword_sim.inject(
            401, {"status": 401, "message": "Unauthorized"}, times=99, path="/api/v2/auditevents"
        )
        keeper_sim.token = "kpr-rotated-" + secrets.token_hex(12)
        for mode in ("full", "prefix24", "urlencoded", "json_escaped"):
            onepassword_sim.echo_token = keeper_sim.echo_token = mode
            with pytest.raises(function_app.CollectionFailed) as caught:
                tick()
            failures.append(str(caught.value))
    health = logs_ingestion_sim.rows(HEALTH)
    assert sum("credential: ***" in r.get("Message", "") for r in health) == 8  # 2 streams x 4 modes
    table = TableServiceClient.from_connection_string(azurite_connection_string).get_table_client(
        azurite_table_name
    )
    checkpoints = [dict(e) for e in table.list_entities()]
    assert {e["Stream"]: e.get("LastErrorKind") for e in checkpoints} == {
        "keeper/events": "auth",
        "onepassword/auditevents": "auth",
    }, checkpoints
    assert all("credential: ***" in e["LastMessage"] for e in checkpoints), "the echo reached the checkpoints"
    captured = capsys.readouterr()
    assert_no_secrets(
        {
            "log records": records_text(caplog.records),
            "invocation failures": "\n".join(failures),
            "sink rows": rows_text(*(logs_ingestion_sim.rows(t) for t in sorted(logs_ingestion_sim._rows))),
            "data dir": files_text(Path(app_settings["AUDITSYNC_DATA_DIR"])),
            "checkpoint records": rows_text(checkpoints),
            "stdout/stderr": captured.out + captured.err,
        },
        [op_token, kp_token],
    )


class HeaderSink:
    """A sink (the Sink protocol) whose requests carry the token with a newline, as before tokens were
    stripped: requests itself refuses the header and quotes the whole ``Bearer`` value in its error."""

    name = "header"

    def __init__(self, token: str) -> None:
        self.token = token
        self.received: list[JSON] = []
        self.calls = 0

    def send(
        self, table: str, rows: list[JSON], deadline: Deadline | None = None, on_accepted: object = None
    ) -> SendResult:
        self.calls += 1
        if self.calls == 1:  # the page; the heartbeat after it goes through
            headers = {"Authorization": f"Bearer {self.token}\n"}
            requests.Request("POST", "http://127.0.0.1:9/", headers=headers).prepare()
        self.received.extend(rows)
        return SendResult(len(rows))

    def probe(self) -> str:
        return "header sink"


def test_an_unexpected_exception_quoting_the_token_is_one_line_and_its_traceback_is_redacted(
    onepassword_sim: OnePasswordSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = onepassword_sim.issue_token()
    onepassword_sim.generate("auditevents", 5)
    settings = Settings.from_env(
        {
            "SOURCES": "onepassword",
            "ONEPASSWORD_EVENT_TYPES": "auditevents",
            "ONEPASSWORD_BASE_URL": onepassword_sim.url,
            "ONEPASSWORD_TOKEN": token,
            "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        }
    )
    sink = HeaderSink(token)
    with caplog.at_level(logging.DEBUG):
        report = run_cycle(settings, sink=sink)
    (stream,) = report.reports
    assert (stream.status, stream.message) == ("error", "unexpected InvalidHeader in onepassword/auditevents")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None and not r.exc_text for r in errors), "no traceback above DEBUG"
    assert any(
        "unexpected InvalidHeader in onepassword/auditevents: Invalid" in r.getMessage() for r in errors
    )
    debug = [
        r for r in caplog.records if r.levelno == logging.DEBUG and "traceback of the unexpected" in r.msg
    ]
    assert debug and "Traceback" in (debug[0].exc_text or ""), "the traceback is kept, redacted, at DEBUG"
    assert_no_secrets(
        {
            "log records": records_text(caplog.records),
            "health rows": rows_text(sink.received),
            "checkpoints": files_text(tmp_path / "data"),
        },
        [token],
    )


@pytest.mark.timeout(60)  # 10 s of budget, 10 s of heartbeat grace: anything near a minute hangs
def test_a_sink_that_resets_the_connection_ends_the_invocation_with_one_classified_line(
    app_settings: dict[str, str],
    onepassword_sim: OnePasswordSim,
    resetting_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = onepassword_sim.issue_token()
    onepassword_sim.generate("auditevents", 5)
    monkeypatch.setenv("SOURCES", "onepassword")
    monkeypatch.setenv("ONEPASSWORD_TOKEN", token + "\n")
    monkeypatch.delenv("KEY_VAULT_URL")
    monkeypatch.setenv("LOGS_INGESTION_ENDPOINT", resetting_endpoint)
    # The sink retries the resets in real time until the deadline, then the heartbeat for its grace: the
    # shortest budget allowed gets to the same classified failure in seconds instead of a minute.
    monkeypatch.setenv("RUN_TIME_BUDGET", "10s")
    with caplog.at_level(logging.DEBUG), pytest.raises(function_app.CollectionFailed) as caught:
        tick()
    message = str(caught.value)
    assert "\n" not in message and caught.value.__cause__ is None, message
    assert message.startswith(("run ", "auditsync timer run failed: ")), message
    above_debug = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert not [r for r in above_debug if r.exc_info or r.exc_text], "a traceback only at DEBUG"
    assert_no_secrets({"log records": records_text(caplog.records), "failure": message}, [token])
