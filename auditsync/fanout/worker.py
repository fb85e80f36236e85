"""The worker: one (tenant, stream) work item, collected exactly like a single-tenant run of that stream.

The tenant's settings are narrowed to the one stream, the checkpoint store is scoped to the tenant,
and ``run_cycle`` does the rest: lease, deadline, send-then-save, heartbeat. An item a later run made
unnecessary (``superseded_by``: after an outage, every missed tick's item but the first; a duplicate
message once its first copy ran) is acknowledged without running; a duplicate that arrives while the
first copy runs finds the lease held and reports the stream ``skipped``; a stale message (tenant
removed or disabled since the dispatch) is dropped with a log line.

Every log line of the item's work names the tenant (``auditsync.log_context``).

The worker raises (so the Functions host retries the message, and after ``maxDequeueCount`` moves it
to the poison queue) only when the run could not even report itself: a stream's own failure is already
in its health row and the next tick dispatches the stream again, so retrying it at once would only
spend the vendor's rate limit.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from auditsync.checkpoints import open_store
from auditsync.config import Settings
from auditsync.errors import AuditSyncError
from auditsync.fanout.scoped_store import TenantScopedStore
from auditsync.fanout.work_item import WorkItem
from auditsync.log_context import tenant_work
from auditsync.model import STATUS_BEHIND, STATUS_IDLE, STATUS_OK, Checkpoint, CheckpointStore, Clock
from auditsync.runner import CycleReport, run_cycle
from auditsync.secrets import CredentialFactory, default_credential
from auditsync.tables.rows import format_time
from auditsync.tenants import Tenant, TenantRegistry, settings_for

log = logging.getLogger(__name__)

#: Outcomes of a run that collected everything there was when it ran.
CAUGHT_UP = frozenset({STATUS_OK, STATUS_IDLE})


class WorkFailed(AuditSyncError):
    """The run could not report its outcome; the host should retry the message."""


def stream_settings(tenant: Tenant, env: Mapping[str, str], stream: str) -> Settings:
    """The tenant's settings narrowed to ``stream`` alone, so ``run_cycle`` works that stream only."""
    settings = settings_for(tenant, env)
    source, _, event_type = stream.partition("/")
    if source not in settings.sources:
        raise AuditSyncError(f"tenant {tenant.name} no longer collects {source}")
    if source == "onepassword":
        onepassword = settings.onepassword
        if event_type not in onepassword.event_types:
            raise AuditSyncError(f"tenant {tenant.name} no longer collects {stream}")
        # The tenant's 1Password streams share one account's rate limit across workers and instances:
        # this stream keeps to its share of it (auditsync.sources.pacing; ``work`` adds the live count).
        narrowed = replace(onepassword, event_types=(event_type,), rate_share=len(onepassword.event_types))
        return replace(settings, sources=(source,), onepassword=narrowed)
    return replace(settings, sources=(source,))


def superseded_by(item: WorkItem, checkpoint: Checkpoint) -> datetime | None:
    """When a later run already did what ``item`` asks: the end of the stream's last run (``checkpoint``,
    read by the worker) if that run ended after the item was dispatched and caught up (ok or idle),
    else None (the item runs).

    After an outage the queue holds every missed tick's item for each stream: the first one runs and
    the rest are acknowledged here, so the stream runs once, not once per tick. A run that stopped
    behind or failed does not supersede anything: the next item continues or retries it. Dispatcher and
    worker clocks may differ by seconds; at worst an item is dropped that a run ending just after its
    dispatch only nearly covered, and the next tick collects what that run did not.
    """
    finished = checkpoint.last_run
    if finished is None or finished <= item.dispatched or checkpoint.last_status not in CAUGHT_UP:
        return None
    return finished


def _read(store: CheckpointStore, stream: str) -> Checkpoint | None:
    """The stream's checkpoint by point read; None when the read fails (the run then meets the same
    store and reports it in the stream's health row)."""
    try:
        return store.load(stream)
    except AuditSyncError:
        return None


