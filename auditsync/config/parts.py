"""The settings, one part per concern: each source, the sink, the checkpoint store and the fan-out get
their own part and nothing else. Defaults come from the catalog (auditsync.config.catalog); the parser
(auditsync.config.parser) validates every value before a part is built from the environment.

Secret values are excluded from ``repr`` so a part can never put one in a log line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from auditsync.config.catalog import default, default_duration, default_list


@dataclass(frozen=True)
class SecretRef:
    """A token or key: given directly in ``setting`` (local runs), or read from the Key Vault secret
    named ``secret_name`` (the value of ``secret_setting``). A value given directly wins."""

    setting: str
    secret_setting: str
    secret_name: str = ""
    value: str = field(default="", repr=False)


def _token(source: str) -> SecretRef:
    setting = f"{source.upper()}_TOKEN"
    return SecretRef(setting, f"{setting}_SECRET", default(f"{setting}_SECRET"))


@dataclass(frozen=True)
class KeeperSettings:
    """What the Keeper source reads."""

    base_url: str = default("KEEPER_BASE_URL")
    token: SecretRef = field(default_factory=lambda: _token("keeper"))
    lag: timedelta = default_duration("KEEPER_LAG")
    overlap: timedelta = default_duration("KEEPER_OVERLAP")
    initial_lookback: timedelta = default_duration("INITIAL_LOOKBACK")


@dataclass(frozen=True)
class OnePasswordSettings:
    """What the 1Password source reads."""

    base_url: str = default("ONEPASSWORD_BASE_URL")
    event_types: tuple[str, ...] = default_list("ONEPASSWORD_EVENT_TYPES")
    token: SecretRef = field(default_factory=lambda: _token("onepassword"))
    initial_lookback: timedelta = default_duration("INITIAL_LOOKBACK")
    #: Not settings: the queue worker sets ``rate_share`` to the tenant's number of 1Password streams
    #: (0: no pacing, single tenant) and ``busy_streams`` to a count of those busy now, so each stream
    #: paces itself to its share of the account's rate limit (auditsync.sources.pacing); without the
    #: count, or while it cannot be read, the share is 1/rate_share.
    rate_share: int = 0
    busy_streams: Callable[[], int] | None = field(default=None, compare=False, repr=False)


SourceSettings = KeeperSettings | OnePasswordSettings


@dataclass(frozen=True)
class LogsIngestionSettings:
    endpoint: str = ""
    rule_id: str = ""
    audience: str = default("LOGS_INGESTION_AUDIENCE")


@dataclass(frozen=True)
class DataCollectorSettings:
    workspace_id: str = ""
    key: SecretRef = field(default_factory=lambda: SecretRef("WORKSPACE_KEY", "WORKSPACE_KEY_SECRET"))
    #: DATA_COLLECTOR_URL, else ``https://{workspace_id}.ods.opinsights.azure.com``.
    url: str = ""


@dataclass(frozen=True)
class SinkSettings:
    """Where rows go: ``kind`` is logs_ingestion, data_collector or file (JSON Lines under ``directory``)."""

    kind: str = default("SINK")
    directory: Path = Path(default("AUDITSYNC_DATA_DIR")) / "tables"
    logs_ingestion: LogsIngestionSettings = LogsIngestionSettings()
    data_collector: DataCollectorSettings = DataCollectorSettings()


@dataclass(frozen=True)
class StoreSettings:
    """Where checkpoints live: ``kind`` is table (``table_url`` with the managed identity, or a connection
    string, which wins) or file (one JSON file per stream under ``directory``)."""

    kind: str = default("CHECKPOINT_STORE")
    directory: Path = Path(default("AUDITSYNC_DATA_DIR")) / "checkpoints"
    table_url: str = ""
    connection_string: str = field(default="", repr=False)
    table: str = default("CHECKPOINT_TABLE")


@dataclass(frozen=True)
class FanoutSettings:
    """Many tenants: where the registry lives (``registry`` none, file or table) and the work queue.

    The registry table lives in the checkpoint storage account (``table_url`` / ``connection_string``
    are the store's); the queue too unless WORK_QUEUE_URL names another account.
    """

    registry: str = default("TENANT_REGISTRY")
    registry_file: Path = Path(default("AUDITSYNC_DATA_DIR")) / "tenants.json"
    tenant_table: str = default("TENANT_TABLE")
    table_url: str = ""
    table_connection_string: str = field(default="", repr=False)
    queue: str = default("WORK_QUEUE")
    queue_url: str = ""
    queue_connection_string: str = field(default="", repr=False)
    #: TENANT_LOG_EXPORT (auditsync.app_insights).
    log_export: bool = False

    @property
    def enabled(self) -> bool:
        return self.registry != "none"
