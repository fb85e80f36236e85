"""50 tenants x 4 streams on one deployment, drained by several ``python -m auditsync work`` PROCESSES that
consume the same Azurite queue, with checkpoints and leases in Azurite's table service.

Every tenant has its own Keeper and 1Password accounts (simulators with their own data and tokens, the
tokens as Key Vault secrets) and its own DCR. Every work item is enqueued twice, side by side, as an
at-least-once queue may deliver it, so two workers regularly hold the two copies of one stream at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from auditsync.config import Settings
from auditsync.fanout.deployment import open_registry
from auditsync.fanout.dispatch import dispatch
from auditsync.fanout.queue import open_queue, poison_queue_name
from auditsync.tables import KEEPER_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from auditsync.tenants import Tenant
from simulators.identity import ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import EVENT_TYPES, OnePasswordSim
from tests.fixtures.canonical import row_content
from tests.fixtures.pipeline import event_rows, uuid_counts

# On the fault-deadline scenarios' worker, before them: its worker processes never run beside the runs timed there.
pytestmark = pytest.mark.xdist_group("processes")

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 50
WORKERS = 4
EVENTS = 25  # per stream
WORK_COMMAND = (sys.executable, "-m", "auditsync", "work")
STREAMS = ("keeper/events", *(f"onepassword/{t}" for t in EVENT_TYPES))


@dataclass
class Account:
    """One tenant's world: its vendor accounts and its DCR."""

    keeper: KeeperSim
    onepassword: OnePasswordSim
    dcr: LogsIngestionSim
    keeper_events: list[dict[str, Any]]
    onepassword_uuids: Counter[str]

    def stop(self) -> None:
        for sim in (self.keeper, self.onepassword, self.dcr):
            sim.stop()

    def vendor_requests(self) -> int:
        return len(self.keeper.requests) + len(self.onepassword.requests)


class SendTwice:
    """The work queue as an at-least-once queue may behave: every message delivered twice, side by side."""

    def __init__(self, queue: QueueClient) -> None:
        self.queue = queue

    def send_message(self, content: str) -> None:
        self.queue.send_message(content)
        self.queue.send_message(content)


def keeper_rows(events: list[dict[str, Any]]) -> Counter[bytes]:
    rows, _ = shape_rows(TABLES[KEEPER_TABLE], events, now=datetime.now(UTC), event_type="events")
    return Counter(row_content(r) for r in rows)


def _start_account(
    name: str, n: int, identity: ManagedIdentitySim, keyvault: KeyVaultSim
) -> tuple[str, Account]:
    now = datetime.now(UTC)
    keeper = KeeperSim(token=f"kpr-{name}-token", seed=n).start()
    keeper_events = sample_events(
        EVENTS, now - timedelta(hours=3), now - timedelta(minutes=30), seed=n, enterprise_id=1000 + n
    )
    keeper.add(keeper_events)
    onepassword = OnePasswordSim(seed=n).start()
    uuids: Counter[str] = Counter()
    for event_type in EVENT_TYPES:
        uuids.update(e["uuid"] for e in onepassword.generate(event_type, EVENTS, step=timedelta(minutes=2)))
    keyvault.set_secret(f"{name}-keeper", keeper.token)
    keyvault.set_secret(f"{name}-op", onepassword.issue_token())
    dcr = LogsIngestionSim(identity=identity).start()
    return name, Account(keeper, onepassword, dcr, keeper_events, uuids)


def _tenant(name: str, account: Account, *, enabled: bool = True) -> Tenant:
    return Tenant(
        name,
        {
            "SOURCES": "keeper,onepassword",
            "KEEPER_BASE_URL": account.keeper.url,
            "KEEPER_TOKEN_SECRET": f"{name}-keeper",
            "ONEPASSWORD_BASE_URL": account.onepassword.url,
            "ONEPASSWORD_TOKEN_SECRET": f"{name}-op",
            "LOGS_INGESTION_ENDPOINT": account.dcr.url,
            "LOGS_INGESTION_RULE_ID": account.dcr.dcr_id,
        },
        enabled=enabled,
    )


@pytest.fixture
def accounts(identity_sim: ManagedIdentitySim, keyvault_sim: KeyVaultSim) -> Iterator[dict[str, Account]]:
    """TENANTS enabled tenants, plus ``broken`` (its DCR refuses the app) and ``dormant`` (disabled)."""
    names = [f"tenant-{n:02d}" for n in range(TENANTS)] + ["broken", "dormant"]
    started = dict(_start_account(name, n, identity_sim, keyvault_sim) for n, name in enumerate(names))
    started["broken"].dcr.deny()
    yield started
    for account in started.values():
        account.stop()