def busy_streams(
    store: CheckpointStore, stream: str, account_streams: list[str], clock: Clock
) -> Callable[[], int]:
    """How many of the account's streams are busy now, ``stream`` included, read from their
    checkpoints (one query on the tenant's 1Password rows): a sibling is busy while its lease is held,
    when its last run stopped ``behind`` (its next item continues at once), or when it never ran (a
    first run has its look-back to fetch)."""
    siblings = [s for s in account_streams if s != stream]

    def count() -> int:
        stored = {c.stream: c for c in store.list("onepassword/")}
        now = clock.now()
        return 1 + sum(1 for s in siblings if _busy(stored.get(s), now))

    return count


def _busy(checkpoint: Checkpoint | None, now: datetime) -> bool:
    if checkpoint is None or checkpoint.last_run is None or checkpoint.last_status == STATUS_BEHIND:
        return True
    return (
        bool(checkpoint.lease_owner) and checkpoint.lease_until is not None and checkpoint.lease_until > now
    )


def execution_id(item: WorkItem) -> str:
    """The run id (and lease owner) of one execution of an item: the dispatch's id plus a unique suffix.

    Never the dispatch's id alone: the lease treats its own owner as re-entrant, so two copies of one
    message (at-least-once delivery) would both claim the stream and deliver its events twice.
    """
    return f"{item.run_id}-{uuid.uuid4().hex[:8]}"


def work(
    item: WorkItem,
    *,
    registry: TenantRegistry,
    env: Mapping[str, str],
    store: CheckpointStore | None = None,
    credential_factory: CredentialFactory | None = None,
    **run_kwargs: Any,
) -> CycleReport | None:
    """Collect one work item; None when the item is stale. Raises WorkFailed when a retry is warranted."""
    tenant = registry.get(item.tenant)
    if tenant is None or not tenant.enabled:
        log.warning(
            "work item for %s of tenant %s dropped: the tenant is %s",
            item.stream,
            item.tenant,
            "disabled" if tenant else "no longer registered",
            extra={"tenant": item.tenant, "stream": item.stream},
        )
        return None
    try:
        settings = stream_settings(tenant, env, item.stream)
    except AuditSyncError as error:
        log.warning("work item dropped: %s", error, extra={"tenant": item.tenant, "stream": item.stream})
        return None
    credential = functools.cache(credential_factory or default_credential)
    with tenant_work(tenant.name):
        scoped = TenantScopedStore(store or open_store(settings.store, credential), tenant.name)
        if settings.onepassword.rate_share:
            account = settings_for(tenant, env).onepassword.event_types
            clock = run_kwargs.get("clock") or Clock()
            busy = busy_streams(scoped, item.stream, [f"onepassword/{t}" for t in account], clock)
            settings = replace(settings, onepassword=replace(settings.onepassword, busy_streams=busy))
        # One point read serves both the superseded check and the run's claim.
        checkpoint = _read(scoped, item.stream)
        done_after = None if checkpoint is None else superseded_by(item, checkpoint)
        if done_after is not None:
            log.info(
                "work item for %s dispatched at %s acknowledged without running: the stream caught up in "
                "a run that ended at %s, after it",
                item.stream,
                format_time(item.dispatched),
                format_time(done_after),
            )
            return None
        report = run_cycle(
            settings,
            store=scoped,
            credential_factory=credential,
            run_id=execution_id(item),
            tenant=tenant.name,
            checkpoints=None if checkpoint is None else {item.stream: checkpoint},
            **run_kwargs,
        )
    if report.heartbeat_error:
        raise WorkFailed(
            f"{item.stream} of tenant {item.tenant}: health rows did not reach the sink",
            hint="The host retries this message; after maxDequeueCount it lands in the poison queue.",
        )
    return report
