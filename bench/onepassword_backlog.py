"""The 1Password backlog of a benchmark run, as a small value both processes can rebuild.

The simulator process loads these events into the 1Password simulator; the bare-SDK child rebuilds
the very same events (same seeds, same start) and shapes them into rows, so both measurements move
identical data.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.onepassword_data import EVENT_TYPES, make_events

STEP = timedelta(seconds=1)
ACCOUNT_UUID = "BENCHACCOUNT0000000000000A"


@dataclass(frozen=True)
class Backlog:
    """``total`` events split evenly over ``event_types``, one per second, the newest a minute old."""

    total: int
    event_types: tuple[str, ...] = EVENT_TYPES
    start: str = ""  # RFC 3339; set by ``Backlog.ending_now``
    seed: int = 42

    @classmethod
    def ending_now(cls, total: int, event_types: tuple[str, ...] = EVENT_TYPES, seed: int = 42) -> Backlog:
        longest = -(-total // len(event_types))
        start = datetime.now(UTC).replace(microsecond=0) - STEP * longest - timedelta(minutes=1)
        return cls(total, tuple(event_types), start.isoformat(), seed)

    def counts(self) -> dict[str, int]:
        share, extra = divmod(self.total, len(self.event_types))
        return {t: share + (1 if i < extra else 0) for i, t in enumerate(self.event_types)}

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """This type's events, identical on every call."""
        index = self.event_types.index(event_type)
        rng = random.Random(self.seed * 1000 + index)
        start = datetime.fromisoformat(self.start)
        return make_events(event_type, self.counts()[event_type], start, STEP, rng, account_uuid=ACCOUNT_UUID)

    def lookback(self) -> str:
        """An INITIAL_LOOKBACK that reaches the oldest event, with an hour to spare."""
        age = datetime.now(UTC) - datetime.fromisoformat(self.start)
        return f"{int(age.total_seconds() // 3600) + 2}h"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Backlog:
        doc = json.loads(text)
        return cls(int(doc["total"]), tuple(doc["event_types"]), str(doc["start"]), int(doc["seed"]))
