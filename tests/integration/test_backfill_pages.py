"""A backfill goes through the runner's page loop: a page the sink takes in several requests is recorded
request by request in the backfill's own progress record, so a failed later request, and the backfill
run again, re-send only what was not accepted. Real runner loop, 1Password and Logs Ingestion
simulators, file checkpoints, fake clock."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from auditsync.backfill import plan, run_backfill
from auditsync.errors import AuditSyncError
from auditsync.tables.rows import parse_time
from simulators.onepassword import make_events
from tests.fixtures.pipeline import Pipeline, still

STREAM = "onepassword/auditevents"
PAGE = 1_000


def test_a_backfill_page_failing_on_a_later_request_resends_only_the_rest(pipeline: Pipeline) -> None:
    now = pipeline.clock.now()
    events = make_events(
        "auditevents",
        2_500,
        now - timedelta(days=2),
        timedelta(seconds=1),
        random.Random(7),
        account_uuid=pipeline.onepassword.account_uuid,
    )
    for event in events:  # long display names: a page's rows are over the 1 MiB a request takes
        event["actor_details"]["name"] += " - " + "Finance and Shared Services, EMEA region " * 8
    pipeline.onepassword.add("auditevents", events)
    settings = pipeline.settings("auditevents")
    since, until = now - timedelta(days=3), now
    backfill = plan(settings, STREAM, since, until, now)
    in_range = Counter(
        e["uuid"] for e in events if (when := parse_time(e["timestamp"])) and since <= when < until
    )
    assert len(in_range) == 2_500
    # A 1,000-event page is two ingestion requests: the 4th upload is page 2's second. It fails, and
    # every retry of it, until the vendor side is fixed.
    failing = [True]
    pipeline.logs.inject(
        503,
        {"error": {"code": "ServiceUnavailable", "message": "try later"}},
        times=1 << 30,
        when=lambda request: failing[0] and pipeline.logs.uploads >= 4,
    )

    with pytest.raises(AuditSyncError) as failed:
        run_backfill(settings, backfill, clock=still(pipeline.clock))

    assert failed.value.kind == "sink"
    accepted = pipeline.delivered()
    assert max(accepted.values()) == 1
    assert PAGE < sum(accepted.values()) < 2 * PAGE, "page 1 and the first request of page 2"
    record = pipeline.checkpoint(backfill.record_name)
    assert record.total_events == sum(accepted.values()), "the accepted request of page 2 is recorded"
    assert record.position is not None and record.position["events"] == record.total_events
    assert (record.last_status, record.last_error_kind, record.lease_owner) == ("error", "sink", "")
    assert pipeline.checkpoint(STREAM).position is None, "the live checkpoint is not touched"

    failing[0] = False
    lines: list[str] = []
    report = run_backfill(settings, backfill, clock=still(pipeline.clock), progress=lines.append)

    assert report.done and report.resumed and lines[0].startswith("resuming")
    assert pipeline.delivered() == in_range, "every event of the range once: the accepted part not again"
    assert report.events == len(in_range)
    record = pipeline.checkpoint(backfill.record_name)
    assert record.position is not None and record.position["done"] is True
    assert record.total_events == len(in_range)
