"""Realistic 1Password Events API v2 events, generated fast enough for benchmarks (200,000 in seconds).

Field lists follow the v2 reference: nested user/client/location/session objects, ``aux_id`` and
``used_version`` as integers, sign-in ``category``/``type``, RFC 3339 timestamps with a nanosecond
fraction the way the Go service writes them, and non-ASCII names and cities mixed in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")

EVENT_TYPES = ("auditevents", "itemusages", "signinattempts")

#: Audit events as 1Password records them: ``(action, object_type, aux, aux_info)``. Every name is from the
#: Events API reference (simulators/vocabulary/onepassword.json; tests/content/test_vocabulary.py keeps it so);
#: which action goes with which object is our reading of the names and of 1Password's own Sentinel rules.
#: ``aux`` says what ``aux_uuid`` names: a ``user`` (then, and only then, ``aux_details`` is filled, as the
#: reference says), a ``group``, or nothing. ``aux_info`` is ``email`` (an invite's address), ``role``
#: (a group membership: R member, A manager), ``permissions`` (a vault access bitmask) or empty.
#: ``object_details`` is filled only when the object is a user.
AUDIT_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("create", "invite", "", "email"),
    ("join", "gm", "user", "role"),
    ("leave", "gm", "user", ""),
    ("role", "gm", "user", "role"),
    ("grant", "uva", "user", "permissions"),
    ("update", "uva", "user", "permissions"),
    ("revoke", "uva", "user", ""),
    ("grant", "gva", "group", "permissions"),
    ("revoke", "gva", "group", ""),
    ("create", "vault", "", ""),
    ("delete", "vault", "", ""),
    ("export", "vault", "", ""),
    ("create", "group", "", ""),
    ("delete", "group", "", ""),
    ("activate", "user", "", ""),
    ("suspend", "user", "", ""),
    ("reactive", "user", "", ""),
    ("delete", "user", "", ""),
    ("upguest", "user", "", ""),
    ("beginr", "user", "", ""),
    ("completr", "user", "", ""),
    ("cancelr", "user", "", ""),
    ("enblmfa", "user", "", ""),
    ("updatmfa", "user", "", ""),
    ("disblmfa", "user", "", ""),
    ("disblmfa", "account", "", ""),
    ("updatfw", "account", "", ""),
    ("enblsso", "sso", "", ""),
    ("chngpsso", "sso", "", ""),
    ("disblsso", "sso", "", ""),
    ("create", "sa", "", ""),
    ("create", "satoken", "", ""),
    ("trename", "satoken", "", ""),
    ("tverify", "satoken", "", ""),
    ("trevoke", "satoken", "", ""),
    ("update", "item", "", ""),
    ("delete", "item", "", ""),
    ("create", "template", "", ""),
    ("unlink", "device", "user", ""),
    ("sendpkg", "user", "", ""),
)
#: Vault permission bitmasks as ``aux_info`` text (a value of our own: the reference does not list them).
VAULT_PERMISSIONS = ("32", "128", "1016", "2097150")
ITEM_ACTIONS = (
    "enter-item-edit-mode",
    "export",
    "fill",
    "other",
    "reveal",
    "secure-copy",
    "select-sso-provider",
    "server-create",
    "server-fetch",
    "server-update",
    "share",
)
SIGNIN_CATEGORIES = (
    "success",
    "credentials_failed",
    "mfa_failed",
    "sso_failed",
    "modern_version_failed",
    "firewall_failed",
    "firewall_reported_success",
)
#: Sign-in types per category. Each type is in the reference's list; the pairing is our reading of the names.
SIGNIN_TYPES = {
    "success": ("credentials_ok", "mfa_ok", "federated"),
    "credentials_failed": ("password_secret_bad", "platform_secret_bad"),
    "mfa_failed": ("totp_bad", "totp_timeout", "duo_bad", "duo_timeout", "u2f_bad", "mfa_missing"),
    "sso_failed": ("sso_user_mismatch", "non_sso_user"),
    "modern_version_failed": ("modern_version_missing", "modern_version_old"),
    "firewall_failed": (
        "ip_blocked",
        "country_blocked",
        "continent_blocked",
        "anonymous_blocked",
        "all_blocked",
    ),
    "firewall_reported_success": ("ip_blocked", "country_blocked", "anonymous_blocked"),
}
NAMES = (
    ("Zoë Ångström", "zoe.angstrom"),
    ("José Müller", "jose.muller"),
    ("Łukasz Żółć", "lukasz.zolc"),
    ("李雷", "li.lei"),
    ("Sigrún Ødegaard", "sigrun.odegaard"),
    ("Renée Dubois", "renee.dubois"),
    ("Alice Smith", "alice.smith"),
    ("Bob Jones", "bob.jones"),
    ("Chidi Okafor", "chidi.okafor"),
    ("Priya Raman", "priya.raman"),
    ("Wendy Appleseed", "wendy.appleseed"),
    ("Ιωάννα Παππά", "ioanna.pappa"),
)
LOCATIONS = (
    ("CH", "Zurich", "Zürich", 8.5417, 47.3769),
    ("BR", "São Paulo", "São Paulo", -46.6333, -23.55),
    ("PL", "Lesser Poland", "Kraków", 19.945, 50.0647),
    ("CA", "Québec", "Montréal", -73.5673, 45.5017),
    ("JP", "Tōkyō", "Tōkyō", 139.6917, 35.6895),
    ("SE", "Skåne", "Malmö", 13.0038, 55.605),
    ("US", "California", "San Francisco", -122.4194, 37.7749),
    ("DE", "Bavaria", "München", 11.582, 48.1351),
)
CLIENTS = (
    ("1Password for Mac", "81044005", "Chrome", "120.0.0.0", "MacOSX", "14.2"),
    ("1Password for Windows", "81018032", "Edge", "119.0.2151", "Windows", "11"),
    ("1Password Browser Extension", "20270", "Firefox", "121.0", "Linux", "6.6"),
    ("1Password CLI", "2024001", "Go", "1.21", "Linux", "5.15"),
    ("1Password for iOS", "81046003", "iPhone", "17.2", "iOS", "17.2"),
)
VAULT_NAMES = ("Engineering · Prod", "Marketing", "Finanzen & Controlling", "Support 🎧", "Shared")


_BASE32 = bytes(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[i % 32] for i in range(256))


def op_uuid(rng: random.Random) -> str:
    """A 26-character base32 identifier, the shape 1Password uses for every uuid (C-speed: one translate)."""
    return rng.randbytes(26).translate(_BASE32).decode("ascii")


def rfc3339_nano(epoch_seconds: int, nanos: int, _minutes: dict[int, str] = {}) -> str:  # noqa: B006
    """``2026-01-15T11:59:59.123456789Z`` (Go's RFC3339Nano); the minute prefix is cached for speed."""
    minute, second = divmod(epoch_seconds, 60)
    prefix = _minutes.get(minute)
    if prefix is None:
        if len(_minutes) > 100_000:
            _minutes.clear()
        prefix = _minutes[minute] = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{prefix}{second:02d}.{fraction}Z" if fraction else f"{prefix}{second:02d}Z"


def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


class _Pools:
    """Users, clients, locations and sessions the events of one batch draw from (realistic repeats).

    Events get copies of the nested objects, so a test may change one event without touching others.
    """

    def __init__(self, rng: random.Random, account_uuid: str, login_time: str) -> None:
        self.account_uuid = account_uuid
        self.users: list[dict[str, Any]] = []
        for i, (name, local) in enumerate(NAMES):
            user: dict[str, Any] = {"uuid": op_uuid(rng), "name": name, "email": f"{local}@example.com"}
            if i % 5 == 4:  # MSP members carry their home account inside the user object (v2)
                user["user_type"] = "external_user"
                user["user_account_uuid"] = op_uuid(rng)
            self.users.append(user)
        self.locations = [
            {"country": c, "region": r, "city": city, "longitude": lon, "latitude": lat}
            for c, r, city, lon, lat in LOCATIONS
        ]
        self.clients = [
            {
                "app_name": app,
                "app_version": version,
                "platform_name": platform,
                "platform_version": pv,
                "os_name": os_name,
                "os_version": os_version,
                "ip_address": f"203.0.113.{10 + i}",
            }
            for i, (app, version, platform, pv, os_name, os_version) in enumerate(CLIENTS)
        ]
        self.vaults = [op_uuid(rng) for _ in VAULT_NAMES]
        self.groups = [op_uuid(rng) for _ in range(6)]
        self.items = [op_uuid(rng) for _ in range(40)]
        self.sessions = [
            {
                "uuid": op_uuid(rng),
                "login_time": login_time,
                "device_uuid": op_uuid(rng),
                "ip": f"198.51.100.{1 + i}",
            }
            for i in range(32)
        ]


def _audit(rng: random.Random, pools: _Pools, uuid: str, stamp: str) -> dict[str, Any]:
    actor = _pick(rng, pools.users)
    action, object_type, aux, aux_info = _pick(rng, AUDIT_KINDS)
    location = _pick(rng, pools.locations)
    event: dict[str, Any] = {
        "uuid": uuid,
        "timestamp": stamp,
        "actor_uuid": actor["uuid"],
        "actor_details": dict(actor),
        "actor_type": actor.get("user_type", "user"),
        "actor_account_uuid": actor.get("user_account_uuid", pools.account_uuid),
        "account_uuid": pools.account_uuid,
        "action": action,
        "object_type": object_type,
    }
    if object_type == "user":
        target = _pick(rng, pools.users)
        event["object_uuid"] = target["uuid"]
        event["object_details"] = {"uuid": target["uuid"], "name": target["name"], "email": target["email"]}
    elif object_type in ("uva", "gva", "vault"):
        event["object_uuid"] = _pick(rng, pools.vaults)
    elif object_type in ("gm", "group"):
        event["object_uuid"] = _pick(rng, pools.groups)
    elif object_type == "account":
        event["object_uuid"] = pools.account_uuid
    else:
        event["object_uuid"] = op_uuid(rng)
    if aux == "user":
        member = _pick(rng, pools.users)
        event["aux_id"] = _between(rng, 1, 100000)
        event["aux_uuid"] = member["uuid"]
        event["aux_details"] = {"uuid": member["uuid"], "name": member["name"], "email": member["email"]}
    elif aux == "group":
        event["aux_id"] = _between(rng, 1, 100000)
        event["aux_uuid"] = _pick(rng, pools.groups)
    if aux_info == "email":
        event["aux_info"] = f"{_pick(rng, NAMES)[1]}.{_between(rng, 1, 999)}@example.org"
    elif aux_info == "role":
        event["aux_info"] = _pick(rng, ("R", "A"))
    elif aux_info == "permissions":
        event["aux_info"] = _pick(rng, VAULT_PERMISSIONS)
    event["session"] = dict(_pick(rng, pools.sessions))
    event["location"] = dict(location)
    return event


def _item_usage(rng: random.Random, pools: _Pools, uuid: str, stamp: str) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "timestamp": stamp,
        "used_version": _between(rng, 1, 40),
        "vault_uuid": _pick(rng, pools.vaults),
        "item_uuid": _pick(rng, pools.items),
        "action": _pick(rng, ITEM_ACTIONS),
        "user": dict(_pick(rng, pools.users)),
        "client": dict(_pick(rng, pools.clients)),
        "location": dict(_pick(rng, pools.locations)),
        "account_uuid": pools.account_uuid,
    }


