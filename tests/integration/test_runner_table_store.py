"""The runner with the Table Storage checkpoint store on Azurite: two runners on one stream never both work it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from auditsync.checkpoints import open_store
from auditsync.checkpoints.table import TableCheckpointStore
from auditsync.config import Settings
from auditsync.model import Checkpoint
from auditsync.runner import CycleReport
from tests.fixtures.pipeline import Pipeline, health


def test_second_runner_skips_a_stream_the_first_one_holds(
    pipeline: Pipeline, azurite_connection_string: str, azurite_table_name: str
) -> None:
    events = pipeline.onepassword.generate("signinattempts", 3_000, step=timedelta(seconds=3))
    settings = pipeline.settings(
        "signinattempts",
        CHECKPOINT_STORE="table",
        CHECKPOINT_CONNECTION_STRING=azurite_connection_string,
        CHECKPOINT_TABLE=azurite_table_name,
    )
    second: list[CycleReport] = []

    def start_second_runner_midway(stream: str, delivered: int) -> None:
        # The first runner has delivered a page and still holds the lease: a second runner starts now.
        if not second:
            second.append(pipeline.run(settings))

    first = pipeline.run(settings, progress=start_second_runner_midway)

    assert [(r.stream, r.status, r.events) for r in first.reports] == [
        ("onepassword/signinattempts", "ok", 3_000)
    ]
    (skipped,) = second[0].reports
    assert (skipped.status, skipped.events) == ("skipped", 0)
    assert "another runner" in skipped.message
    assert pipeline.delivered() == Counter(e["uuid"] for e in events)
    # Only the runner that worked the stream wrote its heartbeat.
    assert health(pipeline.logs, second[0].run_id) == {}
    assert health(pipeline.logs, first.run_id)["onepassword/signinattempts"]["EventsIngested"] == 3_000

    (saved,) = open_store(settings.store, lambda: None).list()
    assert (saved.stream, saved.total_events, saved.last_status, saved.lease_owner) == (
        "onepassword/signinattempts",
        3_000,
        "ok",
        "",
    )
    assert saved.position and saved.position["cursor"]

    # With the lease released, the next run works the stream again (and finds nothing new).
    (again,) = pipeline.run(settings).reports
    assert again.status == "idle"


class CountingTableStore(TableCheckpointStore):
    """The real table store on Azurite, recording each call the runner makes on it."""

    calls: list[str]

    def load(self, stream: str) -> Checkpoint:
        self.calls.append("load")
        return super().load(stream)

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        self.calls.append("save")
        return super().save(checkpoint)

    def save_all(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        self.calls.append(f"save_all {len(checkpoints)}")
        return super().save_all(checkpoints)

    def list(self) -> list[Checkpoint]:
        self.calls.append("list")
        return super().list()


def table_settings(pipeline: Pipeline, connection: str, table: str) -> Settings:
    return pipeline.settings(
        CHECKPOINT_STORE="table", CHECKPOINT_CONNECTION_STRING=connection, CHECKPOINT_TABLE=table
    )


def test_an_idle_run_claims_and_releases_every_stream_in_one_transaction_each(
    pipeline: Pipeline, azurite_connection_string: str, azurite_table_name: str
) -> None:
    for event_type in ("auditevents", "itemusages", "signinattempts"):
        pipeline.onepassword.generate(event_type, 30, step=timedelta(seconds=5))
    settings = table_settings(pipeline, azurite_connection_string, azurite_table_name)
    store = CountingTableStore.from_connection_string(azurite_connection_string, azurite_table_name)
    store.calls = []
    assert not pipeline.run(settings, store=store).failed

    store.calls = []
    idle = pipeline.run(settings, store=store)

    assert {r.status for r in idle.reports} == {"idle"}, idle.reports
    assert store.calls == ["list", "save_all 3", "save_all 3"], "one list, one claim, one release"
    saved = {c.stream: c for c in open_store(settings.store, lambda: None).list()}
    assert {(c.total_events, c.last_status, c.lease_owner) for c in saved.values()} == {(30, "idle", "")}


def test_streams_claimed_together_are_all_skipped_by_a_second_runner_and_released_together(
    pipeline: Pipeline, azurite_connection_string: str, azurite_table_name: str
) -> None:
    sent = [
        e
        for event_type in ("auditevents", "itemusages", "signinattempts")
        for e in pipeline.onepassword.generate(event_type, 2_500, step=timedelta(seconds=3))
    ]
    settings = table_settings(pipeline, azurite_connection_string, azurite_table_name)
    pipeline.run(pipeline.settings(), store=open_store(settings.store, lambda: None))  # checkpoints exist
    pipeline.onepassword.generate("auditevents", 2_500, step=timedelta(seconds=3))
    second: list[CycleReport] = []

    def start_second_runner_midway(stream: str, delivered: int) -> None:
        if not second:
            second.append(pipeline.run(settings))

    first = pipeline.run(settings, progress=start_second_runner_midway)

    assert not first.failed, first.reports
    assert {(r.stream, r.status) for r in second[0].reports} == {
        (name, "skipped")
        for name in ("onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts")
    }
    assert sum(pipeline.delivered().values()) == len(pipeline.delivered()) == len(sent) + 2_500
    saved = open_store(settings.store, lambda: None).list()
    assert {(c.last_status != "", c.lease_owner) for c in saved} == {(True, "")}, "all released"
