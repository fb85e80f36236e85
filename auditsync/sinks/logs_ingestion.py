"""The Logs Ingestion API sink (DCR-based), through azure-monitor-ingestion.

The SDK uploads with the project's retry policy (``auditsync.retry``) bound to the run's deadline:
408/429/5xx and transport failures are retried with backoff (exactly ``Retry-After`` when sent, and
only while the wait ends before the deadline's margin), each attempt's connection and read timeouts
come from the time left, and a POST whose connection dropped after sending is sent again. A page counts
as sent only when every chunk was accepted, and nothing after a failed chunk is sent, which keeps the
re-delivered part small. Retrying a POST whose answer was lost can store its rows twice; the
alternative, failing the page, resends them on the next run anyway.

We cut and gzip the batches ourselves, though: azure-monitor-ingestion 1.1.0 sizes its 1 MiB chunks by
adding up the rows' JSON without the separators and brackets, so a chunk of many small rows comes out
a few KB over the limit and is refused with 413 (a full page of 1Password audit events does). Our
batches count every byte and stay under 1,000,000; the SDK uploads each gzip body as one request.
"""

from __future__ import annotations

import io
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import AzureError
from azure.monitor.ingestion import LogsIngestionClient

from auditsync.failures import LOGS_INGESTION, azure_failure, redact_url
from auditsync.fastjson import compact_bytes
from auditsync.model import AcceptedCallback, Clock, Deadline, SendResult
from auditsync.retry import LOG_ANALYTICS, DeadlineRetryPolicy
from auditsync.sinks.limits import fit_row
from auditsync.tables import TABLES
from auditsync.urls import is_loopback_url

#: Log Analytics truncates field values over 64 KB; we cut a little below, visibly.
MAX_FIELD_BYTES = 64_000
#: The service refuses bodies over 1 MiB (uncompressed); stay clearly below it, counting every byte.
MAX_BATCH_BYTES = 1_000_000
#: Chosen by measurement (docs/benchmarks.md, "gzip level"): level 3 costs half of zlib's default 6 in CPU
#: per row and makes bodies about 15 % bigger; the 1 MiB limit counts uncompressed bytes, so only the
#: bytes on the wire grow, by a few KB a request.
GZIP_LEVEL = 3


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
        max_attempts: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.rule_id = rule_id
        # Loopback stand-ins (the simulator) speak plain http; anything else must be https.
        self.enforce_https = not is_loopback_url(endpoint)
        self.credential = OneTokenAtATime(credential)
        self.scope = audience.rstrip("/") + "/.default"
        self.clock = clock or Clock()
        rule = LOG_ANALYTICS if max_attempts is None else replace(LOG_ANALYTICS, attempts=max_attempts)
        self.client = LogsIngestionClient(
            endpoint,
            self.credential,
            credential_scopes=[self.scope],
            retry_policy=DeadlineRetryPolicy(rule, clock=self.clock),
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
        accepted = 0
        try:
            for body, count in batch_encoded(encoded):
                if accepted and on_accepted is not None:
                    # The previous request is stored: let the runner record that before this one goes.
                    on_accepted(accepted)
                # A gzip stream is uploaded as-is: one request per batch, nothing re-serialised.
                self.client.upload(
                    self.rule_id,
                    definition.stream,
                    io.BytesIO(body),
                    enforce_https=self.enforce_https,
                    retry_deadline=deadline,
                )
                accepted += count
        except AzureError as exc:
            raise azure_failure(
                LOGS_INGESTION,
                exc,
                f"Logs Ingestion endpoint {redact_url(self.endpoint)}",
                action=f"sending to stream {definition.stream} of DCR {self.rule_id}",
                about={"stream": definition.stream, "rule": self.rule_id},
            ) from None
        return SendResult(len(rows), dict(counters))

    def probe(self) -> str:
        """Get a token for the ingestion audience with the uploads' credential; nothing is uploaded."""
        self.credential.get_token(self.scope)
        return f"logs ingestion to DCR {self.rule_id} at {redact_url(self.endpoint)} (token acquired)"
