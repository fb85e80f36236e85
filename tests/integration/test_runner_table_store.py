"""The runner with the Table Storage checkpoint store on Azurite: two runners on one stream never both work it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from auditsync.checkpoints import open_store
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

    (saved,) = open_store(settings, lambda: None).list()
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
