"""StreamReport -> health rows: one AuditSyncHealth_CL row per stream per run, and for 1Password the
``log_source == "healthevents"`` row that 1Password's own Sentinel content expects every run.

ErrorKind is the failure's ``kind`` (``auditsync.errors``): config, auth, credentials (Key Vault or the
managed identity could not be reached), throttled, upstream, sink or checkpoint. Message and hint are
redacted here once more: a health row leaves the process, whatever built it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from auditsync import __version__
from auditsync.model import JSON, STATUS_ERROR, STATUS_SKIPPED, StreamReport
from auditsync.redaction import redact
from auditsync.tables import HEALTH_TABLE, ONEPASSWORD_TABLE, TABLES
from auditsync.tables.rows import format_time, shape_rows

#: What 1Password's content reads from a health row: category and action_type.
_ONEPASSWORD_HEALTH = {
    "auth": ("credentials_failed", "API Key Invalid"),
    "credentials": ("credentials_unavailable", "Key Vault or Managed Identity Unavailable"),
    "config": ("configuration_failed", "Configuration Error"),
    "throttled": ("rate_limited", "Rate Limited"),
    "sink": ("ingestion_failed", "Log Analytics Error"),
    "checkpoint": ("checkpoint_failed", "Checkpoint Error"),
    "upstream": ("api_failed", "API Error"),
}


def health_rows(
    reports: Iterable[StreamReport], *, now: datetime, run_id: str, tenant: str = ""
) -> list[JSON]:
    """Rows for AuditSyncHealth_CL, already in its column names (its transform is ``source``).

    ``tenant`` is the registry's tenant name; a single-tenant deployment leaves it empty.
    """
    rows = []
    for report in reports:
        if report.status == STATUS_SKIPPED:
            continue  # the runner that holds the stream writes its heartbeat
        row: JSON = {
            "TimeGenerated": format_time(now),
            "Source": report.source,
            "Stream": report.stream,
            "Status": report.status,
            "EventsIngested": report.events,
            "Pages": report.pages,
            "DurationMs": report.duration_ms,
            "NewestEventTime": format_time(report.newest_event_time) if report.newest_event_time else None,
            "LagSeconds": report.lag_seconds,
            "ErrorKind": report.error_kind or None,
            "Message": redact(report.message) or None,
            "Hint": redact(report.hint) or None,
            "Details": dict(report.counters) if report.counters else None,
            "Version": __version__,
            "RunId": run_id,
            "TokenExpiresOn": format_time(report.token_expires_on) if report.token_expires_on else None,
            "Tenant": tenant,
        }
        rows.append({k: v for k, v in row.items() if v is not None})
    return rows


def onepassword_health_events(reports: Iterable[StreamReport], *, now: datetime, run_id: str) -> list[JSON]:
    """Raw events for OnePasswordEventLogs_CL with ``log_source = healthevents`` (shaped by the table file)."""
    events = []
    for report in reports:
        if report.source != "onepassword" or report.status == STATUS_SKIPPED:
            continue
        if report.status == STATUS_ERROR:
            category, action_type = _ONEPASSWORD_HEALTH.get(report.error_kind, ("api_failed", "API Error"))
        else:
            category, action_type = "success", "Events Collected"
        events.append(
            {
                "uuid": f"{run_id}-{report.stream.split('/')[-1]}",
                "timestamp": format_time(now),
                "category": category,
                "type": action_type,
                "details": {
                    "value": redact(report.message) or f"{report.events} events",
                    "stream": report.stream,
                    "status": report.status,
                    "events_ingested": report.events,
                },
            }
        )
    return events


def heartbeat_batches(
    reports: list[StreamReport], *, now: datetime, run_id: str, tenant: str = ""
) -> list[tuple[str, list[JSON]]]:
    """Every health row of a run as ``(table, rows)`` to send, shaped by the table files like any event."""
    rows, _ = shape_rows(
        TABLES[HEALTH_TABLE], health_rows(reports, now=now, run_id=run_id, tenant=tenant), now=now
    )
    batches = [(HEALTH_TABLE, rows)]
    events = onepassword_health_events(reports, now=now, run_id=run_id)
    if events:
        shaped, _ = shape_rows(TABLES[ONEPASSWORD_TABLE], events, now=now, event_type="healthevents")
        batches.append((ONEPASSWORD_TABLE, shaped))
    return batches
