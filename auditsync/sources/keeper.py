"""Keeper Admin REST API source: stream ``keeper/events``, every audit event exactly once.

The API has no event id, documents neither sort order nor whether ``end_date`` is inclusive, and may
deliver events late. So we read fixed windows ``[watermark - overlap, run_start - lag]`` (frozen when
opened), page through each with the continuation token, drop copies already delivered by their
fingerprint multiset (``keeper_position``), and advance the watermark only when a window was read to
its end. A stream's first window spans its whole look-back; large backlogs are split into windows
sized for about ``TARGET_WINDOW_EVENTS`` events (five requests). A window's pages are delivered as
they are read, each only while the window's fingerprints still fit an exact position; a window that
turns out too big (more than MAX_PASS_EVENTS new events, or more fingerprints than a checkpoint holds)
is made smaller before any more of it is delivered, and what was delivered of it counts as delivered.
So every page carries an exact position to save once the sink accepted it (and, for a page the sink
accepted only in part, the position that records that part): a deadline or a crash costs at most the
request in flight. A continuation token is never trusted to survive: if the server rejects a stored
one, the window is read again from its start and the fingerprints remove what was already sent; a
token seen before in this run for the same window (paging in a circle) is an ``upstream`` error.
A pass's requests are described by ``KeeperPaging`` and sent by ``auditsync.sources.paging.ReadAhead``,
one request ahead of the page being delivered, and the next window's first request before the last
page of a window is handed over: at Keeper's latency a drain waits for its requests, so they follow
one another without a pause.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Generator, Hashable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from auditsync.config import KeeperSettings
from auditsync.errors import AuthError, TokenRefused, UpstreamError
from auditsync.failures import KEEPER_API
from auditsync.fastjson import response_json
from auditsync.http import describe
from auditsync.model import JSON, Deadline, Page, Stream
from auditsync.sources import SourceContext
from auditsync.sources.keeper_position import (
    TARGET_WINDOW_EVENTS,
    KeeperPosition,
    Window,
    fingerprint,
    iso_ms,
    to_ms,
)
from auditsync.sources.paging import Paginator, ReadAhead
from auditsync.tables import KEEPER_TABLE
from auditsync.tables.rows import parse_time

log = logging.getLogger(__name__)

STREAM = "keeper/events"
EVENTS_PATH = "/api/rest/public/events"
PAGE_LIMIT = 1000
#: Statuses with which a server may refuse a stale continuation token; the window is then re-read.
TOKEN_REJECTED = frozenset({400, 404, 410})
#: Re-reads of one window within one run before we call the API broken (a token that never lasts).
MAX_RESTARTS_PER_RUN = 3
#: Events one pass over a window may deliver (32 full pages; a window sized for TARGET_WINDOW_EVENTS
#: takes five): a window that holds more shrinks, so its fingerprints stay within a checkpoint with an
#: overlap carried (``keeper_position.MAX_FINGERPRINT_CHARS``), and a stream's first window reads a
#: backlog of up to this many events in one window, without a request to learn its size. Counted in
#: events, not pages: a server that answers with fewer events than asked for (Keeper documents no such
#: cap, but its schema's default limit is 100) fills a pass with more, smaller pages, and counting pages
#: would shrink every window it reads and read each one twice.
MAX_PASS_EVENTS = 32 * PAGE_LIMIT

AUTH_HINT = (
    "The Keeper API token was refused (revoked or expired). A Keeper root admin creates a new one with "
    'Commander: public-api-key generate --name auditsync --integrations "SIEM:1" --expires never, '
    "then stores it in the Key Vault secret (KEEPER_TOKEN_SECRET) or KEEPER_TOKEN."
)
FORBIDDEN_HINT = (
    "The token may not read audit events: the enterprise needs the ARAM (Advanced Reporting & Alerts) "
    'add-on and the token the SIEM role with read access (--integrations "SIEM:1"); also check that '
    "KEEPER_BASE_URL is your tenant's region."
)


def stream_names(settings: KeeperSettings) -> list[str]:
    return [STREAM]


def open_streams(ctx: SourceContext[KeeperSettings]) -> list[Stream]:
    return [KeeperStream(ctx)]


def probe(ctx: SourceContext[KeeperSettings]) -> str:
    """One authenticated one-event query over the last minute: proves host, token and role."""
    api = KeeperApi(ctx)
    end = to_ms(ctx.run_start)
    api.fetch(end - 60_000, end, None, ctx.deadline, limit=1)
    host = urlsplit(ctx.settings.base_url).hostname
    return f"Keeper events API at {host}: token accepted, audit events readable"


def _throttled(response: requests.Response) -> bool:
    """Keeper throttles with 403 and a body saying so (its other APIs: ``{"error": "throttled"}``)."""
    return response.status_code == 403 and "throttl" in response.text[:2000].lower()


class TokenRejected(Exception):
    """The server refused a continuation token (expired or unknown)."""


@dataclass(frozen=True)
class PassRequest:
    """One request of a read pass over a window: the window, the continuation token (None: the window's
    start), whether the pass is bounded (see ``KeeperPaging.stops_before``) and the events it read before."""

    start_ms: int
    end_ms: int
    token: str | None
    bounded: bool
    events: int = 0


class KeeperPaging(Paginator[PassRequest, JSON]):
    """Keeper's paging within a pass: the continuation token while ``has_more``, until the pass read as
    much as it may deliver (MAX_PASS_EVENTS events; no bound for a window that cannot shrink). A token
    is where paging continues from in its window, so a token returned again for the same window is a
    loop."""

    def next_request(self, request: PassRequest, answer: JSON) -> PassRequest | None:
        if not answer["has_more"]:
            return None
        return PassRequest(
            request.start_ms,
            request.end_ms,
            answer["continuation_token"],
            request.bounded,
            request.events + len(answer["events"]),
        )

    def stops_before(self, request: PassRequest) -> bool:
        return request.bounded and request.events >= MAX_PASS_EVENTS

    def position_key(self, request: PassRequest) -> Hashable | None:
        return None if request.token is None else (request.start_ms, request.end_ms, request.token)

    def loop_error(self, request: PassRequest) -> UpstreamError:
        return UpstreamError(
            f"Keeper returned a continuation token it had already returned for window "
            f"{iso_ms(request.start_ms)} - {iso_ms(request.end_ms)} (the paging goes round in a circle)",
            hint="The stream stops instead of sending the same events again; the next run resumes "
            "from the saved position. If it persists, report it to Keeper support.",
        )


class _Pass(NamedTuple):
    """A read pass under way: its first request, and when the pass began (events visible by then are in it)."""

    first: PassRequest
    started_ms: int


class KeeperApi:
    """``GET /api/rest/public/events`` with the project's error mapping."""

    def __init__(self, ctx: SourceContext[KeeperSettings]) -> None:
        self.ctx = ctx
        self.url = ctx.settings.base_url.rstrip("/") + EVENTS_PATH

    def fetch_pass(self, request: PassRequest, deadline: Deadline) -> JSON:
        """One request of a read pass (in a ReadAhead thread)."""
        return self.fetch(request.start_ms, request.end_ms, request.token, deadline)

    def fetch(
        self, start_ms: int, end_ms: int, token: str | None, deadline: Deadline, *, limit: int = PAGE_LIMIT
    ) -> JSON:
        """One page. Raises TokenRejected when a given token is refused; otherwise the mapped error."""
        params: dict[str, Any] = {"start_date": iso_ms(start_ms), "end_date": iso_ms(end_ms), "limit": limit}
        if token is not None:
            params["continuation_token"] = token
        response = self.ctx.http.request(
            "GET",
            self.url,
            deadline=deadline,
            headers={"x-api-token": f"Bearer {self.ctx.token}", "Accept": "application/json"},
            params=params,
            throttled=_throttled,
            component=KEEPER_API,
        )
        status = response.status_code
        if status == 200:
            return self._body(response)
        redactor = self.ctx.http.redactor
        if token is not None and status in TOKEN_REJECTED:
            log.info("Keeper refused the continuation token (%s); re-reading the window", status)
            raise TokenRejected(describe(response, redactor))
        if status == 401:
            raise TokenRefused(describe(response, redactor), hint=AUTH_HINT)
        if status == 403:
            raise AuthError(describe(response, redactor), hint=FORBIDDEN_HINT)
        if status == 400:
            raise UpstreamError(
                describe(response, redactor),
                hint="Keeper refused the query; if this persists, report it with the message above.",
            )
        raise UpstreamError(describe(response, redactor), hint="Unexpected answer from the Keeper API.")

    def _body(self, response: requests.Response) -> JSON:
        where = f"GET {self.url}"
        try:
            body = response_json(response)
        except ValueError:
            raise UpstreamError(
                f"{where} -> 200 with a body that is not JSON",
                hint="The Keeper API answered with something else than events; check KEEPER_BASE_URL.",
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("events", []), list):
            raise UpstreamError(f"{where} -> 200 without an events list", hint="Check KEEPER_BASE_URL.")
        events = body.get("events") or []
        if not all(isinstance(e, dict) for e in events):
            raise UpstreamError(f"{where} -> 200 with events that are not JSON objects")
        token = body.get("continuation_token")
        if token is not None and not isinstance(token, str):
            raise UpstreamError(f"{where} -> 200 with a continuation_token that is not a string")
        has_more = body.get("has_more", False)
        if not isinstance(has_more, bool):
            raise UpstreamError(f"{where} -> 200 with a has_more that is not true or false")
        if has_more and not token:
            raise UpstreamError(f"{where} -> 200 with has_more but no continuation_token")
        return {"events": events, "continuation_token": token, "has_more": has_more}


