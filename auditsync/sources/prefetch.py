"""Send the next page's request as soon as its cursor shows at the head of the current answer.

A cursor-paged stream can ask for page n+1 only with the cursor in page n's answer, so each page costs
a round trip plus reading and parsing the answer before the next request can leave: with 1Password's
1.2 MB pages that is 300 ms of latency plus 20-30 ms here on loopback, more over a real network, where
the body itself takes time to arrive. 1Password writes the cursor first
(``{"cursor": "...", "has_more": true, "items": [...]}``), so the cursor is known from the first bytes.
``CursorPrefetch`` sends the next request then, from a thread of its own, while this page is still
read and parsed; the stream takes that answer as page n+1 only if the cursor the parsed page gives is
the one it was sent with (otherwise it is dropped and the right request is sent, as before).

What bounds it: at most one request sent ahead that the stream has not yet taken (a request sent
ahead sends the one after it only once the stream is waiting for it), so a stream never holds more
than one unclaimed answer (its bytes, not yet parsed) and never asks faster than one page per round
trip. Requests sent ahead go through the same ``HttpClient`` (retries, timeouts, the run's deadline,
the account's pacer) and their failures surface only when the stream takes them, exactly where an
inline request would have failed. Reading with a cursor changes nothing on the server, so a request
sent ahead and then dropped costs one request of the rate limit and nothing else.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import requests

log = logging.getLogger(__name__)

#: ``{"cursor": "<no quote or escape>", "has_more": true`` at the very start of the answer.
_LEADING_CURSOR = re.compile(rb'\A\s*\{\s*"cursor"\s*:\s*"([^"\\]{1,4096})"\s*,\s*"has_more"\s*:\s*true\b')

#: The longest an answer sent ahead waits, half read, for the stream to take it (the stream takes it or
#: drops it long before: one page's send; ``close`` releases it at once).
HOLD_SECONDS = 60.0

#: Sends the request for one cursor; its second argument is called with the answer's first bytes.
Post = Callable[[str, Callable[[bytes], None]], requests.Response]


def leading_cursor(head: bytes) -> str | None:
    """The cursor at the head of an answer that says ``has_more: true`` before anything else, or None."""
    match = _LEADING_CURSOR.match(head)
    return match.group(1).decode("ascii", "replace") if match else None


class _Ahead:
    """One request sent ahead: its cursor, its answer, the cursor seen at the head of that answer while
    it could not be sent on (the stream had not taken this one yet), and whether the stream took it."""

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        self.future: Future[requests.Response] | None = None
        self.seen_next: str | None = None
        #: Set when the stream takes this answer (or drops it, or stops): until then the rest of the body
        #: stays in the socket, so a stream that is not waiting for it does not hold a page it cannot use.
        self.taken = threading.Event()


class CursorPrefetch:
    """The requests of one stream's cursor pages, each sent as early as its cursor is known.

    The stream calls ``fetch(cursor)`` for every page after the first (and gives ``on_head`` as the
    body-start hook of any request it sends itself), one caller at a time, and ``close()`` when it stops.
    """

    def __init__(self, post: Post, name: str) -> None:
        self._post = post
        self._lock = threading.Lock()
        self._ahead: _Ahead | None = None
        #: The request whose answer the stream is reading or waiting for: only it may send the next one.
        self._current: _Ahead | None = None
        # Two threads: the request sent ahead reads its answer in one while it sends the next from
        # the other; the bound above keeps it at that.
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"prefetch-{name}")
        self._closed = False

    def on_head(self, head: bytes) -> None:
        """Body-start hook of the request the stream sends itself: send the next one if the head names it."""
        with self._lock:
            owner = self._current
        self._send_next(owner, head)

    def fetch(self, cursor: str) -> requests.Response:
        """The answer to ``{"cursor": cursor}``: the one sent ahead when its cursor matches, else sent now."""
        with self._lock:
            ahead, self._ahead = self._ahead, None
            if ahead is not None and ahead.cursor != cursor:
                ahead.taken.set()  # read and thrown away by its own thread
                ahead = None
            if ahead is None:
                self._current = None
            else:
                self._current = ahead
                ahead.taken.set()
                pending = ahead.seen_next
        if ahead is None:
            return self._post(cursor, self.on_head)
        if pending is not None:  # its head arrived before the stream took it: send the next one now
            self._send(ahead, pending)
        future, ahead.future = ahead.future, None  # the answer is the caller's now: not kept here too
        assert future is not None
        return future.result()

    def _send_next(self, owner: _Ahead | None, head: bytes) -> None:
        """Runs inside a request (its body-start hook): it must never fail that request."""
        try:
            cursor = leading_cursor(head)
            if cursor is not None:
                self._send(owner, cursor)
        except Exception as error:  # pragma: no cover - a bug here only costs the head start
            log.debug("sending the next page's request ahead: %s", type(error).__name__)

    def _send(self, owner: _Ahead | None, cursor: str) -> None:
        """Send ``{"cursor": cursor}`` ahead if ``owner`` is the answer the stream is on and nothing else is
        ahead; otherwise remember it on ``owner``, to be sent once the stream takes that answer."""
        with self._lock:
            if self._closed:
                return
            if owner is not self._current or self._ahead is not None:
                if owner is not None:
                    owner.seen_next = cursor
                return
            ahead = self._ahead = _Ahead(cursor)
            ahead.future = self._threads.submit(
                self._post, cursor, lambda head: self._on_head_ahead(ahead, head)
            )

    def _on_head_ahead(self, ahead: _Ahead, head: bytes) -> None:
        """Body-start hook of a request sent ahead: send the next one if allowed, then leave the rest of
        the answer unread until the stream takes it (at most ``HOLD_SECONDS``: a forgotten one cannot
        hold its thread)."""
        self._send_next(ahead, head)
        ahead.taken.wait(HOLD_SECONDS)

    def close(self) -> None:
        """Stop sending ahead and wait for a request under way (each ends by the run's deadline)."""
        with self._lock:
            self._closed = True
            self._current = None
            if self._ahead is not None:
                self._ahead.taken.set()
            self._ahead = None
        self._threads.shutdown(wait=True, cancel_futures=True)
