"""The simulator side of the 1Password benchmark: 1Password, Logs Ingestion and managed identity.

They run in the benchmark's own process, apart from the measured children, so their memory (the
whole backlog, for one) never counts as ours. The Logs Ingestion simulator keeps no rows and no
bodies; it tallies what arrived instead: each event's uuid (to prove exactly-once), requests and
their compressed sizes, and how many bodies were over the service's 1 MiB limit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditsync.tables import HEALTH_TABLE, TableDef
from bench.onepassword_backlog import ACCOUNT_UUID, Backlog
from simulators.base import Request, Response
from simulators.identity import ManagedIdentitySim
from simulators.logs_ingestion import MAX_BODY, LogsIngestionSim
from simulators.onepassword import OnePasswordSim

HEALTH_EVENTS = "healthevents"


@dataclass
class Tally:
    """What reached the DCE since the last ``reset``."""

    data_requests: int = 0
    data_body_bytes: int = 0
    heartbeat_requests: int = 0
    oversize_bodies: int = 0
    rows: int = 0
    duplicates: int = 0
    uuids: set[str] = field(default_factory=set)

    @property
    def mean_body_bytes(self) -> float:
        return self.data_body_bytes / self.data_requests if self.data_requests else 0.0


class TallyingLogsIngestionSim(LogsIngestionSim):
    """The Logs Ingestion simulator, unchanged, plus a running tally of accepted uploads."""

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
        with self._tally_lock:
            tally = self.tally
            if heartbeat:
                tally.heartbeat_requests += 1
                return
            tally.data_requests += 1
            tally.data_body_bytes += self._request.compressed
            tally.oversize_bodies += self._request.inflated > MAX_BODY
            for record in records:
                if record.get("log_source") == HEALTH_EVENTS:
                    continue
                tally.rows += 1
                uuid = record.get("uuid_s")
                if uuid in tally.uuids:
                    tally.duplicates += 1
                else:
                    tally.uuids.add(str(uuid))


@dataclass
class BenchSims:
    identity: ManagedIdentitySim
    ingestion: TallyingLogsIngestionSim
    onepassword: OnePasswordSim
    token: str
    expected: set[str]

    @classmethod
    @contextmanager
    def running(cls, backlog: Backlog, *, keep_rows: bool = False) -> Iterator[BenchSims]:
        """Start the three simulators with ``backlog`` loaded into 1Password; stop them afterwards."""
        identity = ManagedIdentitySim()
        ingestion = TallyingLogsIngestionSim(identity=identity, keep_rows=keep_rows)
        onepassword = OnePasswordSim(account_uuid=ACCOUNT_UUID)
        onepassword.record_bodies = False
        expected: set[str] = set()
        for event_type in backlog.event_types:
            events = backlog.events(event_type)
            expected.update(e["uuid"] for e in events)
            onepassword.add(event_type, events)
            del events
        started = []
        try:
            for sim in (identity, ingestion, onepassword):
                sim.start()
                started.append(sim)
            yield cls(identity, ingestion, onepassword, onepassword.issue_token(), expected)
        finally:
            for sim in reversed(started):
                sim.stop()

    def drain_env(self, backlog: Backlog, data_dir: Path) -> dict[str, str]:
        """The settings of one collection run into the simulators, as the Function App would have them."""
        return {
            **self.identity.env(),
            "SOURCES": "onepassword",
            "ONEPASSWORD_BASE_URL": self.onepassword.url,
            "ONEPASSWORD_TOKEN": self.token,
            "ONEPASSWORD_EVENT_TYPES": ",".join(backlog.event_types),
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": self.ingestion.url,
            "LOGS_INGESTION_RULE_ID": self.ingestion.dcr_id,
            "CHECKPOINT_STORE": "file",
            "AUDITSYNC_DATA_DIR": str(data_dir),
            "INITIAL_LOOKBACK": backlog.lookback(),
            "RUN_TIME_BUDGET": "9m",  # the longest host.json allows; a drain that needs more reports behind
        }

    def onepassword_requests(self) -> int:
        with self.onepassword.lock:
            return len(self.onepassword.requests)
