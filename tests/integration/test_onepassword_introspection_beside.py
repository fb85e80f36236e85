"""The introspection runs beside the streams' first requests (``onepassword.Grants``): a run starts one
round trip sooner, and what the introspection says still decides, through the real runner and the
1Password and Logs Ingestion simulators."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from simulators.base import Request
from tests.fixtures.pipeline import Pipeline

INTROSPECT = "/api/v2/auth/introspect"
WAIT = 10.0


def first_pages_before_introspection_answers(pipeline: Pipeline, pages: int) -> dict[str, bool]:
    """Holds the introspection's answer until ``pages`` page requests have arrived (or WAIT passed)."""
    arrived = threading.Condition()
    seen: dict[str, bool] = {}

    def page_requests() -> int:
        return sum(
            1 for r in pipeline.onepassword.requests if r.path.startswith("/api/v2/") and r.path != INTROSPECT
        )

    def count(request: Request) -> bool:
        with arrived:
            arrived.notify_all()
        return False

    def hold(request: Request) -> None:
        if request.path != INTROSPECT or seen:
            return
        with arrived:
            seen["before"] = arrived.wait_for(lambda: page_requests() >= pages, WAIT)

    pipeline.onepassword.inject(599, times=1 << 30, path="/api/v2/", when=count)
    pipeline.onepassword.before_answer = hold
    return seen


def test_the_first_pages_are_asked_for_while_the_introspection_is_under_way(pipeline: Pipeline) -> None:
    events = {
        t: pipeline.onepassword.generate(t, 1_500, step=timedelta(seconds=2))
        for t in ("auditevents", "itemusages", "signinattempts")
    }
    seen = first_pages_before_introspection_answers(pipeline, pages=3)

    report = pipeline.run(pipeline.settings(), sink=pipeline.sink())

    assert seen == {"before": True}, "all three first pages went out before the introspection answered"
    assert [r.status for r in report.reports] == ["ok", "ok", "ok"], report.reports
    assert pipeline.delivered() == Counter(e["uuid"] for batch in events.values() for e in batch)


def test_a_type_the_token_may_not_read_still_fails_alone_with_the_configuration_hint(
    pipeline: Pipeline,
) -> None:
    audit = pipeline.onepassword.generate("auditevents", 1_500, step=timedelta(seconds=2))
    pipeline.onepassword.generate("itemusages", 10, step=timedelta(seconds=2))
    token = pipeline.onepassword.issue_token(features=["auditevents"])
    seen = first_pages_before_introspection_answers(pipeline, pages=2)

    report = pipeline.run(pipeline.settings("auditevents,itemusages", token=token), sink=pipeline.sink())

    by_stream = {r.stream: r for r in report.reports}
    assert seen == {"before": True}
    assert by_stream["onepassword/auditevents"].status == "ok"
    denied = by_stream["onepassword/itemusages"]
    assert (denied.status, denied.error_kind, denied.events) == ("error", "config", 0), denied
    assert "may not read itemusages" in denied.message and "Events Reporting" in denied.hint
    assert pipeline.delivered() == Counter(e["uuid"] for e in audit), "nothing of the refused type was sent"


def test_a_refused_token_fails_every_stream_with_the_auth_hint(pipeline: Pipeline) -> None:
    pipeline.onepassword.generate("auditevents", 10, step=timedelta(seconds=2))
    pipeline.onepassword.inject(401, {"status": 401, "message": "Unauthorized"}, times=10)

    report = pipeline.run(pipeline.settings("auditevents,itemusages"), sink=pipeline.sink())

    assert [(r.status, r.error_kind) for r in report.reports] == [("error", "auth")] * 2, report.reports
    assert all("Events Reporting" in r.hint for r in report.reports)
    assert pipeline.delivered() == Counter()
