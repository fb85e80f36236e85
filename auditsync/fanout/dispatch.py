"""The dispatcher: one work item per due (tenant, stream) on the queue, nothing else.

It runs in the timer function instead of a collection run when a tenant registry is configured. It
reads the registry, validates each enabled tenant (a bad tenant is reported, the others go ahead) and
enqueues one message per stream. Every stream is due every tick: a stream that is still being worked
finds its lease held and skips, so a slow stream is never worked twice at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError

from auditsync.errors import AuditSyncError, ConfigError
from auditsync.failures import WORK_QUEUE, azure_failure, redact_url
from auditsync.fanout.work_item import WorkItem
from auditsync.sources import enabled_streams
from auditsync.tenants import Tenant, TenantRegistry, settings_for

if TYPE_CHECKING:  # the queue SDK is imported by the first open_queue (auditsync.fanout.queue)
    from azure.storage.queue import QueueClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchReport:
    """What one tick enqueued, which tenants were disabled, and which failed validation (and why)."""

    enqueued: list[WorkItem] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    failed: dict[str, AuditSyncError] = field(default_factory=dict)


def due_items(tenant: Tenant, env: Mapping[str, str], *, now: datetime, run_id: str) -> list[WorkItem]:
    """The tenant's streams as work items; raises ConfigError when the tenant's settings are invalid."""
    settings = settings_for(tenant, env)
    return [WorkItem(tenant.name, name, now, run_id) for _, name in enabled_streams(settings)]


def dispatch(
    registry: TenantRegistry,
    env: Mapping[str, str],
    queue: QueueClient,
    *,
    now: datetime,
    run_id: str,
) -> DispatchReport:
    """Enqueue every enabled tenant's streams. Never raises for one tenant's problem: read the report."""
    report = DispatchReport()
    for tenant in registry.list():
        if not tenant.enabled:
            report.disabled.append(tenant.name)
            continue
        try:
            items = due_items(tenant, env, now=now, run_id=run_id)
        except ConfigError as error:
            log.error("tenant %s not dispatched: %s", tenant.name, error, extra={"tenant": tenant.name})
            report.failed[tenant.name] = error
            continue
        for item in items:
            try:
                queue.send_message(item.to_json())
            except AzureError as exc:
                enqueue_error = queue_failure(exc, queue, f"enqueueing {item.stream} of tenant {item.tenant}")
                log.error("%s", enqueue_error, extra={"tenant": item.tenant, "stream": item.stream})
                report.failed[tenant.name] = enqueue_error
                break
            report.enqueued.append(item)
    log.info(
        "dispatched %d work items for %d tenants (%d disabled, %d failed)",
        len(report.enqueued),
        len({i.tenant for i in report.enqueued}),
        len(report.disabled),
        len(report.failed),
    )
    return report


def queue_failure(exc: AzureError, queue: QueueClient, action: str) -> AuditSyncError:
    """A failed call on the work queue, as ``auditsync.failures`` maps it."""
    return azure_failure(WORK_QUEUE, exc, f"work queue {redact_url(queue.url)}", action=action)
