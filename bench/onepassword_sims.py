"""The simulator side of the 1Password benchmarks: 1Password, Logs Ingestion and managed identity.

They run in the benchmark's own process, apart from the measured children, so their memory (the
whole backlog, for one) and their CPU never count as ours. ``Network`` sets what a real tenant adds:
a latency per 1Password page and per ingestion request, and 1Password's published rate limits,
answered as the API answers them (429, ``{"status": 429, "message": "Too Many Requests"}``, no
``Retry-After``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from auditsync.tables import ONEPASSWORD_TABLE
from bench.onepassword_backlog import ACCOUNT_UUID, Backlog
from bench.sims import TallyingLogsIngestionSim, expected_keys
from simulators.identity import ManagedIdentitySim
from simulators.onepassword import REQUESTS_PER_HOUR, REQUESTS_PER_MINUTE, OnePasswordSim

PAGE_SIZE = 1000


@dataclass(frozen=True)
class Network:
    """Per-request latencies (seconds) and whether 1Password's rate limits apply."""

    page_latency: float = 0.0
    ingest_latency: float = 0.0
    rate_limits: bool = False
    #: Bytes a second a 1Password answer arrives at (0: loopback speed): a 1.2 MB page's transfer time.
    page_bandwidth: float = 0.0
    #: Write the cursor last in each answer instead of first (1Password's documented order), which takes
    #: away the head start auditsync gets from it: the same code, measured without it.
    cursor_last: bool = False

    def ceiling_events_per_s(self) -> float | None:
        """1Password's ceiling for one account: requests per second allowed x 1,000 events a page.

        The per-minute limit (600/min = 10 req/s) binds for a drain shorter than about 50 minutes;
        past that, the hourly one (30,000/h = 8.3 req/s) does.
        """
        if not self.rate_limits:
            return None
        return REQUESTS_PER_MINUTE / 60 * PAGE_SIZE

    @staticmethod
    def sustained_ceiling_events_per_s() -> float:
        return REQUESTS_PER_HOUR / 3600 * PAGE_SIZE

    def describe(self) -> str:
        if not (self.page_latency or self.ingest_latency or self.rate_limits):
            return "loopback, no latency, no rate limits"
        limits = (
            f"1Password rate limits {REQUESTS_PER_MINUTE}/min and {REQUESTS_PER_HOUR:,}/h "
            "(the minute before the run already at the limit)"
            if self.rate_limits
            else "no rate limits"
        )
        extras = ""
        if self.page_bandwidth:
            extras += f", 1Password answers at {self.page_bandwidth / 1e6:.1f} MB/s"
        if self.cursor_last:
            extras += ", cursor written last (no head start)"
        return (
            f"{self.page_latency * 1000:.0f} ms per 1Password request, "
            f"{self.ingest_latency * 1000:.0f} ms per ingestion request, {limits}{extras}"
        )


#: No latency, no rate limits: the simulators as fast as loopback lets them be.
LOOPBACK = Network()


@dataclass
class BenchSims:
    identity: ManagedIdentitySim
    ingestion: TallyingLogsIngestionSim
    onepassword: OnePasswordSim
    token: str
    expected: Counter[str]
    network: Network

    @classmethod
    @contextmanager
    def running(
        cls, backlog: Backlog, *, keep_rows: bool = False, network: Network = LOOPBACK
    ) -> Iterator[BenchSims]:
        """Start the three simulators with ``backlog`` loaded into 1Password; stop them afterwards."""
        identity = ManagedIdentitySim()
        ingestion = TallyingLogsIngestionSim(identity=identity, keep_rows=keep_rows)
        onepassword = OnePasswordSim(account_uuid=ACCOUNT_UUID)
        onepassword.record_bodies = False
        expected: Counter[str] = Counter()
        for event_type in backlog.event_types:
            events = backlog.events(event_type)
            expected.update(expected_keys(ONEPASSWORD_TABLE, events, event_type))
            onepassword.add(event_type, events)
            del events
        onepassword.latency = network.page_latency
        onepassword.bandwidth = network.page_bandwidth
        if network.cursor_last:
            onepassword.key_order = ("items", "has_more", "cursor")
        ingestion.latency = network.ingest_latency
        started = []
        try:
            for sim in (identity, ingestion, onepassword):
                sim.start()
                started.append(sim)
            token = onepassword.issue_token()
            yield cls(identity, ingestion, onepassword, token, expected, network)
        finally:
            for sim in reversed(started):
                sim.stop()

    def arm_rate_limits(self) -> None:
        """Before each measured run: fresh windows, the minute before it busy at the limit (a drain
        in progress, not a fresh account whose first minute allows a burst of 600 requests)."""
        if not self.network.rate_limits:
            return
        sim = self.onepassword
        sim.limit_per_minute, sim.limit_per_hour = REQUESTS_PER_MINUTE, REQUESTS_PER_HOUR
        sim.reset_rate_windows(past_requests=REQUESTS_PER_MINUTE)

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

    def onepassword_requests(self) -> tuple[int, int]:
        """Requests the 1Password simulator received so far, and how many of them it answered 429."""
        with self.onepassword.lock:
            return len(self.onepassword.requests), self.onepassword.throttled
