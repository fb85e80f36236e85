"""Reading the settings from the environment: every value validated up front, every problem reported
at once, each naming the setting and what to do, so an operator fixes a deployment in one pass instead
of one error per restart."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from auditsync.config.catalog import (
    CHECKPOINT_STORES,
    DURATION_RANGES,
    KEEPER_HOSTS,
    KNOWN_SOURCES,
    ONEPASSWORD_EVENT_TYPES,
    ONEPASSWORD_HOSTS,
    SETTINGS,
    SINKS,
    TENANT_REGISTRIES,
)
from auditsync.config.parts import (
    DataCollectorSettings,
    FanoutSettings,
    KeeperSettings,
    LogsIngestionSettings,
    OnePasswordSettings,
    SecretRef,
    SinkSettings,
    StoreSettings,
)
from auditsync.durations import DURATION, format_duration, parse_duration
from auditsync.errors import ConfigError
from auditsync.hostjson import HOST_JSON, host_function_timeout
from auditsync.redaction import redact, register
from auditsync.schedule import schedule_problem
from auditsync.secret_values import connection_string_secrets, secret_value_problem
from auditsync.urls import is_loopback_host

_NAMES = {"keeper": "Keeper", "onepassword": "1Password"}
#: A run must leave the Functions host this much of functionTimeout for the heartbeat and the last save.
HEARTBEAT_ROOM = timedelta(minutes=1)

_KV_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(", re.IGNORECASE)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DCR_ID = re.compile(r"^dcr-[0-9a-f]{32}$")
#: Azure Table names: 3-63 letters and digits, starting with a letter.
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


class Parser:
    """Collects problems instead of stopping at the first one; ``problems`` is empty when all is well."""

    def __init__(
        self,
        env: Mapping[str, str],
        host_json: Path = HOST_JSON,
        *,
        require_tokens: bool = True,
        catalog: Mapping[str, tuple[str, str]] = SETTINGS,
    ) -> None:
        self.env = env
        self.host_json = host_json
        #: Names, defaults and meanings of the settings read (the app's; a command may bring its own).
        self.catalog = catalog
        self.require_tokens = require_tokens
        self.problems: list[str] = []
        self.unresolved: set[str] = set()

    def fail_if_problems(self) -> None:
        if self.problems:
            raise ConfigError(
                f"{len(self.problems)} setting problem(s): " + " | ".join(self.problems),
                hint="Fix the settings named above (Function App > Configuration, or your environment).",
                problems=self.problems,
            )

    # -- single values -------------------------------------------------------------------------------

    def raw(self, name: str) -> str:
        value = self.env.get(name)
        if value is None or not value.strip():
            return self.catalog[name][0]
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
                f"{name}: unknown value(s) {echo(', '.join(unknown))}; use any of {', '.join(allowed)}."
            )
        if not items:
            self.problems.append(f"{name}: empty; use one or more of {', '.join(allowed)}.")
        return tuple(i for i in items if i in allowed)

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(name).lower()
        if value not in allowed:
            self.problems.append(f"{name}: '{echo(value)}' is not one of {', '.join(allowed)}.")
        return value

    def duration(self, name: str, longest: timedelta | None = None, why: str = "") -> timedelta:
        """A duration within ``DURATION_RANGES[name]`` (``longest`` may tighten the upper limit)."""
        text = self.raw(name)
        low, high = DURATION_RANGES[name]
        if longest is not None and longest < high:
            high = longest
        limits = f"from {format_duration(low)} to {format_duration(high)}"
        default = parse_duration(self.catalog[name][0])
        try:
            value = parse_duration(text)
        except ValueError:
            if DURATION.match(text.strip().lower()):
                self.problems.append(f"{name}: '{echo(text)}' is out of range; use {limits}{why}.")
            else:
                self.problems.append(
                    f"{name}: '{echo(text)}' is not a duration; write it like 30s, 8m, 1h30m or 2d."
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
            self.problems.append(f"host.json: {echo(str(exc), 120)}; fix the app's host.json.")
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
        problem, fix = secret_value_problem(value)
        if problem:
            self.problems.append(f"{name}: {problem}; {fix}.")
        return value

    def secret_name(self, name: str) -> str:
        value = self.raw(name)
        if value and not _SECRET_NAME.match(value):
            # Not echoed: a token pasted here by mistake would end up in the log.
            self.problems.append(
                f"{name}: not a Key Vault secret name (1-127 letters, digits and -); it names the "
                "secret, it does not hold the token."
            )
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
            self.problems.append(f"{name}: '{echo(value)}' is not true or false.")
        return value in ("true", "1", "yes")

    def url(
        self,
        name: str,
        *,
        required: bool = False,
        hosts: tuple[str, ...] = (),
        allow_custom: bool = True,
        custom_setting: bool = True,
        origin_only: bool = False,
    ) -> str:
        """An https URL (http for loopback stand-ins), never with credentials or a query; ``hosts`` lists
        the hosts allowed unless ``allow_custom``; ``origin_only`` refuses a path too."""
        value = self.raw(name).rstrip("/")
        if not value:
            if required:
                self.problems.append(f"{name}: missing; set it to an https URL.")
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            self.problems.append(f"{name}: '{echo(value)}' is not a URL; use https://host.")
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
                f"{name}: '{parts.hostname}' is not a known host; use one of {', '.join(hosts)}"
                + (
                    " (or set ALLOW_CUSTOM_VENDOR_HOSTS=true if you really mean it)."
                    if custom_setting
                    else "."
                )
            )
        if origin_only and parts.path.strip("/"):
            self.problems.append(f"{name}: must be the endpoint alone (https://host), without a path.")
        return value

    def table_name(self, name: str) -> str:
        value = self.raw(name)
        if not TABLE_NAME.match(value):
            self.problems.append(
                f"{name}: '{echo(value)}' must be 3-63 letters and digits, starting with a letter."
            )
        return value

    # -- the parts -----------------------------------------------------------------------------------

    def token(
        self, source: str, enabled: bool, key_vault_url: str, sources: tuple[str, ...] = ()
    ) -> SecretRef:
        setting = f"{source.upper()}_TOKEN"
        ref = SecretRef(
            setting, f"{setting}_SECRET", self.secret_name(f"{setting}_SECRET"), self.secret(setting)
        )
        if (
            self.require_tokens
            and enabled
            and not ref.value
            and not key_vault_url
            and setting not in self.unresolved
        ):
            others = [other for other in sources if other != source]
            self.problems.append(
                f"{setting}: no {_NAMES[source]} token; set KEY_VAULT_URL (the token is read from the secret "
                f"named by {ref.secret_setting}) or, for local runs, {setting}"
                + (f"; or leave {source} out: SOURCES={','.join(others)}." if others else ".")
            )
        return ref

    def keeper(
        self, sources: tuple[str, ...], key_vault_url: str, allow_custom: bool, lookback: timedelta
    ) -> KeeperSettings:
        enabled = "keeper" in sources
        return KeeperSettings(
            base_url=self.url("KEEPER_BASE_URL", hosts=KEEPER_HOSTS, allow_custom=allow_custom),
            token=self.token("keeper", enabled, key_vault_url, sources),
            lag=self.duration("KEEPER_LAG"),
            overlap=self.duration("KEEPER_OVERLAP"),
            initial_lookback=lookback,
        )

    def onepassword(
        self, sources: tuple[str, ...], key_vault_url: str, allow_custom: bool, lookback: timedelta
    ) -> OnePasswordSettings:
        enabled = "onepassword" in sources
        return OnePasswordSettings(
            base_url=self.url("ONEPASSWORD_BASE_URL", hosts=ONEPASSWORD_HOSTS, allow_custom=allow_custom),
            event_types=self.listing("ONEPASSWORD_EVENT_TYPES", ONEPASSWORD_EVENT_TYPES),
            token=self.token("onepassword", enabled, key_vault_url, sources),
            initial_lookback=lookback,
        )

    def sink(self, data_dir: Path, key_vault_url: str) -> SinkSettings:
        kind = self.choice("SINK", SINKS)
        endpoint = self.url("LOGS_INGESTION_ENDPOINT")
        if kind == "logs_ingestion" and not endpoint and "LOGS_INGESTION_ENDPOINT" not in self.unresolved:
            self.problems.append(
                "LOGS_INGESTION_ENDPOINT: missing; copy the deployment output 'logsIngestionEndpoint' "
                "(Resource group > Deployments > the auditsync deployment > Outputs), or the DCR's "
                "JSON view: properties.endpoints.logsIngestion."
            )
        rule_id = self.raw("LOGS_INGESTION_RULE_ID")
        if kind == "logs_ingestion" and not _DCR_ID.match(rule_id):
            self.problems.append(
                "LOGS_INGESTION_RULE_ID: "
                + ("missing" if not rule_id else f"'{echo(rule_id)}' is not a DCR immutable id")
                + "; copy the deployment output 'dcrImmutableId', or the DCR's immutableId (dcr- followed by "
                "32 hex digits) from its JSON view."
            )
        audience = self.url("LOGS_INGESTION_AUDIENCE")
        workspace_id = self.raw("WORKSPACE_ID")
        key = SecretRef(
            "WORKSPACE_KEY",
            "WORKSPACE_KEY_SECRET",
            self.secret_name("WORKSPACE_KEY_SECRET"),
            self.secret("WORKSPACE_KEY"),
        )
        url = self.url("DATA_COLLECTOR_URL")
        if kind == "data_collector":
            if not _GUID.match(workspace_id):
                self.problems.append(
                    "WORKSPACE_ID: "
                    + ("missing" if not workspace_id else "not a workspace id (GUID)")
                    + "; copy it from the workspace's Agents page."
                )
            if key.value:
                try:
                    base64.b64decode(key.value, validate=True)
                except (binascii.Error, ValueError):
                    self.problems.append(
                        "WORKSPACE_KEY: not a base64 shared key; copy the primary key again."
                    )
            elif not (key_vault_url and key.secret_name):
                self.problems.append(
                    "WORKSPACE_KEY_SECRET: no workspace key; set KEY_VAULT_URL and WORKSPACE_KEY_SECRET "
                    "(or, for local runs, WORKSPACE_KEY)."
                )
        return SinkSettings(
            kind=kind,
            directory=data_dir / "tables",
            logs_ingestion=LogsIngestionSettings(endpoint, rule_id, audience),
            data_collector=DataCollectorSettings(
                workspace_id,
                key,
                url or (f"https://{workspace_id}.ods.opinsights.azure.com" if workspace_id else ""),
            ),
        )

    def store(self, data_dir: Path) -> StoreSettings:
        kind = self.choice("CHECKPOINT_STORE", CHECKPOINT_STORES)
        table_url = self.url("CHECKPOINT_TABLE_URL")
        connection_string = self.raw("CHECKPOINT_CONNECTION_STRING")
        register(*connection_string_secrets(connection_string))
        table = self.table_name("CHECKPOINT_TABLE") if kind == "table" else self.raw("CHECKPOINT_TABLE")
        if kind == "table" and not table_url and not connection_string:
            self.problems.append(
                "CHECKPOINT_TABLE_URL: missing; set it to https://<account>.table.core.windows.net "
                "(or CHECKPOINT_CONNECTION_STRING for Azurite)."
            )
        return StoreSettings(kind, data_dir / "checkpoints", table_url, connection_string, table)

    def fanout(self, data_dir: Path, store: StoreSettings) -> FanoutSettings:
        registry = self.choice("TENANT_REGISTRY", TENANT_REGISTRIES)
        tenant_table = self.raw("TENANT_TABLE")
        queue = self.raw("WORK_QUEUE")
        queue_url = self.url("WORK_QUEUE_URL")
        queue_connection = self.raw("WORK_QUEUE_CONNECTION_STRING")
        register(*connection_string_secrets(queue_connection))
        if registry == "table":
            if not store.table_url and not store.connection_string:
                self.problems.append(
                    "TENANT_REGISTRY: 'table' keeps tenants in the checkpoint storage account; set "
                    "CHECKPOINT_TABLE_URL (or CHECKPOINT_CONNECTION_STRING for Azurite)."
                )
            tenant_table = self.table_name("TENANT_TABLE")
        if registry != "none":
            if not _QUEUE_NAME.match(queue) or "--" in queue:
                self.problems.append(
                    f"WORK_QUEUE: '{echo(queue)}' must be 3-63 lowercase letters, digits and single dashes."
                )
            if not (queue_url or queue_connection or store.table_url):
                self.problems.append(
                    "WORK_QUEUE_URL: missing; set it to https://<account>.queue.core.windows.net (or "
                    "CHECKPOINT_TABLE_URL, whose account is used, or WORK_QUEUE_CONNECTION_STRING for Azurite)."
                )
        if not queue_url and store.table_url:
            # The checkpoint account's queue endpoint: same account, sibling service.
            queue_url = store.table_url.replace(".table.", ".queue.", 1)
        return FanoutSettings(
            registry=registry,
            registry_file=data_dir / "tenants.json",
            tenant_table=tenant_table,
            table_url=store.table_url,
            table_connection_string=store.connection_string,
            queue=queue,
            queue_url=queue_url,
            queue_connection_string=queue_connection,
            log_export=self.flag("TENANT_LOG_EXPORT"),
        )


def echo(value: str, limit: int = 60) -> str:
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


__all__ = ["HEARTBEAT_ROOM", "KNOWN_SOURCES", "TABLE_NAME", "Parser", "echo"]
