"""Values passed between the parts of a run, and the small protocols the runner depends on.

Everything here is a frozen dataclass or a Protocol, so a test can build one by hand and a fake needs
no inheritance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

JSON = dict[str, Any]


def utcnow() -> datetime:
    """The wall clock, timezone-aware. Everything that needs time takes a Clock instead of calling this."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Clock:
    """Injected time: ``now`` for timestamps and deadlines, ``sleep`` for backoff.

    Tests pass a fake so they never wait in real time.
    """

    now: Callable[[], datetime] = utcnow
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Deadline:
    """The moment a run must stop by itself (checkpoint saved) so the host never kills it mid-page."""

    clock: Clock
    at: datetime

    @classmethod
    def after(cls, clock: Clock, budget: timedelta) -> Deadline:
        return cls(clock, clock.now() + budget)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, (self.at - self.clock.now()).total_seconds())

    def near(self, margin: float = 5.0) -> bool:
        """True when less than ``margin`` seconds are left: finish the current page, then stop."""
        return self.remaining() <= margin


@dataclass(frozen=True)
class Checkpoint:
    """One stream's durable state.

    ``position`` belongs to the source (1Password cursor; Keeper watermark, window, token, fingerprints)
    and must be JSON-serialisable. ``etag`` is the store's concurrency token for compare-and-swap; it is
    not part of the data. ``lease_owner``/``lease_until`` keep two runners off the same stream.
    """

    stream: str
    position: JSON | None = None
    last_success: datetime | None = None
    newest_event_time: datetime | None = None
    total_events: int = 0
    last_status: str = ""
    last_error_kind: str = ""
    last_message: str = ""
    #: What the operator should do about ``last_message`` (the error's hint), shown by ``status``.
    last_hint: str = ""
    last_run: datetime | None = None
    #: When the stream's API token expires, as last known (None: unknown), shown by ``status``.
    token_expires_on: datetime | None = None
    lease_owner: str = ""
    lease_until: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of raw vendor events plus the source position to save once the sink accepted them.

    ``counters`` carries per-page facts the health row reports (e.g. ``unparsed_timestamps``).
    ``newest_event_time`` is the newest event time seen on this page (None if none parsed).
    ``has_more`` says the source knows there is more after this page; when the run stops after such a
    page (deadline), the stream reports ``behind``. A page may have no events: its position is still
    saved (a cursor or watermark that moved over an empty window).

    ``accepted_position(n)``, when the source provides it, is the position to save once the sink
    accepted the first ``n`` events of this page (0 < n < len(events)) but not the rest: resuming from it
    re-delivers only the events after the n-th. The runner saves it after every accepted request of a
    page that takes several, so a failed later request or a crash re-sends at most one request's rows.
    """

    events: list[JSON]
    position: JSON
    newest_event_time: datetime | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    has_more: bool = False
    accepted_position: Callable[[int], JSON] | None = field(default=None, compare=False, repr=False)


class Stream(Protocol):
    """One (source, event type): its own checkpoint, heartbeat and failure domain."""

    @property
    def name(self) -> str:
        """``source/eventtype``, e.g. ``onepassword/auditevents``."""
        ...

    @property
    def source(self) -> str: ...

    @property
    def table(self) -> str:
        """Destination table name (a key of ``auditsync.tables.TABLES``)."""
        ...

    def pages(self, position: JSON | None, deadline: Deadline) -> Iterator[Page]:
        """Yield pages after ``position`` (None on the first run) until caught up or the deadline is near.

        The consumer takes each page, sends and saves it before it asks for the next; a source keeps its
        next request under way meanwhile (``auditsync.sources.paging.ReadAhead``). Closing the generator
        stops the source's requests.
        """
        ...


@dataclass(frozen=True)
class SendResult:
    """What a sink did with a batch of rows: how many it accepted and per-row adjustments it made."""

    rows: int
    counters: Mapping[str, int] = field(default_factory=dict)


#: Called by a sink after each request it had accepted, with the number of leading rows accepted so far.
AcceptedCallback = Callable[[int], None]


class Sink(Protocol):
    """Where rows go. ``send`` returns only when every row was accepted, else raises SinkError/AuthError.

    Every request ``send`` makes, with its retries and waits, ends by ``deadline`` (plus at most one
    request's connect timeout); without one the sink applies its own default bound.
    Rows go out in order, one request after another; after each accepted request that is not the last,
    a sink calls ``on_accepted`` with how many leading rows are now stored, so the runner can save that
    progress before the next request (a failed later request then never re-sends an accepted one).
    """

    name: str

    def send(
        self,
        table: str,
        rows: list[JSON],
        deadline: Deadline | None = None,
        on_accepted: AcceptedCallback | None = None,
    ) -> SendResult: ...

    def probe(self) -> str:
        """A cheap check for ``auditsync check``; returns a one-line description or raises."""
        ...


class CheckpointStore(Protocol):
    """Durable per-stream state with compare-and-swap saves."""

    def load(self, stream: str) -> Checkpoint:
        """The stored checkpoint, or an empty one (``etag=None``) if the stream never ran."""
        ...

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        """Store ``checkpoint`` if its etag still matches (None: must not exist yet); return it with the new etag.

        Raises CheckpointConflict when somebody saved in between.
        """
        ...

    def save_all(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        """Save several checkpoints, each compare-and-swap, all of them or none: one stale etag raises
        CheckpointConflict and nothing is saved. The runner claims and releases its streams' leases so."""
        ...

    def delete(self, checkpoint: Checkpoint) -> None:
        """Remove the record if its etag still matches (CheckpointConflict otherwise)."""
        ...

    def list(self, prefix: str = "") -> list[Checkpoint]:
        """Every stored checkpoint whose stream name starts with ``prefix``, sorted by stream name."""
        ...


STATUS_OK = "ok"
STATUS_IDLE = "idle"
STATUS_BEHIND = "behind"
STATUS_ERROR = "error"
STATUS_SKIPPED = "skipped"


@dataclass(frozen=True)
class StreamReport:
    """The outcome of one stream in one run: the raw material of its health rows and the CLI summary."""

    source: str
    stream: str
    status: str
    events: int = 0
    pages: int = 0
    duration_ms: int = 0
    newest_event_time: datetime | None = None
    lag_seconds: int | None = None
    error_kind: str = ""
    message: str = ""
    hint: str = ""
    counters: Mapping[str, int] = field(default_factory=dict)
    #: When the stream's API token expires (None: unknown or the token was not read).
    token_expires_on: datetime | None = None
