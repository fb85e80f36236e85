"""Raw events as the vendors send them, for scenarios: 1Password Events API v2 objects, Keeper Admin REST
API events, and the Key Vault audit records Azure writes. Names come from the vendors' vocabularies
(simulators/vocabulary); details are filled only where the vendor fills them (1Password: object_details
for a user object, aux_details for a user aux, an invite's address in aux_info, a group role letter in
aux_info)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.onepassword_data import rfc3339_nano
from tools.kql_engine import GeoRange

JSON = dict[str, Any]

#: Where the scenarios' documentation addresses are (the stand-in for geo_info_from_ip_address reads this).
GEO = (
    GeoRange("198.51.100.", "CH", "Zürich", 47.3769, 8.5417),
    GeoRange("203.0.113.", "DE", "München", 48.1351, 11.582),
    GeoRange("192.0.2.", "BR", "São Paulo", -23.55, -46.6333),
)
LOCATIONS = {
    "CH": {"country": "CH", "region": "Zurich", "city": "Zürich", "latitude": 47.3769, "longitude": 8.5417},
    "DE": {"country": "DE", "region": "Bavaria", "city": "München", "latitude": 48.1351, "longitude": 11.582},
    "BR": {
        "country": "BR",
        "region": "São Paulo",
        "city": "São Paulo",
        "latitude": -23.55,
        "longitude": -46.6333,
    },
}


#: The deployment's token vault and the Function App's managed identity (what the templates write into
#: the Key Vault parser).
VAULT_NAME = "kv-auditsync-contoso"
COLLECTOR_PRINCIPAL = "6f1c1e4e-9a8b-4f7e-8a43-2f0d4c1b9e21"


def country_of(ip: str) -> str:
    return next((g.country for g in GEO if ip.startswith(g.prefix)), "CH")


def op_id(seed: str) -> str:
    """A 26-character 1Password-style identifier, stable for a seed."""
    digest = hashlib.sha256(seed.encode()).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "".join(alphabet[b % 32] for b in digest[:26])


@dataclass(frozen=True)
class OpUser:
    name: str
    email: str

    @property
    def uuid(self) -> str:
        return op_id(self.email)

    def details(self) -> JSON:
        return {"uuid": self.uuid, "name": self.name, "email": self.email}


ADA = OpUser("Ada Lovelace", "ada@contoso.example")
BOB = OpUser("Bob Jones", "bob@contoso.example")
CHIDI = OpUser("Chidi Okafor", "chidi@contoso.example")
ZOE = OpUser("Zoë Ångström", "zoe@contoso.example")
STAFF = tuple(OpUser(f"Staff Member {i}", f"staff{i}@contoso.example") for i in range(1, 13))
SCIM = OpUser("SCIM bridge", "scim-bridge@1passwordserviceaccounts.com")

MAC = {
    "app_name": "1Password for Mac",
    "app_version": "81044005",
    "platform_name": "Chrome",
    "platform_version": "120.0.0.0",
    "os_name": "MacOSX",
    "os_version": "14.2",
}
CLI = {
    "app_name": "1Password CLI",
    "app_version": "2030001",
    "platform_name": "Go",
    "platform_version": "1.22",
    "os_name": "Linux",
    "os_version": "6.6",
}


def _stamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return rfc3339_nano(int(moment.timestamp()), moment.microsecond * 1000 + 417)


class OnePassword:
    """One 1Password account whose events happen ``ago`` before ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.account_uuid = op_id("account")
        self._n = 0

    def _uuid(self) -> str:
        self._n += 1
        return op_id(f"event-{self._n}")

    def audit(
        self,
        ago: timedelta,
        actor: OpUser,
        action: str,
        object_type: str,
        *,
        object_user: OpUser | None = None,
        object_uuid: str = "",
        aux_user: OpUser | None = None,
        aux_uuid: str = "",
        aux_info: str = "",
        ip: str = "198.51.100.10",
    ) -> JSON:
        when = self.now - ago
        event: JSON = {
            "uuid": self._uuid(),
            "timestamp": _stamp(when),
            "actor_uuid": actor.uuid,
            "actor_details": actor.details(),
            "actor_type": "user",
            "actor_account_uuid": self.account_uuid,
            "account_uuid": self.account_uuid,
            "action": action,
            "object_type": object_type,
            "object_uuid": object_user.uuid if object_user else object_uuid or op_id(f"{object_type}-{ago}"),
        }
        if object_user is not None:
            event["object_details"] = object_user.details()
        if aux_user is not None:
            event["aux_id"] = int.from_bytes(hashlib.sha256(aux_user.email.encode()).digest()[:3], "big")
            event["aux_uuid"] = aux_user.uuid
            event["aux_details"] = aux_user.details()
        elif aux_uuid:
            event["aux_id"] = 4_711
            event["aux_uuid"] = aux_uuid
        if aux_info:
            event["aux_info"] = aux_info
        event["session"] = {
            "uuid": op_id(f"session-{actor.email}-{ip}"),
            "login_time": _stamp(when - timedelta(minutes=20)),
            "device_uuid": op_id(f"device-{actor.email}"),
            "ip": ip,
        }
        event["location"] = dict(LOCATIONS[country_of(ip)])
        return event

    def item_usage(
        self,
        ago: timedelta,
        user: OpUser,
        action: str,
        *,
        vault: str,
        item: str,
        ip: str = "198.51.100.10",
        client: JSON | None = None,
    ) -> JSON:
        return {
            "uuid": self._uuid(),
            "timestamp": _stamp(self.now - ago),
            "used_version": 3,
            "vault_uuid": vault,
            "item_uuid": item,
            "action": action,
            "user": user.details(),
            "client": {**(client or MAC), "ip_address": ip},
            "location": dict(LOCATIONS[country_of(ip)]),
            "account_uuid": self.account_uuid,
        }

    def signin(
        self,
        ago: timedelta,
        user: OpUser,
        category: str,
        kind: str,
        *,
        ip: str = "198.51.100.10",
        client: JSON | None = None,
    ) -> JSON:
        country = country_of(ip)
        return {
            "uuid": self._uuid(),
            "session_uuid": op_id(f"signin-{self._n}"),
            "timestamp": _stamp(self.now - ago),
            "category": category,
            "type": kind,
            "country": country,
            "details": {"value": country} if category.startswith("firewall_") else None,
            "target_user": user.details(),
            "client": {**(client or MAC), "ip_address": ip},
            "location": dict(LOCATIONS[country]),
            "account_uuid": self.account_uuid,
        }


class Keeper:
    """One Keeper enterprise whose events happen ``ago`` before ``now`` (ISO-8601 with milliseconds)."""

    ENTERPRISE_ID = 8_675_309

    def __init__(self, now: datetime) -> None:
        self.now = now

    def event(
        self,
        ago: timedelta,
        audit_event: str,
        username: str,
        *,
        ip: str = "198.51.100.20",
        category: str = "security",
        client_version: str = "w17.0.4",
        **fields: Any,
    ) -> JSON:
        when = (self.now - ago).astimezone(UTC)
        event: JSON = {
            "audit_event": audit_event,
            "remote_address": ip,
            "category": category,
            "client_version": client_version,
            "username": username,
            "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "enterprise_id": self.ENTERPRISE_ID,
        }
        event.update(fields)
        return event


def every(count: int, start: timedelta, step: timedelta) -> list[timedelta]:
    """``count`` offsets before now: ``start``, ``start - step``, ... (later events are nearer now)."""
    return [start - step * i for i in range(count)]
