"""Settings: one frozen dataclass read from the environment (= Function App settings).

Everything is validated up front and every problem is reported at once, each naming the setting and
what to do, so an operator fixes the deployment in one pass instead of one error per restart.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from auditsync.azure_storage import TABLE_NAME, connection_string_secrets
from auditsync.errors import ConfigError
from auditsync.redaction import redact, register
from auditsync.schedule import schedule_problem

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

#: Every setting the code reads, with its default ("" = none) and a one-line meaning. README,
#: local.settings.sample.json and the infra templates are tested against this table.
SETTINGS: dict[str, tuple[str, str]] = {
    "SOURCES": ("keeper,onepassword", "enabled sources"),
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
}

#: The app's host.json (next to the auditsync package, as deployed and in the repository).
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
#: A run must leave the Functions host this much of functionTimeout for the heartbeat and the last save.
HEARTBEAT_ROOM = timedelta(minutes=1)
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

_KV_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(", re.IGNORECASE)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DCR_ID = re.compile(r"^dcr-[0-9a-f]{32}$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``8m``, ``1h30m``, ``2d``. Raises ValueError on anything else (overflow included)."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(text)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(text) from None


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration`` for messages: ``9m``, ``1h30m``, ``20s``, ``0s``."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def secret_value_problem(value: str) -> str:
    """Why a token or key (already stripped of surrounding whitespace) cannot be sent, or "".

    Never quotes the value. A line break or other control character inside would make requests refuse
    the header (and print it); whitespace inside means two values or a label were pasted together;
    anything outside printable ASCII cannot travel in an HTTP header.
    """
    if any(ch in "\x7f" or ord(ch) < 0x20 for ch in value):
        return "contains a line break or another control character inside the value"
    if any(ch.isspace() for ch in value):
        return "contains whitespace inside the value"
    if not value.isascii():
        return "contains characters outside printable ASCII"
    return ""


def host_function_timeout(path: Path = HOST_JSON) -> timedelta | None:
    """host.json's ``functionTimeout`` (``[d.]hh:mm:ss``); None when the file is absent or the timeout is
    unbounded (``-1``, Premium and Dedicated plans). Raises ValueError when the file or value is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    value = json.loads(text).get("functionTimeout")
    if value is None:
        return timedelta(minutes=5)  # the Consumption plan's default
    if str(value).strip() == "-1":
        return None
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?", str(value).strip())
    if not match:
        raise ValueError(f"functionTimeout {value!r} is not a time span (hh:mm:ss)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def is_loopback_host(host: str | None) -> bool:
    """Loopback hosts are local stand-ins (simulators, Azurite) and may use plain http."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname)


@dataclass(frozen=True)
class Settings:
    """Validated settings. Secret values are excluded from ``repr`` so they cannot reach a log line."""

    sources: tuple[str, ...] = ("keeper", "onepassword")
    keeper_base_url: str = "https://keepersecurity.com"
    onepassword_base_url: str = "https://events.1password.com"
    onepassword_event_types: tuple[str, ...] = ONEPASSWORD_EVENT_TYPES
    allow_custom_vendor_hosts: bool = False
    key_vault_url: str = ""
    keeper_token_secret: str = "keeper-api-token"
    onepassword_token_secret: str = "onepassword-api-token"
    keeper_token: str = field(default="", repr=False)
    onepassword_token: str = field(default="", repr=False)
    keeper_lag: timedelta = timedelta(minutes=5)
    keeper_overlap: timedelta = timedelta(minutes=15)
    sink: str = "file"
    logs_ingestion_endpoint: str = ""
    logs_ingestion_rule_id: str = ""
    logs_ingestion_audience: str = "https://monitor.azure.com"
    workspace_id: str = ""
    workspace_key: str = field(default="", repr=False)
    workspace_key_secret: str = ""
    data_collector_url: str = ""
    checkpoint_store: str = "file"
    checkpoint_table_url: str = ""
    checkpoint_connection_string: str = field(default="", repr=False)
    checkpoint_table: str = "auditsynccheckpoints"
    data_dir: Path = Path(".auditsync")
    initial_lookback: timedelta = timedelta(days=1)
    run_time_budget: timedelta = timedelta(minutes=8)
    timer_schedule: str = "0 */5 * * * *"
    tenant_registry: str = "none"
    tenant_table: str = "auditsynctenants"
    work_queue: str = "auditsync-work"
    work_queue_url: str = ""
    work_queue_connection_string: str = field(default="", repr=False)
    #: Not a setting: the queue worker sets it to the tenant's number of 1Password streams, so each
    #: stream paces itself to that share of the account's rate limit (0: no pacing, single tenant).
    onepassword_rate_share: int = 0

    @property
    def multi_tenant(self) -> bool:
        """A registry is configured: the timer dispatches, queue workers collect."""
        return self.tenant_registry != "none"

    @property
    def effective_work_queue_url(self) -> str:
        """WORK_QUEUE_URL, or the checkpoint account's queue endpoint (same account, sibling service)."""
        if self.work_queue_url:
            return self.work_queue_url
        return self.checkpoint_table_url.replace(".table.", ".queue.", 1) if self.checkpoint_table_url else ""

    @property
    def effective_data_collector_url(self) -> str:
        return self.data_collector_url or f"https://{self.workspace_id}.ods.opinsights.azure.com"

    def secret_values(self) -> list[str]:
        """Every secret held directly in settings, for redaction filters and tests."""
        return [v for v in (self.keeper_token, self.onepassword_token, self.workspace_key) if v] + list(
            connection_string_secrets(
                self.checkpoint_connection_string + ";" + self.work_queue_connection_string
            )
        )

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        host_json: Path = HOST_JSON,
        require_tokens: bool = True,
    ) -> Settings:
        """Read and validate every setting; raise one ConfigError listing all problems.

        ``host_json`` is the app's host.json, read now: RUN_TIME_BUDGET must fit its functionTimeout.
        ``require_tokens=False`` is for commands that never call a vendor (``status``): a missing
        token is then not a problem.
        """
        return _Parser(os.environ if env is None else env, host_json, require_tokens=require_tokens).parse()


