"""Keeper Admin REST API source: stream ``keeper/events``, every audit event exactly once.

The API has no event id, documents neither sort order nor whether ``end_date`` is inclusive, and may
deliver events late. So we read fixed windows ``[watermark - overlap, run_start - lag]`` (frozen when
opened), page through each with the continuation token, drop copies already delivered by their
fingerprint multiset (``keeper_position``), and advance the watermark only when a window was read to
its end. Large backlogs are split into windows sized for about ``TARGET_WINDOW_EVENTS`` events (five
requests); a window that turns out to hold more than a checkpoint's fingerprints (or a pass's pages)
is made smaller before any of it is delivered, so every page carries an exact position to save once the sink accepted it (and, for a page
the sink accepted only in part, the position that records that part): a deadline or a crash costs at
most the request in flight. A continuation token is never trusted to survive: if the server rejects a
stored one, the window is read again from its start and the fingerprints remove what was already sent;
a token seen before in this run for the same window (paging in a circle) is an ``upstream`` error.
Requests go out from a fetch thread one request ahead of the pages' fingerprinting (``_PassReader``):
at Keeper's latency a drain waits for its requests, so they follow one another without a pause.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from auditsync.config import KeeperSettings
from auditsync.errors import AuthError, TokenRefused, UpstreamError
from auditsync.failures import KEEPER_API
from auditsync.fastjson import response_json
from auditsync.http import describe
from auditsync.model import JSON, Clock, Deadline, Page, Stream
from auditsync.sources import SourceContext
from auditsync.sources.keeper_position import (
    TARGET_WINDOW_EVENTS,
    KeeperPosition,
    Window,
    fingerprint,
    iso_ms,
    to_ms,
)
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
#: Pages one pass over a window may hold before delivery (a window sized for TARGET_WINDOW_EVENTS takes
#: five): a pass that would hold more is too big and its window shrinks, so memory stays bounded even
#: for a pass that brings no new fingerprints (a window re-read after a refused token).
MAX_PASS_PAGES = 8
#: The same bound in events, which is what holds memory: a server that answers with fewer events than
#: asked for (Keeper documents no such cap, but its schema's default limit is 100) fills a pass with
#: more, smaller pages, and counting pages would shrink every window it reads (8 pages of 100 events
#: hold no window of TARGET_WINDOW_EVENTS) and read each one twice.
MAX_PASS_EVENTS = MAX_PASS_PAGES * PAGE_LIMIT
#: Pages held at most before delivery when a window cannot shrink any more (see ``_read_pass``).
UNBOUNDED_HELD_PAGES = 3

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


class KeeperApi:
    """``GET /api/rest/public/events`` with the project's error mapping."""

    def __init__(self, ctx: SourceContext[KeeperSettings]) -> None:
        self.ctx = ctx
        self.url = ctx.settings.base_url.rstrip("/") + EVENTS_PATH

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
    #: A pass over a window is read whole (about five pages for a window of TARGET_WINDOW_EVENTS, at most
    #: MAX_PASS_PAGES) before its pages are yielded from memory, and the next pass's first request is
    #: already in flight when they are: the runner may take them all at once, so that the source goes on
    #: to read the next pass instead of waiting for these pages to be sent.
    read_ahead = MAX_PASS_PAGES

    def __init__(self, ctx: SourceContext[KeeperSettings]) -> None:
        self.ctx = ctx
        self.api = KeeperApi(ctx)
        settings = ctx.settings
        self.lag_ms = int(settings.lag.total_seconds() * 1000)
        self.overlap_ms = int(settings.overlap.total_seconds() * 1000)
        self.lookback_ms = int(settings.initial_lookback.total_seconds() * 1000)

    def pages(self, position: JSON | None, deadline: Deadline) -> Iterator[Page]:
        """Yield pages until the window ending at ``run_start - lag`` is read, or the deadline is near.

        Each pass over a window is read ahead (``_read_pass``) before anything of it is delivered, and
        delivered only while its fingerprints fit an exact position: a window that turns out too big is
        made smaller first, so every saved position resumes exactly, page by page, and a stop never
        re-reads a whole window. Requests go out from a thread of their own (``_PassReader``), each as
        soon as the one before answered, and the next pass's first request before this pass's pages
        are handed over.
        """
        run_start_ms = to_ms(self.ctx.run_start)
        target_end_ms = run_start_ms - self.lag_ms
        if position is None:
            start = run_start_ms - self.lookback_ms
            state = KeeperPosition(watermark_ms=start, next_start_ms=start)
        else:
            state = KeeperPosition.load(position)
        last_saved: JSON = position if position is not None else state.dump()[0]
        restarts = 0
        seen_tokens: set[tuple[int, int, str]] = set()
        # Two threads: a pass given up (too big) may still wait for its last request while the next
        # pass's first one goes out; otherwise one pass's requests run one after another in one thread.
        fetcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keeper-fetch")
        reader: _PassReader | None = None
        try:
            while not deadline.near():
                window = state.window
                if window is None:
                    window = state.open_window(target_end_ms)
                    if window is None:
                        return
                bounded = window.end_ms - state.watermark_ms >= 2
                if reader is None:
                    reader = self._begin_pass(window, bounded, fetcher, deadline, seen_tokens)
                held, outcome, scratch = self._read_pass(state, reader, deadline, bounded=bounded)
                reader.stop()
                reader = None
                if outcome == "oversized":
                    # Nothing of this pass was delivered: read a smaller window instead.
                    state.shrink_window(_smaller_end(held, state.watermark_ms))
                    last_saved, _ = state.dump()
                    yield Page([], last_saved, None, {"window_shrunk": 1}, has_more=True)
                    continue
                if outcome == "complete" and not deadline.near():
                    # The next window's first request goes out now, before this pass's pages are made
                    # and handed over: ``scratch`` is where delivering them leaves the position.
                    scratch.complete_window(self.overlap_ms, self.lag_ms)
                    following = scratch.open_window(target_end_ms)
                    if following is not None:
                        reader = self._begin_pass(
                            following,
                            following.end_ms - scratch.watermark_ms >= 2,
                            fetcher,
                            deadline,
                            seen_tokens,
                        )
                pages = []
                for sent_token, body, pass_started_ms, stamped in held:
                    if sent_token is None:
                        state.start_pass(pass_started_ms)
                    page = self._page(state, body, stamped, target_end_ms, last_saved)
                    last_saved = page.position
                    pages.append(page)
                if reader is not None:
                    opened = state.open_window(target_end_ms)
                    if opened is None or (opened.start_ms, opened.end_ms) != (reader.start_ms, reader.end_ms):
                        reader.stop()  # cannot happen (the same steps on the same state); never trusted
                        reader = None
                if outcome == "rejected":
                    restarts += 1
                    if restarts > MAX_RESTARTS_PER_RUN:
                        yield from pages
                        raise UpstreamError(
                            f"Keeper refused the continuation token of window {iso_ms(window.start_ms)} - "
                            f"{iso_ms(window.end_ms)} {restarts} times in one run",
                            hint="The Keeper API does not keep its paging tokens; report it to Keeper support.",
                        )
                    state.restart_pass()
                    last_saved, exact = state.dump()
                    counters = {"window_restarts": 1} | ({} if exact else {"oversized_window_pages": 1})
                    pages.append(Page([], last_saved, None, counters, has_more=True))
                yield from pages
                if outcome == "deadline":
                    return  # the pages read so far were delivered; the next run continues after them
        finally:
            if reader is not None:
                reader.stop()
            # A request still under way (read ahead for a pass that is not needed any more) is dropped;
            # it ends by the run's deadline like every vendor call.
            fetcher.shutdown(wait=True, cancel_futures=True)

    def _begin_pass(
        self,
        window: Window,
        bounded: bool,
        fetcher: ThreadPoolExecutor,
        deadline: Deadline,
        seen_tokens: set[tuple[int, int, str]],
    ) -> _PassReader:
        """Send a pass's first request over ``window`` (from its start, or its token)."""
        reader = _PassReader(
            self.api,
            self.ctx.clock,
            window,
            deadline,
            seen_tokens,
            MAX_PASS_EVENTS if bounded else None,
            None if bounded else UNBOUNDED_HELD_PAGES,
        )
        reader.start(fetcher)
        return reader

    def _read_pass(
        self,
        state: KeeperPosition,
        reader: _PassReader,
        deadline: Deadline,
        *,
        bounded: bool,
    ) -> tuple[list[tuple[str | None, JSON, int, list[tuple[datetime | None, int]]]], str, KeeperPosition]:
        """Take the current pass over the window from ``reader`` without delivering anything yet.

        Returns the pages read (token sent, body, when the pass began) and why reading stopped:
        ``complete`` (the window was read to its end), ``deadline``, ``rejected`` (the token was
        refused; the pages before it are good), ``more`` (a window that cannot shrink: deliver these
        pages, then read on), or ``oversized`` (delivering this pass would make the window's
        fingerprints too big for an exact position, or the pass would hold more than MAX_PASS_EVENTS
        events: the window must shrink first). A continuation token seen before in this run for the same
        window is an UpstreamError. The third value is the position as delivering the pages read would
        leave it, but for the window's completion (``scratch``).
        """
        scratch = state.copy()
        window = scratch.window
        assert window is not None
        if reader.token is None:
            window.pass_started_ms = reader.pass_started_ms
        held: list[tuple[str | None, JSON, int, list[tuple[datetime | None, int]]]] = []
        while True:
            try:
                token, body = reader.next()
            except TokenRejected:
                return held, "rejected", scratch
            stamped = _stamped(body["events"])
            for _, fingerprint_key in stamped:
                window.delivered += scratch.offer(fingerprint_key)
            held.append((token, body, reader.pass_started_ms, stamped))
            if not body["has_more"]:
                return held, "complete", scratch
            if bounded and (
                sum(len(page[1]["events"]) for page in held) >= MAX_PASS_EVENTS
                or not scratch.fits()
                or _far_too_big(held, state.watermark_ms, reader.end_ms)
            ):
                return held, "oversized", scratch
            if not bounded and len(held) >= UNBOUNDED_HELD_PAGES:
                # A window that cannot shrink is delivered as it is read: memory stays bounded.
                return held, "more", scratch
            if deadline.near():
                return held, "deadline", scratch

    def _page(
        self,
        state: KeeperPosition,
        body: JSON,
        stamped: list[tuple[datetime | None, int]],
        target_end_ms: int,
        before: JSON,
    ) -> Page:
        """Deliver one page read ahead; ``before`` is the position saved before it (the page's own
        position, with what the sink accepted of it counted, is built from that when needed)."""
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
            if state.complete_window(self.overlap_ms, self.lag_ms):
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


