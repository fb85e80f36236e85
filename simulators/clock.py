"""A settable clock for simulators, tests, the demo and benchmarks: time moves only when told to.

``sleep`` advances the clock instead of waiting and records how long was asked for, so retry and
backoff paths run instantly and a test can assert on the waits.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """``now()``/``sleep()`` with the shape of ``auditsync.model.Clock``; thread-safe."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += timedelta(seconds=max(0.0, seconds))

    def advance(self, delta: timedelta | float) -> datetime:
        """Move time forward by ``delta`` (seconds or a timedelta) without recording a sleep."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware datetime")
        with self._lock:
            self._now = when

    @property
    def slept(self) -> float:
        """Total seconds asked for through ``sleep``."""
        with self._lock:
            return sum(self.sleeps)
