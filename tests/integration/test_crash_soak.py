"""Randomized crash test: ``python -m auditsync run`` killed with SIGKILL at random moments.

Both sources (three 1Password streams and Keeper, with bursts that make large Keeper windows) feed the
Logs Ingestion simulator; checkpoints in files or in Table Storage (Azurite). Between runs new events
arrive. Some runs are killed at a random moment, the others run to their end. What must hold, as a SOC
engineer would check it in the workspace:

- nothing is lost: after a last uninterrupted run every event is there;
- runs without a crash add no duplicate;
- a crash adds, per stream, at most the rows of one upload request (the one the sink accepted before
  the kill, whose progress was not saved yet; the next run sends it again). Streams run concurrently,
  so one kill can catch each stream between a request and its save.

``AUDITSYNC_CRASH_RUNS`` (default 5 crashes per store, each followed by a run left alone) raises the number of runs for a longer local soak; the
duplicates per crash are printed (``-s``) and, with ``AUDITSYNC_CRASH_REPORT=path``, appended as JSON.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditsync.checkpoints import open_store
from auditsync.config import Settings
from auditsync.model import CheckpointStore
from auditsync.tables import KEEPER_TABLE, ONEPASSWORD_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from simulators.keeper import KeeperSim, sample_events
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.canonical import row_content
from tests.fixtures.keeper import KEEPER_TOKEN
from tests.fixtures.pipeline import logs_ingestion_sink_env

# Both stores' soaks on one worker, one after the other: they mostly wait (on processes, on real time), and
# two of them side by side left a core idle (docs/benchmarks.md, "Test suite").
pytestmark = pytest.mark.xdist_group("crash_soak")

RUNS = int(os.environ.get("AUDITSYNC_CRASH_RUNS", "5"))
REPORT = os.environ.get("AUDITSYNC_CRASH_REPORT", "")
ROOT = Path(__file__).resolve().parents[2]
ONEPASSWORD_TYPES = ("auditevents", "itemusages", "signinattempts")
KEEPER_STREAM = "keeper/events"
STREAMS = (*(f"onepassword/{t}" for t in ONEPASSWORD_TYPES), KEEPER_STREAM)


@dataclass
class Soak:
    """The simulators, what was generated, and how to run and kill the collector."""

    onepassword: OnePasswordSim
    keeper: KeeperSim
    logs: LogsIngestionSim
    env: dict[str, str]
    rng: random.Random
    onepassword_events: dict[str, set[str]] = field(default_factory=dict)
    keeper_expected: Counter[bytes] = field(default_factory=Counter)
    history: list[str] = field(default_factory=list)
    #: How long the last run left alone took: kills are drawn within it, so most land inside a run.
    last_duration: float = 3.0
    keeper_floor: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=3))

    def add_activity(self, scale: float = 1.0) -> None:
        """New events since the last run: 1Password in all three types, Keeper with a burst now and then."""
        for event_type in ONEPASSWORD_TYPES:
            count = int(self.rng.randint(200, 1_500) * scale)
            events = self.onepassword.generate(event_type, count, step=timedelta(milliseconds=50))
            self.onepassword_events.setdefault(event_type, set()).update(e["uuid"] for e in events)
        now = datetime.now(UTC)
        # Keeper events go after anything a previous run may have read (its watermark is at most its
        # start), so none of them is a late arrival (those are covered by the Keeper property tests).
        # From the next whole second: sample events in the ``iso_seconds`` style sit on whole seconds,
        # and one rounded down to before the floor would be a late arrival.
        start = self.keeper_floor.replace(microsecond=0) + timedelta(seconds=1)
        wait = (start + timedelta(milliseconds=400) - now).total_seconds()
        if wait > 0:
            time.sleep(wait)  # real time: the next run must not start before these events happened
            now = datetime.now(UTC)
        end = now - timedelta(milliseconds=200)
        count = int(self.rng.randint(200, 800) * scale)
        events = sample_events(count, start, end, seed=self.rng.randrange(1 << 30))
        if self.rng.random() < 0.6:
            # A burst: thousands of events within (at most) two seconds, more than one window's fingerprints hold.
            span = min(timedelta(seconds=2), end - start)
            at = start + (end - start - span) * self.rng.random()
            count = int(self.rng.randint(1_800, 3_500) * scale)
            events += sample_events(count, at, at + span, seed=self.rng.randrange(1 << 30))
        self.keeper.add(events)
        self.history.append(f"add {start.isoformat()}..{end.isoformat()} n={len(events)}")
        rows, _ = shape_rows(TABLES[KEEPER_TABLE], events, now=now, event_type="events")
        self.keeper_expected.update(map(row_content, rows))

    def run(self, kill_after: float | None) -> bool:
        """One ``python -m auditsync run``; killed with SIGKILL after ``kill_after`` s. True if it was killed."""
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "auditsync", "run"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            process.wait(timeout=kill_after if kill_after is not None else 180)
            killed = False
            if kill_after is None:
                self.last_duration = time.monotonic() - started
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed = True
            self.settle()
        # Events added from now on are newer than anything this run may have read.
        self.keeper_floor = datetime.now(UTC)
        self.history.append(f"run killed={killed} ended {self.keeper_floor.isoformat()}")
        assert process.stderr is not None
        errors = process.stderr.read().decode("utf-8", "replace")
        process.stderr.close()
        if os.environ.get("SOAK_DEBUG"):
            Path(self.env["AUDITSYNC_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
            with open(Path(self.env["AUDITSYNC_DATA_DIR"]) / "stderr.log", "a") as log:
                log.write(f"=== run kill_after={kill_after} killed={killed}\n{errors}\n")
        if not killed:
            assert "Traceback" not in errors, errors
            failures = [line for line in errors.splitlines() if " ERROR " in line]
            assert process.returncode == 0, "\n".join(failures[-20:]) or errors[-3000:]
        return killed

    def settle(self) -> None:
        """Wait until the simulator stored what a killed client had already sent (its handler thread
        finishes the request after the client is gone): those rows belong to the killed run."""
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.0:
            count = len(self.logs.request_rows)
            if count != seen:
                seen, quiet_since = count, time.monotonic()
            time.sleep(0.05)

    def delivered(self) -> dict[str, Counter[str | bytes]]:
        """Per stream: how often each event arrived (1Password by uuid, Keeper by its whole row)."""
        out: dict[str, Counter[str | bytes]] = {s: Counter() for s in STREAMS}
        for row in self.logs.rows(ONEPASSWORD_TABLE):
            if row.get("log_source") in ONEPASSWORD_TYPES:
                out[f"onepassword/{row['log_source']}"][row["uuid_s"]] += 1
        out[KEEPER_STREAM].update(map(row_content, self.logs.rows(KEEPER_TABLE)))
        return out

    def duplicates(self) -> dict[str, int]:
        delivered = self.delivered()
        dups = {
            f"onepassword/{t}": sum(n - 1 for n in delivered[f"onepassword/{t}"].values())
            for t in ONEPASSWORD_TYPES
        }
        dups[KEEPER_STREAM] = sum(
            max(0, n - self.keeper_expected[key]) for key, n in delivered[KEEPER_STREAM].items()
        )
        return dups

    def largest_request(self, table: str) -> int:
        return max((rows for name, rows in self.logs.request_rows if name == table), default=0)


def free_leases(store: CheckpointStore) -> None:
    """What waiting out a killed runner's lease does (budget + 2 minutes): the next run may take over."""
    for checkpoint in store.list():
        if checkpoint.lease_owner:
            store.save(replace(checkpoint, lease_owner="", lease_until=None))


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["file", "table"])
def test_sigkill_at_random_moments_loses_nothing_and_duplicates_at_most_one_request_per_crash(
    store_kind: str,
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    seed = int(os.environ.get("AUDITSYNC_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"crash soak ({store_kind}): seed {seed}, {RUNS} runs")
    rng = random.Random(seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITSYNC_", "CHECKPOINT_"))}
    with KeeperSim(token=KEEPER_TOKEN) as keeper:
        env.update(logs_ingestion_sink_env(logs_ingestion_sim))
        env.update(
            {
                "SOURCES": "keeper,onepassword",
                "ONEPASSWORD_BASE_URL": onepassword_sim.url,
                "ONEPASSWORD_TOKEN": onepassword_sim.issue_token(),
                "KEEPER_BASE_URL": keeper.url,
                "KEEPER_TOKEN": KEEPER_TOKEN,
                "KEEPER_LAG": "0s",
                # No late events here (the property tests cover those); the shortest overlap allowed keeps the
                # re-read small at this test's event rate (thousands a second, compressed in time).
                "KEEPER_OVERLAP": "1m",
                "INITIAL_LOOKBACK": "1d",
                "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
                "PYTHONPATH": str(ROOT),
            }
        )
        if store_kind == "table":
            env.update(
                {
                    "CHECKPOINT_STORE": "table",
                    "CHECKPOINT_CONNECTION_STRING": request.getfixturevalue("azurite_connection_string"),
                    "CHECKPOINT_TABLE": request.getfixturevalue("azurite_table_name"),
                }
            )
        else:
            env["CHECKPOINT_STORE"] = "file"
        store = open_store(Settings.from_env(env).store, lambda: None)  # type: ignore[arg-type,return-value]
        soak = Soak(onepassword_sim, keeper, logs_ingestion_sim, env, rng)

        soak.add_activity(scale=2.0)  # a backlog for the first run
        per_crash: list[int] = []
        per_stream_max = 0
        for number in range(RUNS):
            # A run killed at a random moment (start-up, reading, sending, saving), then one left alone.
            # The duplicates of a crash show when the next run re-sends the request whose progress the
            # killed run did not save, so each crash is judged over the pair.
            before = soak.duplicates()
            killed = soak.run(rng.uniform(0.3, soak.last_duration))
            free_leases(store)
            soak.add_activity()
            assert not soak.run(None), "a run left alone ends by itself"
            after = soak.duplicates()
            added = {s: after[s] - before[s] for s in STREAMS}
            if killed:
                per_crash.append(sum(added.values()))
                per_stream_max = max(per_stream_max, *added.values())
                for stream, count in added.items():
                    table = KEEPER_TABLE if stream == KEEPER_STREAM else ONEPASSWORD_TABLE
                    assert count <= soak.largest_request(table), (
                        f"crash {number}: {count} duplicates in {stream}, more than one request's rows"
                    )
            else:
                keeper_details = [
                    row.get("Details")
                    for row in soak.logs.rows("AuditSyncHealth_CL")[-8:]
                    if row.get("Stream") == KEEPER_STREAM
                ]
                assert added == dict.fromkeys(STREAMS, 0), (
                    f"runs {number} (none killed) duplicated: {added}; Keeper health: {keeper_details}"
                )
            soak.add_activity()

        before = soak.duplicates()
        assert not soak.run(None)  # the last run is never killed: it catches up
        assert soak.duplicates() == before, "an uninterrupted run adds no duplicate"
        delivered = soak.delivered()
        for event_type in ONEPASSWORD_TYPES:
            assert set(delivered[f"onepassword/{event_type}"]) == soak.onepassword_events[event_type], "lost"
        missing = soak.keeper_expected - delivered[KEEPER_STREAM]
        if missing and os.environ.get("SOAK_DEBUG"):
            print("MISSING", sorted(json.loads(k).get("timestamp") for k in missing)[:60])
            print("HISTORY", soak.history)
            print("POS", store.load(KEEPER_STREAM).position)
        assert not missing, f"{sum(missing.values())} Keeper events lost"

    crashes = len(per_crash)
    summary = {
        "store": store_kind,
        "seed": seed,
        "runs": 2 * RUNS + 1,
        "crashes": crashes,
        "duplicates_per_crash_max": max(per_crash, default=0),
        "duplicates_per_crash_mean": round(sum(per_crash) / crashes, 1) if crashes else 0,
        "duplicates_per_crash_one_stream_max": per_stream_max,
        "largest_request_rows": {t: soak.largest_request(t) for t in (KEEPER_TABLE, ONEPASSWORD_TABLE)},
        "events": sum(len(v) for v in soak.onepassword_events.values()) + sum(soak.keeper_expected.values()),
    }
    print("crash soak:", json.dumps(summary))
    if REPORT:
        with open(REPORT, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(summary) + "\n")