class KeeperStream:
    """``keeper/events``: windows, pages and deduplication (see the module docstring)."""

    name = STREAM
    source = "keeper"
    table = KEEPER_TABLE

    def __init__(self, ctx: SourceContext[KeeperSettings]) -> None:
        self.ctx = ctx
        self.api = KeeperApi(ctx)
        settings = ctx.settings
        self.lag_ms = int(settings.lag.total_seconds() * 1000)
        self.overlap_ms = int(settings.overlap.total_seconds() * 1000)
        self.lookback_ms = int(settings.initial_lookback.total_seconds() * 1000)

    def pages(self, position: JSON | None, deadline: Deadline) -> Iterator[Page]:
        """Yield pages until the window ending at ``run_start - lag`` is read, or the deadline is near.

        A pass over a window is delivered page by page as its answers come in, each page only while
        the window's fingerprints still fit an exact position; a window that turns out too big is made
        smaller first (what was delivered of it counts as delivered), so every saved position resumes
        exactly, page by page, and a stop never re-reads a whole window. A pass's requests go out one
        ahead of the page being delivered (ReadAhead), and the next window's first request before the
        last page of a window is handed over.
        """
        run_start_ms = to_ms(self.ctx.run_start)
        target_end_ms = run_start_ms - self.lag_ms
        if position is None:
            start = run_start_ms - self.lookback_ms
            state = KeeperPosition(watermark_ms=start, next_start_ms=start)
        else:
            state = KeeperPosition.load(position)
        passes = _PassReader(self, state, position if position is not None else state.dump()[0])
        reads = ReadAhead(
            KeeperPaging(), lambda request, _: self.api.fetch_pass(request, deadline), deadline, STREAM
        )
        restarts = 0
        #: The pass whose requests ``reads`` is sending (begun before the last page of the window
        #: before it was handed over), or None.
        reading: _Pass | None = None
        try:
            while not deadline.near():
                window = state.window
                if window is None:
                    window = state.open_window(target_end_ms)
                    if window is None:
                        return
                if reading is None:
                    reading = passes.begin(reads, window)
                outcome = yield from passes.read(reads, reading, deadline, target_end_ms)
                reading = passes.following
                if outcome == "rejected":
                    restarts += 1
                    if restarts > MAX_RESTARTS_PER_RUN:
                        raise UpstreamError(
                            f"Keeper refused the continuation token of window {iso_ms(window.start_ms)} - "
                            f"{iso_ms(window.end_ms)} {restarts} times in one run",
                            hint="The Keeper API does not keep its paging tokens; report it to Keeper support.",
                        )
                    state.restart_pass()
                    saved, exact = state.dump()
                    passes.last_saved = saved
                    counters = {"window_restarts": 1} | ({} if exact else {"oversized_window_pages": 1})
                    yield Page([], saved, None, counters, has_more=True)
                elif outcome == "deadline":
                    return  # the pages read so far were delivered; the next run continues after them
        finally:
            # A request still under way (sent ahead for a pass that is not needed any more) is dropped;
            # it ends by the run's deadline like every vendor call.
            reads.close()


