"""``auditsync status`` tells what the last run did, for every stream, failures before the first page
included, and needs no vendor token to say it."""

from __future__ import annotations

import io
import json
from pathlib import Path

from auditsync.cli import main
from auditsync.tables import HEALTH_TABLE, TABLES
from simulators.identity import ManagedIdentitySim
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import onepassword_env, onepassword_source_env, pipeline_env


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(args, env=env, out=out)
    return code, out.getvalue()


def outcomes(out: str) -> dict[str, str]:
    """stream -> the rest of its status line."""
    rows = {}
    for line in out.splitlines()[1:]:
        if line.startswith(("onepassword/", "keeper/")):
            name, rest = line.split(maxsplit=1)
            rows[name] = rest
    return rows


def test_status_after_a_revoked_token_shows_error_auth_for_every_stream_without_a_token(
    onepassword_sim: OnePasswordSim, tmp_path: Path
) -> None:
    onepassword_sim.generate("auditevents", 20)
    token = onepassword_sim.issue_token()
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "ONEPASSWORD_TOKEN": token,
        "AUDITSYNC_DATA_DIR": str(tmp_path),
    }
    assert run(["run"], env)[0] == 0
    code, out = run(["status"], env)
    assert code == 0 and outcomes(out)["onepassword/auditevents"].endswith("ok")

    onepassword_sim.revoke(token)
    assert run(["run"], env)[0] == 1

    without_token = {k: v for k, v in env.items() if k != "ONEPASSWORD_TOKEN"}
    code, out = run(["status"], without_token)
    assert code == 0, out
    rows = outcomes(out)
    assert set(rows) == {"onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts"}
    for name, rest in rows.items():
        assert rest.endswith("error (auth)"), (name, out)
        assert "20" in rows["onepassword/auditevents"]  # totals survive the failure
    assert "401" in out and token not in out
    assert out.count("what to do: The 1Password Events API token was refused") == 3

    code, text = run(["status", "--json"], without_token)
    assert code == 0
    doc = json.loads(text)
    assert {s["stream"]: (s["status"], s["errorKind"]) for s in doc["streams"]} == {
        name: ("error", "auth") for name in rows
    }
    assert all("Events Reporting" in s["hint"] for s in doc["streams"])
    assert all(s["lastRun"] and s["lastRun"].endswith("Z") for s in doc["streams"])


def test_status_records_a_key_vault_failure_on_every_stream(
    onepassword_sim: OnePasswordSim, keyvault_sim: KeyVaultSim, tmp_path: Path
) -> None:
    keyvault_sim.set_secret("onepassword-api-token", onepassword_sim.issue_token())
    keyvault_sim.disable_secret("onepassword-api-token")
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "KEY_VAULT_URL": keyvault_sim.url,
        "AUDITSYNC_DATA_DIR": str(tmp_path),
    }
    code, out = run(["run"], env)
    assert code == 1 and "disabled" in out
    code, out = run(["status"], env)
    assert code == 0
    assert all(rest.endswith("error (config)") for rest in outcomes(out).values()), out


def test_status_of_streams_that_never_ran(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    code, out = run(["status"], {"SOURCES": "onepassword,keeper", "AUDITSYNC_DATA_DIR": str(tmp_path)})
    assert code == 0
    rows = outcomes(out)
    assert len(rows) == 4 and all(rest.split()[0] == "never" for rest in rows.values())


def test_status_over_a_data_dir_nothing_ran_in_says_so_and_where_the_demo_is(tmp_path: Path) -> None:
    code, out = run(["status"], {"AUDITSYNC_DATA_DIR": str(tmp_path / "nothing")})
    assert code == 0
    assert out.startswith(f"No checkpoints in {tmp_path / 'nothing' / 'checkpoints'}: nothing has run"), out
    assert str(tmp_path / "nothing" / "demo") in out and "never" not in out


def test_a_sink_error_carries_its_hint_into_the_cli_and_the_health_row(
    onepassword_sim: OnePasswordSim, identity_sim: ManagedIdentitySim, tmp_path: Path
) -> None:
    """A DCR that lacks the 1Password stream (an old template): 404 for the events, the hint everywhere."""
    onepassword_sim.generate("auditevents", 5)
    with LogsIngestionSim(identity=identity_sim, tables={HEALTH_TABLE: TABLES[HEALTH_TABLE]}) as dcr:
        env = onepassword_env(
            onepassword_sim,
            dcr,
            tmp_path,
            onepassword_sim.issue_token(),
            ONEPASSWORD_EVENT_TYPES="auditevents",
        )
        code, out = run(["run"], env)
        assert code == 1
        assert (
            "sink: Logs Ingestion endpoint" in out
            and "does not know stream Custom-OnePasswordEventLogs" in out
        )
        assert "what to do: Check LOGS_INGESTION_RULE_ID" in out
        (row,) = dcr.rows("AuditSyncHealth_CL")
        assert row["Status"] == "error" and row["ErrorKind"] == "sink"
        assert row["Hint"].startswith("Check LOGS_INGESTION_RULE_ID")
        code, out = run(["status"], env)
        assert outcomes(out)["onepassword/auditevents"].endswith("error (sink)")


def test_a_malformed_token_fails_the_run_by_its_shape_without_a_request(
    onepassword_sim: OnePasswordSim, tmp_path: Path
) -> None:
    env = pipeline_env(tmp_path, "onepassword", onepassword_source_env(onepassword_sim, "abc"))
    code, out = run(["run"], env)
    assert code == 1 and "ONEPASSWORD_TOKEN: not a 1Password Events API token" in out
    assert not onepassword_sim.requests
    code, out = run(["status"], env)
    assert all(rest.endswith("error (config)") for rest in outcomes(out).values()), out


def test_status_records_a_sink_that_cannot_be_opened_on_every_stream(
    onepassword_sim: OnePasswordSim, keyvault_sim: KeyVaultSim, tmp_path: Path
) -> None:
    """The workspace key's secret is missing: no stream can send, and each says so in status."""
    keyvault_sim.set_secret("onepassword-api-token", onepassword_sim.issue_token())
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": onepassword_sim.url,
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "data_collector",
        "WORKSPACE_ID": "5b1f0c2a-d2e7-4a0f-9f3e-6d6a1c2b3d4e",
        "WORKSPACE_KEY_SECRET": "workspace-key",
        "AUDITSYNC_DATA_DIR": str(tmp_path),
    }
    code, out = run(["run"], env)
    assert code == 1 and "'workspace-key' does not exist" in out
    code, out = run(["status"], env)
    rows = outcomes(out)
    assert len(rows) == 3 and all(rest.endswith("error (config)") for rest in rows.values()), out
    assert out.count("what to do: Create the secret 'workspace-key'") == 3


def test_status_shows_a_stream_a_runner_holds(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from auditsync.checkpoints import FileCheckpointStore, claim

    store = FileCheckpointStore(tmp_path / "checkpoints")
    claim(store, "keeper/events", "host-a", datetime.now(UTC), timedelta(minutes=10))
    code, out = run(["status"], {"SOURCES": "keeper", "AUDITSYNC_DATA_DIR": str(tmp_path)})
    assert code == 0 and "in progress (leased until" in outcomes(out)["keeper/events"], out
