"""``auditsync backfill``: send a past range of one stream to the sink again.

For when data went missing in the workspace (a deleted table, a DCR that dropped columns, a new
workspace). The live checkpoint is never read or moved: the backfill keeps its own progress record
(``auditsync/backfill/<stream>``) in the checkpoint store and goes through the runner's page loop
(``auditsync.runner.drain``) with it: the record's lease, the run's deadline, a save after every page
the sink accepted and after every accepted request of a page sent in several. A backfill stopped by
the deadline (or a failed request) resumes where it stopped when the same command is run again; a
different range starts over. It re-sends what the vendor returns for the range, including events
already in the workspace.

The range is ``[since, until)``. Sources normally start from their checkpoint; here they start from
the range: 1Password from a reset cursor with ``start_time``/``end_time`` (the API bounds every
later page of that cursor by them), Keeper from a position whose watermark is ``since`` read up to
``until`` with no late-arrival lag. Events outside the range (Keeper's inclusive ends, its overlap)
are dropped by time before anything is sent.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from auditsync.checkpoints import claim, open_store, release
from auditsync.config import Settings
from auditsync.durations import parse_duration
from auditsync.errors import AuditSyncError, ConfigError
from auditsync.http import HttpClient
from auditsync.model import JSON, Clock, Deadline, Page, Stream
from auditsync.redaction import Redactor, install_log_redaction
from auditsync.runner import LEASE_SLACK, drain, outcome
from auditsync.secrets import CredentialFactory, Secrets, default_credential
from auditsync.sinks import open_sink
from auditsync.sources import SourceContext, enabled_streams
from auditsync.tables.rows import format_time, parse_time
from auditsync.token_expiry import refused_after_expiry

log = logging.getLogger(__name__)

RECORD_PREFIX = "auditsync/backfill/"


def parse_when(text: str, now: datetime) -> datetime:
    """``2026-11-01``, ``2026-11-01T08:00:00Z`` (UTC when no offset is given), or ``3d``/``12h`` ago."""
    value = text.strip()
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"'{text}' is not a time",
            hint="Write an ISO 8601 UTC time like 2026-11-01T08:00:00Z (or a date), or an age like 3d or 12h.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BackfillRange:
    stream: str
    since: datetime
    until: datetime

    @property
    def record_name(self) -> str:
        return RECORD_PREFIX + self.stream

    def as_json(self) -> JSON:
        return {"since": format_time(self.since), "until": format_time(self.until)}


def plan(
    settings: Settings, stream: str, since: datetime, until: datetime | None, now: datetime
) -> BackfillRange:
    """Validate the range against the settings and what the vendor serves; ConfigError says why not."""
    source = stream.split("/", 1)[0]
    known = [name for _, name in enabled_streams(settings)]
    if stream not in known:
        raise ConfigError(
            f"--stream {stream}: not an enabled stream",
            hint=f"Use one of {', '.join(known)} (SOURCES and ONEPASSWORD_EVENT_TYPES decide which are enabled).",
        )
    if until is None:
        until = now - settings.keeper.lag if source == "keeper" else now
    if until > now:
        raise ConfigError(
            f"--until {format_time(until)} is in the future",
            hint="A backfill re-sends the past; the live runs collect what comes next.",
        )
    if since >= until:
        raise ConfigError(
            f"--since {format_time(since)} is not before --until {format_time(until)}",
            hint="Give a range whose start is before its end.",
        )
    from auditsync.sources.onepassword import SERVED

    if source == "onepassword" and since < now - SERVED:
        raise ConfigError(
            f"--since {format_time(since)}: the 1Password Events API serves only the last 120 days "
            f"(from {format_time(now - SERVED)}); older events cannot be sent again",
            hint="Start the range within the last 120 days; older events exist only where they were "
            "ingested before (or in 1Password's own reports).",
        )
    return BackfillRange(stream, since, until)


@dataclass(frozen=True)
class BackfillReport:
    range: BackfillRange
    events: int
    pages: int
    done: bool
    resumed: bool


ProgressPrinter = Callable[[str], None]


def run_backfill(
    settings: Settings,
    backfill: BackfillRange,
    *,
    clock: Clock | None = None,
    credential_factory: CredentialFactory | None = None,
    progress: ProgressPrinter | None = None,
) -> BackfillReport:
    """Send the range's events, page by page, until done or the deadline (RUN_TIME_BUDGET) is near."""
    install_log_redaction()
    redactor = Redactor(settings.secret_values())
    return _run(
        settings, backfill, clock or Clock(), credential_factory, progress or (lambda _: None), redactor
    )


