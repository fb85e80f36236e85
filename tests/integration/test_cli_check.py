"""``auditsync check`` end to end against the simulators: every part is proven by use, and each way it
can be broken is one ``x`` line naming the problem, a ``what to do`` line, and exit 1."""

from __future__ import annotations

import base64
import io
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from auditsync.cli import main
from simulators.data_collector import DataCollectorSim
from simulators.identity import COMPETING_CREDENTIAL_ENV
from simulators.keeper import KeeperSim
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.azurite import table_connection_string
from tests.fixtures.data_collector import Workspace, random_key
from tests.fixtures.pipeline import onepassword_source_env, pipeline_env


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(args, env=env, out=out)
    return code, out.getvalue()


def closed_port_url(scheme: str = "http") -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


@pytest.fixture
def azure_env(
    onepassword_sim: OnePasswordSim,
    keyvault_sim: KeyVaultSim,
    logs_ingestion_sim: LogsIngestionSim,
    tmp_path: Path,
) -> dict[str, str]:
    """A deployment as the template makes it: token in Key Vault, Logs Ingestion sink (file checkpoints)."""
    keyvault_sim.set_secret("onepassword-api-token", onepassword_sim.issue_token())
    return {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "AUDITSYNC_DATA_DIR": str(tmp_path),
    }


