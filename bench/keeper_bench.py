"""Keeper drain benchmark: events/s and peak RSS of the Keeper source draining the simulator.

Run: ``python -m bench.keeper_bench [--events 100000] [--repeat 3]``. Three measurements in one process,
so their ratios are comparable whatever the machine:

- ``baseline``: a bare paging loop (requests + json) over the same simulator, no dedupe, nothing kept:
  what the HTTP round trips and JSON decoding alone cost;
- ``source``: ``KeeperStream.pages`` (fingerprints, windows, position dumps) over the same events;
- ``source+rows``: the source plus ``shape_rows`` for ``KeeperSecurityEventNewLogs_CL``, i.e. everything
  the runner does before handing rows to the sink.

Peak RSS is read with psutil in a sampling thread (ru_maxrss would include the simulator's dataset
build). The simulator runs in its own process, so neither its CPU nor its dataset counts here.

Then the ``wan`` drain: the whole product (``run_cycle``, Keeper -> Logs Ingestion, file checkpoints) in
a fresh child process, with the Keeper simulator answering each page after ``--page-latency`` (500 ms)
and Logs Ingestion each request after ``--ingest-latency`` (100 ms). Its figure is the share of the
serial-fetch bound, 1,000 events a page / page latency: what one stream fetching pages back to back
could reach. Every event is checked to arrive exactly once (Keeper events have no id: as a multiset).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

from auditsync.config import KeeperSettings
from auditsync.http import HttpClient
from auditsync.model import Clock, Deadline
from auditsync.sources import SourceContext
from auditsync.sources.keeper import KeeperStream
from auditsync.tables import KEEPER_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from bench.measure import run_child
from bench.profile import Profile, record_prefix
from bench.sims import TallyingLogsIngestionSim, expected_keys
from simulators.identity import ManagedIdentitySim
from simulators.keeper import EVENTS_PATH, MAX_LIMIT, KeeperSim, sample_events

TOKEN = "bench-keeper-token"
RUN_START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LARGEST_POSITION = {"bytes": 0}


class PeakRss:
    """Samples this process's RSS every 5 ms while active."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.start = self.process.memory_info().rss
        self.peak = self.start
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    rss_start: int
    rss_peak: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def rss_growth_mb(self) -> float:
        return (self.rss_peak - self.rss_start) / 2**20


def baseline(url: str, start: str, end: str) -> int:
    session = requests.Session()
    count = 0
    token = None
    while True:
        params: dict[str, str | int] = {"start_date": start, "end_date": end, "limit": 1000}
        if token:
            params["continuation_token"] = token
        body = session.get(
            url + EVENTS_PATH, params=params, headers={"x-api-token": f"Bearer {TOKEN}"}
        ).json()
        count += len(body["events"])
        if not body["has_more"]:
            return count
        token = body["continuation_token"]


def drain(url: str, lookback: timedelta, *, shape: bool) -> int:
    settings = KeeperSettings(base_url=url, initial_lookback=lookback)
    clock = Clock(now=lambda: RUN_START)
    deadline = Deadline(Clock(), datetime.now(UTC) + timedelta(hours=1))
    ctx = SourceContext(settings, TOKEN, HttpClient(clock=clock), clock, RUN_START, deadline)
    table = TABLES[KEEPER_TABLE]
    delivered = 0
    largest: dict[str, Any] = {}
    for page in KeeperStream(ctx).pages(None, deadline):
        delivered += len(page.events)
        if len(page.position["fingerprints"]) >= len(largest.get("fingerprints", ())):
            largest = page.position
        if shape and page.events:
            shape_rows(table, page.events, now=RUN_START)
    LARGEST_POSITION["bytes"] = len(json.dumps(largest))
    return delivered


def measure(name: str, fn: Callable[[], int]) -> Result:
    with PeakRss() as rss:
        began = time.perf_counter()
        events = fn()
        seconds = time.perf_counter() - began
    return Result(name, events, seconds, rss.start, rss.peak)


