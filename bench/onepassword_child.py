"""The measured side of the 1Password benchmark, one fresh process per measurement.

``drain``: one ``run_cycle`` with the settings in the environment (the simulators' URLs, a managed
identity through ``IDENTITY_ENDPOINT``), timed around the call. ``sdk``: the same events rebuilt and
shaped into rows in memory first, then only ``LogsIngestionClient.upload`` of all of them is timed.
Both write their figures as JSON to ``--out``; peak RSS is this process's own ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from bench.measure import cpu_seconds, peak_rss_mb, rss_mb, write_result
from bench.onepassword_backlog import Backlog


def drain() -> dict[str, Any]:
    from auditsync.config import Settings
    from auditsync.runner import run_cycle

    settings = Settings.from_env()
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


def sdk(backlog: Backlog, endpoint: str, rule_id: str) -> dict[str, Any]:
    from azure.identity import DefaultAzureCredential
    from azure.monitor.ingestion import LogsIngestionClient

    from auditsync.tables import ONEPASSWORD_TABLE, TABLES
    from auditsync.tables.rows import shape_rows

    table = TABLES[ONEPASSWORD_TABLE]
    now = datetime.now(UTC)
    rows: list[MutableMapping[str, Any]] = []
    for event_type in backlog.event_types:
        shaped, _ = shape_rows(table, backlog.events(event_type), now=now, event_type=event_type)
        rows.extend(shaped)
    gc.collect()
    rss_start = rss_mb()
    client = LogsIngestionClient(
        endpoint, DefaultAzureCredential(exclude_interactive_browser_credential=True)
    )
    cpu_start = cpu_seconds()
    began = time.perf_counter()
    client.upload(rule_id, table.stream, rows, enforce_https=False)  # loopback simulator on plain http
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_start,
        "events": len(rows),
        "rss_start_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("drain", "sdk"))
    parser.add_argument("--backlog", help="Backlog JSON (sdk)")
    parser.add_argument("--endpoint", help="DCE URL (sdk)")
    parser.add_argument("--rule-id", help="DCR immutable id (sdk)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.what == "drain":
        result = drain()
    else:
        result = sdk(Backlog.from_json(args.backlog), args.endpoint, args.rule_id)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
