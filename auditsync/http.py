"""One HTTP client for the vendor APIs and the Data Collector: timeouts, retries, redaction.

Every request goes through an azure-core pipeline on one ``requests.Session`` with the project's one
retry policy (``auditsync.retry``): connection failures, 429, 5xx and whatever the caller calls
throttling are retried by the same table and bound to the run's deadline, as for every Azure SDK
client; a failure that outlives them is mapped by ``auditsync.failures``. Everything that leaves this
module (exceptions, log lines) carries the method, status and a redacted URL: scheme, host and path
only, never headers, query strings or bodies.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import requests
from azure.core.exceptions import AzureError
from azure.core.pipeline import Pipeline, PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import HttpRequest, RequestsTransport

from auditsync.failures import VENDOR_API, Component, gave_up, redact_url, transport_failure
from auditsync.model import Clock, Deadline
from auditsync.redaction import Redactor
from auditsync.retry import RETRY_STATUSES, VENDOR_APIS, DeadlineRetryPolicy, RetryRule


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
        max_attempts: int | None = None,
        verify: str | bool | None = None,
        rule: RetryRule = VENDOR_APIS,
    ) -> None:
        self.clock = clock or Clock()
        self.redactor = redactor or Redactor()
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"auditsync/{_version()}"
        self.rule = rule
        self.max_attempts = max_attempts
        # azure-core passes its own ``verify`` on every request, over the session's.
        self._transport = RequestsTransport(
            session=self.session, session_owner=False, connection_verify=True if verify is None else verify
        )
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
        rule: RetryRule | None = None,
        component: Component = VENDOR_API,
    ) -> requests.Response:
        """Send one logical request; retry transient failures within the deadline.

        ``headers`` may be a callable, evaluated before every attempt: a request signature that carries
        a timestamp (Data Collector ``x-ms-date``) must be fresh on each retry. ``data`` sends these
        exact bytes (a signature may cover their length); ``json`` and ``params`` are encoded by
        requests, as without the pipeline.

        Returns the final response for every status that is not retried (the caller decides what a
        401 or 400 means for its API). Raises, as ``auditsync.failures`` maps it for ``component``:
        for the vendor APIs ThrottledError when throttling outlived the retries, RetryableError for 5xx
        and connection failures that did.

        ``on_body_start`` is called with the first bytes of a 200 answer as soon as they arrive, before
        the rest of the body is read (in this thread, once per attempt): a caller can act on a field at
        the head of a large answer, as the 1Password source does with the next page's cursor. The body
        is still read whole before this returns, inside the retries, as without it.

        ``rule`` is the row of the retry table for this call (the client's by default; 1Password's
        first wait after a 429 is its own row's, ``retry.ONEPASSWORD_EVENTS``). ``component`` names the
        service in failures.
        """
        rule = rule or self.rule
        if self.max_attempts is not None:
            rule = replace(rule, attempts=self.max_attempts)
        retry = DeadlineRetryPolicy(
            rule, clock=self.clock, deadline=deadline, throttled=throttled, rng=self._random
        )
        fixed = None if callable(headers) else headers
        policies: list[Any] = [retry]
        if callable(headers):
            policies.append(_FreshHeaders(headers))
        options: dict[str, Any] = {}
        if json is not None:
            options["json"] = json
        if params:
            options["params"] = params
        if on_body_start is not None:
            options["hooks"] = {"response": _body_start_hook(on_body_start)}
        # azure-core's legacy request: its transport hands back requests' own response, where the newer
        # ``azure.core.rest`` one copies every body once more (a 1Password page is about a megabyte).
        request = HttpRequest(method, url, headers=dict(fixed or {}))
        if data is not None:
            request.set_bytes_body(data)
        try:
            answer = Pipeline(self._transport, policies=policies).run(request, **options)
        except AzureError as exc:
            raise transport_failure(component, exc, f"{method} {redact_url(url)}") from None
        response: requests.Response = answer.http_response.internal_response
        is_throttled = response.status_code == 429 or (throttled is not None and throttled(response))
        if is_throttled or response.status_code in RETRY_STATUSES:
            raise gave_up(component, describe(response, self.redactor), throttled=is_throttled)
        return response


class _FreshHeaders(SansIOHTTPPolicy):
    """Sets the caller's headers on every attempt (inside the retry policy), so a signature is fresh."""

    def __init__(self, headers: Callable[[], Mapping[str, str]]) -> None:
        self.headers = headers

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.http_request.headers.update(self.headers())


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
