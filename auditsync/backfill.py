"""``auditsync backfill``: send a past range of one stream to the sink again.

For when data went missing in the workspace (a deleted table, a DCR that dropped columns, a new
workspace). The live checkpoint is never read or moved: the backfill keeps its own progress record
(``auditsync/backfill/<stream>``) in the checkpoint store, saved after every page the sink accepted,
so a backfill stopped by the deadline resumes where it stopped when the same command is run again.
It re-sends what the vendor returns for the range, including events already in the workspace.

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
from auditsync.secrets import CredentialFactory, Secrets, default_credential
from auditsync.sinks import open_sink
from auditsync.sources import SourceContext, enabled_streams
from auditsync.tables import TABLES
from auditsync.tables.rows import format_time, parse_time, shape_rows

log = logging.getLogger(__name__)

RECORD_PREFIX = "auditsync/backfill/"
#: A lease on the progress record outlives the budget by this much (as the runner's does).
LEASE_SLACK = timedelta(minutes=2)
#: 1Password's Events API serves 120 days; keep a margin so a range at the edge is not refused in flight.
ONEPASSWORD_SERVED = timedelta(days=120) - timedelta(minutes=5)


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
    if source == "onepassword" and since < now - ONEPASSWORD_SERVED:
        raise ConfigError(
            f"--since {format_time(since)}: the 1Password Events API serves only the last 120 days "
            f"(from {format_time(now - ONEPASSWORD_SERVED)}); older events cannot be sent again",
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

    record = claim(store, backfill.record_name, owner, started, settings.run_time_budget + LEASE_SLACK)
    if record is None:
        raise AuditSyncError(
            f"another backfill of {backfill.stream} is running",
            hint="Wait for it to finish (or for its lease to expire after RUN_TIME_BUDGET plus 2 minutes).",
        )
    saved = record.position or {}
    resumed = saved.get("range") == backfill.as_json() and not saved.get("done") and bool(saved.get("source"))
    position = saved.get("source") if resumed else None
    events_before = int(saved.get("events", 0)) if resumed else 0
    say(
        f"{'resuming' if resumed else 'starting'} backfill of {backfill.stream} "
        f"from {format_time(backfill.since)} to {format_time(backfill.until)}"
        + (f" ({events_before} events sent before)" if resumed else "")
    )
    stream = _bounded_stream(context, backfill)
    table = TABLES[stream.table]
    event_type = backfill.stream.split("/", 1)[1]
    events = pages = 0
    more = False
    try:
        for page in stream.pages(position, deadline):
            kept = [e for e in page.events if _in_range(e, backfill)]
            if kept:
                rows, _ = shape_rows(table, kept, now=clock.now(), event_type=event_type)
                sink.send(stream.table, rows, deadline)
                events += len(kept)
                pages += 1
            more = page.has_more
            record = store.save(
                replace(
                    record,
                    position={
                        "range": backfill.as_json(),
                        "source": page.position,
                        "events": events_before + events,
                        "done": False,
                    },
                    total_events=events_before + events,
                    last_run=clock.now(),
                )
            )
            newest = f", up to {format_time(page.newest_event_time)}" if page.newest_event_time else ""
            say(f"  ... {events_before + events} events sent{newest}")
            if deadline.near():
                break
    except AuditSyncError as error:
        release(
            store,
            replace(
                record,
                last_status="error",
                last_error_kind=error.kind,
                last_message=str(error),
                last_hint=error.hint,
            ),
        )
        raise
    done = not more
    final = dict(record.position or {}, done=done, range=backfill.as_json(), events=events_before + events)
    release(
        store,
        replace(
            record,
            position=final,
            last_status="ok" if done else "behind",
            last_error_kind="",
            last_message="backfill complete"
            if done
            else "stopped at the deadline; run the same command again",
            last_run=clock.now(),
        ),
    )
    return BackfillReport(backfill, events_before + events, pages, done, resumed)


def _in_range(event: JSON, backfill: BackfillRange) -> bool:
    when = parse_time(event.get("timestamp"))
    return when is None or backfill.since <= when < backfill.until


def _bounded_stream(context: SourceContext[Any], backfill: BackfillRange) -> Stream:
    """The stream of ``backfill.stream``, whose first position is the range's start and which ends at its end."""
    source, event_type = backfill.stream.split("/", 1)
    if source == "onepassword":
        from auditsync.sources.onepassword import PAGE_LIMIT, OnePasswordStream, introspect

        class RangeStream(OnePasswordStream):
            def first_request(self) -> JSON:
                return {
                    "limit": PAGE_LIMIT,
                    "start_time": format_time(backfill.since),
                    "end_time": format_time(backfill.until),
                }

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
