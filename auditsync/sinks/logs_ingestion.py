"""The Logs Ingestion API sink (DCR-based), through azure-monitor-ingestion.

The SDK uploads; the retries are ours, bound to the run's deadline. azure-core's RetryPolicy cannot
be bound to it: it sleeps a server's whole ``Retry-After`` whatever its ``timeout`` says (a 429 with
``Retry-After: 25`` waits 25 s), its ``timeout`` caps only the connection timeout, not the read timeout
(300 s by default), and it never retries a POST whose connection dropped after sending
(``ServiceResponseError``). So the client is built with ``retry_total=0`` and each upload is one
attempt whose connection and read timeouts come from the time left; 408/429/5xx and transport failures
are retried with backoff (exactly ``Retry-After`` when sent) only while the wait ends before the
deadline's margin. A page counts as sent only when every chunk was accepted, and nothing after a failed
chunk is sent, which keeps the re-delivered part small. Retrying a POST whose answer was lost can store
its rows twice; the alternative, failing the page, resends them on the next run anyway.

We cut and gzip the batches ourselves, though: azure-monitor-ingestion 1.1.0 sizes its 1 MiB chunks by
adding up the rows' JSON without the separators and brackets, so a chunk of many small rows comes out
a few KB over the limit and is refused with 413 (a full page of 1Password audit events does). Our
batches count every byte and stay under 1,000,000; the SDK uploads each gzip body as one request.
"""

from __future__ import annotations

import io
import logging
import random
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import tenacity
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.monitor.ingestion import LogsIngestionClient

from auditsync.azure_errors import credential_failure
from auditsync.errors import AuthError, SinkError
from auditsync.fastjson import compact_bytes
from auditsync.http import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    backoff_seconds,
    network_failure,
    redact_url,
    retry_after_seconds,
    stop_within,
)
from auditsync.model import AcceptedCallback, Clock, Deadline, SendResult
from auditsync.sinks.limits import fit_row
from auditsync.tables import TABLES
from auditsync.urls import is_loopback_url

log = logging.getLogger(__name__)

#: Log Analytics truncates field values over 64 KB; we cut a little below, visibly.
MAX_FIELD_BYTES = 64_000
ROLE_HINT = (
    "Grant the Function App's managed identity the 'Monitoring Metrics Publisher' role on the data "
    "collection rule; new role assignments can take up to 30 minutes to apply."
)
#: The service refuses bodies over 1 MiB (uncompressed); stay clearly below it, counting every byte.
MAX_BATCH_BYTES = 1_000_000
#: Chosen by measurement (docs/benchmarks.md, "gzip level"): level 3 costs half of zlib's default 6 in CPU
#: per row and makes bodies about 15 % bigger; the 1 MiB limit counts uncompressed bytes, so only the
#: bytes on the wire grow, by a few KB a request.
GZIP_LEVEL = 3
#: Statuses worth another attempt (Azure Monitor documents 429 and 503 with Retry-After).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 6
BACKOFF_CAP = 30.0
#: Without a run deadline (``auditsync check``, tests) one send may take this long.
DEFAULT_SEND_BUDGET = timedelta(minutes=3)


def encode_batches(rows: list[dict[str, Any]], limit: int = MAX_BATCH_BYTES) -> Iterator[tuple[bytes, int]]:
    """Gzipped JSON arrays of at most ``limit`` uncompressed bytes, and the row count of each."""
    return batch_encoded([compact_bytes(row) for row in rows], limit)


def encode_rows(
    rows: list[dict[str, Any]], max_field_bytes: int, max_row_bytes: int = MAX_BATCH_BYTES - 2
) -> tuple[list[bytes], Counter[str]]:
    """Each row as compact UTF-8 JSON, cut to fit: fields over ``max_field_bytes``, and rows that would
    not fit one request (``fit_row``), so no single event can be refused forever.

    A row whose whole encoding fits ``max_field_bytes`` cannot hold a field over it, so only bigger
    rows go through ``fit_row``: every row is serialised once, the rare big one twice.
    Returns the encodings and the counters ``truncated_fields`` and ``rows_cut_to_fit``.
    """
    encoded = []
    counters: Counter[str] = Counter()
    for row in rows:
        data = compact_bytes(row)
        if len(data) > max_field_bytes:
            fixed, cut, whole = fit_row(row, max_row_bytes, max_field_bytes)
            if cut:
                counters["truncated_fields"] += cut
                counters["rows_cut_to_fit"] += whole
                data = compact_bytes(fixed)
        encoded.append(data)
    return encoded, counters


