"""Keeper's resumable position: watermark, in-flight window, and fingerprint multiset (no I/O here).

Keeper events carry no id, so "already delivered" is decided by a fingerprint of the whole event
(hash of its canonical JSON) with **multiset** semantics: two identical events in the same
millisecond are two events. A fingerprint is keyed by ``(event time in ms, 32-bit BLAKE2b of the
canonical JSON)``; each entry holds ``[prior, seen]``:

- ``prior``: copies delivered before the current read pass of the window (the overlap carried over
  from earlier windows, plus earlier passes of a restarted window);
- ``seen``: copies the current pass has read so far.

A copy is delivered when ``seen`` exceeds ``prior``, so after a pass exactly ``max(prior, seen)``
copies were delivered, whatever order the server used and however often a window is re-read.

The position must fit a checkpoint (at most fourteen Azure Table properties of 64 KiB as UTF-16, i.e.
32k characters each), so the fingerprints are stored packed (about 11 characters each) and bounded: the
carried overlap is capped (the overlap is shortened, never a loss), and the source checks each page
before delivering it (``fits_with``) and makes the window smaller (``shrink_window``) rather than
deliver a page whose fingerprints would not fit, so a mid-window position is exact and a stop resumes
page by page. Only a window that cannot shrink any
more (late events in the overlap beyond what fits) still falls back in ``dump`` to "re-read this
window, smaller" (counted as oversized_window_pages).
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from auditsync.errors import CheckpointError
from auditsync.sources.canonical import canonical_json

POSITION_VERSION = 2
#: Windows are sized for about this many new events: just under five full pages (1,000 events each), so
#: a window of a backlog is five requests of which only the last is not full (the page count, not the
#: event count, is what a drain waits for: 0.97 of the serial-fetch bound), 3 % more events than
#: predicted still fit in five, and the position saved after each page stays small (about 55,000
#: characters of fingerprints at the window's end). Bigger windows would save part of a request each.
TARGET_WINDOW_EVENTS = 4850
#: A window is stretched to the target end when that brings it to at most this many events at the
#: density it was sized for: a rest read in a window of its own costs at least one request, while
#: stretching costs one only for each 1,000 events past the room left in the window's last request.
#: Kept below what a pass may deliver (``keeper.MAX_PASS_EVENTS``) by more than the density's error.
STRETCH_EVENTS = 12_000
MIN_SPAN = timedelta(seconds=1)
MAX_SPAN = timedelta(days=1)
#: Fingerprints carried from one window to the next (the overlap). Beyond this the overlap is shortened
#: to its newest events (counted as overlap_shortened): less late-event margin, never a duplicate.
MAX_CARRIED_FINGERPRINTS = 1200
#: Packed fingerprints above this many characters do not go into a mid-window position (see module
#: doc): about 38,000 fingerprints, 840 KB as UTF-16, thirteen of the fourteen Table properties a
#: position may use (``checkpoints.codec.MAX_POSITION_PARTS``); the rest of the position is a few
#: hundred characters (a continuation token included). A window of up to ``keeper.MAX_PASS_EVENTS`` events
#: fits, with an overlap carried: a stream's first window covers a backlog of that size in one.
MAX_FINGERPRINT_CHARS = 420_000


def fingerprint(event: dict[str, Any], ts_ms: int | None) -> int:
    """The event's key: time in ms (high bits) and a 32-bit BLAKE2b of its canonical JSON (low bits).

    Two different events collide only if they share the millisecond *and* the 32-bit hash. Events
    whose time cannot be read (``ts_ms`` None) all have time 0: see ``complete_window``.
    """
    digest = hashlib.blake2b(canonical_json(event), digest_size=4).digest()
    return (max(ts_ms or 0, 0) << 32) | int.from_bytes(digest, "big")


def to_ms(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_ms(ms: int) -> str:
    """What we send as start_date/end_date: ISO-8601 UTC with milliseconds and ``Z``."""
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _span_ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


# -- packing ---------------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


#: Varints of the values nearly every entry has (time deltas under 16 s, copy counts), looked up rather
#: than encoded: a pack is a loop over tens of thousands of entries, saved after every page.
_SMALL_VARINTS = [_varint(value) for value in range(1 << 14)]


def pack(entries: dict[int, list[int]]) -> str:
    """Sorted by key: varint(time delta), 4-byte hash, varint(prior), varint(seen); then base64."""
    small, limit = _SMALL_VARINTS, len(_SMALL_VARINTS)
    parts: list[bytes] = []
    append = parts.append
    previous = 0
    for key in sorted(entries):
        prior, seen = entries[key]
        ts = key >> 32
        delta = ts - previous
        previous = ts
        append(small[delta] if delta < limit else _varint(delta))
        append((key & 0xFFFFFFFF).to_bytes(4, "big"))
        append(small[prior] if prior < limit else _varint(prior))
        append(small[seen] if seen < limit else _varint(seen))
    return base64.b64encode(b"".join(parts)).decode("ascii")


def _varint_bytes(value: int) -> int:
    return max(1, -(-value.bit_length() // 7))


def packed_chars_at_most(entries: int, earliest_ms: int, latest_ms: int, most_copies: int) -> int:
    """An upper bound on ``len(pack(...))`` for ``entries`` fingerprints between those times whose counts
    are at most ``most_copies``, without sorting or packing them.

    A varint of ``d`` takes at most ``1 + log2(d + 1) / 7`` bytes, which is concave in ``d``: the time
    deltas after the first, summing to at most ``latest - earliest``, take the most when they are equal.
    """
    if entries <= 0:
        return 0
    rest = entries - 1
    deltas = rest * (1 + math.log2((latest_ms - earliest_ms) / rest + 1) / 7) if rest else 0.0
    size = _varint_bytes(latest_ms) + math.ceil(deltas) + entries * (4 + 2 * _varint_bytes(most_copies))
    return 4 * -(-size // 3)


def unpack(text: str) -> dict[int, list[int]]:
    data = base64.b64decode(text.encode("ascii"), validate=True)
    entries: dict[int, list[int]] = {}
    pos, ts = 0, 0

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    while pos < len(data):
        ts += varint()
        if pos + 4 > len(data):
            raise ValueError("truncated fingerprint")
        low = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        entries[(ts << 32) | low] = [varint(), varint()]
    return entries


@dataclass
class Window:
    """The window being read: ``[start_ms, end_ms]``, frozen when it was opened."""

    start_ms: int
    end_ms: int
    token: str | None = None
    delivered: int = 0
    #: When the current read pass asked for its first page: events visible by then are in the pass.
    pass_started_ms: int = 0


@dataclass
class KeeperPosition:
    """Everything needed to resume exactly: see the module docstring."""

    watermark_ms: int
    next_start_ms: int
    #: A stream's first window spans its whole backlog (up to MAX_SPAN): nothing is known of its
    #: density yet, and a window that turns out too big is given up after its first page (for a server
    #: that pages in time order) and sized from it, one request; a small first window costs a request
    #: for nothing when the look-back's start is empty, and more windows while the span grows.
    span_ms: int = _span_ms(MAX_SPAN)
    window: Window | None = None
    fingerprints: dict[int, list[int]] = field(default_factory=dict)

    # -- persistence ------------------------------------------------------------------------------
    def dump(self) -> tuple[dict[str, Any], bool]:
        """The position as JSON, and whether it is exact.

        When the in-flight fingerprints are too big for a checkpoint, the position says "re-read from the
        window's start with half the span", keeping as many delivered fingerprints (as ``prior``) as fit:
        nothing is lost; if the run stops before the window completes, the events whose fingerprints
        did not fit are sent again.
        """
        packed = pack(self.fingerprints)
        window = self.window
        if window is None or len(packed) <= MAX_FINGERPRINT_CHARS:
            return self._json(window, packed, self.span_ms), True
        delivered = sorted((key, max(prior, seen)) for key, (prior, seen) in self.fingerprints.items())
        keep = {key: [count, 0] for key, count in delivered if count > 0}
        while len(packed := pack(keep)) > MAX_FINGERPRINT_CHARS:
            ratio = MAX_FINGERPRINT_CHARS / len(packed)
            keep = dict(list(keep.items())[: int(len(keep) * ratio * 0.97)])
        fallback_span = max(_span_ms(MIN_SPAN), (window.end_ms - self.watermark_ms) // 2)
        return self._json(None, packed, fallback_span), False

    def _json(self, window: Window | None, packed: str, span_ms: int) -> dict[str, Any]:
        return {
            "v": POSITION_VERSION,
            "watermark": iso_ms(self.watermark_ms),
            "next_start": iso_ms(self.next_start_ms),
            "span_ms": span_ms,
            "window": None
            if window is None
            else {
                "start": iso_ms(window.start_ms),
                "end": iso_ms(window.end_ms),
                "token": window.token,
                "delivered": window.delivered,
                "pass_started": iso_ms(window.pass_started_ms),
            },
            "fingerprints": packed,
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
                    int(w["delivered"]),
                    _ms(w["pass_started"]),
                )
            return cls(
                _ms(data["watermark"]),
                _ms(data["next_start"]),
                int(data["span_ms"]),
                window,
                unpack(str(data["fingerprints"])),
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise CheckpointError(
                f"the stored Keeper position cannot be read ({type(exc).__name__}: {exc})",
                hint="Delete the keeper/events checkpoint to start again from INITIAL_LOOKBACK "
                "(events already sent in that period are then sent again).",
            ) from None

    # -- windows ----------------------------------------------------------------------------------
    def open_window(self, target_end_ms: int) -> Window | None:
        """Open the next window ``[next_start, min(target_end, watermark + span)]`` (to the target end
        when that brings it to at most STRETCH_EVENTS events at the span's density), or None when the
        target end is not past the watermark (nothing new to read yet)."""
        if target_end_ms <= self.watermark_ms:
            return None
        end = min(target_end_ms, self.watermark_ms + self.span_ms)
        stretch_ms = self.span_ms * (STRETCH_EVENTS - TARGET_WINDOW_EVENTS) // TARGET_WINDOW_EVENTS
        if target_end_ms - end <= stretch_ms:
            # The rest is read with this window rather than in a window (and requests) of its own.
            end = target_end_ms
        self.window = Window(self.next_start_ms, end)
        return self.window

    def start_pass(self, now_ms: int) -> None:
        assert self.window is not None
        self.window.pass_started_ms = now_ms

    def offer(self, key: int) -> bool:
        """Count one copy read in the current pass; True when it must be delivered (not a known copy)."""
        entry = self.fingerprints.get(key)
        if entry is None:
            self.fingerprints[key] = [0, 1]
            return True
        entry[1] += 1
        return entry[1] > entry[0]

    def restart_pass(self) -> None:
        """Read the window again from its start (its token was refused); what was delivered becomes prior.

        The window's end moves halfway back (never to or behind the watermark): a server whose tokens do
        not last still lets ever smaller windows complete. The fingerprints stay valid for any window;
        those past the new end are kept for the windows that cover them.
        """
        assert self.window is not None
        window = self.window
        for entry in self.fingerprints.values():
            entry[0] = max(entry[0], entry[1])
            entry[1] = 0
        window.token = None
        window.end_ms = max(self.watermark_ms + 1, window.start_ms + (window.end_ms - window.start_ms) // 2)

    def shrink_window(self, earliest_end_ms: int | None = None) -> bool:
        """Make the part of the window past the watermark smaller before anything of the current pass
        was delivered (its fingerprints would not fit a checkpoint): to half, or to ``earliest_end_ms``
        when that is earlier (the time of the TARGET_WINDOW_EVENTS-th earliest new event the pass read:
        for a server that pages in time order, the window then holds what one window should). False
        when the window is down to 1 ms past the watermark.

        What earlier passes delivered becomes ``prior``, as for a refused token; the pass starts over.
        """
        assert self.window is not None
        window = self.window
        end = self.watermark_ms + (window.end_ms - self.watermark_ms) // 2
        if earliest_end_ms is not None and self.watermark_ms < earliest_end_ms < end:
            end = earliest_end_ms
        if end <= self.watermark_ms:
            return False
        for entry in self.fingerprints.values():
            entry[0] = max(entry[0], entry[1])
            entry[1] = 0
        window.token = None
        window.end_ms = end
        return True

    def fits_with(self, keys: list[int]) -> bool:
        """True when the fingerprints would still fit a mid-window position once ``keys`` (a page's
        events) are offered: checked before a page is delivered, without changing anything. Packing is
        needed only when a bound on the packed size (``packed_chars_at_most``) says it may not fit."""
        added = {key for key in keys if key not in self.fingerprints}
        if not self.fingerprints and not added:
            return True
        groups = [group for group in (self.fingerprints.keys(), added) if group]
        copies = max((max(prior, seen) for prior, seen in self.fingerprints.values()), default=0) + len(keys)
        bound = packed_chars_at_most(
            len(self.fingerprints) + len(added),
            min(min(group) for group in groups) >> 32,
            max(max(group) for group in groups) >> 32,
            copies,
        )
        if bound <= MAX_FINGERPRINT_CHARS:
            return True
        trial = dict(self.fingerprints)
        for key in keys:
            prior, seen = trial.get(key, (0, 0))
            trial[key] = [prior, seen + 1]
        return len(pack(trial)) <= MAX_FINGERPRINT_CHARS

    def mark_accepted(self, keys: list[int]) -> None:
        """Record copies the sink accepted from a page whose later events it did not: re-reading that
        page from its token then delivers only the copies after them (see ``offer``)."""
        taken: dict[int, int] = {}
        for key in keys:
            taken[key] = taken.get(key, 0) + 1
        for key, count in taken.items():
            entry = self.fingerprints.setdefault(key, [0, 0])
            entry[0] = max(entry[0], entry[1]) + count

    def complete_window(
        self, overlap_ms: int, lag_ms: int, max_carried: int = MAX_CARRIED_FINGERPRINTS
    ) -> bool:
        """The window was read to its end: advance the watermark, carry the overlap's fingerprints, size
        the next window from this one's event rate. Returns True when the overlap had to be shortened.

        The overlap exists for events that become visible late. A window whose last pass began at least
        ``lag + overlap`` after its end (a backlog) already saw every event that is visible within that
        margin, so the next window need not re-read anything before this one's end.
        """
        assert self.window is not None
        window = self.window
        end = window.end_ms
        overlap = max(0, min(overlap_ms, end + lag_ms + overlap_ms - window.pass_started_ms))
        # Never before this window's start: fingerprints of earlier events may be gone (a shortened overlap).
        floor = max(end - overlap, window.start_ms)
        # An event without a readable time is kept while windows still return it: once a window's pass
        # did not, its server-side time lies before that window, which later windows never reach.
        carried = sorted(
            (key, max(prior, seen))
            for key, (prior, seen) in self.fingerprints.items()
            if (key >> 32) >= floor or ((key >> 32) == 0 and seen > 0)
        )
        carried = [(key, count) for key, count in carried if count > 0]
        shortened = False
        # Only the overlap itself may be shortened, never past this window's end: fingerprints beyond it
        # (delivered by a longer pass before a restart shrank the window) are always kept.
        overlap_times = [key >> 32 for key, _ in carried if 0 < key >> 32 <= end]
        if len(overlap_times) > max_carried:
            floor = min(end, max(floor, overlap_times[len(overlap_times) - max_carried]))
            carried = [(key, count) for key, count in carried if (key >> 32) >= floor or key >> 32 == 0]
            shortened = True
        progress_ms = end - self.watermark_ms
        # The density is taken from the window's earliest new event on (down to half the window): a
        # quiet start, such as the look-back's first hour before a tenant had events, would otherwise
        # make the next window too big by as much.
        new_times = [key >> 32 for key in self.fingerprints if self.watermark_ms < key >> 32 <= end]
        busy_ms = max(end - min(new_times, default=self.watermark_ms), progress_ms // 2)
        self.watermark_ms = end
        self.next_start_ms = floor
        self.fingerprints = {key: [count, 0] for key, count in carried}
        if progress_ms > 0:
            ideal = busy_ms * TARGET_WINDOW_EVENTS // max(window.delivered, 1)
            grown = min(ideal, max(self.span_ms, progress_ms) * 4)
            self.span_ms = int(min(max(grown, _span_ms(MIN_SPAN)), _span_ms(MAX_SPAN)))
        self.window = None
        return shortened


def _ms(text: Any) -> int:
    if not isinstance(text, str):
        raise ValueError("time is not a string")
    return to_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
