"""The deployment's side of scale-out: its registry and queues from Settings, and the three entry points.

``dispatch_tick`` (the timer), ``work_message`` (the queue trigger) and ``report_poison`` (the poison
queue trigger) are what function_app.py and the CLI call, so the Function App and a local
``python -m auditsync work`` behave the same way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ResourceExistsError

from auditsync.checkpoints import open_store
from auditsync.config import FanoutSettings, Settings
from auditsync.errors import AuditSyncError, ConfigError, SinkError
from auditsync.fanout.dispatch import DispatchReport, dispatch, queue_failure
from auditsync.fanout.queue import open_queue, poison_queue_name
from auditsync.fanout.scoped_store import TenantScopedStore
from auditsync.fanout.work_item import WorkItem
from auditsync.fanout.worker import WorkFailed, work
from auditsync.heartbeat import heartbeat_batches
from auditsync.http import HttpClient, Redactor
from auditsync.model import STATUS_ERROR, Clock, Deadline, StreamReport
from auditsync.runner import HEARTBEAT_GRACE, CycleReport
from auditsync.secrets import CredentialFactory, Secrets, default_credential
from auditsync.sinks import open_sink
from auditsync.tenants import FileTenantRegistry, TableTenantRegistry, TenantRegistry, settings_for

if TYPE_CHECKING:  # the queue SDK is imported by the first open_queue, not by every CLI command
    from azure.storage.queue import QueueClient

log = logging.getLogger(__name__)


def open_registry(settings: FanoutSettings, credential_factory: CredentialFactory) -> TenantRegistry:
    """The registry TENANT_REGISTRY names; ConfigError when there is none (a single-tenant deployment)."""
    if settings.registry == "file":
        return FileTenantRegistry(settings.registry_file)
    if settings.registry != "table":
        raise ConfigError(
            "TENANT_REGISTRY: this deployment has no tenant registry (single tenant).",
            hint="Set TENANT_REGISTRY=table (Function App) or file (local runs) to serve several tenants.",
        )
    if settings.table_connection_string:
        return TableTenantRegistry.from_connection_string(
            settings.table_connection_string, settings.tenant_table
        )
    return TableTenantRegistry.from_url(settings.table_url, credential_factory(), settings.tenant_table)


def open_work_queues(
    settings: FanoutSettings, credential_factory: CredentialFactory, *, create: bool = False
) -> tuple[QueueClient, QueueClient]:
    """The work queue and its poison queue; ``create`` makes them when missing (local runs, first tick)."""
    queues = []
    for name in (settings.queue, poison_queue_name(settings.queue)):
        if settings.queue_connection_string:
            queue = open_queue(name, connection_string=settings.queue_connection_string)
        else:
            queue = open_queue(name, account_url=settings.queue_url, credential=credential_factory())
        if create:
            try:
                with contextlib.suppress(ResourceExistsError):
                    queue.create_queue()
            except AzureError as exc:
                raise queue_failure(exc, queue, "creating the queue") from None
        queues.append(queue)
    return queues[0], queues[1]


def dispatch_tick(
    settings: Settings,
    env: Mapping[str, str],
    *,
    now: datetime,
    run_id: str,
    credential_factory: CredentialFactory | None = None,
) -> DispatchReport:
    """One timer tick of a multi-tenant deployment: every enabled tenant's streams onto the work queue."""
    credential = functools.cache(credential_factory or default_credential)
    registry = open_registry(settings.fanout, credential)
    queue, _ = open_work_queues(settings.fanout, credential, create=True)
    return dispatch(registry, env, queue, now=now, run_id=run_id)


def work_message(
    text: str,
    settings: Settings,
    env: Mapping[str, str],
    *,
    credential_factory: CredentialFactory | None = None,
    registry: TenantRegistry | None = None,
    clock: Clock | None = None,
) -> CycleReport | None:
    """The queue trigger's body: one work item. Raises only when the host should retry the message."""
    item = WorkItem.from_json(text)  # a foreign message: ConfigError, retried, then poisoned and reported
    credential = functools.cache(credential_factory or default_credential)
    registry = registry or open_registry(settings.fanout, credential)
    return work(
        item,
        registry=registry,
        env=env,
        store=open_store(settings.store, credential),
        credential_factory=credential,
        clock=clock,
    )


