"""The worker: one (tenant, stream) work item, collected exactly like a single-tenant run of that stream.

The tenant's settings are narrowed to the one stream, the checkpoint store is scoped to the tenant,
and ``run_cycle`` does the rest: lease, deadline, send-then-save, heartbeat. A duplicate message finds
the lease held and reports the stream ``skipped``; a stale message (tenant removed or disabled since
the dispatch) is dropped with a log line.

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
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from auditsync.checkpoints import open_store
from auditsync.config import Settings
from auditsync.errors import AuditSyncError
from auditsync.fanout.scoped_store import TenantScopedStore
from auditsync.fanout.work_item import WorkItem
from auditsync.log_context import tenant_work
from auditsync.model import CheckpointStore
from auditsync.runner import CycleReport, run_cycle
from auditsync.secrets import CredentialFactory, default_credential
from auditsync.tenants import Tenant, TenantRegistry, settings_for

log = logging.getLogger(__name__)


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
        # this stream keeps to its 1/N of it (auditsync.sources.pacing).
        narrowed = replace(onepassword, event_types=(event_type,), rate_share=len(onepassword.event_types))
        return replace(settings, sources=(source,), onepassword=narrowed)
    return replace(settings, sources=(source,))


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
        report = run_cycle(
            settings,
            store=scoped,
            credential_factory=credential,
            run_id=execution_id(item),
            tenant=tenant.name,
            **run_kwargs,
        )
    if report.heartbeat_error:
        raise WorkFailed(
            f"{item.stream} of tenant {item.tenant}: health rows did not reach the sink",
            hint="The host retries this message; after maxDequeueCount it lands in the poison queue.",
        )
    return report
