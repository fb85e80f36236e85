"""``auditsync status`` tells what the last run did, for every stream, failures before the first page
included, and needs no vendor token to say it."""

from __future__ import annotations

import io
import json
from pathlib import Path

from auditsync.cli import main
from simulators.keyvault import KeyVaultSim
from simulators.onepassword import OnePasswordSim


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

    code, text = run(["status", "--json"], without_token)
    assert code == 0
    doc = json.loads(text)
    assert {s["stream"]: (s["status"], s["errorKind"]) for s in doc["streams"]} == {
        name: ("error", "auth") for name in rows
    }
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
    code, out = run(["status"], {"SOURCES": "onepassword,keeper", "AUDITSYNC_DATA_DIR": str(tmp_path)})
    assert code == 0
    rows = outcomes(out)
    assert len(rows) == 4 and all(rest.split()[0] == "never" for rest in rows.values())
