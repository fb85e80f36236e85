"""Where rows go: Log Analytics through the Logs Ingestion API, the legacy Data Collector API, or a
local JSON Lines file (the default for local runs)."""

from __future__ import annotations

from auditsync.config import SinkSettings
from auditsync.http import HttpClient
from auditsync.model import Clock, Sink
from auditsync.secrets import CredentialFactory, Secrets


def open_sink(
    settings: SinkSettings,
    *,
    credential_factory: CredentialFactory,
    secrets: Secrets,
    http: HttpClient,
    clock: Clock,
) -> Sink:
    """The sink ``settings.kind`` names. Raises AuditSyncError subclasses when it cannot be set up."""
    if settings.kind == "logs_ingestion":
        from auditsync.sinks.logs_ingestion import LogsIngestionSink

        target = settings.logs_ingestion
        return LogsIngestionSink(
            target.endpoint, target.rule_id, credential_factory(), audience=target.audience, clock=clock
        )
    if settings.kind == "data_collector":
        from auditsync.sinks.data_collector import DataCollectorSink

        # Logs the retirement warning; the key comes from WORKSPACE_KEY or the Key Vault secret.
        workspace = settings.data_collector
        key = secrets.read(workspace.key, what="workspace key")
        return DataCollectorSink(workspace.workspace_id, key, workspace.url, http, clock)
    if settings.kind == "file":
        from auditsync.sinks.file import FileSink

        return FileSink(settings.directory)
    raise ValueError(f"sink {settings.kind!r} is not available in this build")
