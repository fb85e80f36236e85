"""One collection cycle: every enabled stream, concurrently, under one deadline.

This is the only place that orders send-then-save: a page's position is saved only after the sink
accepted every row of it, so the checkpoint never moves past data Log Analytics does not have. A
crash between the two re-delivers at most that one page of that one stream (at-least-once).

Streams fail alone: each gets its own checkpoint, lease, heartbeat and error. Health rows are sent
for every stream every run (also when nothing was new, also on failure, also when the checkpoint
store cannot be opened); when the sink itself is the problem, the outcome still reaches the logs at
ERROR level.

One deadline bounds the run: vendor calls and every sink request (with its retries and waits) end by
it; the heartbeat gets what is left, but at least ``HEARTBEAT_GRACE``, so a run ends within its budget
plus that grace and one checkpoint operation's bound (docs/architecture.md, "Time bounds", gives the measured figures).
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from auditsync.checkpoints import claim, held_by_other, open_store, release
from auditsync.config import Settings
from auditsync.errors import AuditSyncError, CheckpointConflict, CheckpointError
from auditsync.heartbeat import heartbeat_batches
from auditsync.http import HttpClient
from auditsync.log_context import ContextThreadPool
from auditsync.model import (
    JSON,
    STATUS_BEHIND,
    STATUS_ERROR,
    STATUS_IDLE,
    STATUS_OK,
    STATUS_SKIPPED,
    Checkpoint,
    CheckpointStore,
    Clock,
    Deadline,
    Page,
    Sink,
    Stream,
    StreamReport,
)
from auditsync.outcomes import record_failed_streams
from auditsync.redaction import Redactor, install_log_redaction, redact
from auditsync.secrets import CredentialFactory, Secrets, default_credential
from auditsync.sinks import open_sink
from auditsync.sources import SourceContext, enabled_streams, source_module
from auditsync.tables import TABLES
from auditsync.tables.rows import shape_rows
from auditsync.token_expiry import refused_after_expiry

log = logging.getLogger(__name__)

#: A lease outlives the run's budget by this much, so a crashed runner's streams free themselves.
LEASE_SLACK = timedelta(minutes=2)
#: The heartbeat may send this long past the run's deadline (the streams may have used all of it).
HEARTBEAT_GRACE = timedelta(seconds=10)

ProgressCallback = Callable[[str, int], None]
#: Marks the log record of each stream's outcome (the CLI prints its summary instead of them).
OUTCOME = "outcome"


@dataclass(frozen=True)
class CycleReport:
    """Everything one run did: a StreamReport per stream, and whether the heartbeat reached the sink."""

    run_id: str
    started: datetime
    finished: datetime
    reports: list[StreamReport]
    heartbeat_error: str = ""

    @property
    def failed(self) -> bool:
        return any(r.status == STATUS_ERROR for r in self.reports) or bool(self.heartbeat_error)


@dataclass
class _Run:
    """The shared parts of one run."""

    settings: Settings
    clock: Clock
    deadline: Deadline
    run_id: str
    redactor: Redactor
    http: HttpClient
    secrets: Secrets
    store: CheckpointStore
    sink: Sink
    progress: ProgressCallback | None
    #: The checkpoints as read once at the start of the run (None when that read failed).
    listed: dict[str, Checkpoint] | None = None
    #: Streams whose lease the run claimed for all of them at once (``_claim_all``).
    claimed: dict[str, Checkpoint] = field(default_factory=dict)
    #: Outcomes waiting for the release of all the streams at once (``_release_all``), when claimed so.
    closing: list[tuple[Checkpoint, StreamReport]] = field(default_factory=list)
    closing_lock: threading.Lock = field(default_factory=threading.Lock)
    released_together: frozenset[str] = frozenset()
    #: When each source's token expires (None: unknown), once its token was read.
    token_expiry: dict[str, datetime | None] = field(default_factory=dict)
    #: The run's threads: one per source, one per stream.
    pool: ContextThreadPool | None = None


#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). A run is a
#: dozen threads that mostly wait on the network; a thread whose answer has arrived waits up to the
#: interval behind one that decodes, shapes or compresses, on every read. At 1 ms the median gap
#: between two Keeper requests fell from 18 to 11 ms (docs/benchmarks.md).
GIL_SWITCH_INTERVAL = 0.001


def hand_over_the_gil_sooner() -> None:
    """Set the interpreter's switch interval to GIL_SWITCH_INTERVAL (never longer than it was).

    Process-wide, like the log redaction: the process is this app's (the Functions worker, the CLI).
    """
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)


def run_cycle(
    settings: Settings,
    *,
    clock: Clock | None = None,
    credential_factory: CredentialFactory | None = None,
    sink: Sink | None = None,
    store: CheckpointStore | None = None,
    http: HttpClient | None = None,
    redactor: Redactor | None = None,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
    tenant: str = "",
    checkpoints: Mapping[str, Checkpoint] | None = None,
) -> CycleReport:
    """Run every enabled stream once. Never raises for a stream's failure: read the report.

    ``tenant`` names the registry tenant these settings belong to (the queue worker sets it); it goes
    into every health row's ``Tenant`` column and is empty for a single-tenant deployment.
    ``checkpoints`` are the streams' checkpoints when the caller has just read them from ``store`` (the
    queue worker, for its superseded check), so the run does not read them again; claims carry their
    etags, so one changed since loses its compare-and-swap as a concurrent claim would.
    """
    install_log_redaction()
    hand_over_the_gil_sooner()
    redactor = redactor or Redactor()
    redactor.add(*settings.secret_values())
    return _run_cycle(
        settings,
        clock,
        credential_factory,
        sink,
        store,
        http,
        redactor,
        progress,
        run_id,
        tenant,
        checkpoints,
    )


def _run_cycle(
    settings: Settings,
    clock: Clock | None,
    credential_factory: CredentialFactory | None,
    sink: Sink | None,
    store: CheckpointStore | None,
    http: HttpClient | None,
    redactor: Redactor,
    progress: ProgressCallback | None,
    run_id: str | None,
    tenant: str,
    checkpoints: Mapping[str, Checkpoint] | None,
) -> CycleReport:
    clock = clock or Clock()
    started = clock.now()
    run_id = run_id or uuid.uuid4().hex[:12]
    deadline = Deadline.after(clock, settings.run_time_budget)
    credential = functools.cache(credential_factory or default_credential)
    http = http or HttpClient(clock=clock, redactor=redactor)
    secrets = Secrets(settings.key_vault_url, credential, redactor, clock=clock, deadline=deadline)
    names = enabled_streams(settings)

    def all_failed(error: AuditSyncError) -> list[StreamReport]:
        return [_error_report(source, name, error, 0) for source, name in names]

    store_error: AuditSyncError | None = None
    try:
        store = store or open_store(settings.store, credential, deadline)
    except AuditSyncError as error:
        # Kind checkpoint whatever the cause, so the health row names the part that failed.
        store_error = CheckpointError(f"checkpoint store: {error.message}", hint=error.hint)
    try:
        sink = sink or open_sink(
            settings.sink, credential_factory=credential, secrets=secrets, http=http, clock=clock
        )
    except AuditSyncError as error:
        failed = all_failed(store_error or error)
        if store is not None:
            record_failed_streams(store, failed, owner=run_id, now=clock.now())
        return _finish(settings, clock, run_id, started, failed, None, redactor, tenant=tenant)
    if store_error is not None or store is None:
        # The sink works: the health rows still say why nothing was collected.
        failure = store_error or CheckpointError("no checkpoint store")
        return _finish(
            settings, clock, run_id, started, all_failed(failure), sink, redactor, deadline, tenant=tenant
        )

    run = _Run(
        settings,
        clock,
        deadline,
        run_id,
        redactor,
        http,
        secrets,
        store,
        sink,
        progress,
        _stored(store, [name for _, name in names], checkpoints),
    )
    log.info(
        "auditsync run %s: streams %s, sink %s, budget %s",
        run_id,
        ", ".join(n for _, n in names),
        sink.name,
        settings.run_time_budget,
        extra={"run_id": run_id},
    )
    run.claimed = _claim_all(run, [name for _, name in names])
    run.released_together = frozenset(run.claimed)
    # One pool for the run: a thread per source opens it and waits for its streams, a thread per stream
    # runs it; sized for all of them, so a source's wait never holds a stream back.
    with ContextThreadPool(max(1, len(settings.sources) + len(names)), thread_name_prefix="run") as pool:
        run.pool = pool
        futures = [pool.submit(_run_source, run, source) for source in settings.sources]
        reports = [report for future in futures for report in future.result()]
    _release_all(run)
    return _finish(settings, clock, run_id, started, reports, sink, redactor, deadline, tenant=tenant)


def _stored(
    store: CheckpointStore, names: list[str], known: Mapping[str, Checkpoint] | None = None
) -> dict[str, Checkpoint] | None:
    """The streams' stored checkpoints in one request, so claiming needs no load per stream: a point
    read for a run of one stream (a queue worker's: its cost does not grow with the tenants in the
    table), else one query for them all.

    A failed read costs nothing but that request: each claim then loads its own checkpoint and
    meets the failure (with its stream's report) there.
    """
    if known is not None and all(name in known for name in names):
        return dict(known)
    try:
        if len(names) == 1:
            return {names[0]: store.load(names[0])}
        return {checkpoint.stream: checkpoint for checkpoint in store.list()}
    except Exception as error:
        log.info("listing the checkpoints failed (%s); loading them one by one", type(error).__name__)
        return None


def _claim_all(run: _Run, names: list[str]) -> dict[str, Checkpoint]:
    """Claim every stream's lease in one request, from the listed checkpoints; {} when that cannot be.

    All or nothing: when one stream is held by another runner or one claim loses its compare-and-swap,
    nothing is claimed here and each stream claims its own lease as before (``claim``), so the outcome
    per stream is the same; only the number of requests differs.
    """
    if run.listed is None or len(names) < 2:
        return {}
    now = run.clock.now()
    current = [run.listed.get(name, Checkpoint(name)) for name in names]
    if any(held_by_other(checkpoint, run.run_id, now) for checkpoint in current):
        return {}
    until = now + run.settings.run_time_budget + LEASE_SLACK
    try:
        saved = run.store.save_all([replace(c, lease_owner=run.run_id, lease_until=until) for c in current])
    except Exception as error:
        log.info("claiming the streams at once failed (%s); claiming them one by one", type(error).__name__)
        return {}
    return {checkpoint.stream: checkpoint for checkpoint in saved}


def _release_all(run: _Run) -> None:
    """Free the leases claimed at once, with each stream's outcome, in one request; one by one if that fails."""
    if not run.closing:
        return
    if len(run.closing) > 1:
        try:
            run.store.save_all([replace(c, lease_owner="", lease_until=None) for c, _ in run.closing])
            return
        except Exception as error:
            log.info("releasing the streams at once failed (%s); one by one", type(error).__name__)
    for checkpoint, report in run.closing:
        _release_one(run, checkpoint, report)


def _run_source(run: _Run, source: str) -> list[StreamReport]:
    """Token, then the source's streams (each in its own thread). A failure here fails all its streams."""
    module = source_module(source)
    part = run.settings.source(source)
    names = module.stream_names(part)
    started = run.clock.now()
    try:
        token = run.secrets.token(source, part.token)
        run.token_expiry[source] = run.secrets.token_expiry(source, part.token).expires_on
        context = SourceContext(part, token, run.http, run.clock, started, run.deadline)
        streams = module.open_streams(context)
    except AuditSyncError as error:
        elapsed = _ms(run.clock.now() - started)
        reports = [_error_report(source, name, error, elapsed, run.redactor) for name in names]
        record_failed_streams(run.store, reports, owner=run.run_id, now=run.clock.now())
        return reports
    except Exception as error:  # a bug must not take the other source down
        _log_unexpected(f"opening {source}", error)
        wrapped = AuditSyncError(f"unexpected {type(error).__name__} opening {source}", hint=_BUG_HINT)
        reports = [_error_report(source, name, wrapped, 0, run.redactor) for name in names]
        record_failed_streams(run.store, reports, owner=run.run_id, now=run.clock.now())
        return reports
    assert run.pool is not None
    return list(run.pool.map(lambda s: _run_stream(run, s), streams))


def _log_unexpected(where: str, error: Exception) -> None:
    """One redacted line at ERROR (a fault is data, not a traceback); the traceback itself at DEBUG."""
    log.error("unexpected %s %s: %s", type(error).__name__, where, " ".join(str(error).split())[:500])
    log.debug("traceback of the unexpected %s %s", type(error).__name__, where, exc_info=error)


_BUG_HINT = "This is a bug in auditsync: report it with the log lines of this run; the next run retries."


def _run_stream(run: _Run, stream: Stream) -> StreamReport:
    """Claim the stream's lease, run the page loop (``drain``), record the outcome and free the lease."""
    started = run.clock.now()
    try:
        checkpoint = run.claimed.pop(stream.name, None) or claim(
            run.store,
            stream.name,
            run.run_id,
            started,
            run.settings.run_time_budget + LEASE_SLACK,
            None if run.listed is None else run.listed.get(stream.name, Checkpoint(stream.name)),
        )
    except AuditSyncError as claim_error:
        return _error_report(stream.source, stream.name, claim_error, 0, run.redactor)
    except Exception as caught:  # a bug in a store must fail this stream only
        log.exception("unexpected failure claiming %s", stream.name, extra={"stream": stream.name})
        wrapped = AuditSyncError(f"unexpected {type(caught).__name__} claiming {stream.name}", hint=_BUG_HINT)
        return _error_report(stream.source, stream.name, wrapped, 0, run.redactor)
    if checkpoint is None:
        log.warning(
            "%s is being collected by another runner; skipped", stream.name, extra={"stream": stream.name}
        )
        return StreamReport(
            stream.source, stream.name, STATUS_SKIPPED, message="another runner holds this stream"
        )

    def progress(page: Page, events: int) -> None:
        if run.progress is not None:
            run.progress(stream.name, events)

    drained = drain(stream, checkpoint, run.store, run.sink, run.deadline, run.clock, on_page=progress)
    finished = run.clock.now()
    expires_on = run.token_expiry.get(stream.source)
    if drained.failure is not None:
        drained.failure = refused_after_expiry(drained.failure, stream.source, expires_on, finished)
    report = drained.report(stream, _ms(finished - started), finished, run.redactor)
    report = replace(report, token_expires_on=expires_on)
    _close(run, drained.checkpoint, report, finished)
    return report


@dataclass
class Drained:
    """What ``drain`` did: the checkpoint as last saved, and what the stream's report says."""

    checkpoint: Checkpoint
    events: int = 0
    pages: int = 0
    counters: Counter[str] = field(default_factory=Counter)
    #: The newest event time ever delivered (the checkpoint's), and the newest of this run.
    newest: datetime | None = None
    newest_this_run: datetime | None = None
    #: The last page said more was to come (the run stopped at its deadline).
    stopped_with_more: bool = False
    failure: AuditSyncError | None = None

    def report(
        self, stream: Stream, duration_ms: int, finished: datetime, redactor: Redactor | None = None
    ) -> StreamReport:
        """The stream's StreamReport (its health row's material)."""
        if self.failure is not None:
            return _error_report(
                stream.source,
                stream.name,
                self.failure,
                duration_ms,
                redactor,
                events=self.events,
                pages=self.pages,
                newest=self.newest,
                counters=self.counters,
            )
        status = STATUS_BEHIND if self.stopped_with_more else STATUS_OK if self.events else STATUS_IDLE
        lag = None
        if status == STATUS_IDLE:
            lag = 0
        elif self.newest_this_run is not None:
            lag = max(0, int((finished - self.newest_this_run).total_seconds()))
        behind = status == STATUS_BEHIND
        return StreamReport(
            stream.source,
            stream.name,
            status,
            self.events,
            self.pages,
            duration_ms,
            self.newest,
            lag,
            message="stopped at the run's deadline; the next run continues" if behind else "",
            hint="If this persists, shorten the timer schedule or raise RUN_TIME_BUDGET." if behind else "",
            counters=dict(self.counters),
        )


def drain(
    stream: Stream,
    checkpoint: Checkpoint,
    store: CheckpointStore,
    sink: Sink,
    deadline: Deadline,
    clock: Clock,
    *,
    on_page: Callable[[Page, int], None] | None = None,
) -> Drained:
    """The loop of the design: pages -> rows -> sink -> checkpoint, until caught up or out of time.

    ``checkpoint`` is the stream's record, its lease already held. Every page's position is saved once
    the sink accepted all of it, and, for a page that goes out in several requests, after every accepted
    request (``_PartialSaver``). While page n is shaped and sent, the source's next request is already
    under way (``auditsync.sources.paging``). ``on_page(page, events)`` is called after each saved page
    with the events delivered so far. Never raises for the stream's failure: see ``Drained.failure``.
    """
    table = TABLES[stream.table]
    event_type = stream.name.split("/", 1)[1]
    drained = Drained(checkpoint, newest=checkpoint.newest_event_time)
    pages = stream.pages(checkpoint.position, deadline)
    try:
        for page in pages:
            drained.counters.update(page.counters)
            base_total = drained.checkpoint.total_events
            if page.events:
                rows, shaping = shape_rows(table, page.events, now=clock.now(), event_type=event_type)
                drained.counters.update(shaping)
                partial = _PartialSaver(store, drained.checkpoint, page, drained.newest)
                try:
                    result = sink.send(
                        stream.table,
                        rows,
                        deadline,
                        partial if page.accepted_position is not None else None,
                    )
                finally:
                    drained.checkpoint = partial.checkpoint
                    drained.events += partial.accepted
                drained.counters.update(result.counters)
                drained.events += len(rows) - partial.accepted
                drained.pages += 1
                # Page n's rows and the saver that holds it are done with: not held while page n+1 is read.
                del rows, partial
            if page.newest_event_time is not None:
                drained.newest_this_run = max(filter(None, (drained.newest_this_run, page.newest_event_time)))
                drained.newest = max(filter(None, (drained.newest, page.newest_event_time)))
            moved = replace(
                drained.checkpoint,
                position=page.position,
                newest_event_time=drained.newest,
                total_events=base_total + len(page.events),
            )
            if (
                moved != drained.checkpoint
            ):  # an empty page that left the position where it was: nothing to save
                drained.checkpoint = store.save(moved)
            drained.stopped_with_more = page.has_more
            if on_page is not None:
                on_page(page, drained.events)
            del page
            if deadline.near():
                break
    except AuditSyncError as caught:
        drained.failure = caught
    except Exception as caught:  # a bug must fail this stream only, with a clear report
        _log_unexpected(f"in {stream.name}", caught)
        drained.failure = AuditSyncError(
            f"unexpected {type(caught).__name__} in {stream.name}", hint=_BUG_HINT
        )
    finally:
        _close_pages(pages)
    return drained


def _close_pages(pages: Iterator[Page]) -> None:
    """Stop the source (its requests sent ahead are dropped; one under way ends by the deadline)."""
    close = getattr(pages, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as error:
        log.debug("closing the pages of a stopped stream: %s", type(error).__name__)


class _PartialSaver:
    """The sink's ``on_accepted``: saves the page's ``accepted_position`` after each accepted request.

    With it, a page that takes several requests is recorded request by request, so a failed later
    request (or a crash) re-sends at most the one request whose save did not happen.
    """

    def __init__(self, store: CheckpointStore, checkpoint: Checkpoint, page: Page, newest: datetime | None):
        self.store = store
        self.checkpoint = checkpoint
        self.page = page
        self.newest = newest
        self.base_total = checkpoint.total_events
        self.accepted = 0

    def __call__(self, accepted: int) -> None:
        assert self.page.accepted_position is not None
        if not 0 < accepted < len(self.page.events) or accepted <= self.accepted:
            return
        self.checkpoint = self.store.save(
            replace(
                self.checkpoint,
                position=self.page.accepted_position(accepted),
                newest_event_time=self.newest,
                total_events=self.base_total + accepted,
            )
        )
        self.accepted = accepted


def outcome(checkpoint: Checkpoint, report: StreamReport, finished: datetime) -> Checkpoint:
    """``checkpoint`` with ``report``'s outcome recorded and its lease freed (the position untouched)."""
    return replace(
        checkpoint,
        last_status=report.status,
        last_error_kind=report.error_kind,
        last_message=redact(report.message),
        last_hint=redact(report.hint) if report.status == STATUS_ERROR else "",
        last_run=finished,
        last_success=finished if report.status != STATUS_ERROR else checkpoint.last_success,
        token_expires_on=report.token_expires_on,
    )


def _close(run: _Run, checkpoint: Checkpoint, report: StreamReport, finished: datetime) -> None:
    """Record the outcome on the checkpoint and free the lease (position untouched on error).

    A stream whose lease was claimed with all the others is released with them at the end of the
    run (``_release_all``: one request for every stream); its lease covers the run's budget anyway.
    """
    recorded = outcome(checkpoint, report, finished)
    if report.stream in run.released_together:
        with run.closing_lock:
            run.closing.append((recorded, report))
        return
    _release_one(run, recorded, report)


def _release_one(run: _Run, outcome: Checkpoint, report: StreamReport) -> None:
    try:
        release(run.store, outcome)
    except CheckpointConflict:
        log.error(
            "%s: another runner took over the stream's checkpoint",
            report.stream,
            extra={"stream": report.stream},
        )
    except AuditSyncError as error:
        log.error("%s: could not record the outcome: %s", report.stream, run.redactor(str(error)))
    except Exception:  # a bug in a store must not lose the other streams' reports
        log.exception("%s: unexpected failure recording the outcome", report.stream)


def _error_report(
    source: str,
    stream: str,
    error: AuditSyncError,
    duration_ms: int,
    redactor: Redactor | None = None,
    *,
    events: int = 0,
    pages: int = 0,
    newest: datetime | None = None,
    counters: Counter[str] | None = None,
) -> StreamReport:
    clean = redactor or Redactor()
    return StreamReport(
        source,
        stream,
        STATUS_ERROR,
        events,
        pages,
        duration_ms,
        newest,
        None,
        error_kind=error.kind,
        message=clean(str(error)),
        hint=clean(error.hint),
        counters=dict(counters or {}),
    )


def _send_heartbeat(
    sink: Sink, batches: list[tuple[str, list[JSON]]], deadline: Deadline, redactor: Redactor
) -> str:
    """Send the health rows' batches (one per table) side by side: the run's last round trips, so
    each one saved is a round trip off every run. Returns the first failure's message, or ""."""

    def send(batch: tuple[str, list[JSON]]) -> str:
        table, rows = batch
        try:
            sink.send(table, rows, deadline)
        except AuditSyncError as error:
            return redactor(str(error))
        except Exception as error:  # a bug in a sink must not lose the outcomes logged by the caller
            log.exception("unexpected failure sending the health rows")
            return f"unexpected {type(error).__name__} sending the health rows"
        return ""

    with ContextThreadPool(max_workers=len(batches), thread_name_prefix="heartbeat") as pool:
        return next((failure for failure in pool.map(send, batches) if failure), "")


def _finish(
    settings: Settings,
    clock: Clock,
    run_id: str,
    started: datetime,
    reports: list[StreamReport],
    sink: Sink | None,
    redactor: Redactor,
    deadline: Deadline | None = None,
    *,
    tenant: str = "",
) -> CycleReport:
    """Log every outcome and send the heartbeat rows; a failed heartbeat is logged at ERROR with the outcomes.

    The send (the sink retries it) ends by the run's deadline or ``HEARTBEAT_GRACE`` from now,
    whichever is later.
    """
    finished = clock.now()
    for report in reports:
        level = logging.ERROR if report.status == STATUS_ERROR else logging.INFO
        log.log(
            level,
            "%s: %s, %d events in %d pages%s%s",
            report.stream,
            report.status,
            report.events,
            report.pages,
            f", {report.error_kind}: {report.message}" if report.error_kind else "",
            f" (hint: {report.hint})" if report.hint else "",
            extra={
                "run_id": run_id,
                "stream": report.stream,
                "status": report.status,
                "error_kind": report.error_kind,
                OUTCOME: True,
            },
        )
    heartbeat_error = ""
    if sink is None:
        heartbeat_error = "no sink: health rows could not be sent"
    else:
        grace = Deadline.after(clock, HEARTBEAT_GRACE)
        heartbeat_deadline = deadline if deadline is not None and deadline.at > grace.at else grace
        try:
            batches = heartbeat_batches(reports, now=finished, run_id=run_id, tenant=tenant)
        except Exception as error:  # a bug must not lose the outcomes logged below
            log.exception("unexpected failure building the health rows")
            heartbeat_error = f"unexpected {type(error).__name__} building the health rows"
        else:
            heartbeat_error = _send_heartbeat(sink, batches, heartbeat_deadline, redactor)
    if heartbeat_error:
        log.error(
            "health rows of run %s did not reach the sink: %s",
            run_id,
            heartbeat_error,
            extra={"run_id": run_id},
        )
        for report in reports:
            log.error(
                "health %s: status=%s events=%d error_kind=%s message=%s",
                report.stream,
                report.status,
                report.events,
                report.error_kind or "-",
                report.message or "-",
                extra={"run_id": run_id, "stream": report.stream, "status": report.status},
            )
    return CycleReport(run_id, started, finished, reports, heartbeat_error)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
