"""The Keeper exactly-once property again, driven through the real runner (``run_cycle``) with the real
file sink and file checkpoint store.

The crash window ("the sink accepted the page, its checkpoint was not saved") is produced by a store
that refuses the k-th save of a new position: the runner has sent the page, the save fails, the stream
stops. Deadlines come from the run budget on a clock that ticks with every reading.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.errors import CheckpointError
from auditsync.model import Checkpoint, Deadline, SendResult
from auditsync.runner import run_cycle
from auditsync.sinks.file import FileSink
from auditsync.tables import KEEPER_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from simulators.keeper import KeeperSim
from tests.fixtures.canonical import row_content
from tests.fixtures.keeper import KEEPER_TOKEN, keeper_run_settings
from tests.fixtures.pipeline import still, ticking
from tests.integration.test_keeper_property import (
    LAG,
    OVERLAP,
    Arrival,
    keeper_events,
    prepare,
    server_behaviour,
)


@dataclass
class RecordingSink:
    """The real file sink, plus the batches it accepted (to know which rows a crashed page carried)."""

    inner: FileSink
    name: str = "file"
    batches: list[list[dict[str, Any]]] = field(default_factory=list)

    def send(
        self,
        table: str,
        rows: list[dict[str, Any]],
        deadline: Deadline | None = None,
        on_accepted: Any = None,
    ) -> SendResult:
        result = self.inner.send(table, rows, deadline, on_accepted)
        if table == KEEPER_TABLE:
            self.batches.append(rows)
        return result

    def probe(self) -> str:
        return self.inner.probe()


@dataclass
class CrashingStore:
    """The real file store, refusing the ``crash_at``-th save that moves the position (then healthy)."""

    inner: FileCheckpointStore
    sink: RecordingSink
    crash_at: int | None = None
    moves: int = 0
    crashed_rows: list[dict[str, Any]] = field(default_factory=list)

    def load(self, stream: str) -> Checkpoint:
        return self.inner.load(stream)

    def list(self, prefix: str = "") -> list[Checkpoint]:
        return self.inner.list(prefix)

    def save_all(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        return [self.save(c) for c in checkpoints]  # one stream: never called with more than one

    def delete(self, checkpoint: Checkpoint) -> None:
        self.inner.delete(checkpoint)

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        stored = self.inner.load(checkpoint.stream)
        if checkpoint.position != stored.position:
            self.moves += 1
            if self.moves == self.crash_at:
                self.crash_at = None
                if checkpoint.total_events > stored.total_events:  # the page had events: the last batch
                    self.crashed_rows.extend(self.sink.batches[-1])
                raise CheckpointError("injected crash between send and save")
        return self.inner.save(checkpoint)


@pytest.fixture(scope="module")
def runner_sim() -> Any:
    with KeeperSim(token=KEEPER_TOKEN) as sim:
        yield sim


plans = st.lists(
    st.tuples(
        st.integers(0, 120),  # minutes since the previous run
        st.integers(6, 150),  # run budget in ticks of the clock (a deadline somewhere mid-run)
        st.one_of(st.none(), st.integers(1, 8)),  # crash at the n-th position move of this run
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals=keeper_events(), behaviour=server_behaviour, plan=plans)
def test_exactly_once_through_the_runner(
    runner_sim: KeeperSim,
    tmp_path_factory: pytest.TempPathFactory,
    arrivals: list[Arrival],
    behaviour: dict[str, Any],
    plan: list[Any],
) -> None:
    sim = runner_sim
    schedule = prepare(sim, behaviour, arrivals)
    clock = schedule.clock
    data_dir: Path = tmp_path_factory.mktemp("keeper-runner")
    sink = RecordingSink(FileSink(data_dir / "tables"))
    store = CrashingStore(FileCheckpointStore(data_dir / "checkpoints"), sink)
    base = keeper_run_settings(
        sim.url, data_dir, lag=LAG, overlap=OVERLAP, initial_lookback=timedelta(days=3)
    )

    for gap, budget_ticks, crash_at in plan:
        clock.advance(timedelta(minutes=gap))
        schedule.publish()
        store.moves, store.crash_at = 0, crash_at
        # a budget of a few clock ticks: the deadline (5 s margin) stops the run between pages
        run_settings = replace(base, run_time_budget=timedelta(seconds=5 + budget_ticks))
        report = run_cycle(run_settings, clock=ticking(clock), sink=sink, store=store)
        event(f"run status: {report.reports[0].status}")

    clock.advance(timedelta(days=1, minutes=5))  # past every lease, everything published
    schedule.publish_all()
    store.crash_at = None
    for _ in range(20):
        report = run_cycle(base, clock=still(clock), sink=sink, store=store)
        assert not report.failed, report.reports
        if report.reports[0].status == "idle":
            break

    expected_rows, _ = shape_rows(TABLES[KEEPER_TABLE], [a.event for a in arrivals], now=clock.now())
    expected = Counter(map(row_content, expected_rows))
    delivered = Counter(row_content(r) for batch in sink.batches for r in batch)
    crashed = Counter(map(row_content, store.crashed_rows))
    event(f"crashed pages with events: {bool(crashed)}")
    assert delivered - expected == crashed, "duplicates beyond the crashed pages"
    assert expected - delivered == Counter(), "events lost"
