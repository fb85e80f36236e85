"""The runner with the Table Storage checkpoint store on Azurite: two runners on one stream never both work it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from auditsync.checkpoints import open_store
from auditsync.runner import CycleReport, run_cycle
from simulators.clock import FakeClock
from simulators.identity import ManagedIdentitySim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import event_rows, health, onepassword_env, settings_for, still, uuid_counts


def test_second_runner_skips_a_stream_the_first_one_holds(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    identity_sim: ManagedIdentitySim,
    fake_clock: FakeClock,
    azurite_connection_string: str,
    azurite_table_name: str,
    data_dir: Path,
) -> None:
    events = onepassword_sim.generate("signinattempts", 3_000, step=timedelta(seconds=3))
    env = onepassword_env(
        onepassword_sim,
        logs_ingestion_sim,
        data_dir,
        onepassword_sim.issue_token(),
        ONEPASSWORD_EVENT_TYPES="signinattempts",
        CHECKPOINT_STORE="table",
        CHECKPOINT_CONNECTION_STRING=azurite_connection_string,
        CHECKPOINT_TABLE=azurite_table_name,
    )
    settings = settings_for(env)
    second: list[CycleReport] = []

    def start_second_runner_midway(stream: str, delivered: int) -> None:
        # The first runner has delivered a page and still holds the lease: a second runner starts now.
        if not second:
            second.append(run_cycle(settings, clock=still(fake_clock)))

    first = run_cycle(settings, clock=still(fake_clock), progress=start_second_runner_midway)

    assert [(r.stream, r.status, r.events) for r in first.reports] == [
        ("onepassword/signinattempts", "ok", 3_000)
    ]
    (skipped,) = second[0].reports
    assert (skipped.status, skipped.events) == ("skipped", 0)
    assert "another runner" in skipped.message
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in events)
    # Only the runner that worked the stream wrote its heartbeat.
    assert health(logs_ingestion_sim, second[0].run_id) == {}
    assert health(logs_ingestion_sim, first.run_id)["onepassword/signinattempts"]["EventsIngested"] == 3_000

    (saved,) = open_store(settings, lambda: None).list()
    assert (saved.stream, saved.total_events, saved.last_status, saved.lease_owner) == (
        "onepassword/signinattempts",
        3_000,
        "ok",
        "",
    )
    assert saved.position and saved.position["cursor"]

    # With the lease released, the next run works the stream again (and finds nothing new).
    (again,) = run_cycle(settings, clock=still(fake_clock)).reports
    assert again.status == "idle"
