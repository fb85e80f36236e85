"""A Logs Ingestion endpoint (DCE) whose DCR stream declarations are the project's own table definitions.

It checks what Azure checks (bearer token, DCR id, stream, 1 MiB body limit compressed or not, a JSON
array of objects) and makes visible what Azure would hide: values whose type does not fit the declared
column go to ``type_errors`` and columns the stream does not declare go to ``undeclared`` (Azure drops
both silently). Accepted rows are kept per output table as they arrived on the input stream, minus the
dropped columns.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from auditsync.tables import TABLES, TableDef
from simulators.base import Request, Response, SimServer
from simulators.identity import ManagedIdentitySim

MONITOR_RESOURCE = "https://monitor.azure.com"
MAX_BODY = 1024 * 1024
_PATH = re.compile(r"^/dataCollectionRules/(?P<dcr>[^/]+)/streams/(?P<stream>[^/]+)/?$")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class TypeMismatch:
    """A value Azure would have stored as empty: which table, column, declared type and what was sent."""

    table: str
    column: str
    type: str
    value: Any


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str) or not value or value.strip().isdigit():
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def fits(value: Any, kind: str) -> bool:
    """Whether ``value`` (decoded JSON) is acceptable for a column of ``kind``; null fits everything."""
    if value is None or kind == "dynamic":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind in ("int", "long"):
        low, high = _INT32 if kind == "int" else _INT64
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind == "real":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "datetime":
        return _is_datetime(value)
    return False


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


class LogsIngestionSim(SimServer):
    """One DCR (``dcr_id``) with one input stream per table definition."""

    def __init__(
        self,
        *,
        identity: ManagedIdentitySim | None = None,
        tables: Mapping[str, TableDef] = TABLES,
        dcr_id: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        keep_rows: bool = True,
        max_body: int = MAX_BODY,
        spool: Path | None = None,
    ) -> None:
        """``keep_rows=False`` keeps only counts; ``spool`` appends every accepted row to
        ``spool/<table>.jsonl`` instead of memory (the demo: a backlog of any size in bounded memory)."""
        super().__init__(ssl_context=ssl_context)
        self.identity = identity
        self.dcr_id = dcr_id or "dcr-" + uuid.uuid4().hex
        self.streams: dict[str, TableDef] = {t.stream: t for t in tables.values()}
        self.keep_rows = keep_rows and spool is None
        self.spool = spool
        self.max_body = max_body
        self.denied = False
        self.uploads = 0
        """Upload requests received so far (counted before injected faults, so ``when`` can pick the Nth)."""
        self.type_errors: list[TypeMismatch] = []
        self.undeclared: dict[str, Counter[str]] = {}
        """Per output table: column name -> how many rows carried it."""
        self.row_counts: Counter[str] = Counter()
        self.request_rows: list[tuple[str, int]] = []
        """Per accepted upload request, in order: (output table, rows it carried)."""
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._store_lock = threading.Lock()

    # -- test controls and observations -----------------------------------------------------------
    def rows(self, table: str) -> list[dict[str, Any]]:
        """Rows accepted into ``table`` (an output table name), in arrival order."""
        with self._store_lock:
            return list(self._rows.get(table, ()))

    def deny(self, denied: bool = True) -> None:
        """Take away the Monitoring Metrics Publisher role (403 as while a role assignment propagates)."""
        self.denied = denied

    def nth_upload(self, n: int) -> Callable[[Request], bool]:
        """A ``when`` predicate for ``inject``: the ``n``-th upload request (1-based; retries count)."""
        return lambda request: self.uploads == n

    def reset(self) -> None:
        with self._store_lock:
            self._rows.clear()
            self.row_counts.clear()
            self.type_errors.clear()
            self.undeclared.clear()
            self.request_rows.clear()

    # -- protocol --------------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> Response:
        if request.method == "POST" and _PATH.match(request.path):
            with self.lock:
                self.uploads += 1
        return super()._dispatch(request)

    def _auth_error(self, request: Request) -> Response | None:
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "InvalidToken", "Authorization header with a Bearer token is required.")
        if self.identity is not None and not self.identity.valid(token.strip(), MONITOR_RESOURCE):
            return _error(
                401, "InvalidToken", "The provided token is invalid, expired or for another audience."
            )
        if self.denied:
            return _error(
                403,
                "OperationFailed",
                "The authentication token provided does not have access to ingest data for the data "
                f"collection rule with immutable Id '{self.dcr_id}'.",
            )
        return None

    def _decode(self, request: Request) -> bytes | Response:
        encoding = (request.header("content-encoding") or "").strip().lower()
        if encoding in ("", "identity"):
            return request.body
        if encoding != "gzip":
            return _error(415, "UnsupportedMediaType", f"Content-Encoding {encoding!r} is not supported.")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(request.body, self.max_body + 1)
        except zlib.error:
            return _error(400, "InvalidContentEncoding", "The gzip body could not be decompressed.")
        if len(data) > self.max_body:
            return _error(
                413, "ContentLengthLimitExceeded", "Maximum allowed content length: 1048576 bytes (1 MB)."
            )
        return data

    def handle(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if request.method != "POST" or match is None:
            return _error(404, "NotFound", f"{request.method} {request.path} is not an ingestion path.")
        if not request.arg("api-version"):
            return _error(400, "MissingApiVersion", "The api-version query parameter is required.")
        refused = self._auth_error(request)
        if refused is not None:
            return refused
        if len(request.body) > self.max_body:
            return _error(
                413, "ContentLengthLimitExceeded", "Maximum allowed content length: 1048576 bytes (1 MB)."
            )
        if match["dcr"] != self.dcr_id:
            return _error(
                404, "NotFound", f"Data collection rule with immutable Id '{match['dcr']}' not found."
            )
        table = self.streams.get(match["stream"])
        if table is None:
            return _error(
                404,
                "InvalidStream",
                f"Stream '{match['stream']}' is not declared in data collection rule '{self.dcr_id}'.",
            )
        data = self._decode(request)
        if isinstance(data, Response):
            return data
        try:
            records = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            return _error(400, "InvalidPayload", f"The body is not valid JSON: {exc}")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _error(400, "InvalidPayload", "The body must be a JSON array of objects.")
        self._store(table, records)
        return Response(204)

    def _store(self, table: TableDef, records: list[dict[str, Any]]) -> None:
        declared = table.column_types
        mismatches: list[TypeMismatch] = []
        extra: Counter[str] = Counter()
        kept_rows = []
        for record in records:
            row: dict[str, Any] = {}
            for name, value in record.items():
                kind = declared.get(name)
                if kind is None:
                    extra[name] += 1
                elif (kind == "string" and type(value) is str) or kind == "dynamic" or fits(value, kind):
                    row[name] = value  # the first two tests are the common cases, inlined for speed
                else:
                    mismatches.append(TypeMismatch(table.name, name, kind, value))
            kept_rows.append(row)
        with self._store_lock:
            self.row_counts[table.name] += len(kept_rows)
            self.request_rows.append((table.name, len(kept_rows)))
            if self.keep_rows:
                self._rows.setdefault(table.name, []).extend(kept_rows)
            if self.spool is not None:
                self.spool.mkdir(parents=True, exist_ok=True)
                with open(self.spool / f"{table.name}.jsonl", "ab") as handle:
                    handle.writelines(orjson.dumps(row) + b"\n" for row in kept_rows)
            self.type_errors.extend(mismatches)
            if extra:
                self.undeclared.setdefault(table.name, Counter()).update(extra)
