"""The 1Password Events API (v2) with real cursor semantics, tokens, feature scopes and the 120-day horizon.

Events of each type are kept in **arrival order**; every event has an arrival sequence number. A query
returns the events inside its time window (``start_time <= timestamp < end_time``) that arrived after
the cursor's position, oldest arrival first. The opaque cursor (base64 of JSON: type, position, window,
limit) comes back with every page, the last one (``has_more: false``) included; resuming from it later
returns what arrived since, including *late* events whose timestamps are older than ones already
delivered. That is the behaviour that makes "resume from the cursor, not from a timestamp" necessary.

A token issued with ``expires_at`` carries that moment as its ``exp`` claim and is answered ``401`` from
then on, as 1Password answers an expired token (status-codes page: 401 "invalid, revoked or expired").

Choices where the public reference is silent (documented so tests can rely on them):
- A token without the endpoint's feature gets ``401 {"status": 401, "message": "Unauthorized"}``: the
  status-code page lists no 403 and describes 401 as "not valid or not scoped to the resource".
- ``end_time`` given on the ResetCursor is fixed in the cursor; without it the window stays open-ended.
- Events older than ``now - 120 days`` are never returned, whatever the window says.
- A cursor from one endpoint used on another is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from simulators.base import Request, Response, SimServer
from simulators.echo import with_echo
from simulators.onepassword_data import EVENT_TYPES, make_events, op_uuid

DEFAULT_HOST = "events.1password.com"
LEGACY_AUDIENCE = "com.1password.streamingservice"
RETENTION = timedelta(days=120)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_WINDOW = timedelta(hours=1)
UNAUTHORIZED = {"status": 401, "message": "Unauthorized"}
TOO_MANY = {"status": 429, "message": "Too Many Requests"}
#: The Events API's published limits (developer.1password.com/docs/events-api/rate-limits), per account.
REQUESTS_PER_MINUTE = 600
REQUESTS_PER_HOUR = 30_000


class _Audience(Enum):
    HOST = "the simulator's host"


SIM_HOST = _Audience.HOST
"""Default for ``issue_token(aud=...)``: the host the simulator was created with."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_rfc3339(value: Any, name: str) -> float:
    if not isinstance(value, str):
        raise _BadRequest(f"{name} must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _BadRequest(f"{name} is not a valid RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise _BadRequest(f"{name} must carry a UTC offset (RFC 3339): {value!r}")
    return parsed.timestamp()


class _BadRequest(Exception):
    pass


@dataclass
class TokenInfo:
    """What the service knows about one bearer token."""

    uuid: str
    issued_at: datetime
    account_uuid: str
    features: tuple[str, ...]
    audience: list[str]
    revoked: bool = False
    expires_at: datetime | None = None


@dataclass
class _Log:
    """One event type's events in arrival order, with their timestamps as epoch seconds."""

    events: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Cursor:
    type: str
    position: int  # number of arrivals already scanned
    last: int  # arrival number of the last event delivered (0: none yet)
    start: float
    end: float | None
    limit: int

    def encode(self) -> str:
        doc = {
            "t": self.type,
            "p": self.position,
            "d": self.last,
            "s": self.start,
            "e": self.end,
            "l": self.limit,
        }
        return _b64url(json.dumps(doc, separators=(",", ":")).encode("utf-8"))

    @classmethod
    def decode(cls, text: Any) -> _Cursor:
        if not isinstance(text, str) or not text:
            raise _BadRequest("cursor must be a non-empty string")
        try:
            doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(
                str(doc["t"]),
                int(doc["p"]),
                int(doc["d"]),
                float(doc["s"]),
                None if doc["e"] is None else float(doc["e"]),
                int(doc["l"]),
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise _BadRequest("invalid cursor") from None
        if cursor.position < 0 or cursor.last < 0 or not 1 <= cursor.limit <= MAX_LIMIT:
            raise _BadRequest("invalid cursor")
        return cursor


class OnePasswordSim(SimServer):
    """1Password Events API v2: introspect plus the three event endpoints, with test knobs.

    Knobs: ``repeat_cursor_once`` answers the next cursor request with the cursor it was sent and
    ``has_more: true`` (a loop guard must notice); ``repeat_cursor_forever`` does so every time;
    ``duplicate_at_resume`` starts every cursor page with the last event the previous page delivered.
    ``cycle_cursors`` makes the cursors go round in a circle (A -> B -> A -> B ...): a request with cursor
    B is answered with its real items but, as the next cursor, the one that led to B, with
    ``has_more: true``, as a vendor bug would.
    ``limit_per_minute`` / ``limit_per_hour`` (None: off) answer 429 without ``Retry-After`` once the
    account made that many requests in the sliding window, timed by the injected clock (the real
    limits are ``REQUESTS_PER_MINUTE`` and ``REQUESTS_PER_HOUR``); ``reset_rate_windows`` starts them
    afresh, or as if the account had already been busy.
    ``echo_token`` (one of ``simulators.echo.ECHO_MODES``, None: off) echoes the bearer token received
    in the message of every error answered, injected faults included.
    """

    def __init__(
        self,
        *,
        now: Callable[[], datetime] = _utcnow,
        host: str = DEFAULT_HOST,  # the events host named in token audiences, not where the server listens
        seed: int = 0,
        account_uuid: str | None = None,
    ) -> None:
        super().__init__()
        self.now = now
        self.host = host
        self.rng = random.Random(seed)
        self.account_uuid = account_uuid or op_uuid(self.rng)
        self.repeat_cursor_once = False
        self.repeat_cursor_forever = False
        self.duplicate_at_resume = False
        self.cycle_cursors = False
        #: The order of the answer's keys. 1Password's documented example starts with the cursor; a client
        #: may act on that (auditsync sends the next request early) but must work with any order.
        self.key_order: tuple[str, ...] = ("cursor", "has_more", "items")
        #: Written first, before the keys above, into the next ``misleading_heads`` answers: a repeated
        #: ``cursor`` key (with ``has_more: true``) that the real one later in the answer overrides, as JSON
        #: parsers take the last. A client that trusts the head of an answer must notice the difference.
        self.misleading_head = ""
        self.misleading_heads = 0
        self._previous_cursor: dict[str, str] = {}
        self.limit_per_minute: int | None = None
        self.limit_per_hour: int | None = None
        self.echo_token: str | None = None
        self._request_times: deque[datetime] = deque()
        self.throttled = 0
        """Requests answered 429 so far."""
        self._pending_history: tuple[int, timedelta] | None = None
        self._tokens: dict[str, TokenInfo] = {}
        self._logs: dict[str, _Log] = {t: _Log() for t in EVENT_TYPES}
        self._data_lock = threading.Lock()

    # -- tokens ------------------------------------------------------------------------------------
    def issue_token(
        self,
        features: Iterable[str] = EVENT_TYPES,
        aud: str | _Audience | None = SIM_HOST,
        *,
        expires_at: datetime | None = None,
    ) -> str:
        """A JWT-shaped bearer token (fake ES256 signature) with the claims the real tokens carry.

        ``aud=None`` makes an old-style token whose audience is ``com.1password.streamingservice``.
        ``expires_at`` (None: never, as a token issued with "Expires: Never") becomes the ``exp`` claim;
        from then on the token is refused.
        """
        features = tuple(features)
        unknown = set(features) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}")
        audience = [LEGACY_AUDIENCE] if aud is None else [self.host if isinstance(aud, _Audience) else aud]
        issued = self.now().replace(microsecond=0)
        token_uuid = op_uuid(self.rng)
        header = {"alg": "ES256", "kid": secrets.token_hex(13), "typ": "JWT"}
        payload = {
            "1password.com/auuid": self.account_uuid,
            "1password.com/token": secrets.token_urlsafe(24),
            "1password.com/fts": list(features),
            "aud": audience,
            "sub": token_uuid,
            "iat": int(issued.timestamp()),
            "iss": "com.1password.b5",
            "jti": secrets.token_hex(8),
        }
        expires = None if expires_at is None else expires_at.astimezone(UTC).replace(microsecond=0)
        if expires is not None:
            payload["exp"] = int(expires.timestamp())
        token = ".".join(
            (
                _b64url(json.dumps(header, separators=(",", ":")).encode()),
                _b64url(json.dumps(payload, separators=(",", ":")).encode()),
                _b64url(secrets.token_bytes(64)),
            )
        )
        with self._data_lock:
            self._tokens[token] = TokenInfo(
                token_uuid, issued, self.account_uuid, features, audience, expires_at=expires
            )
        return token

    def revoke(self, token: str) -> None:
        with self._data_lock:
            self._tokens[token].revoked = True

    # -- events ------------------------------------------------------------------------------------
    def add(self, event_type: str, events: Iterable[Mapping[str, Any]]) -> int:
        """Append ``events`` in arrival order (whatever their timestamps); returns the new total."""
        log = self._logs[event_type]
        batch = [dict(e) for e in events]
        try:
            times = [_parse_rfc3339(e.get("timestamp"), "timestamp") for e in batch]
        except _BadRequest as exc:
            raise ValueError(f"cannot add {event_type} events: {exc}") from None
        with self._data_lock:
            log.events.extend(batch)
            log.times.extend(times)
            return len(log.events)

    def generate(
        self,
        event_type: str,
        n: int,
        *,
        start: datetime | None = None,
        step: timedelta = timedelta(seconds=1),
    ) -> list[dict[str, Any]]:
        """Make ``n`` realistic events (see ``make_events``) of this account, add them, return them.

        ``start`` defaults to ``n * step`` before now, so the newest event is about now.
        """
        begin = start if start is not None else self.now() - step * n
        events = make_events(event_type, n, begin, step, self.rng, account_uuid=self.account_uuid)
        self.add(event_type, events)
        return events

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """Every event of ``event_type`` in arrival order (served or not)."""
        with self._data_lock:
            return list(self._logs[event_type].events)

    # -- protocol ----------------------------------------------------------------------------------
    def _token(self, request: Request) -> TokenInfo | None:
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._data_lock:
            info = self._tokens.get(token.strip())
        if info is None or info.revoked:
            return None
        if info.expires_at is not None and self.now() >= info.expires_at:
            return None  # expired: 1Password answers 401 like for a revoked token
        return info

    def _throttled(self) -> bool:
        """Count this request against the account's windows; True when it is over a limit."""
        if self.limit_per_minute is None and self.limit_per_hour is None:
            return False
        now = self.now()
        with self._data_lock:
            if self._pending_history is not None:
                n, over = self._pending_history
                self._request_times = deque(now - over + over * i / n for i in range(n))
                self._pending_history = None
            times = self._request_times
            while times and times[0] <= now - timedelta(hours=1):
                times.popleft()
            last_minute = sum(1 for t in times if t > now - timedelta(minutes=1))
            if (self.limit_per_minute is not None and last_minute >= self.limit_per_minute) or (
                self.limit_per_hour is not None and len(times) >= self.limit_per_hour
            ):
                return True
            times.append(now)
            return False

    def _dispatch(self, request: Request) -> Response:
        """Injected faults included: a vendor that echoes does so in every error it sends."""
        _, _, token = (request.header("authorization") or "").partition(" ")
        return with_echo(super()._dispatch(request), token, self.echo_token)

    def reset_rate_windows(self, past_requests: int = 0, over: timedelta = timedelta(minutes=1)) -> None:
        """Start the rate windows afresh: the ``over`` before the next request held ``past_requests``,
        evenly spread (the oldest just leaving the window), and nothing was throttled yet.

        A benchmark shorter than the window would otherwise enjoy a fresh minute's whole allowance at
        once; an account already draining at the limit gets no such burst. The history is laid down
        at the next request, not now, so a client's start-up time does not free any of it.
        """
        with self._data_lock:
            self._request_times = deque()
            self._pending_history = (past_requests, over)
            self.throttled = 0

    def handle(self, request: Request) -> Response:
        if self._throttled():
            with self._data_lock:
                self.throttled += 1
            return Response(429, TOO_MANY)
        path = request.path.rstrip("/")
        if path == "/api/v2/auth/introspect" and request.method == "GET":
            info = self._token(request)
            if info is None:
                return Response(401, UNAUTHORIZED)
            return Response(
                200,
                {
                    "uuid": info.uuid,
                    "issued_at": _rfc3339(info.issued_at),
                    "account_uuid": info.account_uuid,
                    "features": list(info.features),
                },
            )
        event_type = path.removeprefix("/api/v2/")
        if event_type not in self._logs or not path.startswith("/api/v2/"):
            return Response(404, {"status": 404, "message": "Not Found"})
        if request.method != "POST":
            return Response(405, {"status": 405, "message": "Method Not Allowed"})
        info = self._token(request)
        if info is None or event_type not in info.features:
            return Response(401, UNAUTHORIZED)
        try:
            return self._page(event_type, request.body)
        except _BadRequest as exc:
            return Response(400, {"status": 400, "message": str(exc)})

    def _parse_body(self, event_type: str, body: bytes) -> tuple[_Cursor, bool]:
        """The cursor to continue from, and whether the request carried one (vs. a ResetCursor)."""
        try:
            doc = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError):
            raise _BadRequest("request body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise _BadRequest("request body must be a JSON object")
        if "cursor" in doc:
            cursor = _Cursor.decode(doc["cursor"])
            if cursor.type != event_type:
                raise _BadRequest("invalid cursor: it belongs to another endpoint")
            return cursor, True
        limit = doc.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise _BadRequest(f"limit must be an integer between 1 and {MAX_LIMIT}, got {limit!r}")
        end = _parse_rfc3339(doc["end_time"], "end_time") if doc.get("end_time") is not None else None
        if doc.get("start_time") is not None:
            start = _parse_rfc3339(doc["start_time"], "start_time")
        else:
            start = (end if end is not None else self.now().timestamp()) - DEFAULT_WINDOW.total_seconds()
        if end is not None and start >= end:
            raise _BadRequest("start_time must be before end_time")
        return _Cursor(event_type, 0, 0, start, end, limit), False

    def _page(self, event_type: str, body: bytes) -> Response:
        cursor, resumed = self._parse_body(event_type, body)
        horizon = (self.now() - RETENTION).timestamp()
        low = max(cursor.start, horizon)
        high = cursor.end
        duplicate = self.duplicate_at_resume and resumed and cursor.last > 0
        room = cursor.limit - 1 if duplicate and cursor.limit > 1 else cursor.limit
        log = self._logs[event_type]
        with self._data_lock:
            events, times = log.events, log.times
            total = len(times)
            if cursor.position > total or cursor.last > total:
                raise _BadRequest("invalid cursor")
            picked: list[int] = []
            has_more = False
            i = cursor.position
            # One pass from the cursor's position: O(page + skipped), never a scan of the whole log.
            while i < total:
                t = times[i]
                if t >= low and (high is None or t < high):
                    if len(picked) == room:
                        has_more = True
                        break
                    picked.append(i)
                i += 1
            items = [events[j] for j in picked]
            if duplicate:
                items.insert(0, events[cursor.last - 1])
        last = picked[-1] + 1 if picked else cursor.last
        position = last if has_more else total
        next_cursor = _Cursor(event_type, position, last, cursor.start, cursor.end, cursor.limit)
        with self.lock:
            repeat = resumed and (self.repeat_cursor_once or self.repeat_cursor_forever)
            self.repeat_cursor_once = self.repeat_cursor_once and not repeat
        if repeat:
            return self._respond(cursor.encode(), True, items)
        if self.cycle_cursors and resumed:
            sent = cursor.encode()
            with self.lock:
                previous = self._previous_cursor.get(event_type)
                self._previous_cursor[event_type] = sent
            if previous is not None and previous != sent:
                return self._respond(previous, True, items)
        return self._respond(next_cursor.encode(), has_more, items)

    def _respond(self, cursor: str, has_more: bool, items: Sequence[Mapping[str, Any]]) -> Response:
        values = {"cursor": cursor, "has_more": has_more, "items": items}
        body = json.dumps({key: values[key] for key in self.key_order}, ensure_ascii=False)
        with self.lock:
            mislead = self.misleading_heads > 0
            self.misleading_heads -= mislead
        if mislead:
            body = f'{{"cursor": {json.dumps(self.misleading_head)}, "has_more": true, {body[1:]}'
        return Response(200, body.encode("utf-8"), {"Content-Type": "application/json; charset=utf-8"})
