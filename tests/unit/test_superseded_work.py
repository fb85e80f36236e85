"""Which work items a later run made unnecessary (auditsync.fanout.worker.superseded_by), read from a real
file checkpoint store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.fanout.work_item import WorkItem
from auditsync.fanout.worker import superseded_by

DISPATCHED = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
STREAM = "onepassword/auditevents"


@pytest.mark.parametrize(
    ("status", "ended", "superseded"),
    [
        ("ok", DISPATCHED + timedelta(seconds=40), True),
        ("idle", DISPATCHED + timedelta(minutes=3), True),
        ("ok", DISPATCHED - timedelta(seconds=1), False),  # the run ended before the item was asked for
        ("behind", DISPATCHED + timedelta(minutes=3), False),  # more to fetch: the item continues it
        ("error", DISPATCHED + timedelta(minutes=3), False),  # failed: the item retries it
        ("skipped", DISPATCHED + timedelta(minutes=3), False),
    ],
)
def test_an_item_is_superseded_only_by_a_run_that_ended_after_it_and_caught_up(
    tmp_path: Path, status: str, ended: datetime, superseded: bool
) -> None:
    store = FileCheckpointStore(tmp_path)
    store.save(replace(store.load(STREAM), last_status=status, last_run=ended))
    item = WorkItem("contoso", STREAM, DISPATCHED, "tick")
    assert superseded_by(item, store.load(STREAM)) == (ended if superseded else None)


def test_a_stream_that_never_ran_runs(tmp_path: Path) -> None:
    assert (
        superseded_by(
            WorkItem("contoso", STREAM, DISPATCHED, "tick"), FileCheckpointStore(tmp_path).load(STREAM)
        )
        is None
    )
