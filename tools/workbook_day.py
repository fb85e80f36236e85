"""A simulated day of collection, the data the workbook pictures are drawn from (tools/render_workbook.py).

It works the way ``auditsync demo`` does: the bundled simulators (1Password, Keeper, Key Vault over TLS,
the managed identity endpoint) on loopback, and the real collector (``run_cycle``) reading its tokens
from the vault and writing JSON Lines per table through the file sink. What differs is time: a fixed
clock and a fixed seed, and a run every half hour for a day (``END`` is 17:00 UTC), so the health tab
has history:

- events arrive half hour by half hour, more of them in office hours (the simulators' own events, drawn
  with the seed; of 1Password's failed sign-ins only a few are kept, so that most sign-ins succeed), and
  each run collects what arrived since the one before;
- before the 13:30 run someone makes a new Keeper token in Keeper without updating the vault: Keeper
  fails with ``auth`` until an administrator stores the new token in the vault (SecretSet, then a
  SecretGet to check it) before the 15:30 run;
- Keeper's pages hold 100 events in this account (``KEEPER_PAGE``) and a run's budget two pages, so the
  Keeper events held back by the failure take a few runs: the stream reports ``behind`` until it has
  caught up;
- at night few events arrive and streams report ``idle``.

The collector's clock is virtual, one time for all its threads: a delivery takes the time
``SEND_SECONDS`` gives it, so runs take simulated seconds and a budget runs out page by page without
waiting. Where Keeper's budget runs out is the same every time; the other streams' durations and lags
depend a little on how their threads interleave with Keeper's, and differ by a second or two between
two days simulated with the same seed. The events, failures and statuses do not.

Key Vault writes its audit log (category AuditEvent) to the workspace through a diagnostic setting; no
simulator plays that part, so the audit records are made here from the requests the vault simulator
really received (the collector's reads, the SDK's unauthenticated challenge requests answered 401) and
from the administrator's two actions above.
"""

from __future__ import annotations

import json
import logging
import math
import random
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditsync.config import Settings
from auditsync.model import AcceptedCallback, Clock, Deadline, SendResult
from auditsync.runner import CycleReport, run_cycle
from auditsync.sinks.file import FileSink
from auditsync.tables import TABLES
from simulators.clock import FakeClock
from simulators.demo import sdk_environment
from simulators.identity import COMPETING_CREDENTIAL_ENV, ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.onepassword import OnePasswordSim
from simulators.onepassword_data import make_events
from simulators.tls import make_loopback_tls
from tests.scenarios.model import KeyVaultRecord
from tests.scenarios.vendors import COLLECTOR_PRINCIPAL

JSON = dict[str, Any]

#: The end of the simulated day (the moment the workbook is opened, less a few minutes).
END = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
RUN_EVERY = timedelta(minutes=30)
SEED = 20
#: Virtual seconds the collector's clock moves at each read.
CLOCK_STEP = 0.002
#: What a delivery takes (seconds per request and per row) by table. A page of Keeper events costs three
#: seconds, so a run's budget holds two of them; the other streams' pages cost little, whenever their
#: threads send them, so they never decide where Keeper stops.
SEND_SECONDS = {"KeeperSecurityEventNewLogs_CL": (2.0, 0.01), "": (0.15, 0.001)}
RUN_TIME_BUDGET = "10s"
ONEPASSWORD_TYPES = ("auditevents", "itemusages", "signinattempts")
#: Events per hour at the busiest hour of a working day, per stream.
PEAK_PER_HOUR = {"auditevents": 14, "itemusages": 90, "signinattempts": 120, "keeper": 150}
#: Events a Keeper page holds in this account (the simulator's page cap; the API allows up to 1,000).
KEEPER_PAGE = 100
#: Of the simulator's failed sign-ins (six categories of seven), the share that happens.
FAILED_SIGNINS_KEPT = 0.06
KEEPER_TOKEN_ROTATED = timedelta(hours=3, minutes=30)  # before END: a new token made in Keeper only
VAULT_UPDATED = timedelta(hours=1, minutes=30)  # before END: the new token stored in the vault
ADMIN_UPN = "it-admin@contoso.example"
ADMIN_IP = "198.51.100.77"
COLLECTOR_IP = "20.86.112.14"
PORTAL_CLIENT = "Azure Portal (Key Vault blade)"


@dataclass
class Run:
    """One collector run: when it started, what it reported, and how many lines each table file had after it."""

    started: datetime
    report: CycleReport
    lines: dict[str, int]


