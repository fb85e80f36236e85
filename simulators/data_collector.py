"""A stand-in for the legacy HTTP Data Collector API (``POST /api/logs?api-version=2016-04-01``).

It checks what the service checks, independently of auditsync's own code: the SharedKey signature is
recomputed from the bytes actually received and the workspace key (403 InvalidAuthorization on any
mismatch), the Log-Type, the body (a JSON array of objects) and the 30 MB post limit. Accepted records
are stored per ``<LogType>_CL`` under the column names the service creates (``_s``, ``_d``, ``_b``,
``_t``, ``_g``; nested values as JSON text), so a test sees what a KQL user would see. Fields over the
32 KB limit are truncated the way the service does it, silently, and recorded in ``oversize_fields`` so a
test can assert that auditsync never sends one. Standard library only.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulators.base import Request, Response, SimServer

MAX_POST_BYTES = 30 * 1000 * 1000
#: Strictest reading of "32 KB".
FIELD_LIMIT_BYTES = 32_000
MAX_COLUMNS = 500

_LOG_TYPE = re.compile(r"^[A-Za-z0-9_]{1,100}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:?\d{2})?$")
_AUTH = re.compile(r"^SharedKey ([^:\s]+):(\S+)$")


@dataclass(frozen=True)
class OversizeField:
    """A field value longer than the service keeps: it would be cut without any marker."""

    table: str
    column: str
    size: int


def column_for(name: str, value: Any) -> tuple[str, Any] | None:
    """The column the service would create for one field, and the stored value (None: not stored)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return f"{name}_b", value
    if isinstance(value, int | float):
        return f"{name}_d", float(value)
    if isinstance(value, dict | list):
        return f"{name}_s", json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    if _GUID.match(text):
        return f"{name}_g", text
    if _ISO_TIME.match(text):
        return f"{name}_t", text
    return f"{name}_s", text


def error(status: int, code: str, message: str) -> Response:
    return Response(status, {"Error": code, "Message": message})


class DataCollectorSim(SimServer):
    """The Data Collector endpoint of one workspace."""

    def __init__(
        self,
        workspace_id: str,
        key: str,
        *,
        now: Any = None,
        max_post_bytes: int = MAX_POST_BYTES,
        field_limit: int = FIELD_LIMIT_BYTES,
    ) -> None:
        super().__init__()
        self.workspace_id = workspace_id
        self._key = base64.b64decode(key)
        self._now = now or (lambda: datetime.now(UTC))
        self.max_post_bytes = max_post_bytes
        self.field_limit = field_limit
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.columns: dict[str, set[str]] = {}
        self.oversize_fields: list[OversizeField] = []
        self.dropped_columns: list[tuple[str, str]] = []
        self.accepted_posts = 0
        self.rejected: list[tuple[int, str]] = []

    # -- what tests read ----------------------------------------------------------------------------
    def rows(self, table: str) -> list[dict[str, Any]]:
        """Stored records of ``table`` (``Keeper_CL``...), as a KQL user would see them."""
        with self.lock:
            return [dict(r) for r in self.tables.get(table, [])]

    # -- the endpoint -------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        response = self._handle(request)
        if response.status != 200:
            with self.lock:
                self.rejected.append((response.status, str((response.body or {}).get("Error", ""))))
        return response

    def _handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/api/logs":
            return error(404, "NotFound", "unknown resource")
        if request.arg("api-version") != "2016-04-01":
            return error(400, "InvalidApiVersion", "api-version must be 2016-04-01")
        denied = self._check_signature(request)
        if denied:
            return error(403, "InvalidAuthorization", denied)
        log_type = request.header("log-type") or ""
        if not _LOG_TYPE.match(log_type):
            return error(400, "InvalidLogType", "Log-Type: letters, digits or _, at most 100 characters")
        if len(request.body) > self.max_post_bytes:
            return error(413, "RequestEntityTooLarge", f"{len(request.body)} bytes; the limit is 30 MB")
        try:
            records = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return error(400, "InvalidDataFormat", "the body is not valid UTF-8 JSON")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return error(400, "InvalidDataFormat", "the body must be a JSON array of objects")
        time_field = request.header("time-generated-field")
        if time_field and any(not _ISO_TIME.match(str(r.get(time_field, ""))) for r in records):
            return error(400, "InvalidTimeGeneratedField", f"{time_field} is missing or not ISO 8601")
        self._store(f"{log_type}_CL", records, time_field)
        return Response(200, b"")

    def _check_signature(self, request: Request) -> str:
        """Why the request is refused, or "" when the signature matches what we compute."""
        auth = _AUTH.match(request.header("authorization") or "")
        if not auth:
            return "missing or malformed Authorization header"
        if auth.group(1) != self.workspace_id:
            return "the workspace id does not match"
        x_ms_date = request.header("x-ms-date") or ""
        try:
            parsed = email.utils.parsedate_to_datetime(x_ms_date)
        except (TypeError, ValueError):
            parsed = None
        if parsed is None or not x_ms_date.endswith(" GMT"):
            return "x-ms-date is missing or not an RFC 1123 date"
        content_type = request.header("content-type") or ""
        if content_type != "application/json":
            return "Content-Type must be application/json"
        length = request.header("content-length")
        if length is None or not length.isdigit() or int(length) != len(request.body):
            return "Content-Length does not match the body"
        string_to_sign = f"POST\n{len(request.body)}\n{content_type}\nx-ms-date:{x_ms_date}\n/api/logs"
        digest = hmac.new(self._key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        expected = base64.b64encode(digest)
        if not hmac.compare_digest(expected, auth.group(2).encode("ascii", errors="replace")):
            return "the signature does not match"
        return ""

    def _store(self, table: str, records: list[dict[str, Any]], time_field: str | None) -> None:
        received = self._now()
        with self.lock:
            self.accepted_posts += 1
            stored = self.tables.setdefault(table, [])
            known = self.columns.setdefault(table, set())
            for record in records:
                row: dict[str, Any] = {
                    "TimeGenerated": record[time_field] if time_field else received.isoformat(),
                    "Type": table,
                }
                for name, value in record.items():
                    column = column_for(name, value)
                    if column is None:
                        continue
                    column_name, stored_value = column
                    if isinstance(stored_value, str):
                        size = len(stored_value.encode("utf-8"))
                        if size > self.field_limit:
                            self.oversize_fields.append(OversizeField(table, column_name, size))
                            stored_value = stored_value.encode("utf-8")[: self.field_limit].decode(
                                "utf-8", errors="ignore"
                            )
                    if column_name not in known:
                        if len(known) >= MAX_COLUMNS:
                            self.dropped_columns.append((table, column_name))
                            continue
                        known.add(column_name)
                    row[column_name] = stored_value
                stored.append(row)
