"""Azure Functions entry point: a thin adapter from the triggers to auditsync.

Single tenant (no TENANT_REGISTRY): the timer runs ``run_cycle``. The invocation fails (after every
stream ran and the heartbeat was sent) when any stream ended in error, so the portal's failure count
tells the truth.

Many tenants (TENANT_REGISTRY=table): the timer only dispatches one work item per (tenant, stream) to
the WORK_QUEUE; ``work`` (queue trigger, scaled out by the host by queue length) collects one item;
``poisoned`` reports an item that failed ``maxDequeueCount`` times (host.json) as an ``error`` health
row of its tenant and stream.

Whatever goes wrong, an invocation ends with one classified, redacted line (CollectionFailed), never
with another exception's traceback; every log record of the process, the host's included, is redacted
from the moment this module is imported.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from typing import Any

import azure.functions as func

# What indexing needs, and no more: the worker imports this module to list the functions, so the
# settings' defaults, the schedule check and log redaction are imported here; the collection code
# (runner, sources, sinks, the fan-out and their SDKs) is imported by the first invocation that
# uses it (docs/benchmarks.md, "Cold import").
from auditsync.config import SETTINGS, Settings
from auditsync.errors import AuditSyncError, ConfigError
from auditsync.fanout.queue import MAX_DEQUEUE_COUNT, poison_queue_name
from auditsync.redaction import install_log_redaction
from auditsync.schedule import schedule_problem
from auditsync.telemetry import quiet_sdk_loggers

install_log_redaction()

log = logging.getLogger("auditsync.function")
#: The worker forwards every INFO record to Application Insights: keep the SDKs' header dumps out.
quiet_sdk_loggers()

app = func.FunctionApp()

#: Read once at indexing time: the host builds the trigger from this value. A schedule the host would
#: refuse would keep the function from being indexed at all (it never runs, nothing is logged), so the
#: default is used instead and every run fails with the TIMER_SCHEDULE problem, visible in the portal.
SCHEDULE = " ".join(os.environ.get("TIMER_SCHEDULE", "").split()) or SETTINGS["TIMER_SCHEDULE"][0]
if schedule_problem(SCHEDULE):
    log.error(
        "TIMER_SCHEDULE: %s; running on the default schedule until it is fixed", schedule_problem(SCHEDULE)
    )
    SCHEDULE = SETTINGS["TIMER_SCHEDULE"][0]
WORK_QUEUE = os.environ.get("WORK_QUEUE", "").strip() or SETTINGS["WORK_QUEUE"][0]
#: The queue triggers use the host's own storage connection (identity-based in Azure: the same account
#: that holds the checkpoints, with Storage Queue Data Contributor; Azurite locally).
QUEUE_CONNECTION = "AzureWebJobsStorage"


@functools.cache
def _credential() -> Any:
    """One managed-identity credential per worker process: its tokens are cached across work items."""
    from auditsync.secrets import default_credential

    return default_credential()


class CollectionFailed(RuntimeError):
    """Raised at the end of an invocation in which at least one stream failed."""


@app.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def collect(timer: func.TimerRequest) -> None:
    """Run one collection cycle."""
    try:
        _collect(timer)
    except CollectionFailed:
        raise
    except Exception as error:  # the last resort: one classified, redacted line
        from auditsync.cli import crash_line

        line = crash_line("timer run", error)
        log.error("%s", line)
        raise CollectionFailed(line) from None


def _collect(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("timer is past due: a tick was missed; this run catches up from the checkpoints")
    settings = _settings()
    if settings.multi_tenant:
        _dispatch(settings)
        return
    from auditsync.runner import run_cycle

    report = run_cycle(settings)
    failed = [r for r in report.reports if r.status == "error"]
    if failed or report.heartbeat_error:
        names = ", ".join(f"{r.stream} ({r.error_kind})" for r in failed)
        raise CollectionFailed(
            f"run {report.run_id}: "
            + (f"{len(failed)} stream(s) failed: {names}" if failed else "")
            + (f"; heartbeat not sent: {report.heartbeat_error}" if report.heartbeat_error else "")
        )


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        for problem in error.problems:
            log.error("setting problem: %s", problem)
        raise CollectionFailed(f"{len(error.problems)} setting problem(s); see the log lines above") from None


def _dispatch(settings: Settings) -> None:
    """Enqueue every enabled tenant's streams; fail the invocation (after the others) for a bad tenant."""
    from auditsync.fanout.deployment import dispatch_tick
    from auditsync.model import Clock

    run_id = uuid.uuid4().hex[:12]
    try:
        report = dispatch_tick(
            settings, os.environ, now=Clock().now(), run_id=run_id, credential_factory=_credential
        )
    except AuditSyncError as error:
        log.error("dispatch failed: %s (hint: %s)", error, error.hint)
        raise CollectionFailed(f"dispatch {run_id}: {error}") from None
    if report.failed:
        raise CollectionFailed(
            f"dispatch {run_id}: {len(report.enqueued)} work items enqueued; tenant(s) not dispatched: "
            + ", ".join(f"{name} ({error.kind})" for name, error in sorted(report.failed.items()))
        )


@app.queue_trigger(arg_name="message", queue_name=WORK_QUEUE, connection=QUEUE_CONNECTION)
def work(message: func.QueueMessage) -> None:
    """Collect one (tenant, stream). Raises only when a retry is warranted (see auditsync.fanout.worker)."""
    from auditsync.app_insights import exported
    from auditsync.fanout.deployment import work_message

    settings = _settings()
    with exported(settings.fanout.log_export, os.environ, _credential):
        work_message(message.get_body().decode("utf-8"), settings, os.environ, credential_factory=_credential)


@app.queue_trigger(arg_name="message", queue_name=poison_queue_name(WORK_QUEUE), connection=QUEUE_CONNECTION)
def poisoned(message: func.QueueMessage) -> None:
    """Report a work item that failed maxDequeueCount times as an ``error`` health row, never drop it."""
    from auditsync.app_insights import exported
    from auditsync.fanout.deployment import report_poison

    # The message failed maxDequeueCount times on the work queue (its count here is the poison queue's).
    settings = _settings()
    with exported(settings.fanout.log_export, os.environ, _credential):
        where = report_poison(
            message.get_body().decode("utf-8"),
            MAX_DEQUEUE_COUNT,
            settings,
            os.environ,
            credential_factory=_credential,
        )
    log.warning("poisoned work item reported to the %s destination", where)