@dataclass
class Day:
    """What the simulated day left behind: the file sink's tables, the runs, the vault's audit records."""

    directory: Path
    runs: list[Run] = field(default_factory=list)
    keyvault: list[KeyVaultRecord] = field(default_factory=list)
    end: datetime = END

    def table_path(self, table: str) -> Path:
        return self.directory / "tables" / f"{table}.jsonl"

    def batches(self, table: str) -> Iterator[tuple[datetime, list[JSON]]]:
        """The rows of ``table`` run by run, with the moment that run's rows reached the workspace."""
        path = self.table_path(table)
        if not path.exists():
            return
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        done = 0
        for run in self.runs:
            upto = run.lines.get(table, 0)
            if upto > done:
                yield run.started + timedelta(minutes=1), [json.loads(line) for line in lines[done:upto]]
            done = upto


class RunClock:
    """The collector's clock: one virtual time for all its threads, standing at the run's start. It moves
    a little at each read (``step``), and by what ``TimedSink`` says a delivery takes."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.fake = FakeClock(END)

    def start_run(self, at: datetime) -> Clock:
        self.fake.set(at)
        return Clock(now=lambda: self.fake.advance(self.step), sleep=self.fake.sleep)

    def now(self) -> datetime:
        """Where the clock stands, without moving it (for the simulators)."""
        return self.fake.now()


class TimedSink:
    """The file sink, each page taking the time a Logs Ingestion request would (``SEND_SECONDS``).

    The time passes in the stream's own thread, before the runner asks whether its deadline is near,
    so where a budget runs out depends on the pages a stream sent, not on how the threads interleave.
    """

    name = "file"

    def __init__(self, sink: FileSink, clock: RunClock) -> None:
        self.sink = sink
        self.clock = clock

    def send(
        self,
        table: str,
        rows: list[JSON],
        deadline: Deadline | None = None,
        on_accepted: AcceptedCallback | None = None,
    ) -> SendResult:
        fixed, per_row = SEND_SECONDS.get(table, SEND_SECONDS[""])
        self.clock.fake.advance(fixed + per_row * len(rows))
        return self.sink.send(table, rows, deadline, on_accepted)

    def probe(self) -> str:
        return self.sink.probe()


def _busy(hour: datetime) -> float:
    """Share of the peak that happens in ``hour`` (UTC, a European office): low at night, high by day."""
    local = (hour.hour + 1) % 24
    if hour.weekday() >= 5:
        return 0.1
    return 0.06 + 0.94 * max(0.0, math.sin(math.pi * (local - 7) / 12)) ** 1.5 if 7 <= local <= 19 else 0.04


def _line_counts(directory: Path) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        path = directory / "tables" / f"{table}.jsonl"
        if path.exists():
            with open(path, "rb") as handle:
                counts[table] = sum(1 for _ in handle)
    return counts


def _vault_records(requests: list[Any], at: datetime) -> list[KeyVaultRecord]:
    """The audit records Key Vault writes for ``requests`` (what its simulator received during one run)."""
    records = []
    for number, request in enumerate(requests):
        parts = request.path.strip("/").split("/")
        secret = parts[1] if len(parts) > 1 and parts[0] == "secrets" else ""
        when = at + timedelta(seconds=2 + number)
        if not request.header("authorization"):
            records.append(
                KeyVaultRecord(
                    when,
                    "Authentication",
                    caller_ip=COLLECTOR_IP,
                    status=401,
                    result="Unauthorized",
                    client_info=request.header("user-agent") or "",
                )
            )
            continue
        records.append(
            KeyVaultRecord(
                when,
                "SecretGet",
                caller_object_id=COLLECTOR_PRINCIPAL,
                caller_ip=COLLECTOR_IP,
                secret=secret,
                client_info=request.header("user-agent") or "",
            )
        )
    return records


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """The day's failures are scripted: their log lines would only repeat what the health rows say."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def simulate(directory: Path, *, end: datetime = END, seed: int = SEED) -> Day:
    """Run the day into ``directory`` (the collector's data dir: ``tables/``, ``checkpoints/``)."""
    with _quiet("auditsync"):
        return _simulate(directory, end, seed)


