"""Reading ahead (``auditsync.sources.paging.ReadAhead``): page n+1's request is under way while page n is
uploaded, and the checkpoint still moves strictly in page order, never past what the sink accepted.

Each test drives the real runner against the 1Password and Logs Ingestion simulators (file checkpoints,
fake clock) and forces the interleaving it needs with the simulators' own request hooks instead of
timings: a hook on the ingestion side holds an upload until the 1Password simulator has seen the next
page's request, so the failure lands exactly while a page is read ahead. What is asserted is what a SOC
engineer sees: which events arrived how often, the stream's status and the saved checkpoint. (Crashes at
any moment are the crash soak's subject: tests/integration/test_crash_soak.py.)
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from simulators.base import Request, SimServer
from tests.fixtures.pipeline import Pipeline, large_audit_events

PAGE = 1_000
STREAM = "onepassword/auditevents"
#: How long a hook waits for the request it expects; the read-ahead sends it at once, so only a source
#: without it (or a hang) waits this long, and then the test fails on the recorded outcome.
WAIT = 10.0


class Arrivals:
    """Counts requests under ``path`` as they reach ``sim``; a test can wait for the n-th to arrive."""

    def __init__(self, sim: SimServer, path: str) -> None:
        self.count = 0
        self._changed = threading.Condition()
        # A fault that never fires: its predicate is the simulator's hook on every matching request.
        sim.inject(599, times=1 << 30, path=path, when=self._arrived)

    def _arrived(self, request: Request) -> bool:
        with self._changed:
            self.count += 1
            self._changed.notify_all()
        return False

    def wait_for(self, n: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= n, WAIT)


def hold_upload_until(pipeline: Pipeline, upload: int, fetches: Arrivals, fetch: int) -> dict[str, bool]:
    """Hold the ``upload``-th ingestion request until the ``fetch``-th 1Password page request arrived."""
    seen: dict[str, bool] = {}

    def hook(request: Request) -> bool:
        if pipeline.logs.uploads == upload and "overlapped" not in seen:
            seen["overlapped"] = fetches.wait_for(fetch)
        return False

    pipeline.logs.inject(599, times=1 << 30, when=hook)
    return seen


def backlog(pipeline: Pipeline, count: int) -> list[dict[str, Any]]:
    """Events whose pages of 1,000 go in two requests each."""
    return large_audit_events(pipeline.onepassword, count)


def test_the_next_page_is_fetched_while_a_page_is_uploaded_and_every_event_arrives_once(
    pipeline: Pipeline,
) -> None:
    events = backlog(pipeline, 3_500)
    fetches = Arrivals(pipeline.onepassword, "/api/v2/auditevents")
    seen = hold_upload_until(pipeline, upload=1, fetches=fetches, fetch=2)

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    assert seen == {"overlapped": True}, "page 2 was requested while page 1's upload was in flight"
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events)
    assert pipeline.checkpoint(STREAM).total_events == len(events)


def test_a_failed_fetch_of_the_next_page_leaves_the_checkpoint_after_the_page_being_uploaded(
    pipeline: Pipeline,
) -> None:
    events = backlog(pipeline, 3_500)
    fetches = Arrivals(pipeline.onepassword, "/api/v2/auditevents")
    # The second page request (and its retries) is refused while page 1 is held in its upload.
    pipeline.onepassword.inject(
        400,
        {"status": 400, "message": "Bad Request"},
        path="/api/v2/auditevents",
        when=lambda r: fetches.count >= 2,
    )
    seen = hold_upload_until(pipeline, upload=1, fetches=fetches, fetch=2)

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    (stream,) = report.reports
    assert seen == {"overlapped": True}
    assert stream.status == "error" and stream.events == PAGE, stream
    assert pipeline.delivered() == Counter(e["uuid"] for e in events[:PAGE]), "page 1 arrived, once"
    assert pipeline.checkpoint(STREAM).total_events == PAGE, "saved after page 1, before the failure"

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events), "the rest once, page 1 not again"


def test_a_failed_upload_drops_the_page_read_ahead_and_keeps_the_checkpoint_before_it(
    pipeline: Pipeline,
) -> None:
    events = backlog(pipeline, 3_500)
    fetches = Arrivals(pipeline.onepassword, "/api/v2/auditevents")
    # A page of 1,000 rows takes two requests: upload 3 is page 2's first, held until page 3 is asked for.
    seen = hold_upload_until(pipeline, upload=3, fetches=fetches, fetch=3)
    pipeline.logs.inject(503, times=1, when=pipeline.logs.nth_upload(3))

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink(max_attempts=1))

    (stream,) = report.reports
    assert seen == {"overlapped": True}, "page 3 was read ahead while page 2's upload failed"
    assert (stream.status, stream.error_kind, stream.events) == ("error", "sink", PAGE), stream
    assert pipeline.delivered() == Counter(e["uuid"] for e in events[:PAGE])
    assert pipeline.checkpoint(STREAM).total_events == PAGE, "not past page 2, let alone page 3"

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events), "pages 2 and 3 once, page 1 not again"


def test_a_deadline_after_a_page_drops_the_page_read_ahead_and_the_next_run_goes_on_from_there(
    pipeline: Pipeline,
) -> None:
    events = backlog(pipeline, 3_500)
    fetches = Arrivals(pipeline.onepassword, "/api/v2/auditevents")
    budget = timedelta(seconds=60)
    prefetched: list[bool] = []

    def after_page(stream: str, delivered: int) -> None:
        # Page 1 is saved; page 2 is being read ahead: the run's time runs out now.
        prefetched.append(fetches.wait_for(2))
        pipeline.clock.advance(budget)

    report = pipeline.run(
        pipeline.settings("auditevents", RUN_TIME_BUDGET="60s"), sink=pipeline.sink(), progress=after_page
    )

    (stream,) = report.reports
    assert prefetched == [True], "one page saved, with the next one read ahead"
    assert (stream.status, stream.events) == ("behind", PAGE), stream
    assert pipeline.delivered() == Counter(e["uuid"] for e in events[:PAGE]), (
        "the page read ahead was not sent"
    )
    assert pipeline.checkpoint(STREAM).total_events == PAGE

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events), "the dropped page arrived, once"
