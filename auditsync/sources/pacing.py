"""A vendor account's request budget, shared by the streams that use its token.

1Password allows 600 requests per minute and 30,000 per hour per account (reference:
onepassword-events-api.md). With many tenants, a tenant's 1Password streams are worked by different
queue workers, possibly on different instances, and nothing is shared between them but the account's
budget. The scheme needs no coordination: each stream holds a fixed 1/N of the budget (N = the
tenant's 1Password streams) and paces its own requests to it. The lease guarantees one runner per
stream, so the account never sees more than N x 1/N of its budget, whichever instances run them.

The rate is the stricter of the two windows: 30,000/h = one request per 0.12 s (600/min would allow
one per 0.1 s). Hand-written because it is a dozen lines on the injected clock (tests never wait),
which no rate-limit library offers.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from auditsync.model import Clock, Deadline

#: Seconds between requests that keep one account within 600/min and 30,000/h.
ONEPASSWORD_ACCOUNT_INTERVAL = max(60 / 600, 3600 / 30_000)


class Pacer:
    """Spaces requests at least ``interval`` seconds apart (thread-safe; sleeps on the injected clock)."""

    def __init__(self, clock: Clock, interval: float) -> None:
        self.clock = clock
        self.interval = interval
        self._next = clock.now()
        self._lock = threading.Lock()

    def wait(self, deadline: Deadline) -> None:
        """Sleep until this request's turn, but never past the deadline (the request then fails on time)."""
        with self._lock:
            now = self.clock.now()
            turn = max(now, self._next)
            self._next = turn + timedelta(seconds=self.interval)
        delay = (turn - now).total_seconds()
        if delay > 0:
            self.clock.sleep(min(delay, deadline.remaining()))