def _run(
    settings: Settings,
    backfill: BackfillRange,
    clock: Clock,
    credential_factory: CredentialFactory | None,
    say: ProgressPrinter,
    redactor: Redactor,
) -> BackfillReport:
    started = clock.now()
    deadline = Deadline.after(clock, settings.run_time_budget)
    owner = "backfill-" + uuid.uuid4().hex[:12]
    credential = functools.cache(credential_factory or default_credential)
    http = HttpClient(clock=clock, redactor=redactor)
    secrets = Secrets(settings.key_vault_url, credential, redactor, clock=clock, deadline=deadline)
    store = open_store(settings.store, credential, deadline)
    sink = open_sink(settings.sink, credential_factory=credential, secrets=secrets, http=http, clock=clock)
    source = backfill.stream.split("/", 1)[0]
    part = settings.source(source)
    context = SourceContext(part, secrets.token(source, part.token), http, clock, started, deadline)
    expires_on = secrets.token_expiry(source, part.token).expires_on
    try:
        inner = _bounded_stream(context, backfill)  # before the lease: a refused token leaves no lease behind
    except AuditSyncError as error:
        raise refused_after_expiry(error, source, expires_on, clock.now()) from None

    record = claim(store, backfill.record_name, owner, started, settings.run_time_budget + LEASE_SLACK)
    if record is None:
        raise AuditSyncError(
            f"another backfill of {backfill.stream} is running",
            hint="Wait for it to finish (or for its lease to expire after RUN_TIME_BUDGET plus 2 minutes).",
        )
    saved = record.position or {}
    resumed = saved.get("range") == backfill.as_json() and not saved.get("done") and bool(saved.get("source"))
    events_before = int(saved.get("events", 0)) if resumed else 0
    if not resumed:  # another range, or one that is done: start over
        record = replace(record, position=None, total_events=0, newest_event_time=None)
    say(
        f"{'resuming' if resumed else 'starting'} backfill of {backfill.stream} "
        f"from {format_time(backfill.since)} to {format_time(backfill.until)}"
        + (f" ({events_before} events sent before)" if resumed else "")
    )
    stream = _RangeStream(inner, backfill, events_before)

    def progress(page: Page, events: int) -> None:
        newest = f", up to {format_time(page.newest_event_time)}" if page.newest_event_time else ""
        say(f"  ... {events_before + events} events sent{newest}")

    drained = drain(stream, record, store, sink, deadline, clock, on_page=progress)
    finished = clock.now()
    report = drained.report(stream, int((finished - started).total_seconds() * 1000), finished, redactor)
    if drained.failure is not None:
        release(store, outcome(drained.checkpoint, report, finished))
        raise refused_after_expiry(drained.failure, source, expires_on, finished)
    done = not drained.stopped_with_more
    sent = events_before + drained.events
    final = dict(drained.checkpoint.position or {}, range=backfill.as_json(), events=sent, done=done)
    release(
        store,
        replace(
            outcome(drained.checkpoint, report, finished),
            position=final,
            last_status="ok" if done else "behind",
            last_message="backfill complete"
            if done
            else "stopped at the deadline; run the same command again",
        ),
    )
    return BackfillReport(backfill, sent, drained.pages, done, resumed)


class _RangeStream:
    """The source's stream as the page loop sees it during a backfill: only the range's events, and
    positions wrapped in the progress record's ``{"range", "source", "events", "done"}``."""

    def __init__(self, inner: Stream, backfill: BackfillRange, events_before: int) -> None:
        self.inner = inner
        self.backfill = backfill
        self.events_before = events_before
        # The source's own name: the rows are shaped as that stream's (the record has its own name).
        self.name = inner.name
        self.source = inner.source
        self.table = inner.table

    def pages(self, position: JSON | None, deadline: Deadline) -> Iterator[Page]:
        sent = self.events_before
        for page in self.inner.pages((position or {}).get("source"), deadline):
            kept_at = [i for i, event in enumerate(page.events) if _in_range(event, self.backfill)]
            yield Page(
                [page.events[i] for i in kept_at],
                self._record(page.position, sent + len(kept_at), done=not page.has_more),
                page.newest_event_time,
                page.counters,
                page.has_more,
                self._accepted_position(page, kept_at, sent),
            )
            sent += len(kept_at)

    def _record(self, source: JSON, events: int, *, done: bool) -> JSON:
        return {"range": self.backfill.as_json(), "source": source, "events": events, "done": done}

    def _accepted_position(self, page: Page, kept_at: list[int], sent: int) -> Callable[[int], JSON] | None:
        """The source's position for the first ``n`` events kept as accepted: those up to the n-th kept
        one (the events outside the range between them are not sent anyway)."""
        accepted_position = page.accepted_position
        if accepted_position is None:
            return None
        return lambda n: self._record(accepted_position(kept_at[n - 1] + 1), sent + n, done=False)


def _in_range(event: JSON, backfill: BackfillRange) -> bool:
    when = parse_time(event.get("timestamp"))
    return when is None or backfill.since <= when < backfill.until


def _bounded_stream(context: SourceContext[Any], backfill: BackfillRange) -> Stream:
    """The stream of ``backfill.stream``, whose first position is the range's start and which ends at its end."""
    source, event_type = backfill.stream.split("/", 1)
    if source == "onepassword":
        from auditsync.sources.onepassword import PAGE_LIMIT, OnePasswordStream, check_token_host, introspect

        class RangeStream(OnePasswordStream):
            def first_request(self) -> JSON:
                return {
                    "limit": PAGE_LIMIT,
                    "start_time": format_time(backfill.since),
                    "end_time": format_time(backfill.until),
                }

        check_token_host(context.token, context.settings.base_url)
        features = introspect(context, context.deadline)
        return RangeStream(context, event_type, granted=event_type in features)

    from auditsync.sources.keeper import KeeperStream
    from auditsync.sources.keeper_position import KeeperPosition, to_ms

    # The window ends at run_start - lag: with no lag and run_start = until, it ends at until.
    bounded = replace(context, settings=replace(context.settings, lag=timedelta(0)), run_start=backfill.until)
    start = to_ms(backfill.since)
    first, _ = KeeperPosition(watermark_ms=start, next_start_ms=start).dump()

    class KeeperRangeStream(KeeperStream):
        def pages(self, position: JSON | None, deadline: Deadline) -> Iterator[Page]:
            return super().pages(position or first, deadline)

    return KeeperRangeStream(bounded)
