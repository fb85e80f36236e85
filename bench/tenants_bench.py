"""Many tenants: what a work item costs in Table Storage requests at 200 and 2,000 tenants
(``bench/tenant_cost.py``), then the drain time of one dispatch (every tenant x 4 streams) with 1, 2, 4, 8
worker processes.

Each tenant has its own Keeper and 1Password simulator (own data, own token as a Key Vault secret);
all tenants write to one Logs Ingestion simulator (one DCR, as a small MSP might) that counts rows
and requests. Checkpoints, leases and the work queue are in Azurite (table and queue services). Every
simulator holds each response back ``--latency`` seconds, like a real service's round trip. Each
worker is ``python -m auditsync work``, the same loop as the local queue trigger; the host would run
these as Functions instances.

Printed: the scaling curve (seconds, items/s, speedup and efficiency against 1 worker), the CPU
cores the whole set-up kept busy (workers + simulators + Azurite) and the Logs Ingestion request
rate against the service's 12,000 requests/min per DCR, so the shared limit that flattens the curve is
named from measurements, not guessed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditsync.config import Settings
from auditsync.fanout.deployment import open_registry
from auditsync.fanout.dispatch import dispatch
from auditsync.fanout.queue import open_queue
from auditsync.tables import HEALTH_TABLE, KEEPER_TABLE, ONEPASSWORD_TABLE
from auditsync.tenants import Tenant
from bench.tenant_cost import measure as measure_cost
from simulators.azurite import azurite
from simulators.identity import COMPETING_CREDENTIAL_ENV, ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import EVENT_TYPES, OnePasswordSim
from simulators.tls import make_loopback_tls

ROOT = Path(__file__).resolve().parent.parent
DCR_REQUESTS_PER_MINUTE = 12_000


def _cpu_of(pid: int) -> float:
    """CPU seconds a running process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench tenants", description=__doc__)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4,8", help="worker process counts to measure")
    parser.add_argument("--events", type=int, default=20, help="events per stream")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per simulator response")
    parser.add_argument(
        "--cost-counts",
        default="200,2000",
        help="tenant counts at which to measure Table Storage requests a work item and the dispatch time",
    )
    parser.add_argument("--cost-only", action="store_true", help="only the cost per work item, no drain")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    cost = measure_cost(tuple(int(n) for n in args.cost_counts.split(",")))
    if args.cost_only:
        return {"cost": cost}

    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tenants-")))
        identity = stack.enter_context(ManagedIdentitySim())
        tls = make_loopback_tls(tmp / "tls")
        vault = stack.enter_context(KeyVaultSim(tls.server_context, identity=identity))
        dcr = stack.enter_context(LogsIngestionSim(identity=identity, keep_rows=False))
        table_conn, table_pid = stack.enter_context(azurite("table"))
        queue_conn, queue_pid = stack.enter_context(azurite("queue"))
        for sim in (identity, vault, dcr):
            sim.latency = args.latency
        now = datetime.now(UTC)
        tenants = []
        for n in range(args.tenants):
            name = f"tenant-{n:03d}"
            keeper = stack.enter_context(KeeperSim(token=f"kpr-{name}-bench-token", seed=n))
            keeper.add(sample_events(args.events, now - timedelta(hours=3), now - timedelta(hours=1), seed=n))
            onepassword = stack.enter_context(OnePasswordSim(seed=n))
            for event_type in EVENT_TYPES:
                onepassword.generate(event_type, args.events, step=timedelta(minutes=1))
            keeper.latency = onepassword.latency = args.latency
            vault.set_secret(f"{name}-keeper", keeper.token)
            vault.set_secret(f"{name}-op", onepassword.issue_token())
            tenants.append(
                Tenant(
                    name,
                    {
                        "KEEPER_BASE_URL": keeper.url,
                        "KEEPER_TOKEN_SECRET": f"{name}-keeper",
                        "ONEPASSWORD_BASE_URL": onepassword.url,
                        "ONEPASSWORD_TOKEN_SECRET": f"{name}-op",
                    },
                )
            )
        base_env = {k: v for k, v in os.environ.items() if k not in COMPETING_CREDENTIAL_ENV}
        base_env.update({**identity.env(), **tls.env(), "NO_PROXY": "127.0.0.1,localhost"})
        expected_rows = args.tenants * 4 * args.events

        print(
            f"tenants: {args.tenants} x 4 streams x {args.events} events, simulator latency "
            f"{args.latency * 1000:.0f} ms, {os.cpu_count()} CPU cores on this machine"
        )
        for workers in counts:
            tag = uuid.uuid4().hex[:10]
            env = {
                **base_env,
                "KEY_VAULT_URL": vault.url,
                "SINK": "logs_ingestion",
                "LOGS_INGESTION_ENDPOINT": dcr.url,
                "LOGS_INGESTION_RULE_ID": dcr.dcr_id,
                "CHECKPOINT_STORE": "table",
                "CHECKPOINT_CONNECTION_STRING": table_conn,
                "CHECKPOINT_TABLE": f"bench{tag}",
                "AUDITSYNC_DATA_DIR": str(tmp / tag),
                "TENANT_REGISTRY": "file",
                "WORK_QUEUE": f"bench-{tag}",
                "WORK_QUEUE_CONNECTION_STRING": queue_conn,
                "RUN_TIME_BUDGET": "5m",
            }
            registry = open_registry(Settings.from_env(env).fanout, lambda: None)
            for tenant in tenants:
                registry.put(tenant)
            queue = open_queue(env["WORK_QUEUE"], connection_string=queue_conn)
            queue.create_queue()
            report = dispatch(registry, env, queue, now=datetime.now(UTC), run_id=tag)
            dcr.reset()
            uploads_before = dcr.uploads
            cpu_before = (time.process_time(), _children_cpu(), _cpu_of(table_pid) + _cpu_of(queue_pid))
            began = time.monotonic()
            processes = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "auditsync",
                        "work",
                        "--idle-polls",
                        "2",
                        "--poll-interval",
                        "0.2",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                for _ in range(workers)
            ]
            outputs = [p.communicate()[0] for p in processes]
            # The workers stop after two empty polls: that idle tail is not drain time.
            seconds = time.monotonic() - began - 2 * 0.2
            cpu = (
                time.process_time()
                - cpu_before[0]
                + _children_cpu()
                - cpu_before[1]
                + _cpu_of(table_pid)
                + _cpu_of(queue_pid)
                - cpu_before[2]
            )
            rows = dcr.row_counts[KEEPER_TABLE] + dcr.row_counts[ONEPASSWORD_TABLE]
            # 1Password's healthevents rows are heartbeats, not events.
            rows -= args.tenants * 3
            worked = sum(int(o.split("worked ")[1].split(" ")[0]) for o in outputs if "worked " in o)
            result = {
                "workers": workers,
                "items": len(report.enqueued),
                "worked": worked,
                "seconds": round(seconds, 2),
                "items_per_second": round(worked / seconds, 1),
                "event_rows": rows,
                "expected_rows": expected_rows,
                "health_rows": dcr.row_counts[HEALTH_TABLE],
                "cpu_cores_busy": round(cpu / seconds, 2),
                "dcr_requests_per_minute": round((dcr.uploads - uploads_before) / seconds * 60),
            }
            if rows != expected_rows or worked != len(report.enqueued):
                print(f"  ! {workers} worker(s): {rows} of {expected_rows} rows, {worked} items worked")
            results.append(result)
            print(
                f"  {workers} worker(s): {seconds:6.1f} s  {result['items_per_second']:6.1f} items/s  "
                f"cores busy {result['cpu_cores_busy']:.2f}  DCR {result['dcr_requests_per_minute']} req/min  "
                f"rows {rows}/{expected_rows}"
            )
    base = results[0]["seconds"] * results[0]["workers"]
    print("scaling (against 1 worker):")
    for r in results:
        speedup = base / r["seconds"]
        r["speedup"] = round(speedup, 2)
        r["efficiency"] = round(speedup / r["workers"], 2)
        print(f"  {r['workers']} worker(s): x{speedup:.2f}  ({r['efficiency']:.0%} of linear)")
    cores = os.cpu_count() or 1
    last = results[-1]
    peak_dcr = max(r["dcr_requests_per_minute"] for r in results)
    # Extrapolate linearly from the largest run: where would each shared limit be reached?
    at_cpu = cores / max(last["cpu_cores_busy"] / last["workers"], 1e-9)
    at_dcr = DCR_REQUESTS_PER_MINUTE / max(last["dcr_requests_per_minute"] / last["workers"], 1e-9)
    if last["cpu_cores_busy"] >= 0.8 * cores:
        limit = f"CPU of this machine: {last['cpu_cores_busy']:.2f} of {cores} cores busy"
    elif peak_dcr >= 0.8 * DCR_REQUESTS_PER_MINUTE:
        limit = f"the DCR's 12,000 requests/min: {peak_dcr}/min"
    else:
        nearest = "CPU of this machine" if at_cpu < at_dcr else "the DCR's 12,000 requests/min"
        limit = (
            f"none up to {last['workers']} workers; nearest: {nearest} "
            f"(CPU at ~{at_cpu:.0f} workers, the DCR at ~{at_dcr:.0f} concurrent items)"
        )
    print(f"shared limit: {limit}")
    print(
        f"Logs Ingestion: peak {peak_dcr} requests/min on the one DCR "
        f"({peak_dcr / DCR_REQUESTS_PER_MINUTE:.0%} of its 12,000/min)"
    )
    return {"results": results, "limit": limit, "peak_dcr_requests_per_minute": peak_dcr, "cost": cost}
