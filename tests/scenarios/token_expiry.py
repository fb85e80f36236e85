"""The token expiry rule's scenario: heartbeats whose TokenExpiresOn (as ``auditsync.heartbeat`` writes it from
the run's report) crosses the rule's thresholds, against tokens that stay where they were all day."""

from __future__ import annotations

from datetime import datetime, timedelta

from auditsync.model import StreamReport
from tests.scenarios.model import Case, scenario

M = timedelta(minutes=1)
DAY = timedelta(days=1)
#: Runs every ten minutes over the last three hours, the newest two minutes ago.
RUNS = 18


def _heartbeats(
    now: datetime, tokens: dict[str, datetime | None]
) -> list[tuple[datetime, list[StreamReport]]]:
    """Every run's reports: one stream per source (``source/stream`` keys), each with its token's expiry."""
    runs = []
    for n in range(RUNS):
        at = now - 2 * M - 10 * M * (RUNS - 1 - n)
        reports = [
            StreamReport(
                name.split("/")[0], name, "idle", duration_ms=800, lag_seconds=0, token_expires_on=expires
            )
            for name, expires in tokens.items()
        ]
        runs.append((at, reports))
    return runs


@scenario("AuditSyncTokenExpiring")
def token_expiring(now: datetime) -> tuple[Case, Case]:
    crossing = Case(
        "the Keeper token came within 14 days of its expiry 20 minutes ago, the 1Password token within 3 days "
        "half an hour ago",
        heartbeats=_heartbeats(
            now,
            {
                "keeper/events": now + 14 * DAY - 20 * M,
                "onepassword/auditevents": now + 3 * DAY - 30 * M,
            },
        ),
    )
    steady = Case(
        "all day the Keeper token has had 10 days left (it came within 14 days the day before); the 1Password "
        "token's expiry is unknown",
        heartbeats=_heartbeats(now, {"keeper/events": now + 10 * DAY, "onepassword/auditevents": None}),
    )
    return crossing, steady
