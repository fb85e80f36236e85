"""``auditsync backfill`` re-sends exactly a past range of one stream, leaves the live checkpoint alone,
resumes after a deadline stop from its own progress record, and refuses what the vendor no longer serves."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditsync.backfill import plan, run_backfill
from auditsync.cli import main
from auditsync.config import Settings
from auditsync.model import Clock
from auditsync.tables.rows import format_time, parse_time
from simulators.clock import FakeClock
from simulators.keeper import KeeperSim, sample_events
from simulators.onepassword import OnePasswordSim
from tests.fixtures.keeper import KEEPER_TOKEN

ROWS = Path("tables") / "OnePasswordEventLogs_CL.jsonl"
LIVE_CHECKPOINT = Path("checkpoints") / "onepassword~2Fauditevents.json"


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = main(args, env=env, out=out)
    return code, out.getvalue()


def sent_uuids(data_dir: Path) -> list[str]:
    path = data_dir / ROWS
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r["uuid_s"] for r in rows if r["log_source"] == "auditevents"]


def env_for(sim: OnePasswordSim, data_dir: Path) -> dict[str, str]:
    return {
        "SOURCES": "onepassword",
        "ONEPASSWORD_EVENT_TYPES": "auditevents",
        "ONEPASSWORD_BASE_URL": sim.url,
        "ONEPASSWORD_TOKEN": sim.issue_token(),
        "AUDITSYNC_DATA_DIR": str(data_dir),
        "INITIAL_LOOKBACK": "30d",
    }


def in_range(events: list[dict[str, object]], since: datetime, until: datetime) -> list[str]:
    return [
        str(e["uuid"])
        for e in events
        if (when := parse_time(e["timestamp"])) is not None and since <= when < until
    ]


def test_backfill_resends_exactly_the_range_and_leaves_the_live_checkpoint(
    onepassword_sim: OnePasswordSim, fake_clock: FakeClock, tmp_path: Path
) -> None:
    now = fake_clock.now()
    events = onepassword_sim.generate(
        "auditevents", 200, start=now - timedelta(days=10), step=timedelta(hours=1)
    )
    env = env_for(onepassword_sim, tmp_path)
    assert run(["run"], env)[0] == 0
    assert sorted(sent_uuids(tmp_path)) == sorted(str(e["uuid"]) for e in events)
    live = (tmp_path / LIVE_CHECKPOINT).read_bytes()
    (tmp_path / ROWS).unlink()

    since, until = now - timedelta(days=6, minutes=30), now - timedelta(days=3, minutes=30)
    code, out = run(
        [
            "backfill",
            "--stream",
            "onepassword/auditevents",
            "--since",
            format_time(since),
            "--until",
            format_time(until),
        ],
        env,
    )

    assert code == 0, out
    expected = in_range(events, since, until)
    assert 71 <= len(expected) <= 73  # three days of hourly events; the jitter decides the two edge hours
    assert sent_uuids(tmp_path) == expected  # each once, in order, nothing outside the range
    assert f"backfill of onepassword/auditevents complete: {len(expected)} events sent" in out
    assert "starting backfill of onepassword/auditevents" in out and f"... {len(expected)} events sent" in out
    assert (tmp_path / LIVE_CHECKPOINT).read_bytes() == live

    code, out = run(["status"], env)
    assert code == 0
    assert (
        "onepassword/auditevents" in out.split("backfills")[1]
        and f"{len(expected)} events sent, complete" in out
    )


def test_backfill_stopped_by_the_deadline_resumes_where_it_stopped(
    onepassword_sim: OnePasswordSim, fake_clock: FakeClock, tmp_path: Path
) -> None:
    now = fake_clock.now()
    events = onepassword_sim.generate(
        "auditevents", 2500, start=now - timedelta(days=2), step=timedelta(seconds=30)
    )
    settings = Settings.from_env(env_for(onepassword_sim, tmp_path))
    since, until = now - timedelta(days=2), now - timedelta(hours=1)
    backfill = plan(settings, "onepassword/auditevents", since, until, now)
    skew = timedelta(0)

    def later() -> datetime:
        return fake_clock.now() + skew

    def after_first_page(line: str) -> None:
        nonlocal skew
        if line.strip().startswith("..."):
            skew = settings.run_time_budget  # the deadline is reached once the first page is sent

    first = run_backfill(
        settings, backfill, clock=Clock(now=later, sleep=fake_clock.sleep), progress=after_first_page
    )
    assert not first.done and first.events == 1000
    assert len(sent_uuids(tmp_path)) == 1000

    lines: list[str] = []
    second = run_backfill(
        replace(settings),
        backfill,
        clock=Clock(now=fake_clock.now, sleep=fake_clock.sleep),
        progress=lines.append,
    )
    assert second.done and second.resumed and "resuming" in lines[0]
    expected = in_range(events, since, until)
    assert sent_uuids(tmp_path) == expected and len(set(expected)) == len(expected)
    assert second.events == len(expected)


def test_backfill_refuses_what_1password_no_longer_serves(
    onepassword_sim: OnePasswordSim, tmp_path: Path
) -> None:
    env = env_for(onepassword_sim, tmp_path)
    code, out = run(["backfill", "--stream", "onepassword/auditevents", "--since", "121d"], env)
    assert code == 2
    assert "x backfill refused:" in out and "only the last 120 days" in out and "what to do:" in out
    code, out = run(["backfill", "--stream", "onepassword/itemusages", "--since", "1d"], env)
    assert code == 2 and "not an enabled stream" in out
    code, out = run(
        ["backfill", "--stream", "onepassword/auditevents", "--since", "1d", "--until", "2d"], env
    )
    assert code == 2 and "is not before" in out


def test_keeper_backfill_resends_exactly_the_range(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with KeeperSim(token=KEEPER_TOKEN) as sim:
        events = sample_events(300, now - timedelta(hours=20), now - timedelta(minutes=10), seed=3)
        sim.add(events)
        env = {
            "SOURCES": "keeper",
            "KEEPER_BASE_URL": sim.url,
            "KEEPER_TOKEN": KEEPER_TOKEN,
            "AUDITSYNC_DATA_DIR": str(tmp_path),
        }
        assert run(["run"], env)[0] == 0
        rows_file = tmp_path / "tables" / "KeeperSecurityEventNewLogs_CL.jsonl"
        live = (tmp_path / "checkpoints" / "keeper~2Fevents.json").read_bytes()
        rows_file.unlink()

        since, until = now - timedelta(hours=15), now - timedelta(hours=5)
        code, out = run(
            [
                "backfill",
                "--stream",
                "keeper/events",
                "--since",
                format_time(since),
                "--until",
                format_time(until),
            ],
            env,
        )

        assert code == 0, out
        expected = sorted(
            t for e in events if (t := parse_time(e["timestamp"])) is not None and since <= t < until
        )
        rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines()]
        assert sorted(parse_time(r["timestamp"]) for r in rows) == expected
        assert 100 < len(expected) < 200
        assert (tmp_path / "checkpoints" / "keeper~2Fevents.json").read_bytes() == live