def batch_encoded(encoded: list[bytes], limit: int = MAX_BATCH_BYTES) -> Iterator[tuple[bytes, int]]:
    """Gzipped JSON arrays of at most ``limit`` uncompressed bytes from rows already encoded.

    The array is joined from the rows' own bytes, so the size we measure is exactly the size we send.
    """
    parts: list[bytes] = []
    size = 2  # the brackets
    for data in encoded:
        if parts and size + len(data) + 1 > limit:
            yield _gzip(parts), len(parts)
            parts, size = [], 2
        parts.append(data)
        size += len(data) + 1
    if parts:
        yield _gzip(parts), len(parts)


def _gzip(parts: list[bytes]) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    # The brackets go in apart: ``b"[" + joined + b"]"`` would copy the whole megabyte twice more.
    head = compressor.compress(b"[")
    return head + compressor.compress(b",".join(parts)) + compressor.compress(b"]") + compressor.flush()


class OneTokenAtATime:
    """The uploads' credential, asked for one token at a time.

    Uploads that start together (the health rows of two tables, sent side by side at the end of a run
    that had nothing else to send) would each find no token yet and each ask the identity endpoint for
    one; one at a time, the second finds the token the first got in the credential's own cache.
    """

    def __init__(self, credential: Any) -> None:
        self.credential = credential
        self._lock = threading.Lock()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        with self._lock:
            token: AccessToken = self.credential.get_token(*scopes, **kwargs)
            return token

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        with self._lock:
            if hasattr(self.credential, "get_token_info"):
                info: AccessTokenInfo = self.credential.get_token_info(*scopes, options=options)
                return info
            token = self.credential.get_token(*scopes)
            return AccessTokenInfo(token.token, token.expires_on)


