"""Settings: read from the environment (= Function App settings), validated once, split by concern.

``Settings`` holds one part per concern (``keeper``, ``onepassword``, ``sink``, ``store``, ``fanout``)
and the few values of the run itself; each layer is handed only its part. Everything is validated up
front and every problem reported at once (auditsync.config.parser); defaults live in one table
(auditsync.config.catalog).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from auditsync.config.catalog import (
    DURATION_RANGES,
    KNOWN_SOURCES,
    ONEPASSWORD_EVENT_TYPES,
    ONEPASSWORD_HOSTS,
    SETTINGS,
    default,
    default_duration,
    default_list,
)
from auditsync.config.parser import HEARTBEAT_ROOM, Parser
from auditsync.config.parts import (
    DataCollectorSettings,
    FanoutSettings,
    KeeperSettings,
    LogsIngestionSettings,
    OnePasswordSettings,
    SecretRef,
    SinkSettings,
    SourceSettings,
    StoreSettings,
)
from auditsync.hostjson import HOST_JSON
from auditsync.secret_values import connection_string_secrets


@dataclass(frozen=True)
class Settings:
    """Validated settings, one part per concern."""

    sources: tuple[str, ...] = default_list("SOURCES")
    keeper: KeeperSettings = KeeperSettings()
    onepassword: OnePasswordSettings = OnePasswordSettings()
    #: The vault holding the tokens and the workspace key, read with the managed identity ("" = none).
    key_vault_url: str = ""
    sink: SinkSettings = SinkSettings()
    store: StoreSettings = StoreSettings()
    fanout: FanoutSettings = FanoutSettings()
    data_dir: Path = Path(default("AUDITSYNC_DATA_DIR"))
    run_time_budget: timedelta = default_duration("RUN_TIME_BUDGET")
    timer_schedule: str = default("TIMER_SCHEDULE")

    @property
    def multi_tenant(self) -> bool:
        """A registry is configured: the timer dispatches, queue workers collect."""
        return self.fanout.enabled

    def source(self, name: str) -> SourceSettings:
        """The part of the source called ``name`` (``keeper`` or ``onepassword``)."""
        if name == "keeper":
            return self.keeper
        if name == "onepassword":
            return self.onepassword
        raise KeyError(name)

    def secret_values(self) -> list[str]:
        """Every secret held directly in settings, for redaction filters and tests."""
        direct = (self.keeper.token.value, self.onepassword.token.value, self.sink.data_collector.key.value)
        return [v for v in direct if v] + list(
            connection_string_secrets(self.store.connection_string)
            + connection_string_secrets(self.fanout.queue_connection_string)
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
        parse = Parser(os.environ if env is None else env, host_json, require_tokens=require_tokens)
        allow_custom = parse.flag("ALLOW_CUSTOM_VENDOR_HOSTS")
        sources = parse.listing("SOURCES", KNOWN_SOURCES)
        key_vault_url = parse.url("KEY_VAULT_URL")
        data_dir = Path(parse.raw("AUDITSYNC_DATA_DIR"))
        lookback = parse.duration("INITIAL_LOOKBACK")
        onepassword = parse.onepassword(sources, key_vault_url, allow_custom, lookback)
        keeper = parse.keeper(sources, key_vault_url, allow_custom, lookback)
        sink = parse.sink(data_dir, key_vault_url)
        store = parse.store(data_dir)
        fanout = parse.fanout(data_dir, store)
        settings = cls(
            sources=sources,
            keeper=keeper,
            onepassword=onepassword,
            key_vault_url=key_vault_url,
            sink=sink,
            store=store,
            fanout=fanout,
            data_dir=data_dir,
            run_time_budget=parse.run_time_budget(),
            timer_schedule=parse.schedule("TIMER_SCHEDULE"),
        )
        parse.fail_if_problems()
        return settings


__all__ = [
    "DURATION_RANGES",
    "HEARTBEAT_ROOM",
    "KNOWN_SOURCES",
    "ONEPASSWORD_EVENT_TYPES",
    "ONEPASSWORD_HOSTS",
    "SETTINGS",
    "DataCollectorSettings",
    "FanoutSettings",
    "KeeperSettings",
    "LogsIngestionSettings",
    "OnePasswordSettings",
    "SecretRef",
    "Settings",
    "SinkSettings",
    "SourceSettings",
    "StoreSettings",
]
