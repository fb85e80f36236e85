"""The lines of a tenant's work in Application Insights with ``tenant`` (and ``stream``) as custom dimensions.

The Functions worker forwards a log record to the host as its formatted message alone, so the host's
``traces`` rows can name a tenant only in the text ("[tenant NAME] ..."). With TENANT_LOG_EXPORT=true
the queue functions also hand the ``auditsync`` loggers' records made inside a tenant's work (those
with a ``tenant`` attribute, see auditsync.log_context) to Microsoft's OpenTelemetry log exporter,
which sends them to the same Application Insights resource with the record's attributes as
customDimensions, authenticated with the app's managed identity (local auth is off, so there is no
instrumentation-key path). The host's own telemetry (requests, exceptions, its traces) is unchanged.

Redaction runs when a record is made (a log record hook), so the exporter only ever sees scrubbed
text. The exporter is imported by the first queue invocation, never at indexing, and every invocation
ends with a flush bounded by ``FLUSH_SECONDS``: an ingestion endpoint that is down or refuses costs
that at most, and the exporter's own complaint is one line without a traceback. An exporter that cannot
start (a malformed connection string) is one warning an invocation; the collection runs as without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
#: The exporter's side channels that talk to Microsoft's own endpoints (SDK self-telemetry and remote
#: configuration), not to the app's resource: off, so the one destination is the app's resource.
SIDE_CHANNELS_OFF = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}
#: The longest an invocation waits at its end for its lines to leave (one attempt, no retries).
FLUSH_SECONDS = 5.0
#: Which loggers' records are exported (the host keeps getting every record as before).
EXPORTED_LOGGER = "auditsync"


def enabled(wanted: bool, environ: Mapping[str, str]) -> bool:
    """``wanted`` (TENANT_LOG_EXPORT, parsed with the other settings) and the host has a resource to send to."""
    return wanted and bool(environ.get(CONNECTION_SETTING, "").strip())


class _TenantRecords(logging.Filter):
    """Only the records of a tenant's work: the others reach Application Insights through the host alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(getattr(record, "tenant", ""))


@dataclass
class TenantLogExport:
    """One exporter per worker process, attached to the ``auditsync`` logger."""

    provider: Any
    handler: logging.Handler

    def flush(self) -> bool:
        """Send what is pending; give up after ``FLUSH_SECONDS`` (the lines are then lost, not retried)."""
        return bool(self.provider.force_flush(timeout_millis=int(FLUSH_SECONDS * 1000)))

    def close(self) -> None:
        logging.getLogger(EXPORTED_LOGGER).removeHandler(self.handler)
        self.provider.shutdown()


def start(connection_string: str, credential: Any) -> TenantLogExport:
    """Attach an exporter to ``connection_string``'s resource that authenticates with ``credential``."""
    for name, value in SIDE_CHANNELS_OFF.items():
        os.environ.setdefault(name, value)
    from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    exporter = AzureMonitorLogExporter(
        connection_string=connection_string,
        credential=credential,
        disable_offline_storage=True,  # a Flex instance's disk is gone with it; no retry files
        timeout=FLUSH_SECONDS,
        retry_total=0,
    )
    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.NOTSET, logger_provider=provider)
    handler.addFilter(_TenantRecords())
    logging.getLogger(EXPORTED_LOGGER).addHandler(handler)
    return TenantLogExport(provider, handler)


_export: TenantLogExport | None = None


@contextmanager
def exported(
    wanted: bool, environ: Mapping[str, str], credential_factory: Callable[[], Any]
) -> Iterator[None]:
    """Around one invocation: export its tenant lines (starting the exporter once), flush at the end."""
    global _export
    if not enabled(wanted, environ):
        yield
        return
    if _export is None:
        try:
            _export = start(environ[CONNECTION_SETTING].strip(), credential_factory())
        except Exception as exc:  # an add-on: a bad connection string must not cost the collection
            logging.getLogger(__name__).warning(
                "Application Insights: tenant lines are not exported, the exporter could not start "
                "(%s: %s); check %s (they are in the host's traces, named in the text)",
                type(exc).__name__,
                exc,
                CONNECTION_SETTING,
            )
            yield
            return
    try:
        yield
    finally:
        if not _export.flush():
            logging.getLogger(__name__).warning(
                "Application Insights: this invocation's tenant lines were not all sent within %.0f s "
                "(they are in the host's traces, named in the text)",
                FLUSH_SECONDS,
            )


def stop() -> None:
    """Detach and shut down the process's exporter (tests; a worker process keeps it for its life)."""
    global _export
    if _export is not None:
        _export.close()
        _export = None