def serve(count: int, lookback: timedelta, ready: Any, stop: Any) -> None:
    """The simulator in its own process, so its JSON encoding does not compete for our GIL."""
    events = sample_events(count, RUN_START - lookback, RUN_START - timedelta(minutes=10), seed=42)
    sim = KeeperSim(token=TOKEN, now=lambda: RUN_START)
    sim.add(events)
    del events
    with sim:
        ready.put(sim.url)
        stop.wait()


#: Issue 13's target for the Keeper drain at 500 ms a page: this share of the serial-fetch bound.
TARGET_BOUND_SHARE = 0.9


def wan_drain(
    events: int, page_latency: float, ingest_latency: float, *, profile: bool = False
) -> dict[str, Any]:
    """The product's Keeper drain through latency; exactly-once checked; figures against the bound.

    ``profile``: then one more drain (fresh checkpoints) under py-spy, waits included, summarised."""
    now = datetime.now(UTC)
    backlog = sample_events(events, now - timedelta(hours=23), now - timedelta(minutes=30), seed=42)
    expected = expected_keys(KEEPER_TABLE, backlog)
    identity = ManagedIdentitySim()
    ingestion = TallyingLogsIngestionSim(identity=identity)
    keeper = KeeperSim(token=TOKEN)
    keeper.record_bodies = False
    keeper.add(backlog)
    del backlog
    keeper.latency, ingestion.latency = page_latency, ingest_latency
    lines: list[str] = []
    with identity, ingestion, keeper, tempfile.TemporaryDirectory(prefix="bench-data-") as scratch:
        data = str(Path(scratch) / "data")
        env = {
            **identity.env(),
            "SOURCES": "keeper",
            "KEEPER_BASE_URL": keeper.url,
            "KEEPER_TOKEN": TOKEN,
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": ingestion.url,
            "LOGS_INGESTION_RULE_ID": ingestion.dcr_id,
            "CHECKPOINT_STORE": "file",
            "AUDITSYNC_DATA_DIR": data,
            "INITIAL_LOOKBACK": "1d",
            "RUN_TIME_BUDGET": "9m",  # the longest host.json allows
        }
        child = run_child("bench.drain_child", ["drain"], env)
        pages = len(keeper.requests)
        arrivals = sorted(request.received for request in keeper.requests)
        tally = ingestion.reset_tally()
        if profile:
            raw = Path(scratch) / "keeper-wan.txt"
            run_child(
                "bench.drain_child",
                ["drain"],
                {**env, "AUDITSYNC_DATA_DIR": data + "-profiled"},
                prefix=record_prefix(raw, idle=True),
            )
            lines = Profile.read(raw).lines()
    duplicates, missing = tally.compare(expected)
    if child["failed"] or duplicates or missing or child["events"] != events:
        raise RuntimeError(
            f"the Keeper drain did not deliver every event exactly once: {events} in the backlog, "
            f"{child['events']} reported, {duplicates} duplicate or unknown, {missing} missing "
            f"({json.dumps(child['streams'])})"
        )
    rate = child["events"] / child["seconds"]
    bound = MAX_LIMIT / page_latency
    # Where the time goes: the requests that followed one another (one that arrived within half a page's
    # latency of the one before overlapped it: sent ahead, then dropped), the pauses between them, and
    # the run's start and end around them.
    serial = 1 + sum(1 for a, b in itertools.pairwise(arrivals) if b - a > page_latency / 2)
    busy = arrivals[-1] + page_latency - arrivals[0]
    return {
        "events": child["events"],
        "seconds": child["seconds"],
        "cpu_seconds": child["cpu_seconds"],
        "events_per_s": rate,
        "keeper_requests": pages,
        "dce_requests": tally.data_requests + tally.heartbeat_requests,
        "peak_rss_mb": child["peak_rss_mb"],
        "bound_events_per_s": bound,
        "bound_share": rate / bound,
        "events_per_request": child["events"] / pages if pages else 0.0,
        "serial_requests": serial,
        "extra_requests": serial - -(-events // MAX_LIMIT),
        "gap_seconds": busy - serial * page_latency,
        "start_end_seconds": child["seconds"] - busy,
        "page_latency": page_latency,
        "ingest_latency": ingest_latency,
        "profile": lines,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each measurement")
    parser.add_argument(
        "--wan-events",
        default="20000",
        help="events of the wan drain, or several sizes separated by commas, one drain each (0: skip it)",
    )
    parser.add_argument("--page-latency", type=float, default=0.5, help="seconds per Keeper page (wan drain)")
    parser.add_argument(
        "--ingest-latency", type=float, default=0.1, help="seconds per ingestion request (wan)"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled wan drain")
    args = parser.parse_args(argv)

    lookback = timedelta(days=1)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=serve, args=(args.events, lookback, ready, stop), daemon=True)
    server.start()
    url = ready.get(timeout=300)
    results: dict[str, Result] = {}
    try:
        window = (_z(RUN_START - lookback), _z(RUN_START))
        runs: list[tuple[str, Callable[[], int]]] = [
            ("baseline", lambda: baseline(url, *window)),
            ("source", lambda: drain(url, lookback, shape=False)),
            ("source+rows", lambda: drain(url, lookback, shape=True)),
        ]
        for _ in range(args.repeat):
            for name, fn in runs:
                result = measure(name, fn)
                best = results.get(name)
                if best is None or result.seconds < best.seconds:
                    results[name] = result
    finally:
        stop.set()
        server.join(timeout=10)
    base = results["baseline"]
    print(
        f"Keeper drain benchmark: {args.events:,} events, best of {args.repeat}, python {_python()}, "
        f"{os.cpu_count()} CPU(s); simulator in a separate process"
    )
    print(
        f"  {'measurement':<12} {'events':>8} {'events/s':>10} {'vs baseline':>11} {'peak RSS':>9} {'growth':>9}"
    )
    for r in results.values():
        print(
            f"  {r.name:<12} {r.events:>8,} {r.rate:>10,.0f} {r.rate / base.rate:>10.2f}x "
            f"{r.rss_peak / 2**20:>6.0f} MB {r.rss_growth_mb:>6.1f} MB"
        )
    print(f"  largest checkpoint position: {LARGEST_POSITION['bytes'] / 1024:.1f} KiB")
    figures: dict[str, Any] = {
        name: {"events": r.events, "events_per_s": r.rate, "rss_peak_mb": r.rss_peak / 2**20}
        for name, r in results.items()
    }
    figures["largest_position_bytes"] = LARGEST_POSITION["bytes"]
    sizes = [int(size) for size in str(args.wan_events).split(",") if int(size)]
    for number, size in enumerate(sizes):
        profile = number == 0 and not args.no_profile
        wan = wan_drain(size, args.page_latency, args.ingest_latency, profile=profile)
        figures.setdefault("wan", wan)
        figures.setdefault("wan_sizes", []).append(wan)
        met = wan["bound_share"] >= TARGET_BOUND_SHARE
        print(
            f"  wan drain (run_cycle in a child; {wan['page_latency'] * 1000:.0f} ms per Keeper page, "
            f"{wan['ingest_latency'] * 1000:.0f} ms per ingestion request): {wan['events']:,} events exactly once "
            f"in {wan['seconds']:.1f} s = {wan['events_per_s']:,.0f} events/s; {wan['keeper_requests']} Keeper "
            f"requests ({wan['events_per_request']:,.0f} events each), {wan['dce_requests']} DCE requests, "
            f"peak RSS {wan['peak_rss_mb']:.0f} MB"
        )
        print(
            f"  where the time goes: {wan['serial_requests']} requests one after another "
            f"({wan['extra_requests']} more than the events need), {wan['gap_seconds']:.2f} s of pauses "
            f"between them, {wan['start_end_seconds']:.2f} s at the run's start and end"
        )
        print(
            f"  targets: wan drain / serial-fetch bound ({wan['bound_events_per_s']:,.0f} events/s) = "
            f"{wan['bound_share']:.2f} (>= {TARGET_BOUND_SHARE}): {'met' if met else 'MISSED'}"
        )
        if wan["profile"]:
            print("  profile of one more wan drain (py-spy, waits included):")
            for line in wan["profile"]:
                print("    " + line)
    return figures


def _z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _python() -> str:
    import platform

    return platform.python_version()


if __name__ == "__main__":
    main()