class _PassReader:
    """The passes of one ``KeeperStream.pages``: the position as delivered so far (``state``, and
    ``last_saved``, the position of the page handed over last) and how each pass is read."""

    def __init__(self, stream: KeeperStream, state: KeeperPosition, last_saved: JSON) -> None:
        self.stream = stream
        self.state = state
        self.last_saved = last_saved
        #: The next window's pass, sent before the last page of the window before it was handed over.
        self.following: _Pass | None = None

    def begin(self, reads: ReadAhead[PassRequest, JSON], window: Window) -> _Pass:
        """Send a pass's first request over ``window`` (from its start, or its token). A window that
        reaches at most 1 ms past the watermark cannot shrink: its pass is not bounded."""
        started_ms = to_ms(self.stream.ctx.clock.now()) if window.token is None else window.pass_started_ms
        bounded = window.end_ms - self.state.watermark_ms >= 2
        first = PassRequest(window.start_ms, window.end_ms, window.token, bounded)
        reads.start(first)
        return _Pass(first, started_ms)

    def read(
        self, reads: ReadAhead[PassRequest, JSON], reading: _Pass, deadline: Deadline, target_end_ms: int
    ) -> Generator[Page, None, str]:
        """Deliver the pass ``reads`` is sending over the current window, page by page as its answers
        come in, and return why it stopped: ``complete`` (the window was read to its end; ``following``
        is the next window's pass, already sent, or None), ``shrunk`` (the window turned out too big and
        was made smaller, see below), ``rejected`` (the token was refused; the pages before it were
        delivered) or ``deadline`` (nothing more was sent).

        A page of a bounded pass is delivered only if the window's fingerprints still fit an exact
        position with it, and while the pass's new events do not say the window holds more than
        MAX_PASS_EVENTS (``_far_too_big``); a pass stops after MAX_PASS_EVENTS events. Otherwise the
        window shrinks before anything more is delivered: what was delivered of it counts as delivered
        (``prior``), so its next pass delivers only the rest. A continuation token seen before in this
        run for the same window is an UpstreamError (``KeeperPaging.loop_error``).
        """
        self.following = None
        state = self.state
        window = state.window
        assert window is not None
        bounded = reading.first.bounded
        new_times: list[int] = []
        events = 0
        while True:
            try:
                taken = reads.next()
            except TokenRejected:
                return "rejected"
            if taken is None:  # nothing more was sent: the deadline is near
                return "deadline"
            request, body = taken
            stamped = _stamped(body["events"])
            events += len(body["events"])
            if bounded:
                new_times.extend(key >> 32 for _, key in stamped if key >> 32 > state.watermark_ms)
                if body["has_more"] and (
                    _far_too_big(new_times, state.watermark_ms, window.end_ms)
                    or not state.fits_with([key for _, key in stamped])
                ):
                    yield self._shrink(reads, new_times)
                    return "shrunk"
            if request.token is None:
                state.start_pass(reading.started_ms)
            page = self._page(body, stamped, target_end_ms)
            self.last_saved = page.position
            if not body["has_more"] and not deadline.near():
                # The next window's first request goes out now, before this window's last page is
                # handed over (``state`` is where delivering it leaves the position).
                following = state.open_window(target_end_ms)
                if following is not None:
                    self.following = self.begin(reads, following)
            yield page
            if not body["has_more"]:
                return "complete"
            if bounded and events >= MAX_PASS_EVENTS:
                yield self._shrink(reads, new_times)
                return "shrunk"

    def _page(self, body: JSON, stamped: list[tuple[datetime | None, int]], target_end_ms: int) -> Page:
        """Deliver one page: its new events and the position after it (``last_saved`` is the position
        before it: the page's own position, with what the sink accepted of it counted, is built from
        that when needed)."""
        state = self.state
        before = self.last_saved
        window = state.window
        assert window is not None
        counters: Counter[str] = Counter()
        delivered: list[JSON] = []
        keys: list[int] = []
        newest: datetime | None = None
        for event, (when, key) in zip(body["events"], stamped, strict=True):
            # An unparseable time is still delivered (shape_rows keeps the raw value in Data).
            if not state.offer(key):
                counters["duplicates_dropped"] += 1
                continue
            delivered.append(event)
            keys.append(key)
            if when is None:
                counters["unparsed_timestamps"] += 1
            elif newest is None or when > newest:
                newest = when
        window.delivered += len(delivered)
        if body["has_more"]:
            window.token = body["continuation_token"]
        else:
            if state.complete_window(self.stream.overlap_ms, self.stream.lag_ms):
                counters["overlap_shortened"] += 1
                log.warning("Keeper: more events in the overlap than the checkpoint holds; overlap shortened")
        counters["events_read"] += len(body["events"])
        more = state.window is not None or state.watermark_ms < target_end_ms
        saved, exact = state.dump()
        if not exact:
            counters["oversized_window_pages"] += 1

        def accepted_position(n: int) -> JSON:
            """Before this page, plus its first ``n`` delivered events as accepted: resuming re-reads the
            page from the same token (or the window, if the token is refused) and sends only the rest."""
            partial = KeeperPosition.load(before)
            if partial.window is not None:
                partial.window.delivered += n
            partial.mark_accepted(keys[:n])
            return partial.dump()[0]

        return Page(
            delivered,
            saved,
            newest,
            {k: v for k, v in counters.items() if v},
            has_more=more,
            accepted_position=accepted_position,
        )

    def _shrink(self, reads: ReadAhead[PassRequest, JSON], new_times: list[int]) -> Page:
        """Give the pass up and make its window smaller: an empty page that saves the position."""
        reads.stop()  # a request sent ahead for the pass given up is dropped
        self.state.shrink_window(_smaller_end(new_times, self.state.watermark_ms))
        self.last_saved, _ = self.state.dump()
        return Page([], self.last_saved, None, {"window_shrunk": 1}, has_more=True)


