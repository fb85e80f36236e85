"""Sending the next 1Password page's request as soon as its cursor shows at the head of an answer
(``onepassword.CursorPaging.early_request``, sent by ``auditsync.sources.paging.ReadAhead``), through the
real runner, the 1Password and Logs Ingestion simulators.

The interleavings are forced with the simulator's hooks, not timings: ``between_head_and_rest`` holds
the rest of an answer after its first 8 KiB, so a test can see whether the next request arrives while
an answer is still half read. What is asserted is what a SOC engineer sees: every event once, the
stream's status, the saved checkpoint, and which requests reached 1Password.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from simulators.base import Request
from tests.fixtures.pipeline import Pipeline

PAGE = 1_000
STREAM = "onepassword/auditevents"
PATH = "/api/v2/auditevents"
#: How long a held answer waits for the request the test expects; only a client that does not send it
#: early waits this long, and the test then fails on what it recorded.
WAIT = 10.0
#: How long a held answer waits for a request that must not come (one sent too early comes within ms).
WAIT_FOR_NONE = 2.0


def backlog(pipeline: Pipeline, count: int) -> list[dict[str, Any]]:
    return pipeline.onepassword.generate("auditevents", count, step=timedelta(seconds=2))


def page_requests(pipeline: Pipeline) -> list[Request]:
    return [r for r in pipeline.onepassword.requests if r.path == PATH]


class HoldFirstAnswer:
    """Holds the rest of the first page's answer until ``more`` further page requests have arrived."""

    def __init__(self, pipeline: Pipeline, more: int, wait: float = WAIT) -> None:
        self.pipeline = pipeline
        self.more = more
        self.wait = wait
        self.overlapped: bool | None = None
        self._holding = False
        self._changed = threading.Condition()
        pipeline.onepassword.between_head_and_rest = self._hold
        pipeline.onepassword.inject(599, times=1 << 30, path=PATH, when=self._arrived)

    def _arrived(self, request: Request) -> bool:
        with self._changed:
            self._changed.notify_all()
        return False

    def _hold(self, request: Request) -> None:
        with self._changed:
            if request.path != PATH or self._holding:
                return
            self._holding = True  # only the first answer is held; the others go out whole
            self.overlapped = self._changed.wait_for(
                lambda: len(page_requests(self.pipeline)) >= 1 + self.more, self.wait
            )


def test_the_next_page_is_requested_while_the_answer_before_it_is_still_arriving(pipeline: Pipeline) -> None:
    events = backlog(pipeline, 3_500)
    hold = HoldFirstAnswer(pipeline, more=1)

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    assert hold.overlapped is True, "page 2 was asked for before page 1's answer had fully arrived"
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events)
    assert pipeline.checkpoint(STREAM).total_events == len(events)
    assert len(page_requests(pipeline)) == 4, "one request a page, none wasted"


def test_never_more_than_one_request_ahead_of_the_page_being_read(pipeline: Pipeline) -> None:
    events = backlog(pipeline, 5_500)
    # Page 3 must not be asked for while page 1 is half read.
    hold = HoldFirstAnswer(pipeline, more=2, wait=WAIT_FOR_NONE)

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    assert hold.overlapped is False, "page 3 was not asked for before page 1 had arrived"
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events)
    assert len(page_requests(pipeline)) == 6


def test_an_answer_that_does_not_start_with_its_cursor_is_read_one_request_at_a_time(
    pipeline: Pipeline,
) -> None:
    events = backlog(pipeline, 2_500)
    pipeline.onepassword.key_order = ("items", "has_more", "cursor")
    hold = HoldFirstAnswer(pipeline, more=1, wait=WAIT_FOR_NONE)

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    assert hold.overlapped is False, "nothing to act on at the head: no request before the answer is read"
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events)
    assert len(page_requests(pipeline)) == 3


def test_a_head_that_names_another_cursor_than_the_answer_costs_one_dropped_request_and_no_event(
    pipeline: Pipeline,
) -> None:
    events = backlog(pipeline, 2_500)
    pipeline.onepassword.misleading_heads = 1
    # The head names a cursor the server would answer (a fresh start: every event again); the answer's
    # own cursor, later in the same object, is the real one.
    pipeline.onepassword.misleading_head = reset_cursor(pipeline)

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events), "every event once, none twice"
    sent = [r.json().get("cursor") for r in page_requests(pipeline)]
    assert pipeline.onepassword.misleading_head in sent, "the request sent on the head's word went out"
    assert len(sent) == 4, "three pages and the one request dropped"
    assert pipeline.checkpoint(STREAM).total_events == len(events)


def test_a_failed_request_sent_ahead_fails_the_stream_after_the_page_before_it_is_saved(
    pipeline: Pipeline,
) -> None:
    events = backlog(pipeline, 3_500)
    # First, so that it sees page 2's request arrive (the first matching fault answers a request, and the
    # hold's hook matches none) and releases page 1's answer then, not after WAIT.
    hold = HoldFirstAnswer(pipeline, more=1)
    # Page 2's request, sent ahead while page 1 is read, is refused (once: the next run is answered).
    pipeline.onepassword.inject(
        400,
        {"status": 400, "message": "Bad Request"},
        path=PATH,
        when=lambda request: len(page_requests(pipeline)) >= 2,
    )

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())

    (stream,) = report.reports
    assert hold.overlapped is True, "the failed request was the one sent ahead"
    assert (stream.status, stream.error_kind, stream.events) == ("error", "upstream", PAGE), stream
    assert pipeline.delivered() == Counter(e["uuid"] for e in events[:PAGE])
    assert pipeline.checkpoint(STREAM).total_events == PAGE

    report = pipeline.run(pipeline.settings("auditevents"), sink=pipeline.sink())
    assert report.reports[0].status == "ok", report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for e in events), "the rest once, page 1 not again"


def reset_cursor(pipeline: Pipeline) -> str:
    """A cursor the simulator accepts: the one a first request for the whole history would return."""
    from simulators.onepassword import _Cursor  # the simulator's own cursor, to point back at the start

    return _Cursor("auditevents", 0, 0, 0.0, None, PAGE).encode()