def test_fifty_tenants_drained_by_worker_processes_exactly_once(
    accounts: dict[str, Account],
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    azurite_connection_string: str,
    azurite_table_name: str,
    azurite_queue_connection_string: str,
    work_queue_name: str,
    tmp_path: Path,
) -> None:
    env = {
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",  # the deployment's own DCR: poison reports land here
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "CHECKPOINT_STORE": "table",
        "CHECKPOINT_CONNECTION_STRING": azurite_connection_string,
        "CHECKPOINT_TABLE": azurite_table_name,
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        "TENANT_REGISTRY": "file",
        "WORK_QUEUE": work_queue_name,
        "WORK_QUEUE_CONNECTION_STRING": azurite_queue_connection_string,
        "RUN_TIME_BUDGET": "1m",
    }
    settings = Settings.from_env(env)
    registry = open_registry(settings.fanout, lambda: None)
    for name, account in accounts.items():
        registry.put(_tenant(name, account, enabled=name != "dormant"))
    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    queue.create_queue()
    report = dispatch(registry, env, SendTwice(queue), now=datetime.now(UTC), run_id="tick1")  # type: ignore[arg-type]
    assert len(report.enqueued) == (TENANTS + 1) * 4 and report.disabled == ["dormant"] and not report.failed

    began = time.monotonic()
    workers = [
        subprocess.Popen(
            [*WORK_COMMAND, "--idle-polls", "3", "--poll-interval", "0.3", "--max-dequeue-count", "2"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    elapsed = time.monotonic() - began
    print(f"{WORKERS} worker processes drained {2 * len(report.enqueued)} messages in {elapsed:.1f}s")
    for _, err in outputs:
        assert "Traceback" not in err, err[-3000:]
    worked = sum(int(out.split("worked ")[1].split(" ")[0]) for out, _ in outputs)
    reported = sum(int(out.split("; ")[1].split(" ")[0]) for out, _ in outputs)
    # Every message completed or was poisoned and reported (a copy of a broken item that found the
    # lease held completed as a skip; the copy that ran failed twice and was poisoned; a copy of a good
    # item that came after its first copy caught up was acknowledged without running).
    assert worked + reported == 2 * len(report.enqueued), [out for out, _ in outputs]

    idle_runs = 0
    for name, account in accounts.items():
        if name in ("broken", "dormant"):
            continue
        # Exactly once, into this tenant's own DCR only.
        delivered_rows = Counter(row_content(r) for r in account.dcr.rows(KEEPER_TABLE))
        assert delivered_rows == keeper_rows(account.keeper_events), name
        assert uuid_counts(event_rows(account.dcr)) == account.onepassword_uuids, name
        health = account.dcr.rows("AuditSyncHealth_CL")
        assert {r["Tenant"] for r in health} == {name}
        assert {r["Stream"] for r in health} == set(STREAMS)
        assert all(r["Status"] in ("ok", "idle") for r in health), health
        # No stream worked by two workers at once: one run per stream delivered its events; the other
        # copy found the lease held (skipped, no row), or the stream caught up (acknowledged, no row), or
        # it read the checkpoint just before the first copy's release and ran after it (idle).
        for stream in STREAMS:
            runs = [r for r in health if r["Stream"] == stream]
            assert [r["EventsIngested"] for r in runs if r["Status"] == "ok"] == [EVENTS], (name, runs)
            idle_runs += len(runs) - 1
    skipped = sum(err.count("is being collected by another runner; skipped") for _, err in outputs)
    superseded = sum(int(out.split("item(s), ")[1].split(" ")[0]) for out, _ in outputs)
    print(
        f"second copies: {skipped} skipped (lease held), {superseded} acknowledged (caught up), "
        f"{idle_runs} ran after the first (idle)"
    )
    # ... and the broken tenant's copies that completed did so as skips (its runs never catch up).
    assert skipped + superseded + idle_runs == TENANTS * 4 + (2 * 4 - reported)

    # The broken tenant's items failed twice each, went to the poison queue and were reported to the
    # deployment's DCR (its own refuses the app), naming tenant, stream and the last outcome.
    poison_rows = logs_ingestion_sim.rows("AuditSyncHealth_CL")
    assert {(r["Tenant"], r["Stream"], r["Status"], r["ErrorKind"]) for r in poison_rows} == {
        ("broken", stream, "error", "auth") for stream in STREAMS
    }
    assert len(poison_rows) == reported >= 4, "each poisoned copy was reported once"
    assert accounts["broken"].dcr.rows(KEEPER_TABLE) == []
    poison = open_queue(poison_queue_name(work_queue_name), connection_string=azurite_queue_connection_string)
    assert list(poison.peek_messages()) == [], "every poisoned item was reported and removed"
    assert list(queue.peek_messages()) == []

    # The disabled tenant was never touched: no vendor request, no row, no checkpoint.
    dormant = accounts["dormant"]
    assert dormant.vendor_requests() == 0 and dormant.dcr.uploads == 0
    status = subprocess.run(
        [sys.executable, "-m", "auditsync", "status"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert status[0].split()[:2] == ["tenant", "stream"]
    by_tenant = {name: [line for line in status if line.startswith(name + " ")] for name in accounts}
    assert all(len(lines) == 4 for lines in by_tenant.values()), status
    assert all(" never " in line and "(tenant disabled)" in line for line in by_tenant["dormant"])
    assert all(" error (auth: " in line for line in by_tenant["broken"])
    assert all(line.split()[-1] in ("ok", "idle") for line in by_tenant["tenant-00"]), by_tenant["tenant-00"]
