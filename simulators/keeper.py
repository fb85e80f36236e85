"""A Keeper Admin REST API stand-in: ``GET /api/rest/public/events`` with the behaviours Keeper does not
document and a collector must survive.

Configurable: sort order (``asc``, ``desc``, ``none``), whether ``end_date`` is inclusive, the page
size cap, continuation tokens that expire after N seconds of the injected clock (counted from the
pagination's first page) or after K uses of the same token, and (through ``SimServer.inject``)
401/403/429/500 answers; API tokens that expire (Keeper answers 401 from their expiry, as for a revoked
one), several valid at once (a rotation's overlap) and revocable; ``echo_token`` (a ``simulators.echo``
mode) echoes the received token in every error message, injected faults included. Events are added at
any time with ``add`` (late events land behind a collector's watermark). A pagination reads a snapshot taken at its first page, as a
server-side cursor would. Standard library only.
"""

from __future__ import annotations

import bisect
import itertools
import random
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from simulators.base import Request, Response, SimServer
from simulators.echo import with_echo

EVENTS_PATH = "/api/rest/public/events"
MAX_LIMIT = 1000


def event_time_ms(value: Any) -> int | None:
    """The simulator's own reading of a Keeper timestamp (ISO-8601 or epoch ms); None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    return None


@dataclass
class _Cursor:
    snapshot: list[dict[str, Any]]
    offset: int
    created: datetime
    uses: int = 0


class KeeperSim(SimServer):
    """Keeper events endpoint. ``now`` is the injected clock used for token expiry."""

    def __init__(
        self,
        *,
        token: str = "keeper-sim-token",
        token_expires_at: datetime | None = None,
        now: Callable[[], datetime] | None = None,
        order: str = "asc",
        end_inclusive: bool = True,
        page_cap: int = MAX_LIMIT,
        token_ttl: float | None = None,
        token_max_uses: int | None = None,
        token_rejected_status: int = 400,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if order not in ("asc", "desc", "none"):
            raise ValueError(order)
        self.now = now or (lambda: datetime.now(UTC))
        self.order = order
        self.end_inclusive = end_inclusive
        self.page_cap = page_cap
        self.token_ttl = token_ttl
        self.token_max_uses = token_max_uses
        self.token_rejected_status = token_rejected_status
        self.echo_token: str | None = None
        self.record_bodies = False
        #: Continuation tokens go round in a circle: a request with token T2 is answered with its real
        #: events but, as the next token, the one that led to T2 (``has_more: true``), as a vendor bug would.
        self.cycle_tokens = False
        self._previous_token: str | None = None
        self._random = random.Random(seed)
        self._events: list[tuple[int, dict[str, Any]]] = []
        self._times: list[int] = []
        self._unsorted = False
        self._cursors: dict[str, _Cursor] = {}
        self._data_lock = threading.Lock()
        #: Every API token Keeper accepts, with its expiry (None: ``--expires never``).
        self._tokens: dict[str, datetime | None] = {token: token_expires_at}
        self._primary = token

    # -- API tokens ----------------------------------------------------------------------------------
    @property
    def token(self) -> str:
        """The token the simulator was made with (or last given one): accepted until revoked or expired."""
        return self._primary

    @token.setter
    def token(self, value: str) -> None:
        """A new token in place of the current one, which is refused from now on (revoked)."""
        with self._data_lock:
            self._tokens.pop(self._primary, None)
            self._tokens[value] = None
            self._primary = value

    def issue_token(self, *, expires_at: datetime | None = None) -> str:
        """One more accepted token (``public-api-key generate``), refused from ``expires_at`` (None: never)."""
        token = secrets.token_urlsafe(24)
        with self._data_lock:
            self._tokens[token] = expires_at
        return token

    def revoke(self, token: str) -> None:
        """Revoke ``token`` (``public-api-key revoke``): refused from now on."""
        with self._data_lock:
            self._tokens.pop(token, None)

    def _accepts(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme != "Bearer":
            return False
        with self._data_lock:
            if token not in self._tokens:
                return False
            expires_at = self._tokens[token]
        return expires_at is None or self.now() < expires_at

    def reset(self) -> None:
        """Forget events, cursors, faults and the request log (reuse one server across many examples)."""
        with self._data_lock:
            self._events.clear()
            self._times.clear()
            self._cursors.clear()
        with self.lock:
            self.faults.clear()
            self.requests.clear()

    # -- data ----------------------------------------------------------------------------------------
    def add(self, events: Iterable[dict[str, Any]], *, at_ms: int | None = None) -> None:
        """Make events visible from now on. ``at_ms`` is the server-side time of events whose own
        ``timestamp`` the simulator cannot read (the collector must still deliver them)."""
        batch = []
        for event in events:
            ts = event_time_ms(event.get("timestamp"))
            if ts is None:
                if at_ms is None:
                    raise ValueError(f"unreadable timestamp {event.get('timestamp')!r} and no at_ms")
                ts = at_ms
            batch.append((ts, event))
        with self._data_lock:
            self._events.extend(batch)
            self._unsorted = True

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._data_lock:
            return [e for _, e in self._events]

    def _select(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        with self._data_lock:
            if self._unsorted:
                self._events.sort(key=lambda item: item[0])  # stable: same-ms events keep arrival order
                self._times = [t for t, _ in self._events]
                self._unsorted = False
            low = bisect.bisect_left(self._times, start_ms)
            high = (bisect.bisect_right if self.end_inclusive else bisect.bisect_left)(self._times, end_ms)
            hits = [e for _, e in self._events[low:high]]
        if self.order == "desc":
            hits.reverse()
        elif self.order == "none":
            self._random.shuffle(hits)
        return hits

    # -- HTTP ----------------------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> Response:
        """Injected faults included: a vendor that echoes does so in every error it sends."""
        token = (request.header("x-api-token") or "").removeprefix("Bearer ")
        return with_echo(super()._dispatch(request), token, self.echo_token)

    def handle(self, request: Request) -> Response:
        if request.path != EVENTS_PATH or request.method != "GET":
            return Response(404, {"error": "not_found", "message": "Not Found"})
        if not self._accepts(request.header("x-api-token")):
            return Response(401, {"error": "unauthorized", "message": "Unauthorized"})
        start_text, end_text = request.arg("start_date"), request.arg("end_date")
        if not start_text:
            return Response(400, {"error": "bad_request", "message": "Missing start date"})
        if not end_text:
            return Response(400, {"error": "bad_request", "message": "Missing end date"})
        start_ms, end_ms = event_time_ms(start_text), event_time_ms(end_text)
        if start_ms is None or end_ms is None:
            return Response(400, {"error": "bad_request", "message": "Invalid date format"})
        try:
            limit = int(request.arg("limit") or 100)
        except ValueError:
            return Response(400, {"error": "bad_request", "message": "Invalid limit"})
        if not 1 <= limit <= MAX_LIMIT:
            return Response(
                400, {"error": "bad_request", "message": f"limit must be between 1 and {MAX_LIMIT}"}
            )
        limit = min(limit, self.page_cap)
        token = request.arg("continuation_token")
        if token:
            with self._data_lock:
                cursor = self._cursors.get(token)
                if cursor is not None:
                    cursor.uses += 1
                    expired = (
                        self.token_ttl is not None
                        and (self.now() - cursor.created) > timedelta(seconds=self.token_ttl)
                    ) or (self.token_max_uses is not None and cursor.uses > self.token_max_uses)
                    if expired:
                        del self._cursors[token]
                        cursor = None
            if cursor is None:
                return Response(
                    self.token_rejected_status,
                    {"error": "invalid_token", "message": "Invalid or expired continuation token"},
                )
        else:
            cursor = _Cursor(self._select(start_ms, end_ms), 0, self.now())
        page = cursor.snapshot[cursor.offset : cursor.offset + limit]
        offset = cursor.offset + len(page)
        has_more = offset < len(cursor.snapshot)
        next_token = None
        if has_more:
            next_token = secrets.token_urlsafe(12)
            with self._data_lock:
                self._cursors[next_token] = _Cursor(cursor.snapshot, offset, cursor.created)
        if self.cycle_tokens and token:
            with self._data_lock:
                previous, self._previous_token = self._previous_token, token
            if previous is not None and previous != token:
                next_token, has_more = previous, True
        return Response(200, {"continuation_token": next_token, "has_more": has_more, "events": page})


# -- sample data -------------------------------------------------------------------------------------
USERNAMES = (
    "alice@example.com",
    "bob.smith@example.com",
    "josé.garcía@example.es",
    "zoë.müller@beispiel.de",
    "ødegaard@eksempel.no",
    "山田太郎@example.jp",
    "françois@exemple.fr",
    "admin@example.com",
    "łukasz@przykład.pl",
    "søren@eksempel.dk",
)
PLACES = (
    "Zürich, ZH, CH",
    "São Paulo, SP, BR",
    "Kraków, MA, PL",
    "東京, 13, JP",
    "Montréal, QC, CA",
    "Reykjavík, IS",
    "Chicago, IL, US",
)
CLIENTS = ("w16.11.0", "c16.10.1", "a16.6.5", "i16.9.2", "Commander 16.11.5", "EMConsole 17.0.0")


def _uid(rng: random.Random) -> str:
    return "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(22)
    )


#: (audit_event, category, event-specific field builder)
EVENT_KINDS: tuple[tuple[str, str, Callable[[random.Random], dict[str, Any]]], ...] = (
    ("login", "login", lambda r: {"geo_location": r.choice(PLACES), "device_name": "MacBook Pro — Zoë"}),
    ("login_failure", "login", lambda r: {"geo_location": r.choice(PLACES), "result_code": "auth_failed"}),
    ("login_console", "login", lambda r: {"geo_location": r.choice(PLACES)}),
    ("record_add", "usage", lambda r: {"record_uid": _uid(r), "folder_uid": _uid(r)}),
    ("record_update", "usage", lambda r: {"record_uid": _uid(r)}),
    ("record_delete", "usage", lambda r: {"record_uid": _uid(r)}),
    ("open_record", "usage", lambda r: {"record_uid": _uid(r)}),
    ("copy_password", "usage", lambda r: {"record_uid": _uid(r)}),
    ("change_master_password", "security", lambda r: {}),
    ("set_two_factor_on", "security", lambda r: {"channel": r.choice(["totp", "duo", "webauthn"])}),
    ("set_two_factor_off", "security", lambda r: {"channel": "totp"}),
    ("share", "sharing", lambda r: {"record_uid": _uid(r), "to_username": r.choice(USERNAMES)}),
    (
        "folder_add_user",
        "sharing",
        lambda r: {"shared_folder_uid": _uid(r), "to_username": r.choice(USERNAMES)},
    ),
    (
        "role_enforcement_changed",
        "policy",
        lambda r: {"role_id": r.randrange(10**12), "enforcement": "require_two_factor", "value": "true"},
    ),
    ("bw_record_high_risk", "breachwatch", lambda r: {"record_uid": _uid(r)}),
    (
        "app_client_access",
        "secrets_manager",
        lambda r: {"app_uid": _uid(r), "device_name": "ci-runner-ünïcode"},
    ),
    ("pam_tunnel_started", "pam", lambda r: {"record_uid": _uid(r), "name": "db-prod — Kraków"}),
    ("audit_alert_sent", "alerts", lambda r: {"name": "Failed logins > 5", "recipient": r.choice(USERNAMES)}),
)


def format_timestamp(ms: int, style: str) -> Any:
    """``iso`` (with ms, Z), ``iso_seconds`` (no fraction), ``offset`` (+02:00), ``epoch`` (int ms)."""
    when = datetime.fromtimestamp(ms / 1000, UTC)
    if style == "epoch":
        return ms
    if style == "iso_seconds":
        return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    if style == "offset":
        return when.astimezone(_PLUS2).isoformat(timespec="milliseconds")
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_PLUS2 = timezone(timedelta(hours=2))
TIMESTAMP_STYLES = ("iso", "iso_seconds", "offset", "epoch")


def sample_events(
    count: int,
    start: datetime,
    end: datetime,
    *,
    seed: int = 0,
    timestamp_style: str = "mixed",
    identical_rate: float = 0.01,
    enterprise_id: int = 8_675_309,
) -> list[dict[str, Any]]:
    """Realistic Keeper events spread over ``[start, end)``: envelope plus event-specific fields,
    non-ASCII users and places, a share ``identical_rate`` of exact copies of the previous event
    (same content, same millisecond: two events nonetheless). ``timestamp_style`` is one of
    ``TIMESTAMP_STYLES`` or ``mixed``. ``iso_seconds`` events are placed on whole seconds."""
    rng = random.Random(seed)
    start_ms = int(start.timestamp() * 1000)
    span = max(1, int(end.timestamp() * 1000) - start_ms)
    events: list[dict[str, Any]] = []
    ips = [f"203.0.113.{i}" for i in range(1, 60)] + [f"2001:db8::{i:x}" for i in range(1, 20)]
    counter = itertools.count()
    for _ in range(count):
        if events and rng.random() < identical_rate:
            events.append(dict(events[-1]))
            continue
        style = rng.choice(TIMESTAMP_STYLES) if timestamp_style == "mixed" else timestamp_style
        ms = start_ms + rng.randrange(span)
        if style == "iso_seconds":
            ms -= ms % 1000
        audit_event, category, extra = rng.choice(EVENT_KINDS)
        event: dict[str, Any] = {
            "audit_event": audit_event,
            "remote_address": rng.choice(ips),
            "category": category,
            "client_version": rng.choice(CLIENTS),
            "username": rng.choice(USERNAMES),
            "enterprise_id": enterprise_id,
            "timestamp": format_timestamp(ms, style),
        }
        event.update(extra(rng))
        if next(counter) % 7 == 0:
            event["node"] = "Root — Région Île-de-France"
        events.append(event)
    return events
