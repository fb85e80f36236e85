"""Idle-run benchmark: how many HTTP requests a run makes when nothing is new, per service.

Four streams (the three 1Password event types and Keeper) with table checkpoints on Azurite, the
Logs Ingestion sink and a managed identity, all against the simulators in this process. One child
process runs two collection runs back to back, as a warm Functions worker runs two timer ticks: the
first catches up with a small backlog (every event checked to arrive exactly once), the second finds
nothing new; its requests are the figure. Target (issue 13): at most 12.
Run: ``python -m bench idle``.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditsync.tables import KEEPER_TABLE, ONEPASSWORD_TABLE
from bench.measure import machine, run_child
from bench.sims import TallyingLogsIngestionSim, expected_keys
from simulators.azurite import azurite
from simulators.identity import ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.onepassword import OnePasswordSim
from simulators.onepassword_data import EVENT_TYPES

TARGET_REQUESTS = 12
KEEPER_TOKEN = "bench-keeper-token"


def measure(events_per_stream: int = 20) -> dict[str, Any]:
    """Both runs' request counts per service, after checking the first run delivered exactly once."""
    now = datetime.now(UTC)
    identity = ManagedIdentitySim()
    ingestion = TallyingLogsIngestionSim(identity=identity)
    onepassword = OnePasswordSim()
    keeper = KeeperSim(token=KEEPER_TOKEN)
    expected: Counter[str] = Counter()
    for event_type in EVENT_TYPES:
        events = onepassword.generate(event_type, events_per_stream, start=now - timedelta(hours=1))
        expected.update(expected_keys(ONEPASSWORD_TABLE, events, event_type))
    keeper_events = sample_events(
        events_per_stream, now - timedelta(hours=2), now - timedelta(minutes=30), seed=7
    )
    keeper.add(keeper_events)
    expected.update(expected_keys(KEEPER_TABLE, keeper_events))
    with azurite("table") as (connection, _pid), identity, ingestion, onepassword, keeper:
        services = {
            _host_port(identity.url): "managed identity",
            _host_port(ingestion.url): "Logs Ingestion",
            _host_port(onepassword.url): "1Password",
            _host_port(keeper.url): "Keeper",
            _host_port(connection.split("TableEndpoint=")[1]): "Table Storage (checkpoints)",
        }
        env = {
            **identity.env(),
            "SOURCES": "keeper,onepassword",
            "KEEPER_BASE_URL": keeper.url,
            "KEEPER_TOKEN": KEEPER_TOKEN,
            "ONEPASSWORD_BASE_URL": onepassword.url,
            "ONEPASSWORD_TOKEN": onepassword.issue_token(),
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": ingestion.url,
            "LOGS_INGESTION_RULE_ID": ingestion.dcr_id,
            "CHECKPOINT_STORE": "table",
            "CHECKPOINT_CONNECTION_STRING": connection,
            "CHECKPOINT_TABLE": f"bench{uuid.uuid4().hex[:12]}",
            "INITIAL_LOOKBACK": "3h",
            "RUN_TIME_BUDGET": "5m",
        }
        child = run_child("bench.drain_child", ["idle"], env)
        first, second = child["runs"]
        tally = ingestion.reset_tally()
    duplicates, missing = tally.compare(expected)
    if first["failed"] or second["failed"]:
        raise RuntimeError(f"a run failed: {json.dumps([first['messages'], second['messages']])}")
    if duplicates or missing or first["events"] != sum(expected.values()) or second["events"]:
        raise RuntimeError(
            f"the runs did not deliver every event exactly once: {sum(expected.values())} in the backlog, "
            f"{first['events']} + {second['events']} reported, {duplicates} duplicate or unknown, {missing} missing"
        )
    return {
        "streams": len(second["statuses"]),
        "first_run": _by_service(first["requests"], services),
        "idle_run": _by_service(second["requests"], services),
        "idle_statuses": second["statuses"],
        "events": first["events"],
    }


def _host_port(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0].rstrip(";")


def _by_service(requests: dict[str, int], services: dict[str, str]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for where, n in requests.items():
        out[services.get(where, where)] += n
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench idle", description=__doc__)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = measure()
    idle = sum(result["idle_run"].values())
    first = sum(result["first_run"].values())
    print(f"Idle-run benchmark: {machine()}")
    print(
        f"  {result['streams']} streams (1Password x3, Keeper), table checkpoints on Azurite, Logs Ingestion sink; "
        f"first run delivered {result['events']} events exactly once"
    )
    print(f"  {'service':<28} {'first run':>9} {'idle run':>9}")
    for service in sorted(set(result["first_run"]) | set(result["idle_run"])):
        print(
            f"  {service:<28} {result['first_run'].get(service, 0):>9} {result['idle_run'].get(service, 0):>9}"
        )
    print(f"  {'total':<28} {first:>9} {idle:>9}")
    met = idle <= TARGET_REQUESTS
    print(f"  targets: idle run {idle} requests (<= {TARGET_REQUESTS}): {'met' if met else 'MISSED'}")
    result["idle_requests"] = idle
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