class _Parser:
    """Collects problems instead of stopping at the first one."""

    def __init__(
        self, env: Mapping[str, str], host_json: Path = HOST_JSON, *, require_tokens: bool = True
    ) -> None:
        self.env = env
        self.host_json = host_json
        self.require_tokens = require_tokens
        self.problems: list[str] = []
        self.unresolved: set[str] = set()

    def raw(self, name: str) -> str:
        value = self.env.get(name)
        if value is None or not value.strip():
            return SETTINGS[name][0]
        value = value.strip()
        if _KV_REFERENCE.search(value):
            self.problems.append(
                f"{name}: the Key Vault reference was not resolved (the setting still holds "
                "'@Microsoft.KeyVault(...)'). Give the Function App's managed identity the "
                "'Key Vault Secrets User' role on the vault and check the secret URI, then restart the app."
            )
            self.unresolved.add(name)
            return ""
        return value

    def listing(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(p.strip().lower() for p in self.raw(name).split(",") if p.strip()))
        unknown = [i for i in items if i not in allowed]
        if unknown:
            self.problems.append(
                f"{name}: unknown value(s) {_echo(', '.join(unknown))}; use any of {', '.join(allowed)}."
            )
        if not items:
            self.problems.append(f"{name}: empty; use one or more of {', '.join(allowed)}.")
        return tuple(i for i in items if i in allowed)

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(name).lower()
        if value not in allowed:
            self.problems.append(f"{name}: '{_echo(value)}' is not one of {', '.join(allowed)}.")
        return value

    def duration(self, name: str, longest: timedelta | None = None, why: str = "") -> timedelta:
        """A duration within ``DURATION_RANGES[name]`` (``longest`` may tighten the upper limit)."""
        text = self.raw(name)
        low, high = DURATION_RANGES[name]
        if longest is not None and longest < high:
            high = longest
        limits = f"from {format_duration(low)} to {format_duration(high)}"
        default = parse_duration(SETTINGS[name][0])
        try:
            value = parse_duration(text)
        except ValueError:
            if _DURATION.match(text.strip().lower()):
                self.problems.append(f"{name}: '{_echo(text)}' is out of range; use {limits}{why}.")
            else:
                self.problems.append(
                    f"{name}: '{_echo(text)}' is not a duration; write it like 30s, 8m, 1h30m or 2d."
                )
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}: {format_duration(value)} is out of range; use {limits}{why}.")
            return default
        return value

    def run_time_budget(self) -> timedelta:
        """RUN_TIME_BUDGET, which must leave HEARTBEAT_ROOM of host.json's functionTimeout."""
        try:
            timeout = host_function_timeout(self.host_json)
        except (OSError, ValueError) as exc:
            self.problems.append(f"host.json: {_echo(str(exc), 120)}; fix the app's host.json.")
            timeout = None
        if timeout is None:
            return self.duration("RUN_TIME_BUDGET")
        return self.duration(
            "RUN_TIME_BUDGET",
            timeout - HEARTBEAT_ROOM,
            f" (host.json's functionTimeout is {format_duration(timeout)} and the heartbeat needs a minute "
            "after the run)",
        )

    def secret(self, name: str) -> str:
        """A token or key given directly: registered for redaction as soon as it is read, then checked."""
        value = self.raw(name)
        register(value)
        problem = secret_value_problem(value)
        if problem:
            self.problems.append(f"{name}: {problem}; store the secret alone, on one line.")
        return value

    def schedule(self, name: str) -> str:
        value = " ".join(self.raw(name).split())
        problem = schedule_problem(value) if value else ""
        if problem:
            self.problems.append(
                f"{name}: {problem}. The Functions host refuses such a schedule and the timer never fires."
            )
        return value

    def flag(self, name: str) -> bool:
        value = self.raw(name).lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            self.problems.append(f"{name}: '{_echo(value)}' is not true or false.")
        return value in ("true", "1", "yes")

    def url(
        self, name: str, *, required: bool = False, hosts: tuple[str, ...] = (), allow_custom: bool = True
    ) -> str:
        value = self.raw(name).rstrip("/")
        if not value:
            if required:
                self.problems.append(f"{name}: missing; set it to an https URL.")
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            self.problems.append(f"{name}: '{_echo(value)}' is not a URL; use https://host.")
            return value
        loopback = is_loopback_host(parts.hostname)
        if parts.scheme != "https" and not loopback:
            self.problems.append(
                f"{name}: must use https (plain http is accepted only for loopback stand-ins)."
            )
        if parts.query or parts.username or parts.password:
            self.problems.append(f"{name}: must not carry credentials or a query string.")
        if hosts and not loopback and parts.hostname.lower() not in hosts and not allow_custom:
            self.problems.append(
                f"{name}: '{parts.hostname}' is not a known host; use one of {', '.join(hosts)} "
                "(or set ALLOW_CUSTOM_VENDOR_HOSTS=true if you really mean it)."
            )
        return value

    def parse(self) -> Settings:
        allow_custom = self.flag("ALLOW_CUSTOM_VENDOR_HOSTS")
        sources = self.listing("SOURCES", KNOWN_SOURCES)
        event_types = self.listing("ONEPASSWORD_EVENT_TYPES", ONEPASSWORD_EVENT_TYPES)
        keeper_url = self.url("KEEPER_BASE_URL", hosts=KEEPER_HOSTS, allow_custom=allow_custom)
        onepassword_url = self.url("ONEPASSWORD_BASE_URL", hosts=ONEPASSWORD_HOSTS, allow_custom=allow_custom)
        key_vault_url = self.url("KEY_VAULT_URL")
        secret_names = {}
        for name in ("KEEPER_TOKEN_SECRET", "ONEPASSWORD_TOKEN_SECRET", "WORKSPACE_KEY_SECRET"):
            secret_names[name] = self.raw(name)
            if secret_names[name] and not _SECRET_NAME.match(secret_names[name]):
                # Not echoed: a token pasted here by mistake would end up in the log.
                self.problems.append(
                    f"{name}: not a Key Vault secret name (1-127 letters, digits and -); it names the "
                    "secret, it does not hold the token."
                )
        keeper_token = self.secret("KEEPER_TOKEN")
        onepassword_token = self.secret("ONEPASSWORD_TOKEN")
        for source, token, secret, token_name in (
            ("keeper", keeper_token, "KEEPER_TOKEN_SECRET", "KEEPER_TOKEN"),
            ("onepassword", onepassword_token, "ONEPASSWORD_TOKEN_SECRET", "ONEPASSWORD_TOKEN"),
        ):
            if (
                self.require_tokens
                and source in sources
                and not token
                and not key_vault_url
                and token_name not in self.unresolved
            ):
                self.problems.append(
                    f"{token_name}: no {source} token; set KEY_VAULT_URL (the token is read from the secret "
                    f"named by {secret}) or, for local runs, {token_name}."
                )

        sink = self.choice("SINK", SINKS)
        endpoint = self.url("LOGS_INGESTION_ENDPOINT")
        if sink == "logs_ingestion" and not endpoint and "LOGS_INGESTION_ENDPOINT" not in self.unresolved:
            self.problems.append(
                "LOGS_INGESTION_ENDPOINT: missing; copy the deployment output 'logsIngestionEndpoint' "
                "(Resource group > Deployments > the auditsync deployment > Outputs), or the DCR's "
                "JSON view: properties.endpoints.logsIngestion."
            )
        rule_id = self.raw("LOGS_INGESTION_RULE_ID")
        if sink == "logs_ingestion" and not _DCR_ID.match(rule_id):
            self.problems.append(
                "LOGS_INGESTION_RULE_ID: "
                + ("missing" if not rule_id else f"'{_echo(rule_id)}' is not a DCR immutable id")
                + "; copy the deployment output 'dcrImmutableId', or the DCR's immutableId (dcr- followed by "
                "32 hex digits) from its JSON view."
            )
        audience = self.url("LOGS_INGESTION_AUDIENCE")

        workspace_id = self.raw("WORKSPACE_ID")
        workspace_key = self.secret("WORKSPACE_KEY")
        data_collector_url = self.url("DATA_COLLECTOR_URL")
        if sink == "data_collector":
            if not _GUID.match(workspace_id):
                self.problems.append(
                    "WORKSPACE_ID: "
                    + ("missing" if not workspace_id else "not a workspace id (GUID)")
                    + "; copy it from the workspace's Agents page."
                )
            if workspace_key:
                try:
                    base64.b64decode(workspace_key, validate=True)
                except (binascii.Error, ValueError):
                    self.problems.append(
                        "WORKSPACE_KEY: not a base64 shared key; copy the primary key again."
                    )
            elif not (key_vault_url and secret_names["WORKSPACE_KEY_SECRET"]):
                self.problems.append(
                    "WORKSPACE_KEY_SECRET: no workspace key; set KEY_VAULT_URL and WORKSPACE_KEY_SECRET "
                    "(or, for local runs, WORKSPACE_KEY)."
                )

        store = self.choice("CHECKPOINT_STORE", CHECKPOINT_STORES)
        table_url = self.url("CHECKPOINT_TABLE_URL")
        connection_string = self.raw("CHECKPOINT_CONNECTION_STRING")
        register(*connection_string_secrets(connection_string))
        table = self.raw("CHECKPOINT_TABLE")
        if store == "table":
            if not table_url and not connection_string:
                self.problems.append(
                    "CHECKPOINT_TABLE_URL: missing; set it to https://<account>.table.core.windows.net "
                    "(or CHECKPOINT_CONNECTION_STRING for Azurite)."
                )
            if not TABLE_NAME.match(table):
                self.problems.append(
                    f"CHECKPOINT_TABLE: '{_echo(table)}' must be 3-63 letters and digits, starting with a letter."
                )

        registry = self.choice("TENANT_REGISTRY", TENANT_REGISTRIES)
        tenant_table = self.raw("TENANT_TABLE")
        work_queue = self.raw("WORK_QUEUE")
        work_queue_url = self.url("WORK_QUEUE_URL")
        work_queue_connection = self.raw("WORK_QUEUE_CONNECTION_STRING")
        if registry == "table":
            if not table_url and not connection_string:
                self.problems.append(
                    "TENANT_REGISTRY: 'table' keeps tenants in the checkpoint storage account; set "
                    "CHECKPOINT_TABLE_URL (or CHECKPOINT_CONNECTION_STRING for Azurite)."
                )
            if not TABLE_NAME.match(tenant_table):
                self.problems.append(
                    f"TENANT_TABLE: '{tenant_table}' must be 3-63 letters and digits, starting with a letter."
                )
        if registry != "none":
            if not _QUEUE_NAME.match(work_queue) or "--" in work_queue:
                self.problems.append(
                    f"WORK_QUEUE: '{work_queue}' must be 3-63 lowercase letters, digits and single dashes."
                )
            if not (work_queue_url or work_queue_connection or table_url):
                self.problems.append(
                    "WORK_QUEUE_URL: missing; set it to https://<account>.queue.core.windows.net (or "
                    "CHECKPOINT_TABLE_URL, whose account is used, or WORK_QUEUE_CONNECTION_STRING for Azurite)."
                )

        settings = Settings(
            sources=sources,
            keeper_base_url=keeper_url,
            onepassword_base_url=onepassword_url,
            onepassword_event_types=event_types,
            allow_custom_vendor_hosts=allow_custom,
            key_vault_url=key_vault_url,
            keeper_token_secret=secret_names["KEEPER_TOKEN_SECRET"],
            onepassword_token_secret=secret_names["ONEPASSWORD_TOKEN_SECRET"],
            keeper_token=keeper_token,
            onepassword_token=onepassword_token,
            keeper_lag=self.duration("KEEPER_LAG"),
            keeper_overlap=self.duration("KEEPER_OVERLAP"),
            sink=sink,
            logs_ingestion_endpoint=endpoint,
            logs_ingestion_rule_id=rule_id,
            logs_ingestion_audience=audience,
            workspace_id=workspace_id,
            workspace_key=workspace_key,
            workspace_key_secret=secret_names["WORKSPACE_KEY_SECRET"],
            data_collector_url=data_collector_url,
            checkpoint_store=store,
            checkpoint_table_url=table_url,
            checkpoint_connection_string=connection_string,
            checkpoint_table=table,
            data_dir=Path(self.raw("AUDITSYNC_DATA_DIR")),
            initial_lookback=self.duration("INITIAL_LOOKBACK"),
            run_time_budget=self.run_time_budget(),
            timer_schedule=self.schedule("TIMER_SCHEDULE"),
            tenant_registry=registry,
            tenant_table=tenant_table,
            work_queue=work_queue,
            work_queue_url=work_queue_url,
            work_queue_connection_string=work_queue_connection,
        )
        if self.problems:
            raise ConfigError(
                f"{len(self.problems)} setting problem(s): " + " | ".join(self.problems),
                hint="Fix the settings named above (Function App > Configuration, or your environment).",
                problems=self.problems,
            )
        return settings


def _echo(value: str, limit: int = 60) -> str:
    """A setting's value as safe to show in an error: never a query string, fragment or credentials.

    A mistyped URL (with or without its scheme) may carry a SAS signature or a key after ``?`` or
    before ``@``; whatever follows ``?``/``#`` and precedes ``@`` is cut, known secrets are masked and
    the rest is shortened.
    """
    text = re.split(r"[?#]", value, maxsplit=1)[0]
    if "@" in text:
        scheme, sep, rest = text.rpartition("://")
        text = scheme + sep + "***@" + rest.rpartition("@")[2]
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