def report_poison(
    text: str,
    dequeue_count: int,
    settings: Settings,
    env: Mapping[str, str],
    *,
    credential_factory: CredentialFactory | None = None,
    registry: TenantRegistry | None = None,
    clock: Clock | None = None,
) -> str:
    """The poison queue trigger's body: an ``error`` health row for the item's tenant and stream.

    The row goes to the tenant's own destination and, when that refuses it (often the very reason the
    item kept failing), to the deployment's. Raises SinkError when neither took it, so the host keeps
    the message and retries: a poisoned item is never dropped silently. Returns where the row went.
    """
    clock = clock or Clock()
    credential = functools.cache(credential_factory or default_credential)
    try:
        item = WorkItem.from_json(text)
    except ConfigError:
        item = WorkItem("", "unknown/unknown", clock.now(), "poison")
    tenant_settings: Settings | None = None
    last_kind, last_message = "", ""
    try:
        tenant = (
            (registry or open_registry(settings.fanout, credential)).get(item.tenant) if item.tenant else None
        )
        if tenant is not None:
            tenant_settings = settings_for(tenant, env)
        if item.tenant:
            scoped = TenantScopedStore(open_store(settings.store, credential), item.tenant)
            checkpoint = scoped.load(item.stream)
            last_kind, last_message = checkpoint.last_error_kind, checkpoint.last_message
    except AuditSyncError as error:
        log.warning("poisoned item: no last outcome for %s of %s: %s", item.stream, item.tenant, error)
    source = item.stream.partition("/")[0]
    report = StreamReport(
        source,
        item.stream,
        STATUS_ERROR,
        error_kind=last_kind or "upstream",
        message=(
            f"work item from run {item.run_id} failed {dequeue_count} times and was moved to the poison "
            "queue" + (f"; last outcome: {last_message}" if last_message else "")
        )[:1000],
        hint="Read the function's log for this tenant and stream; fix the cause (the last outcome above) "
        "and the next tick dispatches the stream again. Delete the poison message once reported.",
    )
    log.error("%s of tenant %s poisoned: %s", item.stream, item.tenant, report.message)
    destinations = [("tenant", tenant_settings)] if tenant_settings is not None else []
    destinations.append(("deployment", settings))
    failures = []
    for label, target in destinations:
        try:
            _send_health(target, report, item, credential, clock)
            return label
        except AuditSyncError as error:
            failures.append(f"{label}: {error}")
    raise SinkError(
        f"the poison report for {item.stream} of tenant {item.tenant} reached no sink ({'; '.join(failures)})",
        hint="The host retries the poison message; fix the sink (role on the DCR, endpoint) meanwhile.",
    )


def _send_health(
    settings: Settings, report: StreamReport, item: WorkItem, credential: CredentialFactory, clock: Clock
) -> None:
    redactor = Redactor(settings.secret_values())
    http = HttpClient(clock=clock, redactor=redactor)
    deadline = Deadline.after(clock, HEARTBEAT_GRACE)
    secrets = Secrets(settings.key_vault_url, credential, redactor, clock=clock, deadline=deadline)
    sink = open_sink(settings.sink, credential_factory=credential, secrets=secrets, http=http, clock=clock)
    now = clock.now()
    for table, rows in heartbeat_batches([report], now=now, run_id=item.run_id, tenant=item.tenant):
        sink.send(table, rows, deadline)


def visibility_for(settings: Settings) -> timedelta:
    """How long a local worker hides a message: longer than a run, as the host's renewed lock is."""
    from auditsync.runner import LEASE_SLACK

    return settings.run_time_budget + LEASE_SLACK


__all__ = [
    "WorkFailed",
    "dispatch_tick",
    "open_registry",
    "open_work_queues",
    "report_poison",
    "visibility_for",
    "work_message",
]
