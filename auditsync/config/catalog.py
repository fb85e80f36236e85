"""Every setting the code reads, written once: its name, its default ("" = none) and what it means.

The parts' defaults (auditsync.config.parts), the parser, README, local.settings.sample.json and the
infra templates all take them from here (the last three are tested against this table).
"""

from __future__ import annotations

from datetime import timedelta

from auditsync.durations import parse_duration

KNOWN_SOURCES = ("keeper", "onepassword")
ONEPASSWORD_EVENT_TYPES = ("auditevents", "itemusages", "signinattempts")
SINKS = ("logs_ingestion", "data_collector", "file")
CHECKPOINT_STORES = ("table", "file")
TENANT_REGISTRIES = ("none", "file", "table")

ONEPASSWORD_HOSTS = (
    "events.1password.com",
    "events.ent.1password.com",
    "events.1password.ca",
    "events.1password.eu",
)
KEEPER_HOSTS = (
    "keepersecurity.com",
    "keepersecurity.eu",
    "keepersecurity.com.au",
    "keepersecurity.ca",
    "keepersecurity.jp",
    "govcloud.keepersecurity.us",
)

SETTINGS: dict[str, tuple[str, str]] = {
    "SOURCES": (",".join(KNOWN_SOURCES), "enabled sources"),
    "KEEPER_BASE_URL": ("https://keepersecurity.com", "Keeper region host"),
    "ONEPASSWORD_BASE_URL": ("https://events.1password.com", "1Password events host"),
    "ONEPASSWORD_EVENT_TYPES": (",".join(ONEPASSWORD_EVENT_TYPES), "1Password streams"),
    "ALLOW_CUSTOM_VENDOR_HOSTS": ("false", "accept vendor base URLs outside the known hosts"),
    "KEY_VAULT_URL": ("", "Key Vault holding the tokens, read with the managed identity"),
    "KEEPER_TOKEN_SECRET": ("keeper-api-token", "Key Vault secret name of the Keeper token"),
    "ONEPASSWORD_TOKEN_SECRET": ("onepassword-api-token", "Key Vault secret name of the 1Password token"),
    "KEEPER_TOKEN": ("", "Keeper token given directly (local runs without Key Vault)"),
    "ONEPASSWORD_TOKEN": ("", "1Password token given directly (local runs without Key Vault)"),
    "KEEPER_LAG": ("5m", "Keeper: do not read events younger than this (late-arrival margin)"),
    "KEEPER_OVERLAP": ("15m", "Keeper: re-read this much before the watermark (deduplicated)"),
    "SINK": ("file", "logs_ingestion, data_collector or file"),
    "LOGS_INGESTION_ENDPOINT": ("", "DCE or DCR logs ingestion endpoint URL"),
    "LOGS_INGESTION_RULE_ID": ("", "DCR immutable id (dcr-...)"),
    "LOGS_INGESTION_AUDIENCE": ("https://monitor.azure.com", "token audience (sovereign clouds)"),
    "WORKSPACE_ID": ("", "Log Analytics workspace id (legacy Data Collector)"),
    "WORKSPACE_KEY": ("", "workspace shared key given directly (local runs)"),
    "WORKSPACE_KEY_SECRET": ("", "Key Vault secret name of the workspace shared key"),
    "DATA_COLLECTOR_URL": ("", "override of https://{WORKSPACE_ID}.ods.opinsights.azure.com"),
    "CHECKPOINT_STORE": ("file", "table or file"),
    "CHECKPOINT_TABLE_URL": ("", "Table service URL, used with the managed identity"),
    "CHECKPOINT_CONNECTION_STRING": ("", "Table connection string (Azurite, local runs)"),
    "CHECKPOINT_TABLE": ("auditsynccheckpoints", "checkpoint table name"),
    "AUDITSYNC_DATA_DIR": (".auditsync", "where the file sink and file checkpoints live"),
    "INITIAL_LOOKBACK": ("1d", "history pulled by a stream's first run"),
    "RUN_TIME_BUDGET": ("8m", "a run stops by itself after this, checkpoint saved"),
    "TIMER_SCHEDULE": ("0 */5 * * * *", "NCRONTAB schedule of the timer function (UTC)"),
    "TENANT_REGISTRY": (
        "none",
        "none (single tenant), file or table: where the tenants of a deployment live",
    ),
    "TENANT_TABLE": ("auditsynctenants", "tenant table name (in the checkpoint storage account)"),
    "WORK_QUEUE": ("auditsync-work", "Storage queue of (tenant, stream) work items"),
    "WORK_QUEUE_URL": ("", "Queue service URL (default: the checkpoint account's queue endpoint)"),
    "WORK_QUEUE_CONNECTION_STRING": ("", "Queue connection string (Azurite, local runs)"),
    "TENANT_LOG_EXPORT": (
        "false",
        "queue functions: also send a tenant's log lines to Application Insights, tenant and stream as "
        "custom dimensions",
    ),
}

#: Limits of every duration setting: (shortest, longest). Beyond them a value is a mistake, and past
#: about 2.7 million years Python's datetime arithmetic overflows.
DURATION_RANGES: dict[str, tuple[timedelta, timedelta]] = {
    # The run stops 5 s before its deadline to save; 10 s leaves 5 s for pages (at 5 s Keeper reads nothing).
    # Above an hour a crashed run's streams stay leased (budget + 2 minutes) longer than repeating runs costs.
    "RUN_TIME_BUDGET": (timedelta(seconds=10), timedelta(hours=1)),
    # 1Password serves 120 days (longer is clamped with a log line); Keeper documents no limit.
    "INITIAL_LOOKBACK": (timedelta(minutes=1), timedelta(days=3650)),
    # Events are held back this long for late arrivals; more than 6 hours defeats a SIEM.
    "KEEPER_LAG": (timedelta(0), timedelta(hours=6)),
    # Re-read every run; more than 6 hours only re-reads what was delivered. Zero would miss every late
    # event; seconds are for tests and stand-ins (the default 15m is what a tenant wants).
    "KEEPER_OVERLAP": (timedelta(seconds=1), timedelta(hours=6)),
}


def default(name: str) -> str:
    """The default text of a setting."""
    return SETTINGS[name][0]


def default_duration(name: str) -> timedelta:
    return parse_duration(default(name))


def default_list(name: str) -> tuple[str, ...]:
    return tuple(part for part in default(name).split(",") if part)
