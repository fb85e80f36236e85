"""A vendor account's request budget, shared by the streams that use its token.

1Password allows 600 requests per minute and 30,000 per hour per account (reference:
onepassword-events-api.md). With many tenants, a tenant's 1Password streams are worked by different
queue workers, possibly on different instances, and nothing is shared between them but the
checkpoint store. Each stream paces its own requests to 1/K of the account's budget, where K is the
number of the tenant's 1Password streams busy now: this one, and each sibling whose lease is held or
whose last run stopped ``behind`` (its next item continues at once), or that never ran. K is read
from the siblings' checkpoints when the stream starts and again every ``SHARE_REFRESH`` (one query a
minute, on the tenant's rows only). So a tenant's one backlog drains at the account's full rate while
the others are idle, and when a sibling starts, both are back within the budget within a minute; a
429 meanwhile is retried with backoff (``auditsync.retry``), as in a single-tenant run.

The rate is the stricter of the two windows: 30,000/h = one request per 0.12 s (600/min would allow
one per 0.1 s). Hand-written because it is a dozen lines on the injected clock (tests never wait),
which no rate-limit library offers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from auditsync.model import Clock, Deadline

#: Seconds between requests that keep one account within 600/min and 30,000/h.
ONEPASSWORD_ACCOUNT_INTERVAL = max(60 / 600, 3600 / 30_000)
#: How often a paced stream asks again how many streams share the account.
SHARE_REFRESH = timedelta(minutes=1)

#: How many streams share the account now (this one included), read when the pacer asks.
ShareCount = Callable[[], int]


class Pacer:
    """Spaces requests ``interval`` x the current share apart (thread-safe; sleeps on the injected clock).

    ``share`` is asked at the first request and then every ``SHARE_REFRESH``; a failing ``share``
    keeps the last known count (at first: ``fallback``).
    """

    def __init__(
        self, clock: Clock, interval: float, share: ShareCount | None = None, *, fallback: int = 1
    ) -> None:
        self.clock = clock
        self.base_interval = interval
        self.share = share
        self.count = fallback
        self._asked: datetime | None = None
        self._next = clock.now()
        self._lock = threading.Lock()

    @property
    def interval(self) -> float:
        return self.base_interval * self.count

    def wait(self, deadline: Deadline) -> None:
        """Sleep until this request's turn, but never past the deadline (the request then fails on time)."""
        with self._lock:
            now = self.clock.now()
            self._refresh(now)
            turn = max(now, self._next)
            self._next = turn + timedelta(seconds=self.interval)
        delay = (turn - now).total_seconds()
        if delay > 0:
            self.clock.sleep(min(delay, deadline.remaining()))

    def _refresh(self, now: datetime) -> None:
        if self.share is None or (self._asked is not None and now - self._asked < SHARE_REFRESH):
            return
        self._asked = now
        try:
            self.count = max(1, self.share())
        except Exception:  # the store is unreachable: keep pacing to the last known share
            return
