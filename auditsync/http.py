"""One HTTP client for the vendor APIs: timeouts, bounded retries that honour Retry-After, redaction.

Retries come from tenacity (not a hand-written loop): connection errors, 429, 5xx and whatever the
caller calls throttling are retried with exponential backoff and full jitter, waiting exactly
``Retry-After`` when the server sends it, and never past the run's deadline. Everything that leaves
this module (exceptions, log lines) carries the method, status and a redacted URL: scheme, host and
path only, never headers, query strings or bodies.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity

from auditsync.errors import RetryableError, ThrottledError
from auditsync.model import Clock, Deadline
from auditsync.redaction import Redactor

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
MAX_ATTEMPTS = 6
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
#: Never start a wait that would end closer than this to the deadline: the page in hand must still be saved.
DEADLINE_MARGIN = 5.0


def backoff_seconds(
    attempt: int, rng: random.Random, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Exponential backoff with jitter for the wait after ``attempt`` (1-based), when no Retry-After came."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)


def stop_within(max_attempts: int, deadline: Deadline) -> Callable[[tenacity.RetryCallState], bool]:
    """A tenacity stop: out of attempts, or the next wait would end within DEADLINE_MARGIN of ``deadline``."""

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= max_attempts:
            return True
        return (state.upcoming_sleep or 0.0) > deadline.remaining() - DEADLINE_MARGIN

    return stop


#: What ``network_failure`` recognises in an exception chain, first match wins, and what to do about it.
_NETWORK_FAILURES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("NameResolutionError", "gaierror", "Name or service not known", "getaddrinfo failed"),
        "DNS lookup failed",
        "Check the host name in the setting and the Function App's DNS (private endpoints need a private "
        "DNS zone); the next run retries.",
    ),
    (
        ("SSLError", "SSLCertVerificationError", "CERTIFICATE_VERIFY_FAILED", "SSLEOFError"),
        "TLS handshake failed",
        "Check that the URL points at the service itself (not a proxy or captive portal) and that its "
        "certificate is trusted; the next run retries.",
    ),
    (
        ("ReadTimeout", "ConnectTimeout", "TimeoutError", "timed out", "Timeout"),
        "timed out",
        "The service did not answer in time; the next run retries. If this repeats, check the network path.",
    ),
    (
        ("ConnectionRefusedError", "Connection refused"),
        "connection refused",
        "Nothing listens at that address: check the URL and port; the next run retries.",
    ),
    (
        (
            "ConnectionResetError",
            "Connection reset",
            "RemoteDisconnected",
            "ChunkedEncodingError",
            "IncompleteRead",
            "ProtocolError",
            "Connection aborted",
            "BrokenPipeError",
        ),
        "connection reset",
        "The connection was dropped mid-request (a proxy, firewall or the service); the next run retries.",
    ),
)


def network_failure(exc: BaseException) -> tuple[str, str]:
    """``(reason, hint)`` for a transport failure of any client (requests, azure-core, urllib3).

    Walks the exception chain (``__cause__``, ``__context__``, azure-core's ``inner_exception``) and
    matches class names and message fragments, never returning the exception text itself: it may hold
    URLs with query strings.
    """
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 12:
        seen.append(" ".join(t.__name__ for t in type(current).__mro__) + " " + str(current)[:500])
        inner = getattr(current, "inner_exception", None)
        nxt = inner if isinstance(inner, BaseException) and inner is not current else None
        current = nxt or current.__cause__ or current.__context__
    text = " | ".join(seen)
    for needles, reason, hint in _NETWORK_FAILURES:
        if any(needle in text for needle in needles):
            return reason, hint
    return (
        f"network error ({type(exc).__name__})",
        "Check the URL and the outbound network; the next run retries.",
    )


#: requests' transport failures: connection (incl. DNS, TLS, reset), timeouts, a body cut short.
TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def redact_url(url: str) -> str:
    """Scheme, host, port and path: enough to tell which call failed, nothing that could be a secret."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def retry_after_seconds(response: requests.Response | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date form), or None when absent or unreadable."""
    if response is None:
        return None
    value = response.headers.get("Retry-After") or response.headers.get("retry-after-ms")
    if not value:
        return None
    if "retry-after-ms" in response.headers and not response.headers.get("Retry-After"):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def error_message(response: requests.Response, redactor: Redactor | None = None) -> str:
    """The server's own short error text (``message``/``error`` field), truncated and redacted."""
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                text = value
                break
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                text = value["message"]
                break
    text = " ".join(text.split())
    return (redactor or Redactor())(text)[:300]


def describe(response: requests.Response, redactor: Redactor | None = None) -> str:
    """``POST https://host/path -> 401: message``: what every error message built from a response says."""
    request = response.request
    method = request.method if request is not None else "GET"
    url = redact_url(response.url or (request.url if request is not None and request.url else ""))
    message = error_message(response, redactor)
    return f"{method} {url} -> {response.status_code}" + (f": {message}" if message else "")


class HttpClient:
    """A ``requests.Session`` with the retry, timeout and redaction policy of the whole project."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        redactor: Redactor | None = None,
        session: requests.Session | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        verify: str | bool | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.redactor = redactor or Redactor()
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"auditsync/{_version()}"
        if verify is not None:
            self.session.verify = verify
        self.max_attempts = max_attempts
        self._random = random.Random()

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        json: Any = None,
        data: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        throttled: Callable[[requests.Response], bool] | None = None,
        on_body_start: Callable[[bytes], None] | None = None,
        throttle_backoff: float = BACKOFF_BASE,
    ) -> requests.Response:
        """Send one logical request; retry transient failures within the deadline.

        ``headers`` may be a callable, evaluated before every attempt: a request signature that carries
        a timestamp (Data Collector ``x-ms-date``) must be fresh on each retry. ``data`` sends these
        exact bytes (a signature may cover their length).

        Returns the final response for every status that is not retried (the caller decides what a
        401 or 400 means for its API). Raises ThrottledError when throttling outlived the retries,
        RetryableError for 5xx and connection failures that did.

        ``on_body_start`` is called with the first bytes of a 200 answer as soon as they arrive, before
        the rest of the body is read (in this thread, once per attempt): a caller can act on a field at
        the head of a large answer, as the 1Password source does with the next page's cursor. The body
        is still read whole before this returns, inside the retries, as without it.

        ``throttle_backoff`` is the first wait (at most; jittered, doubling) after a throttling answer
        that names no ``Retry-After``: an API whose limit frees a request every 100 ms (1Password) waits
        a fifth of a second, not the second that suits a failing server.
        """

        def is_throttled(response: requests.Response) -> bool:
            return response.status_code == 429 or (throttled is not None and throttled(response))

        def should_retry(state: tenacity.RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None:
                return False
            if outcome.failed:
                return isinstance(outcome.exception(), TRANSPORT_ERRORS)
            response = outcome.result()
            return response.status_code in RETRY_STATUSES or is_throttled(response)

        def wait(state: tenacity.RetryCallState) -> float:
            response = None
            if state.outcome is not None and not state.outcome.failed:
                response = state.outcome.result()
            hinted = retry_after_seconds(response, self.clock.now())
            if hinted is not None:
                return hinted
            if response is not None and is_throttled(response):
                return backoff_seconds(state.attempt_number, self._random, base=throttle_backoff)
            return backoff_seconds(state.attempt_number, self._random)

        stop = stop_within(self.max_attempts, deadline)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None and outcome.failed else None
            if error is not None:
                what = network_failure(error)[0]
            else:
                what = str(outcome.result().status_code) if outcome is not None else "?"
            log.warning(
                "%s %s failed (%s); retry %d in %.1fs",
                method,
                redact_url(url),
                what,
                state.attempt_number,
                state.upcoming_sleep or 0.0,
                extra={"status": what, "attempt": state.attempt_number},
            )

        def send() -> requests.Response:
            remaining = max(1.0, deadline.remaining())
            current = headers() if callable(headers) else headers
            return self.session.request(
                method,
                url,
                headers=dict(current or {}),
                json=json,
                data=data,
                params=params,
                timeout=(min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining)),
                hooks={"response": _body_start_hook(on_body_start)} if on_body_start else None,
            )

        retrying = tenacity.Retrying(
            retry=should_retry,
            wait=wait,
            stop=stop,
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            # The last outcome as is: a response to classify below, or the transport error re-raised.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=False,
        )
        try:
            response: requests.Response | None = retrying(send)
        except TRANSPORT_ERRORS as exc:
            reason, hint = network_failure(exc)
            raise RetryableError(
                f"{method} {redact_url(url)} could not be reached: {reason}", hint=hint
            ) from None
        except tenacity.RetryError as exc:  # pragma: no cover - retry_error_callback handles it
            raise RetryableError(f"{method} {redact_url(url)} failed after retries") from exc
        if response is None:
            raise RetryableError(
                f"{method} {redact_url(url)} could not be reached after {self.max_attempts} attempts",
                hint="Check the host name and the outbound network; the next run retries.",
            )
        if is_throttled(response):
            raise ThrottledError(
                describe(response, self.redactor)
                + " (throttled; retries exhausted within the run's deadline)",
                hint="The vendor is rate limiting this account; the next run resumes from the checkpoint.",
            )
        if response.status_code in RETRY_STATUSES:
            raise RetryableError(
                describe(response, self.redactor) + f" (after {self.max_attempts} attempts or the deadline)",
                hint="The vendor service is failing; the next run resumes from the checkpoint.",
            )
        return response


#: How much of an answer ``on_body_start`` sees: small enough to arrive with the first packets.
BODY_START_BYTES = 4 * 1024
#: The rest of the body is read in chunks this big (requests' own 10 KiB means more Python per MB).
BODY_CHUNK_BYTES = 64 * 1024


def _body_start_hook(on_body_start: Callable[[bytes], None]) -> Callable[..., requests.Response]:
    """A requests response hook that reads the body itself, handing its first bytes to
    ``on_body_start`` before reading the rest.

    requests calls response hooks before it reads the body of a non-streamed request, and reads it
    with ``b"".join(iter_content(...))`` into ``Response._content``; the hook does the same, so the
    response is the one requests would have built, and a connection cut mid-body raises the same
    exception (retried the same way). ``_content`` is requests' own cache of the body, the attribute
    its ``content`` property fills.
    """

    def hook(response: requests.Response, **_: Any) -> requests.Response:
        if response.status_code != 200:
            return response
        head = next(response.iter_content(BODY_START_BYTES), b"")
        on_body_start(head)
        response._content = b"".join(itertools.chain((head,), response.iter_content(BODY_CHUNK_BYTES)))
        return response

    return hook


def _version() -> str:
    from auditsync import __version__

    return __version__