def _simulate(directory: Path, end: datetime, seed: int) -> Day:
    rng = random.Random(seed)
    start = end - DAY
    day = Day(directory, end=end)
    clock = RunClock(CLOCK_STEP)
    with ExitStack() as stack:
        tls = make_loopback_tls(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        identity = stack.enter_context(ManagedIdentitySim())
        vault = stack.enter_context(KeyVaultSim(tls.server_context, identity=identity))
        vault.record_bodies = False
        onepassword = stack.enter_context(OnePasswordSim(now=clock.now, seed=seed))
        onepassword.record_bodies = False
        keeper_token = secrets.token_urlsafe(24)
        keeper = stack.enter_context(
            KeeperSim(token=keeper_token, now=clock.now, seed=seed, page_cap=KEEPER_PAGE)
        )
        vault.set_secret("onepassword-api-token", onepassword.issue_token())
        vault.set_secret("keeper-api-token", keeper_token)
        stack.enter_context(
            sdk_environment(
                {**identity.env(), **tls.env(), "NO_PROXY": "127.0.0.1,localhost"},
                clear=COMPETING_CREDENTIAL_ENV,
            )
        )
        sink = TimedSink(FileSink(directory / "tables"), clock)
        settings = Settings.from_env(
            {
                "SOURCES": "keeper,onepassword",
                "ONEPASSWORD_BASE_URL": onepassword.url,
                "KEEPER_BASE_URL": keeper.url,
                "KEY_VAULT_URL": vault.url,
                "SINK": "file",
                "CHECKPOINT_STORE": "file",
                "AUDITSYNC_DATA_DIR": str(directory),
                "RUN_TIME_BUDGET": RUN_TIME_BUDGET,
                "INITIAL_LOOKBACK": "2h",
            }
        )

        # History before the first run: the first run's look-back collects it.
        arrived_until = start - timedelta(hours=2)
        rotated = vault_updated = False
        at = start
        while at <= end:
            # Events that happened since the last run (hour by hour, as many as the hour is busy).
            while arrived_until < at:
                hour_end = min(arrived_until + timedelta(minutes=30), at)
                _arrive(onepassword, keeper, rng, arrived_until, hour_end)
                arrived_until = hour_end
            if not rotated and at >= end - KEEPER_TOKEN_ROTATED:
                rotated = True
                keeper.token = secrets.token_urlsafe(24)
            if rotated and not vault_updated and at >= end - VAULT_UPDATED:
                vault_updated = True
                vault.set_secret("keeper-api-token", keeper.token)
                day.keyvault.append(
                    KeyVaultRecord(
                        at - timedelta(minutes=4),
                        "SecretSet",
                        caller_upn=ADMIN_UPN,
                        caller_ip=ADMIN_IP,
                        secret="keeper-api-token",
                        client_info=PORTAL_CLIENT,
                    )
                )
                day.keyvault.append(
                    KeyVaultRecord(
                        at - timedelta(minutes=3),
                        "SecretGet",
                        caller_upn=ADMIN_UPN,
                        caller_ip=ADMIN_IP,
                        secret="keeper-api-token",
                        client_info=PORTAL_CLIENT,
                    )
                )
            seen = len(vault.requests)
            report = run_cycle(settings, clock=clock.start_run(at), sink=sink, run_id=f"run-{at:%H%M}")
            day.keyvault += _vault_records(vault.requests[seen:], at)
            day.runs.append(Run(at, report, _line_counts(directory)))
            at += RUN_EVERY
    return day


def _arrive(
    onepassword: OnePasswordSim, keeper: KeeperSim, rng: random.Random, since: datetime, until: datetime
) -> None:
    span = until - since
    share = span / timedelta(hours=1)
    busy = _busy(since)
    for event_type in ONEPASSWORD_TYPES:
        n = _count(rng, PEAK_PER_HOUR[event_type] * busy * share)
        if not n:
            continue
        events = make_events(event_type, n, since, span / n, rng, account_uuid=onepassword.account_uuid)
        if event_type == "signinattempts":  # the simulator draws every category alike; most sign-ins succeed
            events = [e for e in events if e["category"] == "success" or rng.random() < FAILED_SIGNINS_KEPT]
        onepassword.add(event_type, events)
    n = _count(rng, PEAK_PER_HOUR["keeper"] * busy * share)
    if n:
        keeper.add(sample_events(n, since, until, seed=rng.randrange(1 << 30)))


def _count(rng: random.Random, mean: float) -> int:
    """A whole number of events around ``mean`` (Poisson-like, from the seeded generator)."""
    if mean <= 0:
        return 0
    return max(0, int(rng.gauss(mean, math.sqrt(mean)) + 0.5))
