"""No secret leaves the process on the fault paths, end to end through ``python -m auditsync`` (a real
subprocess, ``AZURE_LOG_LEVEL=debug``) against the simulators: Key Vault secrets and env tokens with
trailing newlines, inner control characters, vendors that echo the token (whole, a 24-character
prefix, URL-encoded, JSON-escaped) in their error bodies, and a sink that resets the connection.

Scanned every time: stdout, stderr (every log record at DEBUG), every file under the data dir
(checkpoints included) and every row the sink received.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.data_collector import DataCollectorSim
from simulators.identity import ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from simulators.tls import LoopbackTLS
from tests.fixtures.data_collector import random_key
from tests.fixtures.secret_scan import assert_no_secrets, files_text, rows_text

ROOT = Path(__file__).resolve().parents[2]
HEALTH = "AuditSyncHealth_CL"


def keeper_token() -> str:
    """A Keeper token with characters every encoding changes (/ + = " \\), so each form is its own."""
    return f'kpr/{secrets.token_urlsafe(18)}+"Q\\{secrets.token_hex(8)}=='


def run_cli(args: list[str], env: dict[str, str], *, debug: bool = True) -> subprocess.CompletedProcess[str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    base["NO_PROXY"] = "127.0.0.1,localhost"
    if debug:
        base["AZURE_LOG_LEVEL"] = "debug"
    return subprocess.run(
        [sys.executable, "-m", "auditsync", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def outputs(*runs: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {
        "stdout": "".join(r.stdout for r in runs),
        "stderr (logs at DEBUG)": "".join(r.stderr for r in runs),
    }


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) ")


def no_traceback(*runs: subprocess.CompletedProcess[str]) -> None:
    """No traceback, except inside DEBUG records (the Azure SDKs log their credential chain's with one)."""
    for run in runs:
        assert "Traceback" not in run.stdout
        level = ""
        for line in run.stderr.splitlines():
            record = _RECORD.match(line)
            if record:
                level = record.group(1)
            elif line.startswith("Traceback"):
                assert level == "DEBUG", run.stderr[-3000:]


@pytest.fixture
def keeper_sim() -> Iterator[KeeperSim]:
    with KeeperSim(token=keeper_token()) as sim:
        now = datetime.now(UTC)
        sim.add(sample_events(60, now - timedelta(hours=3), now - timedelta(minutes=10), seed=4))
        yield sim


@pytest.fixture
def tls_env(loopback_tls: LoopbackTLS) -> dict[str, str]:
    return loopback_tls.env()


def test_run_with_vault_secrets_ending_in_newlines_and_vendors_echoing_tokens_leaks_nothing(
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    onepassword_sim: OnePasswordSim,
    keeper_sim: KeeperSim,
    logs_ingestion_sim: LogsIngestionSim,
    tls_env: dict[str, str],
    tmp_path: Path,
) -> None:
    op_token, kp_token = onepassword_sim.issue_token(), keeper_sim.token
    # `az keyvault secret set --file` keeps the file's trailing newline.
    keyvault_sim.set_secret("onepassword-api-token", op_token + "\n")
    keyvault_sim.set_secret("keeper-api-token", kp_token + "\r\n")
    onepassword_sim.generate("auditevents", 50)
    env = {
        **identity_sim.env(),
        **tls_env,
        "SOURCES": "keeper,onepassword",
        "KEEPER_BASE_URL": keeper_sim.url,
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        "RUN_TIME_BUDGET": "2m",
    }
    first = run_cli(["run"], env)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    assert " DEBUG " in first.stderr, "the run logged at DEBUG"
    assert len(logs_ingestion_sim.rows("KeeperSecurityEventNewLogs_CL")) == 60

    # Both tokens are revoked; the vendors quote what they were sent in their 401 bodies.
    keeper_sim.token = keeper_token()
    onepassword_sim.revoke(op_token)
    runs = [first]
    for keeper_echo, onepassword_echo, debug in (
        ("urlencoded", "prefix24", True),
        ("json_escaped", "full", False),
    ):
        keeper_sim.echo_token, onepassword_sim.echo_token = keeper_echo, onepassword_echo
        failed = run_cli(["run"], env, debug=debug)
        assert failed.returncode == 1, failed.stdout + failed.stderr[-3000:]
        if not debug:  # at the default level a failing run prints no traceback at all
            assert "Traceback" not in failed.stderr and "  x " in failed.stdout
        health = {r["Stream"]: r for r in logs_ingestion_sim.rows(HEALTH)[-4:]}
        assert {s: r["ErrorKind"] for s, r in health.items()} == {
            "keeper/events": "auth",
            "onepassword/auditevents": "auth",
            "onepassword/itemusages": "auth",
            "onepassword/signinattempts": "auth",
        }
        # The echo reached us and was masked (so the scan below can fail).
        assert all("credential: ***" in r["Message"] for r in health.values()), health
        runs.append(failed)
    status = run_cli(["status"], env)
    assert status.returncode == 0 and "credential: ***" in status.stdout
    runs.append(status)

    no_traceback(*runs)
    assert_no_secrets(
        {
            **outputs(*runs),
            "data dir (checkpoints)": files_text(tmp_path / "data"),
            "sink rows": rows_text(
                *(
                    logs_ingestion_sim.rows(t)
                    for t in (HEALTH, "OnePasswordEventLogs_CL", "KeeperSecurityEventNewLogs_CL")
                )
            ),
        },
        [op_token, kp_token],
    )


def test_data_collector_key_and_keeper_token_with_newlines_from_vault_and_env_leak_nothing(
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    keeper_sim: KeeperSim,
    tls_env: dict[str, str],
    tmp_path: Path,
) -> None:
    key, workspace = random_key(), "5f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
    kp_token = keeper_sim.token
    keyvault_sim.set_secret("workspace-key", key + "\n")
    keyvault_sim.set_secret("keeper-api-token", kp_token + "\n")
    with DataCollectorSim(workspace, key) as collector:
        common = {
            "SOURCES": "keeper",
            "KEEPER_BASE_URL": keeper_sim.url,
            "SINK": "data_collector",
            "WORKSPACE_ID": workspace,
            "DATA_COLLECTOR_URL": collector.url,
            "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        }
        vault = {
            **common,
            **identity_sim.env(),
            **tls_env,
            "KEY_VAULT_URL": keyvault_sim.url,
            "WORKSPACE_KEY_SECRET": "workspace-key",
        }
        direct = {**common, "KEEPER_TOKEN": kp_token + "\n", "WORKSPACE_KEY": " " + key + "\r\n"}
        from_vault = run_cli(["run"], vault)
        assert from_vault.returncode == 0, from_vault.stdout + from_vault.stderr[-3000:]
        assert len(collector.rows("Keeper_CL")) == 60
        keeper_sim.add(sample_events(5, datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC), seed=5))
        from_env = run_cli(["run"], direct)
        assert from_env.returncode == 0, from_env.stdout + from_env.stderr[-3000:]
        assert len(collector.rows("AuditSyncHealth_CL")) == 2

        keeper_sim.token, keeper_sim.echo_token = keeper_token(), "prefix24"
        failed = run_cli(["run"], direct)
        assert failed.returncode == 1 and "credential: ***" in failed.stdout, failed.stdout
        rows = rows_text(*(collector.rows(t) for t in sorted(collector.tables)))
    runs = (from_vault, from_env, failed)
    no_traceback(*runs)
    assert_no_secrets(
        {**outputs(*runs), "data dir": files_text(tmp_path / "data"), "sink rows": rows}, [kp_token, key]
    )


def test_inner_control_characters_are_config_errors_that_name_the_setting_or_secret(
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    onepassword_sim: OnePasswordSim,
    keeper_sim: KeeperSim,
    tls_env: dict[str, str],
    tmp_path: Path,
) -> None:
    kp_token = keeper_sim.token
    env = {
        "SOURCES": "keeper",
        "KEEPER_BASE_URL": keeper_sim.url,
        "KEEPER_TOKEN": kp_token[:20] + "\x1b" + kp_token[20:],
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
    }
    bad_env = run_cli(["run"], env)
    assert bad_env.returncode == 2
    assert "KEEPER_TOKEN: contains a line break or another control character" in bad_env.stdout

    op_token = onepassword_sim.issue_token()
    keyvault_sim.set_secret("onepassword-api-token", op_token[:30] + "\n" + op_token[30:])
    vault_env = {
        **identity_sim.env(),
        **tls_env,
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "KEY_VAULT_URL": keyvault_sim.url,
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
    }
    bad_vault = run_cli(["run"], vault_env)
    assert bad_vault.returncode == 1
    assert (
        "config: Key Vault secret 'onepassword-api-token' (named by ONEPASSWORD_TOKEN_SECRET) contains a "
        "line break" in bad_vault.stdout
    )
    assert not [r for r in onepassword_sim.requests if r.header("authorization")], "nothing was sent"
    no_traceback(bad_env, bad_vault)
    assert_no_secrets(
        {**outputs(bad_env, bad_vault), "data dir": files_text(tmp_path / "data")},
        [kp_token[:20], kp_token[21:], op_token[:30], op_token[30:]],
    )


@pytest.mark.timeout(60)  # 10 s of budget, 10 s of heartbeat grace: anything near a minute hangs
def test_a_sink_that_resets_the_connection_ends_in_a_classified_line_not_a_traceback(
    identity_sim: ManagedIdentitySim,
    onepassword_sim: OnePasswordSim,
    resetting_endpoint: str,
    tmp_path: Path,
) -> None:
    op_token = onepassword_sim.issue_token()
    onepassword_sim.generate("auditevents", 20)
    env = {
        **identity_sim.env(),
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "ONEPASSWORD_TOKEN": op_token + "\n",
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": resetting_endpoint,
        "LOGS_INGESTION_RULE_ID": "dcr-" + "0" * 32,
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        # The sink retries the resets in real time until the deadline, then the heartbeat for its grace:
        # the shortest budget allowed reaches the same classified failure in seconds instead of a minute.
        "RUN_TIME_BUDGET": "10s",
    }
    run = run_cli(["run"], env)
    # Either the runner reports the failed heartbeat itself (exit 1) or the last-resort guard does (exit 3):
    # never a traceback, always a line that says what failed.
    assert run.returncode in (1, 3), run.stdout + run.stderr[-3000:]
    if run.returncode == 3:
        guard = [line for line in run.stderr.splitlines() if "auditsync run failed:" in line]
        assert len(guard) == 1 and " ERROR auditsync.cli: " in guard[0], run.stderr[-3000:]
    else:
        assert "health rows were not sent" in run.stdout
    no_traceback(run)
    assert_no_secrets({**outputs(run), "data dir": files_text(tmp_path / "data")}, [op_token])