def _signin(rng: random.Random, pools: _Pools, uuid: str, stamp: str) -> dict[str, Any]:
    category = _pick(rng, SIGNIN_CATEGORIES)
    location = _pick(rng, pools.locations)
    kind = _pick(rng, SIGNIN_TYPES[category])
    return {
        "uuid": uuid,
        "session_uuid": op_uuid(rng),
        "timestamp": stamp,
        "category": category,
        "type": kind,
        "country": location["country"],
        "details": {"value": location["country"]} if category.startswith("firewall_") else None,
        "target_user": dict(_pick(rng, pools.users)),
        "client": dict(_pick(rng, pools.clients)),
        "location": dict(location),
        "account_uuid": pools.account_uuid,
    }


_BUILDERS = {"auditevents": _audit, "itemusages": _item_usage, "signinattempts": _signin}


def make_events(
    event_type: str,
    n: int,
    start: datetime,
    step: timedelta = timedelta(seconds=1),
    rng: random.Random | None = None,
    *,
    account_uuid: str | None = None,
) -> list[dict[str, Any]]:
    """``n`` v2 events of ``event_type``; event ``i`` happens at ``start + i*step`` plus a sub-step fraction.

    A zero ``step`` gives events that share one timestamp (the fraction is then zero too), which is
    what boundary tests need. Timestamps never go backwards within one call.
    """
    if event_type not in _BUILDERS:
        raise ValueError(f"unknown event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    rng = rng or random.Random(0)
    pools = _Pools(rng, account_uuid or op_uuid(rng), rfc3339_nano(int(start.timestamp()), 0))
    build = _BUILDERS[event_type]
    step_ns = int(step.total_seconds() * 1_000_000_000)
    base = start.astimezone(UTC)
    base_s = int(base.replace(microsecond=0).timestamp())
    base_ns = base.microsecond * 1000
    jitter = rng.random
    events = []
    for i in range(n):
        offset_ns = base_ns + i * step_ns + (int(jitter() * step_ns) if step_ns > 0 else 0)
        seconds, nanos = divmod(offset_ns, 1_000_000_000)
        events.append(build(rng, pools, op_uuid(rng), rfc3339_nano(base_s + seconds, nanos)))
    return events
