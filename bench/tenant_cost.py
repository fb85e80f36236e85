"""What one work item costs in Table Storage requests, and what a dispatch costs, at two tenant counts.

For each count (200 and 2,000 by default) the checkpoint table in Azurite is filled with every
tenant's four checkpoints, as after a day of collection; then a sample of work items, spread over the
tenants, runs through the real worker (``auditsync.fanout.worker.work``: the superseded check, the
run's checkpoint read, lease, heartbeat) against shared Keeper and 1Password stand-ins, with a
forwarding proxy in front of Azurite's table service counting the requests on the wire. A work item
whose cost does not depend on the other tenants costs the same at both counts: the ratio is the
measure. The dispatch (the file registry read, one queue message per stream) is timed per item.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from azure.data.tables import TableClient

from auditsync.checkpoints.table import TableCheckpointStore
from auditsync.config import Settings
from auditsync.fanout.deployment import open_registry
from auditsync.fanout.dispatch import dispatch
from auditsync.fanout.queue import open_queue
from auditsync.fanout.scoped_store import TenantScopedStore
from auditsync.fanout.work_item import WorkItem
from auditsync.fanout.worker import work
from auditsync.model import Checkpoint
from auditsync.tenants import Tenant
from simulators.azurite import azurite
from simulators.base import Request
from simulators.identity import ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import EVENT_TYPES, OnePasswordSim
from simulators.proxy import ForwardingProxy
from simulators.tls import make_loopback_tls

STREAMS = ("keeper/events", *(f"onepassword/{t}" for t in EVENT_TYPES))


@contextlib.contextmanager
def _world(tmp: Path) -> Iterator[dict[str, Any]]:
    with contextlib.ExitStack() as stack:
        identity = stack.enter_context(ManagedIdentitySim())
        tls = make_loopback_tls(tmp / "tls")
        vault = stack.enter_context(KeyVaultSim(tls.server_context, identity=identity))
        dcr = stack.enter_context(LogsIngestionSim(identity=identity, keep_rows=False))
        table_conn, _ = stack.enter_context(azurite("table"))
        queue_conn, _ = stack.enter_context(azurite("queue"))
        endpoint = table_conn.split("TableEndpoint=")[1].rstrip(";")
        origin, account = endpoint.rsplit("/", 1)
        proxy = stack.enter_context(ForwardingProxy(origin))
        keeper = stack.enter_context(KeeperSim(token="kpr-bench-cost-token"))
        now = datetime.now(UTC)
        keeper.add(sample_events(20, now - timedelta(hours=3), now - timedelta(hours=1), seed=1))
        onepassword = stack.enter_context(OnePasswordSim(seed=1))
        for event_type in EVENT_TYPES:
            onepassword.generate(event_type, 20, step=timedelta(minutes=1))
        vault.set_secret("keeper", keeper.token)
        vault.set_secret("op", onepassword.issue_token())
        with _environment({**identity.env(), **tls.env(), "NO_PROXY": "127.0.0.1,localhost"}):
            yield {
                "vault": vault,
                "dcr": dcr,
                "keeper": keeper,
                "onepassword": onepassword,
                "proxy": proxy,
                "table_conn": table_conn.replace(endpoint, f"{proxy.url}/{account}"),
                "queue_conn": queue_conn,
            }


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    from simulators.demo import sdk_environment
    from simulators.identity import COMPETING_CREDENTIAL_ENV

    with sdk_environment(values, clear=tuple(COMPETING_CREDENTIAL_ENV)):
        yield


def _tenant(name: str, world: dict[str, Any]) -> Tenant:
    return Tenant(
        name,
        {
            "KEEPER_BASE_URL": world["keeper"].url,
            "KEEPER_TOKEN_SECRET": "keeper",
            "ONEPASSWORD_BASE_URL": world["onepassword"].url,
            "ONEPASSWORD_TOKEN_SECRET": "op",
        },
    )


def measure_count(world: dict[str, Any], tmp: Path, tenants: int, sample: int) -> dict[str, Any]:
    """Fill a fresh table with ``tenants`` tenants' checkpoints, dispatch once, work ``sample`` items."""
    tag = f"cost{tenants}"
    env = {
        "KEY_VAULT_URL": world["vault"].url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": world["dcr"].url,
        "LOGS_INGESTION_RULE_ID": world["dcr"].dcr_id,
        "CHECKPOINT_STORE": "table",
        "CHECKPOINT_CONNECTION_STRING": world["table_conn"],
        "CHECKPOINT_TABLE": tag,
        "AUDITSYNC_DATA_DIR": str(tmp / tag),
        "TENANT_REGISTRY": "file",
        "WORK_QUEUE": f"bench-{tag}",
        "WORK_QUEUE_CONNECTION_STRING": world["queue_conn"],
        "RUN_TIME_BUDGET": "2m",
    }
    settings = Settings.from_env(env)
    registry = open_registry(settings.fanout, lambda: None)
    TableClient.from_connection_string(world["table_conn"], tag).create_table()
    store = TableCheckpointStore.from_connection_string(world["table_conn"], tag)
    names = [f"tenant-{n:04d}" for n in range(tenants)]
    day_ago = datetime.now(UTC) - timedelta(days=1)
    for name in names:
        registry.put(_tenant(name, world))
        scoped = TenantScopedStore(store, name)
        scoped.save_all([replace(Checkpoint(s), last_status="ok", last_run=day_ago) for s in STREAMS])

    queue = open_queue(env["WORK_QUEUE"], connection_string=world["queue_conn"])
    queue.create_queue()
    began = time.perf_counter()
    report = dispatch(registry, env, queue, now=datetime.now(UTC), run_id=tag)
    dispatch_seconds = time.perf_counter() - began

    proxy: ForwardingProxy = world["proxy"]
    step = max(1, tenants // sample)
    per_item: list[int] = []
    kinds: dict[str, list[dict[str, int]]] = {"keeper/events": [], "onepassword/auditevents": []}
    for name in names[::step][:sample]:
        for stream in kinds:
            item = WorkItem(name, stream, datetime.now(UTC), tag)
            before = len(proxy.requests)
            ran = work(item, registry=registry, env=env, store=store)
            assert ran is not None and not ran.failed, f"{name} {stream} did not run cleanly"
            requests = proxy.requests[before:]
            per_item.append(len(requests))
            kinds[stream].append(Counter(request_kind(r) for r in requests))
    return {
        "tenants": tenants,
        "dispatched": len(report.enqueued),
        "dispatch_seconds": round(dispatch_seconds, 2),
        "dispatch_ms_per_item": round(dispatch_seconds / len(report.enqueued) * 1000, 2),
        "items_worked": len(per_item),
        "table_requests_per_item": statistics.mean(per_item),
        "table_requests_range": [min(per_item), max(per_item)],
        "request_kinds": {stream: [dict(k) for k in counted] for stream, counted in kinds.items()},
    }


def request_kind(request: Request) -> str:
    """A Table Storage request by what it does: a point read names its entity's keys in the path, a
    query (a RowKey range here) carries a $filter, anything else writes."""
    if request.method != "GET":
        return "write"
    return "point read" if "RowKey=" in unquote(request.path) else "query"


def measure(counts: tuple[int, ...] = (200, 2_000), sample: int = 10) -> list[dict[str, Any]]:
    """Table requests per work item and dispatch time at each tenant count; prints a table and the ratio."""
    with tempfile.TemporaryDirectory(prefix="bench-tenant-cost-") as workdir:
        tmp = Path(workdir)
        with _world(tmp) as world:
            results = [measure_count(world, tmp, n, sample) for n in counts]
    print("Table Storage per work item, and the dispatch, by tenant count (Azurite, requests on the wire):")
    for r in results:
        low, high = r["table_requests_range"]
        print(
            f"  {r['tenants']:>5} tenants: {r['table_requests_per_item']:.1f} table requests a work item "
            f"({low}-{high}, {r['items_worked']} items); dispatch of {r['dispatched']} items "
            f"{r['dispatch_seconds']:.2f} s ({r['dispatch_ms_per_item']:.2f} ms an item)"
        )
    first, last = results[0], results[-1]
    print(
        f"  ratio {last['tenants']}/{first['tenants']} tenants: table requests a work item x"
        f"{last['table_requests_per_item'] / first['table_requests_per_item']:.2f}, dispatch time an item x"
        f"{last['dispatch_ms_per_item'] / first['dispatch_ms_per_item']:.2f}"
    )
    return results
