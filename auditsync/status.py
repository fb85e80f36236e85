"""``auditsync status``: every stream's last outcome, read from the checkpoint store only.

No vendor token and no Key Vault read is needed, so status works exactly when an operator needs it
most: after the token was revoked or the vault locked. The token's expiry is the one the last run that
read the token recorded. Every configured stream gets a row (``never`` when it has no checkpoint yet);
backfill progress records are listed after the live streams; the records ``check`` writes (and
normally deletes) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditsync.backfill import RECORD_PREFIX
from auditsync.config import Settings
from auditsync.model import Checkpoint, CheckpointStore
from auditsync.sources import enabled_streams
from auditsync.token_expiry import days_left

_INTERNAL_PREFIX = "auditsync/"


@dataclass(frozen=True)
class StreamStatus:
    stream: str
    status: str
    error_kind: str = ""
    message: str = ""
    hint: str = ""
    last_run: datetime | None = None
    last_success: datetime | None = None
    newest_event_time: datetime | None = None
    total_events: int = 0
    leased_until: datetime | None = None
    backfill: dict[str, Any] | None = None
    #: When the stream's token expires, as the last run that read it knew (None: unknown).
    token_expires_on: datetime | None = None
    #: Whole days from now to ``token_expires_on`` (negative once passed).
    token_days_left: int | None = None

    @property
    def outcome(self) -> str:
        """``ok``, ``idle``, ``behind``, ``error (auth)``, ``never``."""
        text = self.status or "never"
        if self.error_kind:
            text += f" ({self.error_kind})"
        if self.leased_until is not None:
            # a runner holds the stream now (or crashed holding it: the lease frees itself at this time)
            text += f", in progress (leased until {self.leased_until.strftime('%H:%M:%SZ')})"
        return text

    def as_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value else None

        return {
            "stream": self.stream,
            "status": self.status or "never",
            "errorKind": self.error_kind or None,
            "message": self.message or None,
            "hint": self.hint or None,
            "lastRun": when(self.last_run),
            "lastSuccess": when(self.last_success),
            "newestEventTime": when(self.newest_event_time),
            "totalEvents": self.total_events,
            "leasedUntil": when(self.leased_until),
            "tokenExpiresOn": when(self.token_expires_on),
            "tokenDaysLeft": self.token_days_left,
            "backfill": self.backfill,
        }


def read_status(
    settings: Settings,
    credential_factory: Callable[[], Any],
    now: datetime,
    store: CheckpointStore | None = None,
) -> list[StreamStatus]:
    """One StreamStatus per configured stream, then other live streams found, then backfill records."""
    from auditsync.checkpoints import open_store

    store = store or open_store(settings.store, credential_factory)
    checkpoints = {c.stream: c for c in store.list()}
    names = [name for _, name in enabled_streams(settings)]
    others = sorted(n for n in checkpoints if n not in names and not n.startswith(_INTERNAL_PREFIX))
    backfills = sorted(n for n in checkpoints if n.startswith(RECORD_PREFIX))
    rows = [_row(name, checkpoints.get(name), now) for name in names + others]
    rows += [_row(name, checkpoints[name], now, backfill=True) for name in backfills]
    return rows


def _row(name: str, checkpoint: Checkpoint | None, now: datetime, *, backfill: bool = False) -> StreamStatus:
    if checkpoint is None:
        return StreamStatus(name, "")
    leased = checkpoint.lease_until if checkpoint.lease_until and checkpoint.lease_until > now else None
    info = None
    if backfill:
        position = checkpoint.position or {}
        span = position.get("range") or {}
        info = {
            "since": span.get("since"),
            "until": span.get("until"),
            "done": bool(position.get("done")),
            "eventsSent": position.get("events", 0),
        }
    return StreamStatus(
        stream=name,
        status=checkpoint.last_status,
        error_kind=checkpoint.last_error_kind,
        message=checkpoint.last_message,
        hint=checkpoint.last_hint,
        last_run=checkpoint.last_run,
        last_success=checkpoint.last_success,
        newest_event_time=checkpoint.newest_event_time,
        total_events=checkpoint.total_events,
        leased_until=leased,
        backfill=info,
        token_expires_on=checkpoint.token_expires_on,
        token_days_left=days_left(checkpoint.token_expires_on, now) if checkpoint.token_expires_on else None,
    )


@dataclass(frozen=True)
class TenantStatus:
    """One tenant of a registry: its streams' status, or why its settings could not be read."""

    name: str
    enabled: bool
    streams: list[StreamStatus]
    problem: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.name,
            "enabled": self.enabled,
            "problem": self.problem or None,
            "streams": [s.as_json() for s in self.streams],
        }


def read_tenant_status(
    settings: Settings, env: Mapping[str, str], credential_factory: Callable[[], Any], now: datetime
) -> list[TenantStatus]:
    """Every tenant of the registry, each read from its own checkpoints only (a prefix query each)."""
    from auditsync.checkpoints import open_store
    from auditsync.errors import ConfigError
    from auditsync.fanout.deployment import open_registry
    from auditsync.fanout.scoped_store import TenantScopedStore
    from auditsync.tenants import settings_for

    store = open_store(settings.store, credential_factory)
    statuses = []
    for tenant in open_registry(settings.fanout, credential_factory).list():
        try:
            tenant_settings = settings_for(tenant, env)
        except ConfigError as error:
            statuses.append(TenantStatus(tenant.name, tenant.enabled, [], str(error)))
            continue
        streams = read_status(tenant_settings, credential_factory, now, TenantScopedStore(store, tenant.name))
        statuses.append(TenantStatus(tenant.name, tenant.enabled, streams))
    return statuses