def failed_line(out: str, part: str) -> tuple[str, str]:
    """The ``x`` line of ``part`` and the ``what to do`` line under it."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(f"x {part}"):
            hint = lines[i + 1].strip() if i + 1 < len(lines) else ""
            assert hint.startswith("what to do:"), out
            return line.strip(), hint
    raise AssertionError(f"no failed line for {part}:\n{out}")


def test_check_passes_when_every_part_works_and_writes_one_check_row(
    azure_env: dict[str, str], logs_ingestion_sim: LogsIngestionSim, tmp_path: Path
) -> None:
    code, out = run(["check"], azure_env)

    assert code == 0, out
    assert out.rstrip().endswith("all checks passed")
    assert "ok onepassword token (Key Vault secret onepassword-api-token): readable" in out
    assert "ok onepassword API (1Password introspect): 1Password token reads auditevents" in out
    assert "ok checkpoint store: created, read and deleted a probe record" in out
    assert "next runs" in out and " UTC" in out
    health = logs_ingestion_sim.rows("AuditSyncHealth_CL")
    assert [(h["Status"], h["Stream"]) for h in health] == [("check", "auditsync/check")]
    assert not list((tmp_path / "checkpoints").glob("*.json")), "the probe record must be deleted"


def test_check_names_a_wrong_dcr(azure_env: dict[str, str]) -> None:
    code, out = run(["check"], {**azure_env, "LOGS_INGESTION_RULE_ID": "dcr-" + "0" * 32})
    assert code == 1
    line, hint = failed_line(out, "sink logs_ingestion")
    assert "HTTP 404" in line and "dcr-" + "0" * 32 in line
    assert "LOGS_INGESTION_RULE_ID" in hint
    assert out.rstrip().endswith("1 check(s) failed")


def test_check_names_a_missing_role(azure_env: dict[str, str], logs_ingestion_sim: LogsIngestionSim) -> None:
    logs_ingestion_sim.deny()
    code, out = run(["check"], azure_env)
    assert code == 1
    line, hint = failed_line(out, "sink logs_ingestion")
    assert "HTTP 403" in line and "Monitoring Metrics Publisher" in hint


def test_check_names_an_unreachable_endpoint(azure_env: dict[str, str]) -> None:
    code, out = run(["check"], {**azure_env, "LOGS_INGESTION_ENDPOINT": closed_port_url()})
    assert code == 1
    line, hint = failed_line(out, "sink logs_ingestion")
    assert "could not be reached" in line and "LOGS_INGESTION_ENDPOINT" in hint


def test_check_names_an_unwritable_checkpoint_store(azure_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    code, out = run(["check"], {**azure_env, "AUDITSYNC_DATA_DIR": str(blocker)})
    assert code == 1
    line, hint = failed_line(out, "checkpoint store")
    assert "Could not create the checkpoint directory" in line and "AUDITSYNC_DATA_DIR" in hint


def test_check_names_a_disabled_secret(azure_env: dict[str, str], keyvault_sim: KeyVaultSim) -> None:
    keyvault_sim.disable_secret("onepassword-api-token")
    code, out = run(["check"], azure_env)
    assert code == 1
    line, hint = failed_line(out, "onepassword token")
    assert "is disabled (SecretDisabled)" in line and "Enable" in hint
    assert "Key Vault Secrets User" not in hint, "a disabled secret is not a missing role"
    assert "- onepassword API (1Password introspect): not tried" in out


@pytest.mark.parametrize(
    ("reason", "expected", "hint_words"),
    [
        ("rbac", "(ForbiddenByRbac)", "Key Vault Secrets User"),
        ("access_policy", "no access policy", "access polic"),
        ("firewall", "refused the caller's network", "Networking"),
    ],
)
def test_check_splits_key_vault_refusals_by_their_code(
    azure_env: dict[str, str], keyvault_sim: KeyVaultSim, reason: str, expected: str, hint_words: str
) -> None:
    keyvault_sim.deny(reason=reason)
    code, out = run(["check"], azure_env)
    assert code == 1
    line, hint = failed_line(out, "onepassword token")
    assert expected in line and hint_words in hint


def test_check_refuses_a_malformed_token_without_calling_the_api(
    onepassword_sim: OnePasswordSim, tmp_path: Path
) -> None:
    env = pipeline_env(tmp_path, "onepassword", onepassword_source_env(onepassword_sim, "abc"))
    code, out = run(["check"], env)
    assert code == 1
    line, hint = failed_line(out, "onepassword token")
    assert "onepassword token (ONEPASSWORD_TOKEN): not a 1Password Events API token (expected a JWT" in line
    assert line.count("ONEPASSWORD_TOKEN") == 1, "the setting is named once"
    assert "ONEPASSWORD_TOKEN" in hint and "abc" not in out
    assert not onepassword_sim.requests, "a token refused by its shape must not go to the network"


def test_check_refuses_a_malformed_keeper_token(keeper_sim: KeeperSim, tmp_path: Path) -> None:
    env = {
        "SOURCES": "keeper",
        "KEEPER_BASE_URL": keeper_sim.url,
        "KEEPER_TOKEN": "abc3b9f",  # too short to be any token: refused before a request goes out
        "AUDITSYNC_DATA_DIR": str(tmp_path),
    }
    code, out = run(["check"], env)
    assert code == 1
    line, hint = failed_line(out, "keeper token")
    assert "keeper token (KEEPER_TOKEN): not a Keeper API token" in line and "KEEPER_TOKEN" in hint
    assert line.count("KEEPER_TOKEN") == 1, "the setting is named once"
    assert "abc3b9f" not in out
    assert not keeper_sim.requests


def test_check_proves_the_data_collector_with_a_signed_row(
    onepassword_sim: OnePasswordSim, dc_sim: DataCollectorSim, dc_workspace: Workspace, tmp_path: Path
) -> None:
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "ONEPASSWORD_TOKEN": onepassword_sim.issue_token(),
        "AUDITSYNC_DATA_DIR": str(tmp_path),
        "SINK": "data_collector",
        "WORKSPACE_ID": dc_workspace.id,
        "WORKSPACE_KEY": dc_workspace.key,
        "DATA_COLLECTOR_URL": dc_sim.url,
    }
    code, out = run(["check"], env)
    assert code == 0, out
    assert [r["Status_s"] for r in dc_sim.rows("AuditSyncHealth_CL")] == ["check"]

    code, out = run(["check"], {**env, "WORKSPACE_KEY": random_key()})
    assert code == 1
    line, hint = failed_line(out, "sink data_collector")
    assert "403" in line and hint


@pytest.fixture
def no_azure_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workstation with no managed identity and no developer sign-in (no az, azd or pwsh to ask)."""
    for name in (*COMPETING_CREDENTIAL_ENV, "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "WEBSITE_INSTANCE_ID"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-home"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")  # skip the IMDS probe of a VM we are not on


@pytest.mark.usefixtures("no_azure_login")
def test_check_summarises_a_missing_azure_login_in_one_line(
    onepassword_sim: OnePasswordSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No managed identity and no developer sign-in: one line and the local fix, not a credential dump."""
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "ONEPASSWORD_TOKEN": onepassword_sim.issue_token(),
        "AUDITSYNC_DATA_DIR": str(tmp_path),
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": "https://auditsync-dce.westeurope-1.ingest.monitor.azure.com",
        "LOGS_INGESTION_RULE_ID": "dcr-" + "1" * 32,
    }
    code, out = run(["check"], env)
    assert code == 1
    line, hint = failed_line(out, "sink logs_ingestion")
    assert line.startswith("x sink logs_ingestion: no Azure credential on this machine for Logs Ingestion")
    assert "az login" in hint and "Monitoring Metrics Publisher" in hint
    assert len(line) < 300
    assert not [
        r for r in caplog.records if r.name.startswith("azure.identity") and r.levelno < logging.ERROR
    ]

    code, out = run(
        ["check"],
        {
            **env,
            "SINK": "file",
            "CHECKPOINT_STORE": "table",
            "CHECKPOINT_TABLE_URL": "https://auditsyncstore.table.core.windows.net",
        },
    )
    assert code == 1
    line, hint = failed_line(out, "checkpoint store")
    assert line.startswith("x checkpoint store: no Azure credential on this machine for checkpoint table")
    assert "az login" in hint and "Storage Table Data Contributor" in hint


def test_bad_schedule_is_exit_2_naming_the_setting(tmp_path: Path) -> None:
    env = {"SOURCES": "onepassword", "ONEPASSWORD_TOKEN": "x", "AUDITSYNC_DATA_DIR": str(tmp_path)}
    for schedule in ("every 5 minutes", "*/5 * * * *", "0 */5 * * * L"):
        code, out = run(["check"], {**env, "TIMER_SCHEDULE": schedule})
        assert code == 2, (schedule, out)
        assert "x TIMER_SCHEDULE:" in out and "never fires" in out


def test_a_schedule_the_host_would_refuse_still_indexes_the_function_and_says_why() -> None:
    """Azure would not index a timer with a bad schedule (it silently never runs): fall back, log the problem."""
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run(
        [sys.executable, "-c", "import function_app; print(function_app.SCHEDULE)"],
        cwd=root,
        env={**os.environ, "TIMER_SCHEDULE": "every 5 minutes"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "0 */5 * * * *"
    assert "TIMER_SCHEDULE: 'every 5 minutes' has 3 field(s)" in loaded.stderr


def test_missing_logs_ingestion_endpoint_says_where_to_find_it(tmp_path: Path) -> None:
    code, out = run(
        ["check"],
        {
            "SOURCES": "onepassword",
            "ONEPASSWORD_TOKEN": "x",
            "AUDITSYNC_DATA_DIR": str(tmp_path),
            "SINK": "logs_ingestion",
        },
    )
    assert code == 2
    assert "x LOGS_INGESTION_ENDPOINT: missing; copy the deployment output 'logsIngestionEndpoint'" in out
    assert "x LOGS_INGESTION_RULE_ID: missing; copy the deployment output 'dcrImmutableId'" in out


def test_check_names_a_table_store_that_refuses_the_key(
    azurite_port: int, azure_env: dict[str, str], azurite_table_name: str
) -> None:
    wrong_key = base64.b64encode(b"not the account key" * 3).decode()
    code, out = run(
        ["check"],
        {
            **azure_env,
            "CHECKPOINT_STORE": "table",
            "CHECKPOINT_CONNECTION_STRING": table_connection_string(azurite_port, key=wrong_key),
            "CHECKPOINT_TABLE": azurite_table_name,
        },
    )
    assert code == 1
    line, hint = failed_line(out, "checkpoint store")
    assert "refused" in line and "(HTTP 403" in line and "connection string" in hint
    assert wrong_key not in out

    code, out = run(
        ["check"],
        {
            **azure_env,
            "CHECKPOINT_STORE": "table",
            "CHECKPOINT_CONNECTION_STRING": table_connection_string(azurite_port),
            "CHECKPOINT_TABLE": azurite_table_name,
        },
    )
    assert code == 0, out
    assert (
        f"ok checkpoint store: created, read and deleted a probe record (table {azurite_table_name})" in out
    )
