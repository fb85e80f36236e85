"""1Password -> Logs Ingestion end to end: real SDKs over loopback sockets, simulators that behave like
the services, file checkpoints. Asserts what a SOC engineer would observe in the workspace."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import timedelta

import pytest

from auditsync.tables import TABLES
from simulators.base import Request
from tests.fixtures.pipeline import Pipeline, event_rows, health, large_audit_events, ticking

STREAMS = ("onepassword/auditevents", "onepassword/itemusages", "onepassword/signinattempts")


def uuids(events: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(e["uuid"]) for e in events)


def test_25000_events_over_several_runs_arrive_exactly_once(pipeline: Pipeline) -> None:
    sim, step = pipeline.onepassword, timedelta(seconds=5)
    sent = {
        "auditevents": sim.generate("auditevents", 10_000, step=step),
        "itemusages": sim.generate("itemusages", 8_000, step=step),
        "signinattempts": sim.generate("signinattempts", 7_000, step=step),
    }
    # The shortest budget, on a clock that moves 0.1 s at every reading by any of the three streams: a run
    # reads a few pages. The sink's requests get real socket timeouts cut to what their deadline has left on
    # this clock; at a second a reading that was often the 0.5 s minimum, which a post to the stand-in on a
    # busy machine could miss (a failed run). At 0.1 s they get 3 s or more.
    settings = pipeline.settings(RUN_TIME_BUDGET="10s")

    statuses = []
    for _ in range(30):
        report = pipeline.run(settings, clock=ticking(pipeline.clock, step=0.1))
        statuses.append({r.stream: r.status for r in report.reports})
        assert not report.failed, [(r.stream, r.status, r.error_kind, r.message) for r in report.reports]
        if all(s != "behind" for s in statuses[-1].values()):
            break
    assert len(statuses) >= 3, "the run budget should have split the backlog over several runs"
    assert any("behind" in s.values() for s in statuses)

    # Item usages arrive late: timestamps from an hour ago, handed out behind the cursors already issued.
    late = sim.generate(
        "itemusages", 500, start=pipeline.clock.now() - timedelta(hours=1), step=timedelta(seconds=1)
    )
    sent["itemusages"] += late
    report = pipeline.run(settings)
    assert {r.stream: (r.status, r.events) for r in report.reports} == {
        "onepassword/auditevents": ("idle", 0),
        "onepassword/itemusages": ("ok", 500),
        "onepassword/signinattempts": ("idle", 0),
    }

    rows = event_rows(pipeline.logs)
    expected = uuids([e for events in sent.values() for e in events])
    assert sum(expected.values()) == 25_500
    assert pipeline.delivered() == expected, "every event exactly once"
    assert Counter(r["log_source"] for r in rows) == {
        "auditevents": 10_000,
        "itemusages": 8_500,
        "signinattempts": 7_000,
    }
    assert pipeline.logs.undeclared == {} and pipeline.logs.type_errors == []
    declared = set(TABLES["OnePasswordEventLogs_CL"].column_types)
    assert all(set(r) <= declared for r in rows)

    saved = {s: pipeline.checkpoint(s) for s in STREAMS}
    assert {s: c.total_events for s, c in saved.items()} == {
        "onepassword/auditevents": 10_000,
        "onepassword/itemusages": 8_500,
        "onepassword/signinattempts": 7_000,
    }
    assert all(c.position and c.position["cursor"] and not c.lease_owner for c in saved.values())

    # Nothing new: the heartbeat still says so, for every stream, in both health tables.
    report = pipeline.run(settings)
    rows_now = health(pipeline.logs, report.run_id)
    assert {s: r["Status"] for s, r in rows_now.items()} == dict.fromkeys(STREAMS, "idle")
    assert all(r["EventsIngested"] == 0 and "ErrorKind" not in r for r in rows_now.values())
    heartbeat = [
        r for r in pipeline.logs.rows("OnePasswordEventLogs_CL") if r.get("log_source") == "healthevents"
    ]
    assert Counter(r["category"] for r in heartbeat[-3:]) == {"success": 3}
    assert len(event_rows(pipeline.logs)) == 25_500


def test_events_repeated_at_the_resume_point_are_dropped(pipeline: Pipeline) -> None:
    pipeline.onepassword.duplicate_at_resume = True
    first = pipeline.onepassword.generate("signinattempts", 2_500, step=timedelta(seconds=2))
    settings = pipeline.settings("signinattempts")
    pipeline.run(settings)
    second = pipeline.onepassword.generate("signinattempts", 10, step=timedelta(seconds=1))
    report = pipeline.run(settings)
    assert report.reports[0].counters.get("duplicates_dropped", 0) >= 1
    assert pipeline.delivered() == uuids(first + second)


def test_sink_failing_on_page_n_keeps_the_checkpoint_and_loses_nothing(pipeline: Pipeline) -> None:
    events = pipeline.onepassword.generate("signinattempts", 5_000, step=timedelta(seconds=2))
    settings = pipeline.settings("signinattempts")
    sink = pipeline.sink(max_attempts=3)
    logs = pipeline.logs
    # Page 3's upload (one batch per page of sign-in attempts) fails with 503 on the first try and both retries.
    logs.inject(
        503, {"error": {"code": "ServiceUnavailable"}}, times=3, when=lambda r: logs.uploads in (3, 4, 5)
    )
    report = pipeline.run(settings, sink=sink)
    (stream,) = report.reports
    assert (stream.status, stream.error_kind) == ("error", "sink")
    assert "503" in stream.message and stream.hint
    assert report.failed
    saved = pipeline.checkpoint("onepassword/signinattempts")
    assert saved.total_events == 2_000, "the checkpoint stays at page N-1"
    assert saved.last_status == "error"
    assert health(logs)["onepassword/signinattempts"]["ErrorKind"] == "sink"

    report = pipeline.run(settings, sink=sink)
    assert report.reports[0].status == "ok"
    assert pipeline.delivered() == uuids(events), "no loss, no duplicate"


def test_a_failed_later_chunk_keeps_the_accepted_chunk_and_the_rerun_sends_only_the_rest(
    pipeline: Pipeline,
) -> None:
    events = large_audit_events(pipeline.onepassword, 3_000)
    settings = pipeline.settings("auditevents")
    sink = pipeline.sink()
    # A page of 1,000 such audit events is more than 1 MB, so it goes in two requests; the 2nd of page 2 fails.
    pipeline.logs.inject(500, times=1, when=pipeline.logs.nth_upload(4))
    report = pipeline.run(settings, sink=sink)
    assert (report.reports[0].status, report.reports[0].error_kind) == ("error", "sink")
    accepted_of_page_2 = len(event_rows(pipeline.logs)) - 1_000
    assert 0 < accepted_of_page_2 < 1_000
    saved = pipeline.checkpoint("onepassword/auditevents")
    assert saved.total_events == 1_000 + accepted_of_page_2, "the accepted chunk of page 2 is recorded"
    assert report.reports[0].events == 1_000 + accepted_of_page_2

    pipeline.run(settings, sink=sink)
    counts = pipeline.delivered()
    assert set(counts) == set(uuids(events)), "nothing lost"
    assert max(counts.values()) == 1, "the rerun sends only what the failed chunk carried: no duplicate"
    assert pipeline.checkpoint("onepassword/auditevents").total_events == len(events)


def test_looping_cursor_is_an_upstream_error_not_an_endless_loop(pipeline: Pipeline) -> None:
    pipeline.onepassword.generate("auditevents", 2_500)
    pipeline.onepassword.repeat_cursor_forever = True
    report = pipeline.run(pipeline.settings("auditevents"))
    assert (report.reports[0].status, report.reports[0].error_kind) == ("error", "upstream")
    assert "already returned" in report.reports[0].message


def test_first_run_lookback_is_clamped_to_120_days(pipeline: Pipeline) -> None:
    now = pipeline.clock.now()
    old = pipeline.onepassword.generate(
        "auditevents", 10, start=now - timedelta(days=119), step=timedelta(hours=1)
    )
    report = pipeline.run(pipeline.settings("auditevents", INITIAL_LOOKBACK="365d"))
    assert report.reports[0].status == "ok"
    first = next(r.json() for r in pipeline.onepassword.requests if r.path == "/api/v2/auditevents")
    expected_start = now - timedelta(days=120) + timedelta(minutes=5)  # the margin of onepassword.SERVED
    assert first == {
        "limit": 1000,
        "start_time": expected_start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    assert pipeline.delivered() == uuids(old)


def test_throttling_beyond_the_deadline_stops_cleanly_with_the_checkpoint_kept(pipeline: Pipeline) -> None:
    events = pipeline.onepassword.generate("auditevents", 2_500, step=timedelta(seconds=2))
    settings = pipeline.settings("auditevents")
    pipeline.onepassword.inject(
        429,
        {"status": 429, "message": "Too Many Requests"},
        times=1_000,
        when=lambda r: "cursor" in (r.json() or {}),
    )
    report = pipeline.run(settings)
    (stream,) = report.reports
    assert (stream.status, stream.error_kind, stream.events) == ("error", "throttled", 1_000)
    assert pipeline.checkpoint("onepassword/auditevents").total_events == 1_000
    pipeline.onepassword.faults.clear()
    pipeline.run(settings)
    assert pipeline.delivered() == uuids(events)


def test_the_per_minute_limit_is_waited_out_in_tenths_of_a_second(pipeline: Pipeline) -> None:
    """1Password answers 429 without Retry-After; its window frees a request every 100 ms, so the wait
    after a 429 starts at 0.1-0.2 s (the generic backoff would idle the stream 0.5-1 s each time)."""
    events = {
        t: pipeline.onepassword.generate(t, 2_500, step=timedelta(seconds=2))
        for t in ("auditevents", "itemusages")
    }
    sim = pipeline.onepassword
    sim.limit_per_minute = 600
    sim.reset_rate_windows(past_requests=600)  # an account in the middle of a backlog: 10 requests a second
    clock = pipeline.clock
    sleeps_before = len(clock.sleeps)

    report = pipeline.run(pipeline.settings("auditevents,itemusages"), sink=pipeline.sink())

    assert [r.status for r in report.reports] == ["ok", "ok"], report.reports
    assert pipeline.delivered() == uuids([e for batch in events.values() for e in batch])
    waits = clock.sleeps[sleeps_before:]
    assert sim.throttled > 0 and waits, "the limit was met and waited out"
    assert min(waits) < 0.2 and sorted(waits)[len(waits) // 2] <= 0.2, waits


def test_missing_dcr_role_is_an_auth_error_logged_at_error_level(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.onepassword.generate("signinattempts", 30)
    pipeline.logs.deny()
    with caplog.at_level(logging.INFO):
        report = pipeline.run(pipeline.settings("signinattempts"), sink=pipeline.sink())
    (stream,) = report.reports
    assert (stream.status, stream.error_kind) == ("error", "auth")
    assert "Monitoring Metrics Publisher" in stream.hint
    assert report.heartbeat_error and report.failed
    assert pipeline.checkpoint("onepassword/signinattempts").total_events == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("did not reach the sink" in m for m in errors)
    assert any(
        m.startswith("health onepassword/signinattempts: status=error") and "error_kind=auth" in m
        for m in errors
    )


def test_unknown_stream_in_the_dcr_is_a_sink_error_naming_the_stream(pipeline: Pipeline) -> None:
    pipeline.onepassword.generate("signinattempts", 30)
    settings = pipeline.settings("signinattempts", LOGS_INGESTION_RULE_ID="dcr-" + "0" * 32)
    (stream,) = pipeline.run(settings).reports
    assert (stream.status, stream.error_kind) == ("error", "sink")
    assert "404" in stream.message and "Custom-OnePasswordEventLogs_CL" in stream.hint


def test_the_health_rows_of_both_tables_go_out_side_by_side(pipeline: Pipeline) -> None:
    """AuditSyncHealth_CL and the 1Password healthevents rows are the run's last round trips: sent side
    by side, the run ends one round trip sooner. The ingestion simulator holds the AuditSyncHealth_CL
    answer until the healthevents rows have arrived too (before it, or while it is held)."""
    pipeline.onepassword.generate("auditevents", 30, step=timedelta(seconds=2))
    arrived = threading.Condition()
    seen: dict[str, bool] = {}

    def onepassword_uploads() -> int:
        # The 30 events take one; the healthevents rows are the second, whenever they go.
        return sum(1 for r in pipeline.logs.requests if r.path.endswith("Custom-OnePasswordEventLogs_CL"))

    def count(request: Request) -> bool:
        with arrived:
            arrived.notify_all()
        return False

    def hold(request: Request) -> None:
        if not request.path.endswith("Custom-AuditSyncHealth") or seen:
            return
        with arrived:
            seen["together"] = arrived.wait_for(lambda: onepassword_uploads() >= 2, 10.0)

    pipeline.logs.inject(599, times=1 << 30, when=count)
    pipeline.logs.before_answer = hold

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    assert seen == {"together": True}, (
        "the healthevents rows went out while AuditSyncHealth_CL's were in flight"
    )
    assert not report.heartbeat_error
    assert {r["Stream"] for r in pipeline.logs.rows("AuditSyncHealth_CL")} == {"onepassword/auditevents"}
    assert [r for r in pipeline.logs.rows("OnePasswordEventLogs_CL") if r.get("log_source") == "healthevents"]


def test_a_run_with_nothing_to_send_asks_the_identity_endpoint_once_for_both_health_tables(
    pipeline: Pipeline,
) -> None:
    """The two health uploads start together with no token yet; they share one token request."""
    identity = pipeline.logs.identity
    assert identity is not None
    before = len(identity.requests)

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    assert [r.status for r in report.reports] == ["idle"] and not report.heartbeat_error, report
    assert len(identity.requests) - before == 1, [r.path for r in identity.requests[before:]]
    assert len([r for r in pipeline.logs.requests if "dataCollectionRules" in r.path]) == 2