class LogsIngestionSink:
    """Sends rows to a DCR stream; the stream name comes from the table definition."""

    name = "logs_ingestion"

    def __init__(
        self,
        endpoint: str,
        rule_id: str,
        credential: Any,
        *,
        audience: str = "https://monitor.azure.com",
        clock: Clock | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.endpoint = endpoint
        self.rule_id = rule_id
        # Loopback stand-ins (the simulator) speak plain http; anything else must be https.
        self.enforce_https = not is_loopback_url(endpoint)
        self.credential = OneTokenAtATime(credential)
        self.scope = audience.rstrip("/") + "/.default"
        self.clock = clock or Clock()
        self.max_attempts = max_attempts
        self._random = random.Random()
        # retry_total=0: every retry is ours (see the module docstring).
        self.client = LogsIngestionClient(
            endpoint, self.credential, credential_scopes=[self.scope], retry_total=0
        )

    def send(
        self,
        table: str,
        rows: list[dict[str, Any]],
        deadline: Deadline | None = None,
        on_accepted: AcceptedCallback | None = None,
    ) -> SendResult:
        if not rows:
            return SendResult(0)
        definition = TABLES[table]
        encoded, counters = encode_rows(rows, MAX_FIELD_BYTES)
        where = f"stream {definition.stream} of DCR {self.rule_id} at {redact_url(self.endpoint)}"
        deadline = deadline or Deadline.after(self.clock, DEFAULT_SEND_BUDGET)
        accepted = 0
        try:
            for body, count in batch_encoded(encoded):
                if accepted and on_accepted is not None:
                    # The previous request is stored: let the runner record that before this one goes.
                    on_accepted(accepted)
                self._upload(definition.stream, body, deadline)
                accepted += count
        except ClientAuthenticationError as exc:
            status = getattr(exc, "status_code", None)
            if status in (401, 403):
                raise AuthError(f"Logs Ingestion refused {where} ({status})", hint=ROLE_HINT) from None
            raise credential_failure(
                exc, "Logs Ingestion", role="Monitoring Metrics Publisher", scope="data collection rule"
            ) from None
        except HttpResponseError as exc:
            if exc.status_code is not None:
                raise _classify(exc.status_code, where, definition.stream) from None
            reason, _hint = network_failure(exc)
            raise SinkError(
                f"Logs Ingestion answer for {where} was cut short: {reason} (retries ended within the run's "
                "deadline)",
                hint="The connection dropped mid-answer (proxy, firewall or service); the next run resends "
                "the page.",
            ) from None
        except AzureError as exc:  # ServiceRequestError/ServiceResponseError: DNS, TLS, reset, timeout
            reason, _hint = network_failure(exc)
            raise SinkError(
                f"Logs Ingestion endpoint {redact_url(self.endpoint)} could not be reached: {reason}"
                " (retries ended within the run's deadline)",
                hint="Check LOGS_INGESTION_ENDPOINT and the outbound network; the next run resends the page.",
            ) from None
        return SendResult(len(rows), dict(counters))

    def _upload(self, stream: str, body: bytes, deadline: Deadline) -> None:
        """One gzip body as one request, retried within ``deadline``; raises the last failure."""

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, ClientAuthenticationError):
                return False  # no token, or 401/403: another attempt gets the same answer
            if isinstance(exc, HttpResponseError) and exc.status_code is not None:
                return exc.status_code in RETRY_STATUSES
            # DNS, TLS, refused, reset, timeout; or an answer cut short (IncompleteReadError, no status)
            return isinstance(exc, ServiceRequestError | ServiceResponseError | HttpResponseError)

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            response = getattr(error, "response", None)
            if response is not None:
                hinted = retry_after_seconds(response, self.clock.now())
                if hinted is not None:
                    return hinted
            return backoff_seconds(state.attempt_number, self._random, cap=BACKOFF_CAP)

        stop = stop_within(self.max_attempts, deadline)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            status = getattr(error, "status_code", None)
            what = str(status) if status else network_failure(error)[0] if error else "?"
            log.warning(
                "Logs Ingestion upload to %s failed (%s); retry %d in %.1fs",
                stream,
                what,
                state.attempt_number,
                state.upcoming_sleep or 0.0,
                extra={"sink": self.name, "status": what, "attempt": state.attempt_number},
            )

        def attempt() -> None:
            remaining = max(1.0, deadline.remaining())
            # A gzip stream is uploaded as-is: one request per batch, nothing re-serialised.
            self.client.upload(
                self.rule_id,
                stream,
                io.BytesIO(body),
                enforce_https=self.enforce_https,
                connection_timeout=min(CONNECT_TIMEOUT, remaining),
                read_timeout=min(READ_TIMEOUT, remaining),
            )

        tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            wait=wait,
            stop=stop,
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )(attempt)

    def probe(self) -> str:
        """Get a token for the ingestion audience with the uploads' credential; nothing is uploaded."""
        self.credential.get_token(self.scope)
        return f"logs ingestion to DCR {self.rule_id} at {redact_url(self.endpoint)} (token acquired)"


def _classify(status: int | None, where: str, stream: str) -> Exception:
    if status in (401, 403):
        return AuthError(f"Logs Ingestion refused {where} ({status})", hint=ROLE_HINT)
    if status == 404:
        return SinkError(
            f"Logs Ingestion does not know {where} (404)",
            hint=f"Check LOGS_INGESTION_RULE_ID (the DCR immutableId) and that the DCR declares {stream}; "
            "redeploy the template if the DCR is older than this version.",
        )
    if status == 413:
        return SinkError(
            f"Logs Ingestion rejected a chunk for {where} as too large (413)",
            hint="An event is larger than 1 MiB even after field truncation; report it to the maintainers.",
        )
    if status == 429:
        return SinkError(
            f"Logs Ingestion kept throttling {where} (429) after retries",
            hint="The DCR is over 12,000 requests or 2 GB per minute; the next run resends the page.",
        )
    return SinkError(
        f"Logs Ingestion failed for {where} ({status}) after retries",
        hint="A transient Azure Monitor failure; the next run resends the page.",
    )
