"""The measured side of the drain benchmarks, one fresh process per measurement.

``drain``: one ``run_cycle`` with the settings in the environment (the simulators' URLs, a managed
identity through ``IDENTITY_ENDPOINT``), timed around the call: the product as it runs.

``baseline``: the same work without the product around it, the denominator of the loopback ratio.
For each 1Password event type, in its own thread (the drain's concurrency): fetch every page from
the 1Password simulator with a plain ``requests`` loop, shape it with the same ``shape_rows``, cut it
into the same gzip bodies with the sink's own ``encode_rows``/``batch_encoded`` (so every body is
within the service's 1 MiB), and POST each body to the Logs Ingestion simulator with a bearer token
fetched once. No checkpoints, no leases, no heartbeat, no SDK pipeline, no retries except a plain
wait on 429 (the simulator answers it only when rate limits are on).

``idle``: two runs back to back, counting HTTP requests (see ``idle``).

``peak`` and ``pages``: what the memory is (``bench.memory_bench``): a ``drain`` watched by a thread
that keeps the process's memory picture at its highest RSS, and what one page costs at each stage.

Each writes its figures as JSON to ``--out``; peak RSS is this process's own ``VmHWM``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from bench.measure import cpu_seconds, malloc_arenas, peak_rss_mb, rss_mb, status_kb, write_result

INGESTION_API_VERSION = "2023-01-01"
MONITOR_RESOURCE = "https://monitor.azure.com"
#: The baseline's answer to a 429 from 1Password: the API sends no Retry-After, so wait a little.
THROTTLE_WAIT = 0.2
#: Modules ``run_cycle`` imports lazily on its first use of a sink, source or credential.
LAZY_IMPORTS = (
    "azure.identity",
    "auditsync.sinks.logs_ingestion",
    "auditsync.sources.onepassword",
    "auditsync.sources.keeper",
    "auditsync.checkpoints.file",
    "auditsync.checkpoints.table",
)


def drain() -> dict[str, Any]:
    from auditsync.config import Settings
    from auditsync.runner import run_cycle

    settings = Settings.from_env()
    # What run_cycle would import on first use: the cold-import benchmark's subject, not this one's
    # (the baseline imports the same before its clock starts, and a warm worker has them already).
    for module in LAZY_IMPORTS:
        importlib.import_module(module)
    gc.collect()
    rss_start = rss_mb()
    cpu_start = cpu_seconds()
    began = time.perf_counter()
    cycle = run_cycle(settings)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_start,
        "events": sum(r.events for r in cycle.reports),
        "pages": sum(r.pages for r in cycle.reports),
        "streams": {
            r.stream: {"status": r.status, "events": r.events, "message": r.message} for r in cycle.reports
        },
        "failed": cycle.failed,
        "heartbeat_error": cycle.heartbeat_error,
        "rss_start_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
    }


def baseline() -> dict[str, Any]:
    import requests

    from auditsync.config import Settings
    from auditsync.sinks.logs_ingestion import MAX_FIELD_BYTES, batch_encoded, encode_rows
    from auditsync.tables import ONEPASSWORD_TABLE, TABLES
    from auditsync.tables.rows import format_time, shape_rows

    settings = Settings.from_env()
    table = TABLES[ONEPASSWORD_TABLE]
    gc.collect()
    rss_start = rss_mb()
    cpu_start = cpu_seconds()
    began = time.perf_counter()
    now = datetime.now(UTC)
    identity = requests.get(
        os.environ["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": MONITOR_RESOURCE},
        headers={"X-IDENTITY-HEADER": os.environ["IDENTITY_HEADER"]},
        timeout=30,
    )
    identity.raise_for_status()
    bearer = {"Authorization": f"Bearer {identity.json()['access_token']}"}
    upload_url = (
        f"{settings.sink.logs_ingestion.endpoint.rstrip('/')}/dataCollectionRules/"
        f"{settings.sink.logs_ingestion.rule_id}/streams/{table.stream}"
    )
    upload_headers = {**bearer, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    vendor_headers = {"Authorization": f"Bearer {settings.onepassword.token.value}"}
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def post(session: requests.Session, url: str, **kwargs: Any) -> requests.Response:
        while True:
            response = session.post(url, timeout=60, **kwargs)
            if response.status_code != 429:
                response.raise_for_status()
                return response
            time.sleep(THROTTLE_WAIT)

    def stream(event_type: str) -> None:
        session = requests.Session()
        url = f"{settings.onepassword.base_url.rstrip('/')}/api/v2/{event_type}"
        body: dict[str, Any] = {
            "limit": 1000,
            "start_time": format_time(now - settings.onepassword.initial_lookback),
        }
        sent = 0
        while True:
            page = post(session, url, json=body, headers=vendor_headers).json()
            if page["items"]:
                rows, _ = shape_rows(table, page["items"], now=datetime.now(UTC), event_type=event_type)
                encoded, _ = encode_rows(rows, MAX_FIELD_BYTES)
                for gz, count in batch_encoded(encoded):
                    post(
                        session,
                        upload_url,
                        params={"api-version": INGESTION_API_VERSION},
                        data=gz,
                        headers=upload_headers,
                    )
                    sent += count
            if not page["has_more"]:
                break
            body = {"cursor": page["cursor"]}
        with lock:
            counts[event_type] = sent

    types = settings.onepassword.event_types
    with ThreadPoolExecutor(max_workers=len(types)) as pool:
        list(pool.map(stream, types))
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_start,
        "events": sum(counts.values()),
        "streams": counts,
        "rss_start_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
    }


def idle() -> dict[str, Any]:
    """Two ``run_cycle`` calls in one process, as a warm Functions worker runs two timer ticks: the
    first catches up with the backlog, the second finds nothing new. Every HTTP request either makes
    is counted by destination (host:port) where it leaves: urllib3, under both requests and azure-core."""
    import urllib3.connectionpool

    from auditsync.config import Settings
    from auditsync.runner import run_cycle

    counts: Counter[str] = Counter()
    pool = urllib3.connectionpool.HTTPConnectionPool
    make_request = pool._make_request

    def counted(self: Any, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        counts[f"{self.host}:{self.port}"] += 1
        return make_request(self, conn, method, url, *args, **kwargs)

    pool._make_request = counted  # type: ignore[method-assign]
    runs = []
    for _ in range(2):
        counts.clear()
        cycle = run_cycle(Settings.from_env())
        runs.append(
            {
                "requests": dict(counts),
                "events": sum(r.events for r in cycle.reports),
                "statuses": {r.stream: r.status for r in cycle.reports},
                "messages": {r.stream: r.message for r in cycle.reports if r.message},
                "failed": cycle.failed,
            }
        )
    return {"runs": runs}


#: How often ``peak`` looks at the process's RSS.
PEAK_SAMPLE_SECONDS = 0.005


def peak() -> dict[str, Any]:
    """``drain``, with a thread that keeps, at the highest RSS it sees, /proc/self/status, glibc's
    arenas (``malloc_arenas``) and the threads alive; the drain's own figures besides."""
    highest: dict[str, Any] = {"rss_kb": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(PEAK_SAMPLE_SECONDS):
            status = status_kb()
            if status.get("VmRSS", 0) > highest["rss_kb"]:
                highest.update(
                    rss_kb=status.get("VmRSS", 0),
                    status=status,
                    arenas=malloc_arenas(),
                    threads=sorted(t.name for t in threading.enumerate()),
                )

    watcher = threading.Thread(target=watch, name="peak-watcher", daemon=True)
    watcher.start()
    try:
        result = drain()
    finally:
        stop.set()
        watcher.join()
    return {**result, "at_peak": highest, "after": {"status": status_kb(), "arenas": malloc_arenas()}}


def pages() -> dict[str, Any]:
    """What the first 1,000-event page of each event type costs at each stage, as ``tracemalloc``
    counts it (Python's allocations, orjson's included): the answer's body, the decoded events (and
    the decoder's transient peak), the shaped rows, the encoded rows, the gzip bodies."""
    import tracemalloc

    import requests

    from auditsync.config import Settings
    from auditsync.fastjson import response_json
    from auditsync.sinks.logs_ingestion import MAX_FIELD_BYTES, batch_encoded, encode_rows
    from auditsync.tables import ONEPASSWORD_TABLE, TABLES
    from auditsync.tables.rows import format_time, shape_rows

    settings = Settings.from_env()
    table = TABLES[ONEPASSWORD_TABLE]
    session = requests.Session()
    headers = {"Authorization": f"Bearer {settings.onepassword.token.value}"}
    start = format_time(datetime.now(UTC) - settings.onepassword.initial_lookback)
    costs: dict[str, Any] = {}
    for event_type in settings.onepassword.event_types:
        gc.collect()
        tracemalloc.start()
        try:
            url = f"{settings.onepassword.base_url.rstrip('/')}/api/v2/{event_type}"
            response = session.post(
                url, json={"limit": 1000, "start_time": start}, headers=headers, timeout=60
            )
            response.raise_for_status()
            stages = [("body", len(response.content), tracemalloc.get_traced_memory()[0])]
            tracemalloc.reset_peak()
            page = response_json(response)
            held, decode_peak = tracemalloc.get_traced_memory()
            stages.append(("events", len(page["items"]), held))
            rows, _ = shape_rows(table, page["items"], now=datetime.now(UTC), event_type=event_type)
            stages.append(("rows", len(rows), tracemalloc.get_traced_memory()[0]))
            encoded, _ = encode_rows(rows, MAX_FIELD_BYTES)
            stages.append(("encoded rows", sum(map(len, encoded)), tracemalloc.get_traced_memory()[0]))
            bodies = list(batch_encoded(encoded))
            stages.append(("gzip bodies", len(bodies), tracemalloc.get_traced_memory()[0]))
        finally:
            tracemalloc.stop()
        costs[event_type] = {
            "stages": [
                {"stage": name, "count": count, "mb": (now - before) / 2**20}
                for (name, count, now), (_, _, before) in zip(stages, [("", 0, 0), *stages[:-1]], strict=True)
            ],
            "decode_transient_mb": (decode_peak - stages[0][2]) / 2**20,
        }
        del response, page, rows, encoded, bodies
    return {"pages": costs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("drain", "baseline", "idle", "peak", "pages"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    modes = {"drain": drain, "baseline": baseline, "idle": idle, "peak": peak, "pages": pages}
    write_result(args.out, modes[args.what]())


if __name__ == "__main__":
    main()
