"""1Password Events API (v2): audit events, item usages and sign-in attempts.

Introspect once per run to learn which event types the token may read; then each enabled type is a
stream that resumes from its stored cursor. Resuming from the cursor, not from a timestamp, is what
keeps item usages that arrive 10+ minutes late: the API hands them out behind the cursor. A small
``uuid`` guard drops events re-sent at the resume point.

Paging is ``CursorPaging`` (the next request is the answer's cursor; 1Password writes the cursor
first, so the next request can leave from the head of an answer, while the rest of it still arrives)
and the requests go through ``auditsync.sources.paging.ReadAhead``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from auditsync.config import ONEPASSWORD_HOSTS, OnePasswordSettings
from auditsync.errors import AuthError, CheckpointError, ConfigError, TokenRefused, UpstreamError
from auditsync.failures import ONEPASSWORD_API
from auditsync.fastjson import response_json
from auditsync.http import HttpClient, describe, redact_url
from auditsync.log_context import ContextThreadPool
from auditsync.model import JSON, Deadline, Page, Stream
from auditsync.retry import ONEPASSWORD_EVENTS
from auditsync.sources import SourceContext
from auditsync.sources.canonical import canonical_json
from auditsync.sources.pacing import ONEPASSWORD_ACCOUNT_INTERVAL, Pacer
from auditsync.sources.paging import OnHead, Paginator, ReadAhead
from auditsync.tables import ONEPASSWORD_TABLE
from auditsync.tables.rows import format_time, newest_time
from auditsync.token_shapes import unverified_claims
from auditsync.urls import is_loopback_url

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000
#: How far back the Events API serves events.
HORIZON = timedelta(days=120)
#: The oldest start we ask for: the horizon less a margin, so a request at the edge is not refused as it
#: travels (a first run's look-back, a backfill planned a moment before its first request).
SERVED = HORIZON - timedelta(minutes=5)
#: Keep the uuids of the last events delivered, to drop them if the API repeats them at the resume point.
RESUME_GUARD_SIZE = 100
AUTH_HINT = (
    "The 1Password Events API token was refused (revoked, expired or mistyped). In 1Password, open "
    "Integrations > Events Reporting, issue a new token, and store it in the Key Vault secret "
    "(ONEPASSWORD_TOKEN_SECRET) or ONEPASSWORD_TOKEN."
)


def stream_names(settings: OnePasswordSettings) -> list[str]:
    return [f"onepassword/{t}" for t in settings.event_types]


def token_audience_hosts(token: str) -> list[str]:
    """Events hosts named in the JWT ``aud`` claim (decoded without verification: we only read it)."""
    aud = unverified_claims(token).get("aud")
    values = aud if isinstance(aud, list) else [aud]
    return [v.lower() for v in values if isinstance(v, str) and v.lower() in ONEPASSWORD_HOSTS]


def check_token_host(token: str, base_url: str) -> None:
    """A token names the events host it belongs to; a different configured host would answer 401."""
    if is_loopback_url(base_url):
        return
    configured = (urlsplit(base_url).hostname or "").lower()
    hosts = token_audience_hosts(token)
    if hosts and configured not in hosts:
        raise ConfigError(
            f"the 1Password token belongs to {hosts[0]}, but ONEPASSWORD_BASE_URL is https://{configured}",
            hint=f"Set ONEPASSWORD_BASE_URL=https://{hosts[0]}.",
        )


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def introspect(
    ctx: SourceContext[OnePasswordSettings], deadline: Deadline, pacer: Pacer | None = None
) -> list[str]:
    """The event types the token may read (callers check the token's host first: ``check_token_host``)."""
    base = ctx.settings.base_url
    if pacer is not None:
        pacer.wait(deadline)
    response = ctx.http.request(
        "GET",
        f"{base}/api/v2/auth/introspect",
        headers=_headers(ctx.token),
        deadline=deadline,
        rule=ONEPASSWORD_EVENTS,
        component=ONEPASSWORD_API,
    )
    _raise_for(response, ctx.http)
    body = _json(response, ctx.http)
    features = body.get("features") if isinstance(body, dict) else None
    if not isinstance(features, list):
        raise UpstreamError(f"{describe(response)}: introspect answer has no features list")
    return [str(f) for f in features]


class Grants:
    """Which event types the token may read, asked of the introspection endpoint in a thread of its own.

    The streams send their first requests while it is under way and wait for its answer only before
    they use theirs: a run then starts one round trip (300 ms over a real network) sooner. A stream the
    token may not read stops there with the same ConfigError as before; a failed introspection fails
    every stream with its own error, as it did when it ran first.
    """

    def __init__(
        self, ctx: SourceContext[OnePasswordSettings], deadline: Deadline, pacer: Pacer | None
    ) -> None:
        worker = ContextThreadPool(max_workers=1, thread_name_prefix="onepassword-introspect")
        self._features = worker.submit(introspect, ctx, deadline, pacer)
        worker.shutdown(wait=False)  # the one task still runs; the thread ends with it

    def allows(self, event_type: str) -> bool:
        """True when the token may read ``event_type``; raises the introspection's error."""
        return event_type in self._features.result()


def open_streams(ctx: SourceContext[OnePasswordSettings]) -> list[Stream]:
    pacer = account_pacer(ctx)
    check_token_host(ctx.token, ctx.settings.base_url)  # before the token goes anywhere
    grants = Grants(ctx, ctx.deadline, pacer)
    return [
        OnePasswordStream(ctx, event_type, granted=grants, pacer=pacer)
        for event_type in ctx.settings.event_types
    ]


def account_pacer(ctx: SourceContext[OnePasswordSettings]) -> Pacer | None:
    """This run's share of the account's rate limit (see auditsync.sources.pacing), when shared."""
    share = ctx.settings.rate_share
    streams = len(ctx.settings.event_types)
    if share <= 0 or not streams:
        return None
    return Pacer(ctx.clock, ONEPASSWORD_ACCOUNT_INTERVAL / streams, ctx.settings.busy_streams, fallback=share)


def probe(ctx: SourceContext[OnePasswordSettings]) -> str:
    check_token_host(ctx.token, ctx.settings.base_url)
    features = introspect(ctx, ctx.deadline)
    wanted = ctx.settings.event_types
    missing = [t for t in wanted if t not in features]
    text = f"1Password token reads {', '.join(features) or 'nothing'}"
    if missing:
        raise ConfigError(
            f"{text}; missing {', '.join(missing)}",
            hint="Enable those event types on the Events Reporting integration, or remove them from "
            "ONEPASSWORD_EVENT_TYPES.",
        )
    return text


def _raise_for(response: requests.Response, http: HttpClient) -> None:
    if response.status_code == 200:
        return
    if response.status_code == 401:
        raise TokenRefused(describe(response, http.redactor), hint=AUTH_HINT)
    if response.status_code == 403:
        raise AuthError(
            describe(response, http.redactor),
            hint="The token may not read this event type; check the Events Reporting integration's scope.",
        )
    raise UpstreamError(
        describe(response, http.redactor),
        hint="1Password refused the request; if this persists, report it with the message above.",
    )


def _json(response: requests.Response, http: HttpClient) -> Any:
    try:
        return response_json(response)
    except ValueError:
        raise UpstreamError(f"{describe(response, http.redactor)}: the answer is not JSON") from None


#: Keys of events without a ``uuid`` start with this, so they never clash with a real uuid.
FINGERPRINT_PREFIX = "fp:"
_DIGEST_BYTES = 8


def event_key(event: JSON) -> str:
    """What identifies an event for the resume guard: its ``uuid``, or, for an event without one, a
    stable fingerprint of its whole canonical JSON (so it is still delivered once, never a poison)."""
    uuid = event.get("uuid")
    if isinstance(uuid, str) and uuid:
        return uuid
    text = canonical_json(event)
    return FINGERPRINT_PREFIX + hashlib.blake2b(text, digest_size=12).hexdigest()


def digest(key: str) -> bytes:
    """64 bits of an event key: enough to tell the events of one page apart, 11 characters packed."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=_DIGEST_BYTES).digest()


def pack_digests(digests: Counter[bytes]) -> str:
    """A multiset of digests (an event without uuid may repeat), as base64 of the sorted digests."""
    return base64.b64encode(b"".join(sorted(digests.elements()))).decode("ascii")


def unpack_digests(text: Any) -> Counter[bytes]:
    if not isinstance(text, str) or not text:
        return Counter()
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeError):
        raise CheckpointError(
            "the stored 1Password position has a damaged 'accepted' list",
            hint="Remove the 'accepted' field of this stream's checkpoint position (the events of the page "
            "it names are then sent again), or delete the checkpoint to start from INITIAL_LOOKBACK.",
        ) from None
    return Counter(data[i : i + _DIGEST_BYTES] for i in range(0, len(data), _DIGEST_BYTES))


def _accepted_position(
    request: JSON, recent: list[str], accepted: Counter[bytes], keys: list[str]
) -> Callable[[int], JSON]:
    """For a page cut short: re-ask the same request (its cursor, or its ResetCursor's times), and drop
    the first ``n`` events (by digest).

    The digests of up to a whole page (1,000 events) take about 11,000 characters, far below the
    64 KiB Table property.
    """

    def position(n: int) -> JSON:
        done = accepted + Counter(digest(k) for k in keys[:n])
        where: JSON = {k: request[k] for k in ("cursor", "start_time", "end_time") if request.get(k)}
        return where | {"recent_uuids": recent, "accepted": pack_digests(done)}

    return position


class Answer(NamedTuple):
    """A page request's answer, parsed: its events, its cursor and whether more follow."""

    items: list[JSON]
    cursor: str
    has_more: bool


#: ``{"cursor": "<no quote or escape>", "has_more": true`` at the very start of an answer.
_LEADING_CURSOR = re.compile(rb'\A\s*\{\s*"cursor"\s*:\s*"([^"\\]{1,4096})"\s*,\s*"has_more"\s*:\s*true\b')


def leading_cursor(head: bytes) -> str | None:
    """The cursor at the head of an answer that says ``has_more: true`` before anything else, or None."""
    match = _LEADING_CURSOR.match(head)
    return match.group(1).decode("ascii", "replace") if match else None


class CursorPaging(Paginator[JSON, Answer]):
    """1Password's paging: a request is ``{"cursor": ...}`` (or a ResetCursor with ``start_time``), and the
    next one is the cursor of its answer while ``has_more`` is true.

    The cursor comes first in every answer (``{"cursor": ..., "has_more": true, "items": [...]}``: the
    documented example and the OpenAPI schema's order), so the next request can be read off the first
    bytes of an answer, before its 1.2 MB have arrived and been parsed; ReadAhead keeps it only if the
    parsed answer names the same cursor. Reading with a cursor changes nothing on the server, so a
    request sent on a misleading head costs one request of the rate limit and nothing else.
    """

    reads_heads = True

    def __init__(self, url: str) -> None:
        self.url = url

    def next_request(self, request: JSON, answer: Answer) -> JSON | None:
        return {"cursor": answer.cursor} if answer.has_more else None

    def early_request(self, request: JSON, head: bytes) -> JSON | None:
        cursor = leading_cursor(head)
        return None if cursor is None else {"cursor": cursor}

    def position_key(self, request: JSON) -> Hashable | None:
        return request.get("cursor") or None

    def loop_error(self, request: JSON) -> UpstreamError:
        return UpstreamError(
            f"POST {redact_url(self.url)}: the API returned a cursor it had already returned in this run "
            "although has_more is true (its cursors go round in a circle)",
            hint="The stream stops to avoid sending the same events again and again; the next run "
            "resumes from the last saved cursor. If it persists, report it to 1Password support.",
        )


@dataclass
class OnePasswordStream:
    """One event type. Position: ``{"cursor": str, "recent_uuids": [...]}``.

    A page the sink accepted only in part is saved as the request that fetched it (``cursor``, or
    ``start_time`` for a first page) plus ``accepted``: digests of its events already stored, which the
    re-fetched page then skips. ``recent_uuids`` holds event keys (``event_key``), not only uuids.
    """

    ctx: SourceContext[OnePasswordSettings] = field(repr=False)
    event_type: str
    #: Whether the token may read this event type, or the introspection that will say so.
    granted: bool | Grants = True
    pacer: Pacer | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"onepassword/{self.event_type}"

    @property
    def source(self) -> str:
        return "onepassword"

    @property
    def table(self) -> str:
        return ONEPASSWORD_TABLE

    def first_request(self) -> JSON:
        """The ResetCursor of a stream's first run: INITIAL_LOOKBACK, clamped to what the API serves."""
        now = self.ctx.run_start
        lookback = self.ctx.settings.initial_lookback
        if lookback > HORIZON:
            log.warning(
                "INITIAL_LOOKBACK %s is beyond the 1Password Events API's 120 days; %s starts 120 days back",
                lookback,
                self.name,
                extra={"stream": self.name},
            )
        return {"limit": PAGE_LIMIT, "start_time": format_time(now - min(lookback, SERVED))}

    def _check_granted(self) -> None:
        granted = self.granted
        if isinstance(granted, Grants):
            granted = self.granted = granted.allows(self.event_type)
        if not granted:
            raise ConfigError(
                f"the 1Password token may not read {self.event_type}",
                hint=f"Enable {self.event_type} on the Events Reporting integration (then issue a new token), "
                f"or remove it from ONEPASSWORD_EVENT_TYPES.",
            )

    def pages(self, position: JSON | None, deadline: Deadline) -> Iterator[Page]:
        if self.granted is False:
            self._check_granted()
        url = f"{self.ctx.settings.base_url}/api/v2/{self.event_type}"
        position = position or {}
        cursor = position.get("cursor")
        recent: list[str] = list(position.get("recent_uuids", []))
        # Events of the page at this position that the sink already accepted (a page cut short).
        accepted = unpack_digests(position.get("accepted", ""))
        ahead = ReadAhead(
            CursorPaging(url),
            lambda body, on_head: self._fetch(url, body, deadline, on_head),
            deadline,
            self.name,
        )
        try:
            ahead.start({"cursor": cursor} if cursor else self._reset_request(position))
            while True:
                try:
                    taken = ahead.next()
                finally:
                    # The introspection ran beside the first request: its answer counts first.
                    self._check_granted()
                if taken is None:
                    return
                request, answer = taken
                del taken
                page = self._page(answer, request, recent, accepted)
                del answer  # its items are the page's events now: not held twice across the yield
                recent = page.position["recent_uuids"]
                accepted = Counter()
                # The page is built: the next answer may be read, and the request after it sent from its
                # head, while the runner sends this one.
                ahead.done()
                yield page
                if not page.has_more or deadline.near():
                    return
                del page
        finally:
            ahead.close()

    def _fetch(self, url: str, body: JSON, deadline: Deadline, on_head: OnHead | None) -> Answer:
        """One page request (in a ReadAhead thread): paced, sent, checked and parsed."""
        if self.pacer is not None:
            self.pacer.wait(deadline)
        response = self.ctx.http.request(
            "POST",
            url,
            headers=_headers(self.ctx.token),
            json=body,
            deadline=deadline,
            on_body_start=on_head,
            rule=ONEPASSWORD_EVENTS,
            component=ONEPASSWORD_API,
        )
        _raise_for(response, self.ctx.http)
        return self._parse(response)

    def _page(self, answer: Answer, request: JSON, recent: list[str], accepted: Counter[bytes]) -> Page:
        """The page of ``answer``: its events less those at the resume point (``recent``) or accepted
        before the page was cut short (``accepted``)."""
        guard = set(recent)
        pending = Counter(accepted)
        events: list[JSON] = []
        keys: list[str] = []
        for event in answer.items:
            key = event_key(event)
            if key in guard:
                continue
            if pending[digest(key)] > 0:  # accepted before the page was cut short
                pending[digest(key)] -= 1
                continue
            events.append(event)
            keys.append(key)
        counters: dict[str, int] = {}
        if len(answer.items) != len(events):
            counters["duplicates_dropped"] = len(answer.items) - len(events)
        without_uuid = sum(1 for k in keys if k.startswith(FINGERPRINT_PREFIX))
        if without_uuid:
            counters["events_without_uuid"] = without_uuid
        return Page(
            events=events,
            position={"cursor": answer.cursor, "recent_uuids": (recent + keys)[-RESUME_GUARD_SIZE:]},
            newest_event_time=newest_time([e.get("timestamp") for e in events]),
            counters=counters,
            has_more=answer.has_more,
            accepted_position=_accepted_position(request, recent, accepted, keys),
        )

    def _reset_request(self, position: JSON) -> JSON:
        """The ResetCursor to send: the stored one of a first page cut short, else ``first_request``."""
        start = position.get("start_time")
        if not isinstance(start, str) or not start:
            return self.first_request()
        end = position.get("end_time")
        return {"limit": PAGE_LIMIT, "start_time": start} | (
            {"end_time": end} if isinstance(end, str) else {}
        )

    def _parse(self, response: requests.Response) -> Answer:
        body = _json(response, self.ctx.http)

        def invalid(problem: str) -> UpstreamError:
            # Described only on failure: ``describe`` reads the body again for the server's message.
            return UpstreamError(f"{describe(response)}: {problem}")

        if not isinstance(body, dict):
            raise invalid("expected a JSON object")
        cursor, has_more, items = body.get("cursor"), body.get("has_more"), body.get("items")
        if not isinstance(cursor, str) or not cursor:
            raise invalid("the answer has no cursor")
        if not isinstance(has_more, bool):
            raise invalid("the answer has no has_more flag")
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise invalid("items must be a list of JSON objects")
        return Answer(items, cursor, has_more)