class _PassReader:
    """One pass's requests, in the stream's fetch thread, one request ahead of the pages' examination.

    The continuation token is all a request needs, so the request for page n+1 goes out as soon as page
    n answered, before page n is fingerprinted and checked against the checkpoint bound (that work
    overlaps the next request's wait instead of adding to it). It never runs further ahead: request n+2
    waits until the pass has asked for page n+1 (``next``), i.e. has examined page n. The reader stops
    by itself where the pass would stop anyway: the window's last page, a refused or repeated token,
    ``max_events`` events or ``max_pages`` pages, the deadline. ``stop`` ends it early (a pass found
    too big): the one request sent ahead is then dropped.
    """

    def __init__(
        self,
        api: KeeperApi,
        clock: Clock,
        window: Window,
        deadline: Deadline,
        seen_tokens: set[tuple[int, int, str]],
        max_events: int | None,
        max_pages: int | None,
    ) -> None:
        self.api = api
        self.clock = clock
        self.start_ms, self.end_ms, self.token = window.start_ms, window.end_ms, window.token
        #: When the pass asked for its first page: events visible by then are in the pass.
        self.pass_started_ms = window.pass_started_ms
        self.deadline = deadline
        self.seen_tokens = seen_tokens
        self.max_events = max_events
        self.max_pages = max_pages
        self._events = 0
        self._results: queue.Queue[tuple[str | None, JSON | BaseException]] = queue.Queue()
        self._stopped = threading.Event()
        #: One permit per page asked for: the request after page n needs page n to have been asked for.
        self._asked = threading.Semaphore(0)

    def start(self, fetcher: ThreadPoolExecutor) -> None:
        if self.token is None:
            self.pass_started_ms = to_ms(self.clock.now())
        fetcher.submit(self._run)

    def stop(self) -> None:
        self._stopped.set()
        self._asked.release()  # a reader waiting for a permit wakes up and sees it is stopped

    def next(self) -> tuple[str | None, JSON]:
        """The next page's (token sent, body); raises what its request raised (TokenRejected, ...)."""
        self._asked.release()
        token, result = self._results.get()
        if isinstance(result, BaseException):
            raise result
        return token, result

    def _run(self) -> None:
        token = self.token
        for number in itertools.count(1):
            if number > 1:
                self._asked.acquire()  # page number-1 was asked for: page number-2 has been examined
            if self._stopped.is_set():
                return
            try:
                body = self.api.fetch(self.start_ms, self.end_ms, token, self.deadline)
            except BaseException as error:  # handed to the reader's consumer, which raises it
                self._results.put((token, error))
                return
            next_token = body["continuation_token"] if body["has_more"] else None
            if next_token is not None:
                key = (self.start_ms, self.end_ms, next_token)
                if next_token == token or key in self.seen_tokens:
                    self._results.put((token, _circle_error(self.start_ms, self.end_ms)))
                    return
                self.seen_tokens.add(key)
            self._results.put((token, body))
            self._events += len(body["events"])
            if (
                next_token is None
                or (self.max_pages is not None and number >= self.max_pages)
                or (self.max_events is not None and self._events >= self.max_events)
                or self.deadline.near()
            ):
                return
            token = next_token


