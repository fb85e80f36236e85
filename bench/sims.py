"""Simulator pieces every drain benchmark shares: a tallying Logs Ingestion simulator and the
exactly-once check built on it.

The simulators run in the benchmark's own process; the measured code runs in a fresh child process
(``bench.measure.run_child``), so the two never share an interpreter, a GIL or a heap. The Logs
Ingestion simulator keeps no rows and no bodies; it tallies what arrived instead: a key per delivered
row (to prove exactly-once), requests and their compressed sizes, and how many bodies were over the
service's 1 MiB limit.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from auditsync.tables import HEALTH_TABLE, ONEPASSWORD_TABLE, TABLES, TableDef
from auditsync.tables.rows import shape_rows
from simulators.base import Request, Response
from simulators.logs_ingestion import MAX_BODY, LogsIngestionSim

HEALTH_EVENTS = "healthevents"
#: Columns whose value is the ingestion moment, not the event: left out of a row's identity.
INGESTION_TIME_COLUMNS = frozenset({"TimeGenerated"})


def row_key(table: str, row: Mapping[str, Any]) -> str:
    """What identifies one delivered event: its uuid for 1Password, the whole row (minus ingestion
    time) for Keeper, whose events carry no id and may legitimately repeat (a multiset)."""
    if table == ONEPASSWORD_TABLE:
        return str(row.get("uuid_s"))
    return json.dumps(
        {k: v for k, v in row.items() if k not in INGESTION_TIME_COLUMNS}, sort_keys=True, ensure_ascii=False
    )


def expected_keys(table: str, events: Iterable[Mapping[str, Any]], event_type: str = "") -> Counter[str]:
    """The keys ``events`` must arrive as, shaped by the product's own ``shape_rows``."""
    rows, _ = shape_rows(TABLES[table], list(events), now=datetime.now(UTC), event_type=event_type)
    return Counter(row_key(table, row) for row in rows)


@dataclass
class Tally:
    """What reached the DCE since the last ``reset``."""

    data_requests: int = 0
    data_body_bytes: int = 0
    heartbeat_requests: int = 0
    oversize_bodies: int = 0
    rows: int = 0
    keys: Counter[str] = field(default_factory=Counter)

    @property
    def mean_body_bytes(self) -> float:
        return self.data_body_bytes / self.data_requests if self.data_requests else 0.0

    def compare(self, expected: Counter[str]) -> tuple[int, int]:
        """(duplicates or unknown rows, missing events) against the multiset ``expected``."""
        extra = self.keys - expected
        missing = expected - self.keys
        return sum(extra.values()), sum(missing.values())


class TallyingLogsIngestionSim(LogsIngestionSim):
    """The Logs Ingestion simulator, unchanged (validation, limits, auth), plus a running tally."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record_bodies = False
        self.tally = Tally()
        self._tally_lock = threading.Lock()
        self._request = threading.local()

    def reset_tally(self) -> Tally:
        with self._tally_lock:
            done, self.tally = self.tally, Tally()
        return done

    def handle(self, request: Request) -> Response:
        body = request.body
        self._request.compressed = len(body)
        # A gzip member ends with the uncompressed size (mod 2**32): the size the service checks.
        self._request.inflated = int.from_bytes(body[-4:], "little") if body[:2] == b"\x1f\x8b" else len(body)
        return super().handle(request)

    def _store(self, table: TableDef, records: list[dict[str, Any]]) -> None:
        super()._store(table, records)
        heartbeat = table.name == HEALTH_TABLE or all(r.get("log_source") == HEALTH_EVENTS for r in records)
        keys = (
            []
            if heartbeat
            else [row_key(table.name, r) for r in records if r.get("log_source") != HEALTH_EVENTS]
        )
        with self._tally_lock:
            tally = self.tally
            if heartbeat:
                tally.heartbeat_requests += 1
                return
            tally.data_requests += 1
            tally.data_body_bytes += self._request.compressed
            tally.oversize_bodies += self._request.inflated > MAX_BODY
            tally.rows += len(keys)
            tally.keys.update(keys)
