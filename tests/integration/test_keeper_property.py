"""Property: whatever the server does, every Keeper event arrives exactly once across all runs.

Random event multisets (with identical-content events in the same millisecond), random server
behaviour (sort order, end_date inclusivity, page size, expiring continuation tokens), random run
times and deadline stops, late arrivals, and random crashes between "the sink accepted the page" and
"the checkpoint was saved". The delivered multiset must equal the server's, plus exactly the events
of the crashed pages (the one duplicate window the design allows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.clock import FakeClock
from simulators.keeper import KeeperSim, format_timestamp
from tests.fixtures.canonical import canonical
from tests.fixtures.keeper import KEEPER_TOKEN, T0, KeeperHarness, keeper_settings

LAG = timedelta(minutes=5)
OVERLAP = timedelta(minutes=15)
T0_MS = int(T0.timestamp() * 1000)


@dataclass
class Arrival:
    event: dict[str, Any]
    visible_ms: int


@dataclass
class Schedule:
    """Arrivals not yet visible on the server, released by the clock (late events show up late)."""

    sim: KeeperSim
    clock: FakeClock
    pending: list[Arrival]

    def __post_init__(self) -> None:
        self.pending = sorted(self.pending, key=lambda a: a.visible_ms)

    def publish(self) -> None:
        """Add to the server every arrival whose time has come."""
        now_ms = int(self.clock.now().timestamp() * 1000)
        while self.pending and self.pending[0].visible_ms <= now_ms:
            self.sim.add([self.pending.pop(0).event])

    def publish_all(self) -> None:
        self.sim.add([a.event for a in self.pending])
        self.pending.clear()


def prepare(sim: KeeperSim, behaviour: dict[str, Any], arrivals: list[Arrival]) -> Schedule:
    """Ready the module-scoped simulator for one example: no events, ``behaviour`` applied, on a fresh
    clock at T0, with ``arrivals`` scheduled."""
    sim.reset()
    for name, value in behaviour.items():
        setattr(sim, name, value)
    clock = FakeClock(T0)
    sim.now = clock.now
    return Schedule(sim, clock, arrivals)


@st.composite
def keeper_events(draw: st.DrawFn) -> list[Arrival]:
    """Events clustered on a few milliseconds (so windows' edges and same-ms copies are common)."""
    hotspots = draw(st.lists(st.integers(-2 * 3600_000, 3 * 3600_000), min_size=1, max_size=6))
    arrivals = []
    for _ in range(draw(st.integers(0, 25))):
        base = draw(st.sampled_from(hotspots))
        at = T0_MS + base + draw(st.sampled_from([0, 0, 0, 1, -1, 999, 60_000, 300_000, 900_000]))
        event = {
            "audit_event": draw(st.sampled_from(["login", "record_update", "share"])),
            "username": draw(st.sampled_from(["zoë@example.com", "山田@example.jp"])),
            "remote_address": "203.0.113.9",
            "category": "usage",
            "client_version": "w16.11.0",
            "enterprise_id": 42,
            "timestamp": format_timestamp(at, draw(st.sampled_from(["iso", "epoch", "offset"]))),
        }
        # late arrivals: up to lag + overlap after the event's time (the documented late-event margin)
        delay = draw(st.integers(0, int((LAG + OVERLAP).total_seconds()))) * 1000
        for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):  # identical-content copies
            arrivals.append(Arrival(dict(event), at + delay))
    return arrivals


run_plans = st.lists(
    st.tuples(
        st.integers(0, 120),  # minutes since the previous run
        st.one_of(st.none(), st.integers(1, 4)),  # a deadline after this many pages
        st.one_of(st.none(), st.integers(1, 4)),  # a crash after this page was sent, before its save
    ),
    min_size=1,
    max_size=8,
)

server_behaviour = st.fixed_dictionaries(
    {
        "order": st.sampled_from(["asc", "desc", "none"]),
        "end_inclusive": st.booleans(),
        "page_cap": st.integers(1, 8),
        "token_ttl": st.one_of(st.none(), st.integers(30, 3600)),
        "token_max_uses": st.one_of(st.none(), st.integers(1, 2)),
        "token_rejected_status": st.sampled_from([400, 404, 410]),
    }
)


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[KeeperSim]:
    sim = KeeperSim(token=KEEPER_TOKEN)
    with sim:
        yield sim


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals=keeper_events(), behaviour=server_behaviour, plan=run_plans)
def test_every_event_exactly_once_apart_from_crashed_pages(
    shared_sim: KeeperSim, arrivals: list[Arrival], behaviour: dict[str, Any], plan: list[Any]
) -> None:
    sim = shared_sim
    schedule = prepare(sim, behaviour, arrivals)
    clock = schedule.clock
    # a lookback that reaches the earliest event even when the first run crashed before any save
    config = keeper_settings(sim.url, lag=LAG, overlap=OVERLAP, initial_lookback=timedelta(days=3))
    harness = KeeperHarness(sim, clock, config, max_attempts=1)
    crashed: Counter[str] = Counter()

    for gap, max_pages, crash_after in plan:
        clock.advance(timedelta(minutes=gap))
        schedule.publish()
        pages = harness.run(max_pages=max_pages, crash_after=crash_after)
        if crash_after is not None and len(pages) >= crash_after:
            crashed.update(map(canonical, pages[crash_after - 1].events))

    # much later, with everything published: healthy runs until caught up
    clock.advance(timedelta(days=1))
    schedule.publish_all()
    harness.drain()

    server = Counter(canonical(a.event) for a in arrivals)
    delivered = Counter(map(canonical, harness.delivered))
    assert delivered - server == crashed, "duplicates beyond the crashed pages"
    assert server - delivered == Counter(), "events lost"
