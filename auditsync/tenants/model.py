"""One tenant: a vendor account (or a set of them) collected into its own destination.

A tenant holds setting *overrides*, never secrets: its tokens are Key Vault secret names
(``KEEPER_TOKEN_SECRET``...) read with the deployment's managed identity, so the registry can be read
by anyone who may read the deployment's configuration without exposing a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from auditsync.config import Settings
from auditsync.errors import ConfigError

#: The settings a tenant may set; everything else comes from the deployment. Direct tokens and keys
#: (KEEPER_TOKEN, WORKSPACE_KEY, ...) are deliberately absent: a registry row is not a secret store.
TENANT_SETTINGS: tuple[str, ...] = (
    "SOURCES",
    "KEEPER_BASE_URL",
    "ONEPASSWORD_BASE_URL",
    "ONEPASSWORD_EVENT_TYPES",
    "KEEPER_TOKEN_SECRET",
    "ONEPASSWORD_TOKEN_SECRET",
    "SINK",
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_INGESTION_RULE_ID",
    "WORKSPACE_ID",
    "WORKSPACE_KEY_SECRET",
    "DATA_COLLECTOR_URL",
    "INITIAL_LOOKBACK",
)

#: Deployment settings a tenant never inherits: they would hand one tenant's token to every tenant.
_NOT_INHERITED = ("KEEPER_TOKEN", "ONEPASSWORD_TOKEN", "WORKSPACE_KEY")

#: Lowercase, digits and dashes: safe as a Table RowKey, a queue message field, a checkpoint key
#: prefix and a KQL value, and readable in the health table.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


@dataclass(frozen=True)
class Tenant:
    """A tenant as stored in the registry."""

    name: str
    settings: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        problems = tenant_problems(self.name, self.settings)
        if problems:
            raise ConfigError(
                f"tenant {self.name!r}: " + " | ".join(problems),
                hint="Fix the tenant with `python -m auditsync tenants add NAME --set SETTING=VALUE ...`.",
                problems=problems,
            )
        object.__setattr__(self, "settings", dict(sorted(self.settings.items())))


def tenant_problems(name: str, settings: Mapping[str, str]) -> list[str]:
    """What is wrong with a tenant's name and setting names (values are checked by ``settings_for``)."""
    problems = []
    if not _NAME.match(name):
        problems.append(
            "name must be 1-40 lowercase letters, digits or dashes, not starting or ending with a dash"
        )
    for key in settings:
        if key in _NOT_INHERITED:
            problems.append(
                f"{key} cannot be a tenant setting: store the value in Key Vault and set {key}_SECRET instead"
            )
        elif key not in TENANT_SETTINGS:
            problems.append(f"{key} is not a tenant setting; use any of {', '.join(TENANT_SETTINGS)}")
    return problems


def settings_for(tenant: Tenant, env: Mapping[str, str]) -> Settings:
    """The deployment's settings with the tenant's layered on top, validated as a whole.

    Raises ConfigError naming the tenant, so one bad tenant is reported as that tenant's problem.
    """
    layered = {k: v for k, v in env.items() if k not in _NOT_INHERITED}
    layered.update(tenant.settings)
    try:
        return Settings.from_env(layered)
    except ConfigError as error:
        raise ConfigError(
            f"tenant {tenant.name}: {error}",
            hint="Fix the tenant's settings (`python -m auditsync tenants list` shows them) or the "
            "deployment's settings they build on.",
            problems=[f"tenant {tenant.name}: {p}" for p in error.problems],
        ) from None
