"""The legacy sink: Log Analytics through the HTTP Data Collector API (``SINK=data_collector``).

For workspaces and content that still read ``Keeper_CL``/``OnePasswordEvents_CL``. Microsoft retires the
API on 2026-09-14, so this sink exists for compatibility and migration and says so when it starts.

Each page is shaped into legacy records (``legacy_rows``), cut into posts well under the 30 MB limit by
exact UTF-8 byte count, and each post is signed with the workspace key (SharedKey over the body's byte
length and a fresh ``x-ms-date``). A page counts as sent only when every post of it returned 200.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import requests

from auditsync.errors import AuthError, ConfigError, SinkError
from auditsync.failures import DATA_COLLECTOR, redact_url
from auditsync.http import HttpClient, Redactor
from auditsync.model import JSON, AcceptedCallback, Clock, Deadline, SendResult
from auditsync.retry import LOG_ANALYTICS
from auditsync.sinks.legacy_rows import FIELD_LIMIT_BYTES, LegacyShaper
from auditsync.sinks.limits import fit_row
from auditsync.tables import TABLES, TableDef
from auditsync.urls import is_loopback_url

log = logging.getLogger(__name__)

API_VERSION = "2016-04-01"
RESOURCE = "/api/logs"
CONTENT_TYPE = "application/json"
#: The service refuses posts over 30 MB; we stay well under it (the margin covers any reading of "MB").
MAX_POST_BYTES = 25 * 1000 * 1000
SEND_BUDGET = timedelta(minutes=3)
RETIREMENT_DATE = date(2026, 9, 14)
_LOG_TYPE = re.compile(r"^[A-Za-z0-9_]{1,100}$")

AUTH_HINT = (
    "The workspace refused the SharedKey signature: check WORKSPACE_ID and the workspace key "
    "(the Key Vault secret named by WORKSPACE_KEY_SECRET, or WORKSPACE_KEY for local runs). Copy the "
    "primary or secondary key again from the workspace (Agents > Log Analytics agent instructions); "
    "keys change when regenerated. A host clock more than a few minutes off also causes this."
)


def retirement_notice(today: date | None = None) -> str:
    """What the operator must know about this sink; logged at start and printed by ``auditsync check``."""
    today = today or datetime.now(UTC).date()
    if today >= RETIREMENT_DATE:
        when = f"was retired by Microsoft on {RETIREMENT_DATE.isoformat()} and may stop accepting data"
    else:
        when = f"is retired by Microsoft on {RETIREMENT_DATE.isoformat()} and stops accepting data then"
    return (
        f"SINK=data_collector uses the legacy HTTP Data Collector API, which {when}. "
        "Move to SINK=logs_ingestion: deploy the DCR-based tables (infra/), set LOGS_INGESTION_ENDPOINT and "
        "LOGS_INGESTION_RULE_ID, give the Function App's identity 'Monitoring Metrics Publisher' on the DCR, "
        "run both side by side until the content reads the new tables, then remove WORKSPACE_KEY / "
        "WORKSPACE_KEY_SECRET. Steps: docs/data-collector.md."
    )


#: The notice as of import time, for ``auditsync check``; the sink logs it again when it is created.
RETIREMENT_WARNING = retirement_notice()


def sign(workspace_id: str, key: bytes, *, content_length: int, x_ms_date: str) -> str:
    """The ``Authorization`` header: HMAC-SHA256 with the decoded key over the documented string.

    ``content_length`` must be the UTF-8 byte length of the body (its string length breaks on
    non-ASCII text).
    """
    string_to_sign = f"POST\n{content_length}\n{CONTENT_TYPE}\nx-ms-date:{x_ms_date}\n{RESOURCE}"
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return f"SharedKey {workspace_id}:{base64.b64encode(digest).decode('ascii')}"


def encode_records(records: Sequence[JSON]) -> list[bytes]:
    """Each record as compact UTF-8 JSON (non-ASCII kept as UTF-8, so byte counts are what is sent)."""
    return [
        json.dumps(r, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        for r in records
    ]


def batches(encoded: Sequence[bytes], limit: int) -> Iterator[tuple[bytes, int]]:
    """JSON array bodies of at most ``limit`` bytes each, records kept whole and in order, with the
    number of records in each.

    Every record must fit one post (``fit_records`` sees to it); one that does not is a bug.
    """
    current: list[bytes] = []
    size = 2  # "[" and "]"
    for record in encoded:
        if len(record) + 2 > limit:
            raise SinkError(
                f"one record is {len(record)} bytes, more than the {limit}-byte post limit",
                hint="This is a bug in auditsync (records are cut to fit); report it to the maintainers.",
            )
        extra = len(record) + (1 if current else 0)
        if current and size + extra > limit:
            yield b"[" + b",".join(current) + b"]", len(current)
            current, size = [], 2
            extra = len(record)
        current.append(record)
        size += extra
    if current:
        yield b"[" + b",".join(current) + b"]", len(current)


def fit_records(encoded: list[bytes], records: Sequence[JSON], limit: int, field_limit: int) -> int:
    """Cut (in place) every record that could not fit one post; return how many were cut.

    A record that big is an event with very many large fields: refused forever, it would stop its
    stream, so it is cut field by field (``fit_row``) instead, visibly.
    """
    cut = 0
    for index, data in enumerate(encoded):
        if len(data) + 2 > limit:
            fixed, _, _ = fit_row(dict(records[index]), limit - 2, field_limit)
            encoded[index] = encode_records([fixed])[0]
            cut += 1
    return cut


class DataCollectorSink:
    """Sends shaped rows to ``<legacyLogType>_CL`` tables with the workspace shared key.

    The key never leaves this object except as an HMAC: it is not in ``repr``, messages or logs, and is
    registered with the HTTP client's redactor as a second line of defence.
    """

    name = "data_collector"

    def __init__(
        self,
        workspace_id: str,
        key: str,
        url: str,
        http: HttpClient,
        clock: Clock,
        *,
        deadline: Deadline | None = None,
        max_post_bytes: int = MAX_POST_BYTES,
        field_limit: int = FIELD_LIMIT_BYTES,
        send_budget: timedelta = SEND_BUDGET,
    ) -> None:
        try:
            self._key = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                "the workspace key is not base64",
                hint="Copy the workspace's primary key again into WORKSPACE_KEY or its Key Vault secret.",
            ) from None
        if not self._key:
            raise ConfigError("the workspace key is empty", hint="Set WORKSPACE_KEY or WORKSPACE_KEY_SECRET.")
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_url(url)):
            raise ConfigError(
                f"DATA_COLLECTOR_URL must use https (got {redact_url(url)})",
                hint="Use https://<workspace id>.ods.opinsights.azure.com (plain http only for loopback).",
            )
        self.workspace_id = workspace_id
        self.url = url.rstrip("/")
        self.http = http
        self.clock = clock
        self.deadline = deadline
        self.max_post_bytes = max_post_bytes
        self.field_limit = field_limit
        self.send_budget = send_budget
        http.redactor.add(key)
        log.warning("%s", retirement_notice(clock.now().date()), extra={"sink": self.name})

    def __repr__(self) -> str:
        return f"DataCollectorSink(workspace_id={self.workspace_id!r}, url={redact_url(self.url)!r})"

    # -- Sink protocol ------------------------------------------------------------------------------
    def send(
        self,
        table: str,
        rows: list[JSON],
        deadline: Deadline | None = None,
        on_accepted: AcceptedCallback | None = None,
    ) -> SendResult:
        """Post every row of one page within ``deadline``; return only when every post returned 200.

        ``on_accepted`` hears how many leading rows are stored before each post after the first.
        """
        if not rows:
            return SendResult(0)
        definition = self._table(table)
        log_type = definition.legacy_log_type
        shaper = LegacyShaper(definition, field_limit=self.field_limit)
        records = [shaper.record(row) for row in rows]
        encoded = encode_records(records)
        rows_cut = fit_records(encoded, records, self.max_post_bytes, self.field_limit)
        bodies = list(batches(encoded, self.max_post_bytes))
        if shaper.truncated_fields:
            log.warning(
                "%s_CL: truncated %d field(s) over %d bytes (columns: %s); the cut is marked in the data",
                log_type,
                shaper.truncated_fields,
                self.field_limit,
                ", ".join(sorted(shaper.truncated_columns)),
                extra={"sink": self.name, "truncated_fields": shaper.truncated_fields},
            )
        deadline = self._deadline(deadline)
        accepted = 0
        for number, (body, count) in enumerate(bodies, 1):
            if accepted and on_accepted is not None:
                on_accepted(accepted)
            self._post(log_type, body, deadline, number=number, total=len(bodies))
            accepted += count
        log.info(
            "%s_CL: %d rows accepted in %d post(s)",
            log_type,
            len(rows),
            len(bodies),
            extra={"sink": self.name, "rows": len(rows), "posts": len(bodies)},
        )
        counters = {"truncated_fields": shaper.truncated_fields} if shaper.truncated_fields else {}
        if rows_cut:
            counters["rows_cut_to_fit"] = rows_cut
        return SendResult(rows=len(rows), counters=counters)

    def probe(self) -> str:
        """Post an empty array: proves the workspace id and key without writing a row."""
        self._post("AuditSyncHealth", b"[]", self._deadline(), number=1, total=1)
        return f"Data Collector API at {redact_url(self.url)}: workspace key accepted (legacy, retired API)"

    # -- internals ----------------------------------------------------------------------------------
    def _table(self, table: str) -> TableDef:
        definition = TABLES.get(table)
        if definition is None:
            raise SinkError(f"unknown table {table!r}", hint="This is a bug in auditsync; report it.")
        if not _LOG_TYPE.match(definition.legacy_log_type):
            raise SinkError(
                f"{table}: legacyLogType {definition.legacy_log_type!r} is not a valid Log-Type",
                hint="Log-Type is letters, digits and _ only, at most 100 characters; fix the table JSON.",
            )
        return definition

    def _deadline(self, given: Deadline | None = None) -> Deadline:
        """The earliest of the send's own budget, the sink's and the caller's deadline."""
        candidates = [Deadline.after(self.clock, self.send_budget), self.deadline, given]
        return min((d for d in candidates if d is not None), key=lambda d: d.at)

    def _post(self, log_type: str, body: bytes, deadline: Deadline, *, number: int, total: int) -> None:
        where = f"{log_type}_CL post {number} of {total}"

        def headers() -> dict[str, str]:
            x_ms_date = email.utils.formatdate(self.clock.now().timestamp(), usegmt=True)
            return {
                "Content-Type": CONTENT_TYPE,
                "Log-Type": log_type,
                "x-ms-date": x_ms_date,
                "Authorization": sign(
                    self.workspace_id, self._key, content_length=len(body), x_ms_date=x_ms_date
                ),
            }

        try:
            response = self.http.request(
                "POST",
                f"{self.url}{RESOURCE}?api-version={API_VERSION}",
                deadline=deadline,
                headers=headers,
                data=body,
                rule=LOG_ANALYTICS,
                component=DATA_COLLECTOR,
            )
        except SinkError as exc:
            # No answer, or throttling and 5xx that outlived the retries: the page is not stored (or only
            # in part).
            raise SinkError(f"{where} failed: {exc.message}", hint=exc.hint) from None
        if response.status_code == 200:
            return
        detail = _service_message(response, self.http.redactor)
        status = response.status_code
        if status in (401, 403):
            raise AuthError(f"{where} refused with {status}{detail}", hint=AUTH_HINT)
        if status == 400:
            raise SinkError(
                f"{where}: Log Analytics rejected the data for Log-Type {log_type} with 400{detail}",
                hint="The rows were refused as sent; the checkpoint stays put. Report the message to the "
                "auditsync maintainers with the Log-Type.",
            )
        if status == 404:
            raise SinkError(
                f"{where}: {redact_url(self.url)} answered 404{detail}",
                hint="Check WORKSPACE_ID and DATA_COLLECTOR_URL "
                "(https://<workspace id>.ods.opinsights.azure.com).",
            )
        raise SinkError(
            f"{where}: Log Analytics answered {status}{detail}",
            hint="The page was not stored in full; the next run sends it again from the checkpoint.",
        )


def _service_message(response: requests.Response, redactor: Redactor) -> str:
    """``: InvalidLogType: message`` from the service's ``{"Error": ..., "Message": ...}`` body."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k]) for k in ("Error", "Message", "error", "message") if isinstance(body.get(k), str)]
    text = " ".join(": ".join(parts).split())[:300]
    return f": {redactor(text)}" if text else ""
