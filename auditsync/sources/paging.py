"""Paginated requests sent one ahead: a source describes its paging (a ``Paginator``), ``ReadAhead``
sends the requests.

Paging and fetching are kept apart, as in Singer SDK's paginators and dlt's REST client: the paginator
says which request follows an answer and never touches the network; the source's ``fetch`` sends one
request and parses its answer. Unlike theirs, a paginator here holds no state (the next request is a
function of a request and its answer, counts included): the request after answer k is worked out in
the thread that read answer k while the consumer is still on an earlier one.

``ReadAhead`` keeps a stream's requests back to back without running further ahead than one request:

- **One request ahead** of the answer the consumer is on: the one it took last, or, once it said it is
  ``done`` with that one (it built its page), the next; before it took any, the chain's first. That
  next request leaves as soon as it is known: from the whole answer, or earlier, from the answer's
  first bytes when the paginator can read it there (1Password writes its cursor first). A request
  named by a head is kept only if the whole answer then names the same one; if not, it is dropped and
  the right one sent. Answers are read and parsed in the thread that sent them, so the consumer finds
  the next one ready; an answer whose head is read (a paginator that ``reads_heads``) is read past its
  head only once the consumer is on it, so a stream never holds a second whole answer it cannot use
  yet. With ``done`` the 1Password source hands page n to the runner while
  answer n+1 is read and request n+2 leaves from its head: the depth the runner's one-page lookahead
  and the cursor prefetch gave together, in one place.
- **Stop rules**: nothing is sent once the deadline is near, after an answer that names no next request
  (the last page, or the paginator's own bound, ``stops_before``), or after the consumer stopped the
  chain (``stop``, ``start`` of another, ``close``). A request already sent when its chain stops is
  dropped: its answer is never handed over, and it ends by the run's deadline like every call.
- **Errors**: a request's failure surfaces only when the consumer takes that answer (``next``), exactly
  where an inline request would have failed; a dropped request's failure is never seen.
- **Loops**: a next request that continues from where an earlier one of this ``ReadAhead`` did (the
  paginator's ``position_key``: a cursor, a token) is the paginator's ``loop_error``, raised in place
  of the answer that named it, so nothing of that answer is delivered. Checked here once for every
  source.

Threads: two per ``ReadAhead`` (one stream), started on first use: one reads the answer the consumer
is on or about to take while the other sends the one after it, or finishes a request that was dropped.
The consumer (the runner's stream thread, through the source's ``pages``) owns everything else.

Written here because the paging libraries (Singer SDK, dlt) fetch inline, one page after another, and
none sends a request from the head of an answer still arriving.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import ClassVar, Generic, TypeVar

from auditsync.log_context import ContextThreadPool
from auditsync.model import Deadline

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Ans = TypeVar("Ans")

#: Called with the first bytes of an answer as they arrive (``HttpClient.request(on_body_start=...)``).
OnHead = Callable[[bytes], None]
#: The longest an answer sent ahead waits, read to its head, for the consumer to reach it (the consumer
#: reaches it or drops it long before: one page's send; ``close`` releases it at once).
HOLD_SECONDS = 60.0


class Paginator(ABC, Generic[Req, Ans]):
    """How a source pages: which request follows an answer. Values only, no I/O, no state."""

    #: Whether ``early_request`` can name the next request from the first bytes of an answer; when
    #: False it is never asked and ``fetch`` is given no head hook (the answer is read the usual way).
    reads_heads: ClassVar[bool] = False

    @abstractmethod
    def next_request(self, request: Req, answer: Ans) -> Req | None:
        """The request that continues after ``answer`` (to ``request``), or None when it was the last."""

    def early_request(self, request: Req, head: bytes) -> Req | None:
        """The request after ``request`` as the first bytes of its answer name it, or None."""
        return None

    def stops_before(self, request: Req) -> bool:
        """True for a next request the source does not want read in this chain (its own bound, e.g. a
        Keeper pass that holds enough): the chain then ends before it, after the loop check."""
        return False

    @abstractmethod
    def position_key(self, request: Req) -> Hashable | None:
        """Where ``request`` continues the paging from (its cursor or token), or None for a start
        without one. A next request whose key an earlier request had is a loop."""

    @abstractmethod
    def loop_error(self, request: Req) -> Exception:
        """The error that stops a stream whose next request would continue from a position already read."""


class _Sent(Generic[Req, Ans]):
    """One request of a chain, its answer, and the request after it once known."""

    __slots__ = ("ahead", "answered", "early", "following", "future", "request")

    def __init__(self, request: Req) -> None:
        self.request = request
        self.future: Future[Ans] | None = None
        #: The whole answer is in and ``following`` worked out from it (None: nothing follows).
        self.answered = False
        self.following: Req | None = None
        #: The next request as the head of this answer named it (sent only once this is the one the
        #: consumer is on, and kept only if the whole answer agrees).
        self.early: Req | None = None
        #: The request sent after this one.
        self.ahead: _Sent[Req, Ans] | None = None


class ReadAhead(Generic[Req, Ans]):
    """The requests of one stream, each sent as soon as it is known, one ahead (see the module doc).

    The consumer calls ``start(request)`` to begin a chain, ``next()`` for each answer in order (None
    when the chain has no more), optionally ``done()`` once it has what it needs from the answer it
    took (the next one is then the one it is on: read it, and send the one after it), and ``close()``
    when it stops; ``stop()`` ends a chain early. One consumer thread at a time.
    """

    def __init__(
        self,
        paginator: Paginator[Req, Ans],
        fetch: Callable[[Req, OnHead | None], Ans],
        deadline: Deadline,
        name: str,
    ) -> None:
        self._paginator = paginator
        self._fetch = fetch
        self._deadline = deadline
        self._lock = threading.Lock()
        #: Notified whenever the answer the consumer is on changes (an answer held at its head waits for it).
        self._moved = threading.Condition(self._lock)
        self._threads = ContextThreadPool(max_workers=2, thread_name_prefix=f"read-ahead-{name}")
        #: Every position a request of this ReadAhead continued from (``Paginator.position_key``).
        self._seen: set[Hashable] = set()
        #: The request whose answer the consumer is on: the one it took last (``_taken``), or the one it
        #: takes next (the chain's first; the one after an answer it is ``done`` with).
        self._on: _Sent[Req, Ans] | None = None
        self._taken = False
        self._closed = False

    def start(self, request: Req) -> None:
        """Begin a chain at ``request`` (sent now), dropping what was sent ahead for the one before."""
        with self._lock:
            if self._closed:
                raise RuntimeError("ReadAhead is closed")
            self._drop_locked()
            key = self._paginator.position_key(request)
            if key is not None:
                self._seen.add(key)
            self._on = _Sent(request)
            self._taken = False
            self._submit_locked(self._on)

    def next(self) -> tuple[Req, Ans] | None:
        """The next answer of the chain with its request (the first after ``start``), or None when
        nothing follows (the last page, the deadline, the paginator's bound, a stopped chain).

        Waits for the answer; raises what its request raised (or the loop error it led to).
        """
        with self._lock:
            if self._taken:
                self._move_on_locked()
            taking = self._on
            if taking is None:
                return None
            self._taken = True
            future = taking.future
        assert future is not None
        answer = future.result()
        with self._lock:
            taking.future = None  # the answer is the consumer's now
        return taking.request, answer

    def done(self) -> None:
        """The consumer has what it needs from the answer it took: the next one is the one it is on."""
        with self._lock:
            if self._taken:
                self._move_on_locked()

    def stop(self) -> None:
        """End the chain: the request sent ahead (if any) is dropped, nothing more is sent."""
        with self._lock:
            self._drop_locked()

    def close(self) -> None:
        """Stop, and wait for a request still under way (every request ends by the run's deadline)."""
        with self._lock:
            self._closed = True
            self._drop_locked()
        self._threads.shutdown(wait=True, cancel_futures=True)

    # -- in the consumer's thread or a request's, under the lock ---------------------------------------
    def _submit_locked(self, sent: _Sent[Req, Ans]) -> None:
        sent.future = self._threads.submit(self._run, sent)

    def _move_on_locked(self) -> None:
        """From the answer the consumer took to the request after it (None when nothing follows)."""
        current = self._on
        assert current is not None
        if current.answered:  # else its request failed, and the consumer saw it raise: nothing follows
            self._send_after_locked(current)  # known, and not held back by the deadline: sent by now
        self._on = current.ahead if current.answered else None
        self._taken = False
        if self._on is not None:
            self._send_after_locked(self._on)  # its head or whole answer may already name the one after it
        self._moved.notify_all()

    def _drop_locked(self) -> None:
        current, self._on = self._on, None
        if current is not None:
            for sent in (None if self._taken else current, current.ahead):
                if sent is not None and sent.future is not None:
                    sent.future.cancel()  # a request not started is never sent; one under way ends by itself
            current.ahead = None
        self._moved.notify_all()

    def _live(self, sent: _Sent[Req, Ans]) -> bool:
        return self._on is not None and (sent is self._on or sent is self._on.ahead)

    def _send_after_locked(self, sent: _Sent[Req, Ans]) -> None:
        """Send the request after ``sent`` if it is known, nothing is ahead yet, and ``sent`` is the
        answer the consumer is on (never further ahead)."""
        if self._closed or sent is not self._on or sent.ahead is not None:
            return
        request = sent.following if sent.answered else sent.early
        if request is None or self._deadline.near():
            return
        sent.ahead = _Sent(request)
        self._submit_locked(sent.ahead)

    # -- in a request's thread --------------------------------------------------------------------------
    def _run(self, sent: _Sent[Req, Ans]) -> Ans:
        hook = (lambda head: self._on_head(sent, head)) if self._paginator.reads_heads else None
        answer = self._fetch(sent.request, hook)
        following = self._paginator.next_request(sent.request, answer)
        with self._lock:
            if not self._live(sent):
                return answer  # dropped: nobody takes it, and what it names counts for nothing
            sent.answered = True
            if following is not None:
                key = self._paginator.position_key(following)
                if key is not None:
                    if key in self._seen:
                        raise self._paginator.loop_error(following)
                    self._seen.add(key)
                if self._paginator.stops_before(following):
                    following = None
            sent.following = following
            ahead = sent.ahead
            if ahead is not None and ahead.request != following:
                # The head named another request than the whole answer: drop it, send the right one.
                if ahead.future is not None:
                    ahead.future.cancel()
                sent.ahead = None
                self._moved.notify_all()  # its thread, held at the head, finishes and is ignored
            self._send_after_locked(sent)
        return answer

    def _on_head(self, sent: _Sent[Req, Ans], head: bytes) -> None:
        """The first bytes of ``sent``'s answer (inside its HTTP request, once per attempt): send the
        request they name if allowed, then leave the rest of the answer unread until the consumer is on
        it (at most HOLD_SECONDS), so a stream never holds a second answer it cannot use yet."""
        try:
            request = self._paginator.early_request(sent.request, head)
            if request is not None and self._paginator.stops_before(request):
                request = None
            key = None if request is None else self._paginator.position_key(request)
        except Exception as error:  # pragma: no cover - a bug here only costs the head start
            log.debug("reading the next request off an answer's head: %s", type(error).__name__)
            request = None
        with self._lock:
            # Not for a retried attempt, nor for a loop: the whole answer reports that.
            if (
                request is not None
                and not sent.answered
                and sent.early is None
                and (key is None or key not in self._seen)
            ):
                sent.early = request
                self._send_after_locked(sent)
            self._moved.wait_for(
                lambda: self._closed or sent is self._on or not self._live(sent), HOLD_SECONDS
            )
