"""The command line as a user runs it: local defaults (file sink, file checkpoints), check, status, demo."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from auditsync.cli import main
from simulators.identity import ManagedIdentitySim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(args, env=env, out=out)
    return code, out.getvalue()


def local_env(sim: OnePasswordSim, data_dir: Path, token: str) -> dict[str, str]:
    return {
        "SOURCES": "onepassword",
        "ONEPASSWORD_BASE_URL": sim.url,
        "ONEPASSWORD_TOKEN": token,
        "AUDITSYNC_DATA_DIR": str(data_dir),
    }


def test_run_with_local_defaults_writes_jsonl_and_checkpoints(
    onepassword_sim: OnePasswordSim, tmp_path: Path
) -> None:
    events = onepassword_sim.generate("auditevents", 120)
    env = local_env(onepassword_sim, tmp_path, onepassword_sim.issue_token())
    code, out = run(["run"], env)
    assert code == 0, out
    assert "onepassword/auditevents" in out and "ok" in out
    lines = (tmp_path / "tables" / "OnePasswordEventLogs_CL.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert sorted(r["uuid_s"] for r in rows if r["log_source"] == "auditevents") == sorted(
        e["uuid"] for e in events
    )
    health = [
        json.loads(line)
        for line in (tmp_path / "tables" / "AuditSyncHealth_CL.jsonl").read_text().splitlines()
    ]
    assert {h["Stream"]: h["Status"] for h in health} == {
        "onepassword/auditevents": "ok",
        "onepassword/itemusages": "idle",
        "onepassword/signinattempts": "idle",
    }

    code, out = run(["run"], env)
    assert code == 0 and out.count("idle") == 3

    code, out = run(["status"], env)
    assert code == 0
    status = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "120" in status["onepassword/auditevents"] and "idle" in status["onepassword/auditevents"]


def test_bad_settings_exit_2_with_every_problem(tmp_path: Path) -> None:
    code, out = run(
        ["run"], {"SOURCES": "onepassword,lastpass", "SINK": "nowhere", "AUDITSYNC_DATA_DIR": str(tmp_path)}
    )
    assert code == 2
    assert (
        "SOURCES: unknown value(s) lastpass" in out
        and "SINK: 'nowhere'" in out
        and "ONEPASSWORD_TOKEN: no 1Password token" in out
    )


def test_a_failed_stream_makes_run_exit_1_with_a_hint(
    onepassword_sim: OnePasswordSim, tmp_path: Path
) -> None:
    token = onepassword_sim.issue_token()
    onepassword_sim.revoke(token)
    code, out = run(["run"], local_env(onepassword_sim, tmp_path, token))
    assert code == 1
    assert out.count("error") >= 3 and "auth" in out and "what to do:" in out and token not in out


def test_check_reports_each_dependency(onepassword_sim: OnePasswordSim, tmp_path: Path) -> None:
    token = onepassword_sim.issue_token(features=("auditevents", "signinattempts"))
    code, out = run(["check"], local_env(onepassword_sim, tmp_path, token))
    assert code == 1
    assert (
        "x onepassword API (1Password introspect): 1Password token reads auditevents, signinattempts; "
        "missing itemusages" in out
    )
    assert "ok sink file" in out and "ok checkpoint store" in out and "1 check(s) failed" in out
    code, out = run(
        ["check"],
        {
            **local_env(onepassword_sim, tmp_path, token),
            "ONEPASSWORD_EVENT_TYPES": "auditevents,signinattempts",
        },
    )
    assert code == 0 and "all checks passed" in out


def test_check_probes_logs_ingestion_with_the_managed_identity(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    tmp_path: Path,
) -> None:
    env = {
        **local_env(onepassword_sim, tmp_path, onepassword_sim.issue_token()),
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
    }
    code, out = run(["check"], env)
    assert code == 0, out
    assert f"ok sink logs_ingestion: DCR {logs_ingestion_sim.dcr_id}, stream Custom-AuditSyncHealth" in out
    assert "https://monitor.azure.com" in identity_sim.requested
    assert logs_ingestion_sim.uploads == 1  # the one Status=check row is the proof


def test_a_refused_token_is_said_once_for_all_the_streams_it_stopped(tmp_path: Path) -> None:
    """A malformed token stops every 1Password stream with the same words: said once, on stdout only."""
    env = {
        "SOURCES": "onepassword",
        "ONEPASSWORD_TOKEN": "abc",
        "AUDITSYNC_DATA_DIR": str(tmp_path),
        "PATH": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "auditsync", "run"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    said = "not a 1Password Events API token"
    assert done.stdout.count(said) == 1 and done.stderr.count(said) == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if said in line]
    assert line.startswith(
        "  x onepassword/auditevents, onepassword/itemusages, onepassword/signinattempts: config: ONEPASSWORD_TOKEN:"
    )
    assert done.stdout.count("what to do:") == 1
