"""Connector health rule scenarios: the collector's own run reports, turned into heartbeat rows by
``auditsync.heartbeat`` exactly as a run writes them."""

from __future__ import annotations

from datetime import datetime, timedelta

from auditsync.model import StreamReport
from tests.scenarios.model import Case, scenario

M = timedelta(minutes=1)
STREAM = "keeper/events"


def _runs(
    now: datetime, count: int, last: timedelta, report: object
) -> list[tuple[datetime, list[StreamReport]]]:
    """``count`` runs five minutes apart, the last ``last`` before now; ``report(n)`` is run n's report."""
    runs = []
    for n in range(count):
        at = now - last - 5 * M * (count - 1 - n)
        runs.append((at, [report(n)]))  # type: ignore[operator]
    return runs


def _ok(n: int, lag: int = 40) -> StreamReport:
    return StreamReport("keeper", STREAM, "ok", events=120, pages=1, duration_ms=2_400, lag_seconds=lag)


@scenario("AuditSyncLagGrowing")
def lag_growing(now: datetime) -> tuple[Case, Case]:
    behind = Case(
        "for 100 minutes Keeper runs stop at the budget with more to read; the lag grows from 1 to 2.6 hours",
        heartbeats=_runs(
            now,
            20,
            3 * M,
            lambda n: StreamReport(
                "keeper",
                STREAM,
                "behind",
                events=8_000,
                pages=8,
                duration_ms=480_000,
                lag_seconds=3_700 + 300 * n,
                hint="Raise RUN_TIME_BUDGET or run more often",
            ),
        ),
    )
    steady = Case(
        "for 100 minutes every Keeper run ends idle or ok with a lag under a minute",
        heartbeats=_runs(now, 20, 3 * M, _ok),
    )
    return behind, steady


@scenario("AuditSyncStreamError")
def stream_error(now: datetime) -> tuple[Case, Case]:
    failing = Case(
        "the Keeper token is revoked: the last 4 runs fail with an auth error",
        heartbeats=_runs(
            now,
            10,
            2 * M,
            lambda n: (
                _ok(n)
                if n < 6
                else StreamReport(
                    "keeper",
                    STREAM,
                    "error",
                    error_kind="auth",
                    message="Keeper refused the API token (401)",
                    hint="Create a new Admin REST API token and store it in Key Vault",
                )
            ),
        ),
    )
    recovered = Case(
        "one run fails upstream 40 minutes ago, every run since is ok",
        heartbeats=_runs(
            now,
            10,
            2 * M,
            lambda n: (
                StreamReport("keeper", STREAM, "error", error_kind="upstream", message="Keeper answered 500")
                if n == 1
                else _ok(n)
            ),
        ),
    )
    return failing, recovered


@scenario("AuditSyncStreamSilent")
def stream_silent(now: datetime) -> tuple[Case, Case]:
    silent = Case(
        "Keeper heartbeats every 5 minutes until 2 hours ago, then none",
        heartbeats=_runs(now, 24, 120 * M, _ok),
    )
    alive = Case("Keeper heartbeats every 5 minutes up to now", heartbeats=_runs(now, 24, 2 * M, _ok))
    return silent, alive
