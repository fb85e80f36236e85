"""What a rule scenario is: raw vendor events (as the vendors send them), heartbeats, Key Vault audit
records and watchlist items, for one case that must fire and one benign case that must stay quiet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from auditsync.model import StreamReport

JSON = dict[str, Any]


@dataclass(frozen=True)
class KeyVaultRecord:
    """One Key Vault audit log record (category AuditEvent), the fields the parser reads."""

    time: datetime
    operation: str
    caller_object_id: str = ""
    caller_app_id: str = ""
    caller_upn: str = ""
    caller_ip: str = ""
    secret: str = ""
    status: int = 200
    result: str = "Success"
    client_info: str = "azsdk-python-keyvault-secrets/4.9.0 Python/3.11.9 (Linux)"


@dataclass(frozen=True)
class Case:
    """One stretch of activity. ``onepassword`` maps an event type (auditevents, itemusages,
    signinattempts) to raw events; ``heartbeats`` are the reports of collector runs ending at the time
    given; ``watchlists`` maps an alias to its items (the search key column among them)."""

    story: str
    onepassword: dict[str, list[JSON]] = field(default_factory=dict)
    keeper: list[JSON] = field(default_factory=list)
    heartbeats: list[tuple[datetime, list[StreamReport]]] = field(default_factory=list)
    keyvault: list[KeyVaultRecord] = field(default_factory=list)
    watchlists: dict[str, list[JSON]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """For a rule (its file stem) or a hunting query (``hunting/<stem>``): the case that must return rows
    and, for a rule, the benign case of the same event kinds that must return none."""

    name: str
    fires: Case
    quiet: Case | None = None


Builder = Callable[[datetime], Scenario]
REGISTRY: dict[str, Builder] = {}


def scenario(name: str) -> Callable[[Callable[[datetime], tuple[Case, Case | None]]], Builder]:
    """Register ``build(now) -> (fires, quiet)`` as the scenario of rule ``name`` (file stem)."""

    def register(build: Callable[[datetime], tuple[Case, Case | None]]) -> Builder:
        def builder(now: datetime) -> Scenario:
            fires, quiet = build(now)
            return Scenario(name, fires, quiet)

        if name in REGISTRY:
            raise ValueError(f"two scenarios for {name}")
        REGISTRY[name] = builder
        return builder

    return register
