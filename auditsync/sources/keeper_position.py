"""Keeper's resumable position: watermark, in-flight window, and fingerprint multiset (no I/O here).

Keeper events carry no id, so "already delivered" is decided by a fingerprint of the whole event
(hash of its canonical JSON) with **multiset** semantics: two identical events in the same
millisecond are two events. Each fingerprint entry is ``[prior, seen, ts_ms]``:

- ``prior``: how many copies were delivered before the current read pass of the window
  (the overlap carried over from earlier windows, plus earlier passes of a restarted window);
- ``seen``: how many copies the current pass has read so far;
- ``ts_ms``: the event time, to forget fingerprints once they fall out of the overlap.

A copy is delivered when ``seen`` exceeds ``prior``, so after a pass exactly ``max(prior, seen)``
copies were delivered, whatever the order the server returned them in and however often a window is
re-read. The state is plain JSON so it can be the checkpoint's ``position`` as is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from auditsync.errors import CheckpointError

POSITION_VERSION = 1
#: Windows are sized to hold about this many new events, so one window finishes well within a run and
#: its in-flight fingerprints (kept in the checkpoint) stay small.
TARGET_WINDOW_EVENTS = 5000
INITIAL_SPAN = timedelta(hours=1)
MIN_SPAN = timedelta(minutes=1)
MAX_SPAN = timedelta(days=1)
#: Fingerprints carried from one window to the next (the overlap). Beyond this the oldest are
#: forgotten: at worst a duplicate inside the overlap, never a loss (counted as fingerprints_evicted).
MAX_CARRIED_FINGERPRINTS = 20_000


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(event: dict[str, Any]) -> str:
    """64-bit BLAKE2b of the event's canonical JSON (sorted keys, no whitespace), as 16 hex digits.

    64 bits: a collision inside one window's few thousand events has odds below 1 in 10^12.
    """
    return hashlib.blake2b(_CANONICAL.encode(event).encode("utf-8"), digest_size=8).hexdigest()


def to_ms(value: datetime) -> int:
    return (
        int(value.timestamp() * 1000) if value.tzinfo else int(value.replace(tzinfo=UTC).timestamp() * 1000)
    )


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_ms(ms: int) -> str:
    """What we send as start_date/end_date: ISO-8601 UTC with milliseconds and ``Z``."""
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Window:
    """The window being read: ``[start_ms, end_ms]``, frozen when it was opened."""

    start_ms: int
    end_ms: int
    token: str | None = None
    restarts: int = 0
    delivered: int = 0


@dataclass
class KeeperPosition:
    """Everything needed to resume exactly: see the module docstring."""

    watermark_ms: int
    span_ms: int = int(INITIAL_SPAN.total_seconds() * 1000)
    window: Window | None = None
    fingerprints: dict[str, list[int]] = field(default_factory=dict)

    # -- persistence ------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        window = None
        if self.window is not None:
            window = {
                "start": iso_ms(self.window.start_ms),
                "end": iso_ms(self.window.end_ms),
                "token": self.window.token,
                "restarts": self.window.restarts,
                "delivered": self.window.delivered,
            }
        return {
            "v": POSITION_VERSION,
            "watermark": iso_ms(self.watermark_ms),
            "span_s": self.span_ms / 1000,
            "window": window,
            "fingerprints": {fp: list(entry) for fp, entry in self.fingerprints.items()},
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> KeeperPosition:
        """Read a stored position; a damaged one is a CheckpointError that says how to recover."""
        try:
            if data.get("v") != POSITION_VERSION:
                raise ValueError(f"unknown position version {data.get('v')!r}")
            window = None
            if data.get("window"):
                w = data["window"]
                token = w.get("token")
                if token is not None and not isinstance(token, str):
                    raise ValueError("token is not a string")
                window = Window(
                    _ms(w["start"]),
                    _ms(w["end"]),
                    token,
                    int(w.get("restarts", 0)),
                    int(w.get("delivered", 0)),
                )
            fingerprints = {}
            for fp, entry in dict(data.get("fingerprints") or {}).items():
                prior, seen, ts = (int(x) for x in entry)
                fingerprints[str(fp)] = [prior, seen, ts]
            return cls(
                _ms(data["watermark"]), int(float(data.get("span_s", 3600)) * 1000), window, fingerprints
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"the stored Keeper position cannot be read ({exc})",
                hint="Delete the keeper/events checkpoint to start again from INITIAL_LOOKBACK "
                "(events already sent in that period are then sent again).",
            ) from None

    # -- windows ----------------------------------------------------------------------------------
    def open_window(self, target_end_ms: int, overlap_ms: int, *, first: bool = False) -> Window | None:
        """Open the next window ``[watermark - overlap, min(target_end, watermark + span)]``.

        Returns None when there is nothing to read yet (the target end is not past the watermark). The
        very first window starts at the watermark itself: nothing was delivered before it.
        """
        if target_end_ms <= self.watermark_ms:
            return None
        start = self.watermark_ms if first else self.watermark_ms - overlap_ms
        end = min(target_end_ms, self.watermark_ms + self.span_ms)
        self.window = Window(start, end)
        return self.window

    def offer(self, fp: str, ts_ms: int) -> bool:
        """Count one copy read in the current pass; True when it must be delivered (not a known copy)."""
        entry = self.fingerprints.get(fp)
        if entry is None:
            self.fingerprints[fp] = [0, 1, ts_ms]
            return True
        entry[1] += 1
        return entry[1] > entry[0]

    def restart_pass(self) -> None:
        """Read the window again from its start (its token was refused); what was delivered becomes prior."""
        assert self.window is not None
        for entry in self.fingerprints.values():
            entry[0] = max(entry[0], entry[1])
            entry[1] = 0
        self.window.token = None
        self.window.restarts += 1

    def complete_window(self, overlap_ms: int, max_carried: int = MAX_CARRIED_FINGERPRINTS) -> int:
        """The window was read to its end: advance the watermark, keep only the overlap's fingerprints,
        and size the next window from this one's event rate. Returns how many fingerprints were evicted
        by the size bound."""
        assert self.window is not None
        window = self.window
        progress_ms = window.end_ms - self.watermark_ms
        self.watermark_ms = window.end_ms
        floor = self.watermark_ms - overlap_ms
        carried = [
            (fp, [max(prior, seen), 0, ts])
            for fp, (prior, seen, ts) in self.fingerprints.items()
            if ts >= floor and max(prior, seen) > 0
        ]
        evicted = 0
        if len(carried) > max_carried:
            carried.sort(key=lambda item: item[1][2])
            evicted = len(carried) - max_carried
            carried = carried[evicted:]
        self.fingerprints = dict(carried)
        if progress_ms > 0:
            ideal = progress_ms * TARGET_WINDOW_EVENTS // max(window.delivered, 1)
            grown = min(ideal, max(self.span_ms, progress_ms) * 4)
            self.span_ms = int(min(max(grown, _span_ms(MIN_SPAN)), _span_ms(MAX_SPAN)))
        self.window = None
        return evicted


def _span_ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _ms(text: Any) -> int:
    if not isinstance(text, str):
        raise ValueError("time is not a string")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return to_ms(parsed)
