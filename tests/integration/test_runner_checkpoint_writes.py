"""What a run writes to the checkpoint store: an idle stream costs its lease claim and its release (which
records the outcome) and nothing else, and every checkpoint is read with one list, not one load each."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from auditsync.checkpoints import FileCheckpointStore
from auditsync.model import Checkpoint
from tests.fixtures.pipeline import Pipeline

STREAMS = ("onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts")


class CountingStore(FileCheckpointStore):
    """The real file store, recording each call the runner makes on it."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.calls: list[tuple[str, str]] = []

    def load(self, stream: str) -> Checkpoint:
        self.calls.append(("load", stream))
        return super().load(stream)

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        self.calls.append(("save", checkpoint.stream))
        return super().save(checkpoint)

    def save_all(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        self.calls.extend(("save", c.stream) for c in checkpoints)
        return super().save_all(checkpoints)

    def list(self, prefix: str = "") -> list[Checkpoint]:
        self.calls.append(("list", prefix))
        return super().list(prefix)


def test_an_idle_run_claims_and_releases_each_stream_and_writes_nothing_else(pipeline: Pipeline) -> None:
    for event_type in ("auditevents", "itemusages", "signinattempts"):
        pipeline.onepassword.generate(event_type, 30, step=timedelta(seconds=5))
    settings = pipeline.settings()
    store = CountingStore(pipeline.data_dir / "checkpoints")
    first = pipeline.run(settings, store=store, sink=pipeline.sink())
    assert {r.status for r in first.reports} == {"ok"}, first.reports
    before = {s: pipeline.checkpoint(s) for s in STREAMS}

    store.calls.clear()
    idle = pipeline.run(settings, store=store, sink=pipeline.sink())

    assert {r.status for r in idle.reports} == {"idle"}, idle.reports
    assert [c for c in store.calls if c[0] != "save"] == [("list", "")], "one list, no load per stream"
    saves = [stream for kind, stream in store.calls if kind == "save"]
    assert sorted(saves) == sorted(STREAMS * 2), (
        "per stream: the lease claim and its release, no save between"
    )
    for stream in STREAMS:
        after = pipeline.checkpoint(stream)
        assert (after.position, after.total_events) == (before[stream].position, before[stream].total_events)
        assert after.last_status == "idle" and after.lease_owner == ""