def _circle_error(start_ms: int, end_ms: int) -> UpstreamError:
    return UpstreamError(
        f"Keeper returned a continuation token it had already returned for window "
        f"{iso_ms(start_ms)} - {iso_ms(end_ms)} (the paging goes round in a circle)",
        hint="The stream stops instead of sending the same events again; the next run resumes "
        "from the saved position. If it persists, report it to Keeper support.",
    )


def _new_times(
    held: list[tuple[str | None, JSON, int, list[tuple[datetime | None, int]]]], watermark_ms: int
) -> list[int]:
    """The times of the new events (past the watermark) a pass read, in the order it read them."""
    return [key >> 32 for *_, stamped in held for _, key in stamped if key >> 32 > watermark_ms]


def _far_too_big(
    held: list[tuple[str | None, JSON, int, list[tuple[datetime | None, int]]]],
    watermark_ms: int,
    end_ms: int,
) -> bool:
    """True when the pages read so far say the window holds more than twice what a pass may (the new
    events' density over the window's new part): reading on to MAX_PASS_PAGES would only be discarded.

    Meaningful for a server that pages in time order (either way); for any other order the events read
    spread over the whole window, the estimate stays near what was read and this never fires.
    """
    times = _new_times(held, watermark_ms)
    if len(times) < PAGE_LIMIT // 2:
        return False
    estimate = len(times) * (end_ms - watermark_ms) / (max(times) - min(times) + 1)
    return estimate > 2 * MAX_PASS_PAGES * PAGE_LIMIT


def _smaller_end(
    held: list[tuple[str | None, JSON, int, list[tuple[datetime | None, int]]]], watermark_ms: int
) -> int | None:
    """Where a window that turned out too big should end, from what its pass read (``shrink_window``
    never goes past half the window whatever this says, so any answer is safe).

    With TARGET_WINDOW_EVENTS new events read, the time of the TARGET-th earliest: for a server that
    pages in time order the smaller window holds just that many. With fewer (a pass given up early),
    an end as far past the earliest event read (ascending pages) or the watermark (any other order) as
    TARGET_WINDOW_EVENTS events take at the density read.
    """
    times = _new_times(held, watermark_ms)
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
