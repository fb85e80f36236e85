"""Where rows go: Log Analytics through the Logs Ingestion API, the legacy Data Collector API, or a
local JSON Lines file (the default for local runs)."""

from __future__ import annotations

from auditsync.config import Settings
from auditsync.http import HttpClient
from auditsync.model import Clock, Sink
from auditsync.secrets import CredentialFactory, Secrets


def open_sink(
    settings: Settings,
    *,
    credential_factory: CredentialFactory,
    secrets: Secrets,
    http: HttpClient,
    clock: Clock,
) -> Sink:
    """The sink named by ``settings.sink``. Raises AuditSyncError subclasses when it cannot be set up."""
    if settings.sink == "logs_ingestion":
        from auditsync.sinks.logs_ingestion import LogsIngestionSink

        return LogsIngestionSink(
            settings.logs_ingestion_endpoint,
            settings.logs_ingestion_rule_id,
            credential_factory(),
            audience=settings.logs_ingestion_audience,
            clock=clock,
        )
    if settings.sink == "data_collector":
        from auditsync.sinks.data_collector import DataCollectorSink

        # Logs the retirement warning; the key comes from WORKSPACE_KEY or the Key Vault secret.
        return DataCollectorSink(
            settings.workspace_id,
            secrets.workspace_key(),
            settings.effective_data_collector_url,
            http,
            clock,
        )
    if settings.sink == "file":
        from auditsync.sinks.file import FileSink

        return FileSink(settings.data_dir / "tables")
    raise ValueError(f"sink {settings.sink!r} is not available in this build")
