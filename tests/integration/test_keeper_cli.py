"""The command line with Keeper: check probes it, run and status cover keeper/events, the demo includes it."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditsync.cli import main
from simulators.keeper import KeeperSim, sample_events
from tests.fixtures.keeper import KEEPER_TOKEN


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(args, env=env, out=out)
    return code, out.getvalue()


def keeper_local_env(sim: KeeperSim, data_dir: Path, token: str = KEEPER_TOKEN) -> dict[str, str]:
    return {
        "SOURCES": "keeper",
        "KEEPER_BASE_URL": sim.url,
        "KEEPER_TOKEN": token,
        "AUDITSYNC_DATA_DIR": str(data_dir),
    }


def test_check_run_and_status_with_keeper(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with KeeperSim(token=KEEPER_TOKEN) as sim:
        assert isinstance(sim, KeeperSim)
        sim.add(sample_events(250, now - timedelta(hours=20), now - timedelta(minutes=10), seed=9))

        code, out = run(["check"], keeper_local_env(sim, tmp_path, "wrong-token-123456"))
        assert code == 1 and "keeper" in out and "wrong-token-123456" not in out
        code, out = run(["check"], keeper_local_env(sim, tmp_path))
        assert code == 0 and "token accepted" in out, out
        probes = [r for r in sim.requests if r.arg("limit") == "1"]
        assert len(probes) == 2

        code, out = run(["run"], keeper_local_env(sim, tmp_path))
        assert code == 0 and "keeper/events" in out, out
        lines = (tmp_path / "tables" / "KeeperSecurityEventNewLogs_CL.jsonl").read_text("utf-8").splitlines()
        assert len(lines) == 250
        assert all(
            set(json.loads(line))
            <= {
                "TimeGenerated",
                "audit_event",
                "remote_address",
                "category",
                "client_version",
                "enterprise_id",
                "username",
                "timestamp",
                "data",
            }
            for line in lines
        )
        code, out = run(["status"], keeper_local_env(sim, tmp_path))
        assert code == 0 and "keeper/events" in out and "250" in out, out
