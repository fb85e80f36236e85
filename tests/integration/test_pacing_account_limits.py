"""A tenant's 1Password streams, each paced to its share of the account (auditsync.sources.pacing, the
share read from the siblings' checkpoints by auditsync.fanout.worker.busy_streams), against the
1Password stand-in enforcing the account's limits (600/min, 30,000/h, 429 without Retry-After).

Injected clock: the streams take their turns on one fake clock (one thread, each stream's next request
in turn, as their workers' requests would interleave), every request a real one over a loopback socket.
A few minutes of requests exercise the minute's window; the hour's is kept by the same interval
(0.12 s, tests/unit/test_pacing.py), which a run of 30,000 requests here would only repeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.fanout.worker import busy_streams
from auditsync.model import Checkpoint, Clock, Deadline
from auditsync.sources.pacing import ONEPASSWORD_ACCOUNT_INTERVAL, Pacer
from simulators.clock import FakeClock
from simulators.onepassword import REQUESTS_PER_HOUR, REQUESTS_PER_MINUTE, OnePasswordSim

ACCOUNT = [f"onepassword/{t}" for t in ("auditevents", "itemusages", "signinattempts")]
START = datetime(2026, 12, 5, 12, tzinfo=UTC)


@pytest.fixture
def account() -> Iterator[tuple[OnePasswordSim, FakeClock]]:
    fake = FakeClock(START)
    with OnePasswordSim(now=fake.now) as sim:
        sim.limit_per_minute, sim.limit_per_hour = REQUESTS_PER_MINUTE, REQUESTS_PER_HOUR
        yield sim, fake


def _siblings(tmp_path: Path, busy: list[str], fake: FakeClock) -> FileCheckpointStore:
    """The tenant's checkpoints: ``busy`` streams leased by a running worker, the others idle."""
    store = FileCheckpointStore(tmp_path)
    for stream in ACCOUNT:
        running = {"lease_owner": f"run-{stream}", "lease_until": fake.now() + timedelta(minutes=8)}
        store.save(
            Checkpoint(
                stream,
                last_status="ok",
                last_run=fake.now() - timedelta(minutes=5),
                **(running if stream in busy else {}),  # type: ignore[arg-type]
            )
        )
    return store


def _run(sim: OnePasswordSim, fake: FakeClock, pacers: list[Pacer], rounds: int) -> float:
    """Each pacer's stream makes ``rounds`` requests, in turn; the simulated seconds they took."""
    clock = Clock(now=fake.now, sleep=fake.sleep)
    deadline = Deadline.after(clock, timedelta(hours=2))
    token = sim.issue_token()
    began = fake.now()
    with requests.Session() as session:
        for _ in range(rounds):
            for pacer in pacers:
                pacer.wait(deadline)
                session.get(
                    f"{sim.url}/api/v2/auth/introspect",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
    return (fake.now() - began).total_seconds()


def _pacers(store: FileCheckpointStore, fake: FakeClock, streams: list[str]) -> list[Pacer]:
    clock = Clock(now=fake.now, sleep=fake.sleep)
    return [
        Pacer(
            clock, ONEPASSWORD_ACCOUNT_INTERVAL, busy_streams(store, s, ACCOUNT, clock), fallback=len(ACCOUNT)
        )
        for s in streams
    ]


def test_one_backlog_alone_takes_the_accounts_full_rate_and_no_429(
    account: tuple[OnePasswordSim, FakeClock], tmp_path: Path
) -> None:
    sim, fake = account
    store = _siblings(tmp_path, ["onepassword/auditevents"], fake)
    seconds = _run(sim, fake, _pacers(store, fake, ["onepassword/auditevents"]), 400)
    assert sim.throttled == 0
    # 399 intervals at the account's own pace (500 a minute), not at a third of it.
    assert seconds == pytest.approx(399 * ONEPASSWORD_ACCOUNT_INTERVAL)


def test_three_busy_streams_share_the_account_and_stay_within_its_limits(
    account: tuple[OnePasswordSim, FakeClock], tmp_path: Path
) -> None:
    sim, fake = account
    store = _siblings(tmp_path, ACCOUNT, fake)
    seconds = _run(sim, fake, _pacers(store, fake, ACCOUNT), 220)
    assert sim.throttled == 0
    assert seconds == pytest.approx(219 * 3 * ONEPASSWORD_ACCOUNT_INTERVAL)


def test_three_streams_that_each_took_the_whole_rate_would_be_throttled(
    account: tuple[OnePasswordSim, FakeClock], tmp_path: Path
) -> None:
    """The control: with the siblings' leases unseen (each stream believing itself alone), the same
    three streams are over 600 a minute and the account answers 429, so the tests above can fail."""
    sim, fake = account
    store = _siblings(tmp_path, [], fake)
    _run(sim, fake, _pacers(store, fake, ACCOUNT), 220)
    assert sim.throttled > 0