def _far_too_big(new_times: list[int], watermark_ms: int, end_ms: int) -> bool:
    """True when the new events a pass read (their times past the watermark, in the order read) say
    the window holds more than a pass may deliver: reading on would only be read again once the
    window is smaller.

    For a server that pages in time order (either way) the estimate is the density read over the part
    of the window that may still hold events not read (after the latest event read, or before the
    earliest: a quiet start or end of the window does not count), close enough to give up after the
    first page a window a pass could not complete. For any other order the events read spread over the
    whole window and the estimate stays near what was read: it fires only for a window more than twice
    too big.
    """
    if len(new_times) < PAGE_LIMIT // 2:
        return False
    low, high = min(new_times), max(new_times)
    if all(a <= b for a, b in itertools.pairwise(new_times)):
        reach = end_ms - low
    elif all(a >= b for a, b in itertools.pairwise(new_times)):
        reach = high - watermark_ms
    else:  # no order: a rougher estimate, so only a window at least twice too big is given up early
        return len(new_times) * (end_ms - watermark_ms) / (high - low + 1) > 2 * MAX_PASS_EVENTS
    return len(new_times) * reach / (high - low + 1) > MAX_PASS_EVENTS


def _smaller_end(new_times: list[int], watermark_ms: int) -> int | None:
    """Where a window that turned out too big should end, from the times of the new events its pass
    read, in the order read (``shrink_window`` never goes past half the window whatever this says, so
    any answer is safe).

    With TARGET_WINDOW_EVENTS new events read, the time of the TARGET-th earliest: for a server that
    pages in time order the smaller window holds just that many. With fewer (a pass given up early),
    an end as far past the earliest event read (ascending pages) or the watermark (any other order) as
    TARGET_WINDOW_EVENTS events take at the density read.
    """
    times = new_times
    if len(times) >= TARGET_WINDOW_EVENTS:
        return heapq.nsmallest(TARGET_WINDOW_EVENTS, times)[-1]
    if not times:
        return None
    low, high = min(times), max(times)
    ascending = all(a <= b for a, b in itertools.pairwise(times))
    return (low if ascending else watermark_ms) + TARGET_WINDOW_EVENTS * (high - low + 1) // len(times)


def _stamped(events: list[JSON]) -> list[tuple[datetime | None, int]]:
    """Each event's time and fingerprint, computed once when its page is read: the read-ahead and the
    delivery of a page both need them (parsing them twice was a tenth of the Keeper source's CPU)."""
    stamped = []
    for event in events:
        when = parse_time(event.get("timestamp"))
        stamped.append((when, fingerprint(event, None if when is None else to_ms(when))))
    return stamped
