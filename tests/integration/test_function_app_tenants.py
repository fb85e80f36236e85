"""The three functions of a multi-tenant deployment as the Functions host indexes and calls them: the timer
dispatches to Azurite's queue, the queue function collects one (tenant, stream) into that tenant's DCR,
the poison function reports a work item that kept failing as an ``error`` health row of its tenant."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import function_app
from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.config import Settings
from auditsync.fanout.deployment import dispatch_tick
from auditsync.fanout.local_worker import drain as local_drain
from auditsync.fanout.queue import MAX_DEQUEUE_COUNT, open_queue
from auditsync.fanout.scoped_store import TenantScopedStore
from auditsync.fanout.work_item import WorkItem
from auditsync.fanout.worker import WorkFailed, work
from auditsync.model import Checkpoint
from auditsync.sources.pacing import ONEPASSWORD_ACCOUNT_INTERVAL
from auditsync.tenants import FileTenantRegistry, Tenant
from simulators.identity import ManagedIdentitySim
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import event_rows, uuid_counts
from tests.integration.test_function_app import indexed_function, timer

ROOT = Path(__file__).resolve().parents[2]


def queue_message(text: str) -> func.QueueMessage:
    return func.QueueMessage(id="m", body=text.encode("utf-8"))


def test_queue_bindings_are_what_the_host_indexes() -> None:
    for name, queue in (("work", "auditsync-work"), ("poisoned", "auditsync-work-poison")):
        binding = indexed_function(name).get_trigger().get_dict_repr()
        assert binding["type"] == "queueTrigger"
        assert binding["queueName"] == queue
        assert binding["connection"] == "AzureWebJobsStorage"


def test_host_json_bounds_retries_and_concurrency() -> None:
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert queues["maxDequeueCount"] == MAX_DEQUEUE_COUNT, "the local worker and the CLI use the same limit"
    assert queues["batchSize"] + queues["newBatchThreshold"] <= 16, "per-instance concurrency stays bounded"


def deployment_env(
    keyvault_sim: KeyVaultSim, logs_ingestion_sim: LogsIngestionSim, data: Path
) -> dict[str, str]:
    """The deployment's own settings: 1Password tokens from Key Vault, its DCR, file checkpoints."""
    return {
        "SOURCES": "onepassword",
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "CHECKPOINT_STORE": "file",
        "AUDITSYNC_DATA_DIR": str(data),
        "RUN_TIME_BUDGET": "2m",
    }


@pytest.fixture
def tenants(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    azurite_queue_connection_string: str,
    work_queue_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """Two tenants, each with its own 1Password account and DCR; the deployment's own DCR is the fixture's."""
    other_account = OnePasswordSim(now=onepassword_sim.now, seed=7).start()
    dcrs = {name: LogsIngestionSim(identity=identity_sim).start() for name in ("acme", "globex")}
    accounts = {"acme": onepassword_sim, "globex": other_account}
    registry = FileTenantRegistry(tmp_path / "data" / "tenants.json")
    for name, account in accounts.items():
        keyvault_sim.set_secret(f"{name}-op", account.issue_token(features=("auditevents",)))
        registry.put(
            Tenant(
                name,
                {
                    "SOURCES": "onepassword",
                    "ONEPASSWORD_EVENT_TYPES": "auditevents",
                    "ONEPASSWORD_BASE_URL": account.url,
                    "ONEPASSWORD_TOKEN_SECRET": f"{name}-op",
                    "LOGS_INGESTION_ENDPOINT": dcrs[name].url,
                    "LOGS_INGESTION_RULE_ID": dcrs[name].dcr_id,
                },
            )
        )
    registry.put(Tenant("initech", {"SOURCES": "onepassword"}, enabled=False))
    env = {
        **deployment_env(keyvault_sim, logs_ingestion_sim, tmp_path / "data"),
        "TENANT_REGISTRY": "file",
        "WORK_QUEUE": work_queue_name,
        "WORK_QUEUE_CONNECTION_STRING": azurite_queue_connection_string,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A worker process keeps one credential; each test's identity endpoint is a new "machine".
    function_app._credential.cache_clear()
    yield accounts, dcrs
    other_account.stop()
    for sim in dcrs.values():
        sim.stop()


def test_a_tick_dispatches_the_queue_function_collects_and_poison_is_reported(
    tenants: Any,
    logs_ingestion_sim: LogsIngestionSim,
    azurite_queue_connection_string: str,
    work_queue_name: str,
) -> None:
    accounts, dcrs = tenants
    generated = {
        name: account.generate("auditevents", 120, step=timedelta(seconds=30))
        for name, account in accounts.items()
    }

    indexed_function("collect").get_user_function()(timer())
    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    messages = list(queue.receive_messages(max_messages=32))
    items = sorted((WorkItem.from_json(m.content) for m in messages), key=lambda i: i.tenant)
    assert [(i.tenant, i.stream) for i in items] == [
        ("acme", "onepassword/auditevents"),
        ("globex", "onepassword/auditevents"),
    ], "one item per stream of each enabled tenant; the disabled tenant gets none"

    for message in messages:
        indexed_function("work").get_user_function()(queue_message(message.content))
    for name, dcr in dcrs.items():
        assert uuid_counts(event_rows(dcr)) == Counter(e["uuid"] for e in generated[name])
        (row,) = dcr.rows("AuditSyncHealth_CL")
        assert (row["Tenant"], row["Stream"], row["Status"], row["EventsIngested"]) == (
            name,
            "onepassword/auditevents",
            "ok",
            120,
        )
    assert logs_ingestion_sim.rows("AuditSyncHealth_CL") == [], "the deployment's own DCR got no tenant data"

    # The same message again (the queue delivers at least once): the stream caught up after it was
    # dispatched, so it is acknowledged without a run.
    globex = next(m.content for m in messages if WorkItem.from_json(m.content).tenant == "globex")
    vendor_requests = len(accounts["globex"].requests)
    indexed_function("work").get_user_function()(queue_message(globex))
    assert len(dcrs["globex"].rows("AuditSyncHealth_CL")) == 1
    assert len(accounts["globex"].requests) == vendor_requests

    # globex's DCR loses the app's role; at the next tick its stream fails and so does its heartbeat ->
    # the host retries.
    dcrs["globex"].deny()
    accounts["globex"].generate("auditevents", 5)
    indexed_function("collect").get_user_function()(timer())
    messages = list(queue.receive_messages(max_messages=32))
    globex = next(m.content for m in messages if WorkItem.from_json(m.content).tenant == "globex")
    with pytest.raises(WorkFailed, match="health rows did not reach the sink"):
        indexed_function("work").get_user_function()(queue_message(globex))

    # After maxDequeueCount the host moves it to the poison queue: the report reaches the deployment's
    # DCR, because the tenant's own refuses it, and names the tenant, the stream and the last outcome.
    indexed_function("poisoned").get_user_function()(queue_message(globex))
    (row,) = logs_ingestion_sim.rows("AuditSyncHealth_CL")
    assert (row["Tenant"], row["Stream"], row["Status"], row["ErrorKind"]) == (
        "globex",
        "onepassword/auditevents",
        "error",
        "auth",  # the last outcome of the stream: the DCR refused the app (403)
    )
    assert f"failed {MAX_DEQUEUE_COUNT} times" in row["Message"] and "poison" in row["Message"]

    # A poisoned item of a tenant whose DCR works is reported there.
    acme = next(m.content for m in messages if WorkItem.from_json(m.content).tenant == "acme")
    indexed_function("poisoned").get_user_function()(queue_message(acme))
    rows = dcrs["acme"].rows("AuditSyncHealth_CL")
    assert [(r["Tenant"], r["Status"]) for r in rows] == [("acme", "ok"), ("acme", "error")]


def test_a_poisoned_message_that_is_not_a_work_item_is_still_reported(
    tenants: Any, logs_ingestion_sim: LogsIngestionSim
) -> None:
    indexed_function("poisoned").get_user_function()(queue_message("not json at all"))
    (row,) = logs_ingestion_sim.rows("AuditSyncHealth_CL")
    assert (row["Tenant"], row["Stream"], row["Status"]) == ("", "unknown/unknown", "error")
    assert "poison" in row["Message"]


def test_every_log_line_of_a_tenants_work_names_the_tenant_whichever_thread_writes_it(
    tenants: Any, azurite_queue_connection_string: str, work_queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The lines of one work item come from the function's thread, the run's stream thread and the
    read-ahead thread (a retried request sent ahead); each names its tenant, a failing tenant's too. The
    tick's own lines (no tenant's work) carry no stamp."""
    accounts, dcrs = tenants
    accounts["acme"].generate("auditevents", 2_500)
    accounts["globex"].generate("auditevents", 30)
    # acme's second page, the request sent ahead, meets a 503 once: the read-ahead thread logs its retry.
    accounts["acme"].inject(
        503,
        {"Error": {"Message": "try later"}},
        path="/api/v2/auditevents",
        when=lambda r: b"cursor" in r.body,
    )
    dcrs["globex"].deny()
    caplog.set_level(logging.DEBUG)

    indexed_function("collect").get_user_function()(timer())
    tick = [r for r in caplog.records if r.name.startswith("auditsync")]
    assert tick and not any(getattr(r, "tenant", "") or "[tenant " in r.getMessage() for r in tick)
    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    messages = {
        WorkItem.from_json(m.content).tenant: m.content for m in queue.receive_messages(max_messages=32)
    }

    lines: dict[str, list[logging.LogRecord]] = {}
    for name in ("acme", "globex"):
        caplog.clear()
        try:
            indexed_function("work").get_user_function()(queue_message(messages[name]))
        except WorkFailed:
            assert name == "globex", "globex's DCR refuses the app"
        lines[name] = list(caplog.records)
        assert [
            r.getMessage() for r in lines[name] if not r.getMessage().startswith(f"[tenant {name}] ")
        ] == []
        assert {getattr(r, "tenant", None) for r in lines[name]} == {name}

    threads = {r.threadName.rsplit("_", 1)[0] for r in lines["acme"]}
    assert {"MainThread", "run", "read-ahead-onepassword/auditevents"} <= threads, threads
    (retry,) = [r for r in lines["acme"] if "retry 1" in r.getMessage()]
    assert retry.threadName.startswith("read-ahead") and "(503)" in retry.getMessage()
    failed = [r.getMessage() for r in lines["globex"] if r.levelno >= logging.WARNING]
    assert any("403" in m for m in failed), failed


def test_after_an_hour_long_outage_each_stream_runs_once_not_once_per_missed_tick(
    tenants: Any, azurite_queue_connection_string: str, work_queue_name: str
) -> None:
    """The timer kept dispatching every 5 minutes while no worker ran (12 ticks); when the workers come
    back, the oldest item of each stream runs and catches up, and the eleven after it are acknowledged
    without a run: one health row and one set of vendor requests per stream, every event once."""
    accounts, dcrs = tenants
    generated = {name: account.generate("auditevents", 1_500) for name, account in accounts.items()}
    settings = Settings.from_env(dict(os.environ))
    now = datetime.now(UTC)
    for tick in range(12):
        dispatch_tick(settings, os.environ, now=now - timedelta(minutes=60 - 5 * tick), run_id=f"tick{tick}")
    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    poison = open_queue(f"{work_queue_name}-poison", connection_string=azurite_queue_connection_string)
    assert int(queue.get_queue_properties().approximate_message_count) == 24

    def work(text: str, dequeue_count: int) -> None:
        indexed_function("work").get_user_function()(queue_message(text))

    completed = local_drain(
        queue, poison, work, visibility=timedelta(minutes=5), idle_polls=1, poll_interval=0
    )

    assert completed == 24 and list(queue.peek_messages()) == []
    for name, dcr in dcrs.items():
        assert uuid_counts(event_rows(dcr)) == Counter(e["uuid"] for e in generated[name])
        assert [(r["Status"], r["EventsIngested"]) for r in dcr.rows("AuditSyncHealth_CL")] == [("ok", 1_500)]
        event_requests = [r for r in accounts[name].requests if r.path == "/api/v2/auditevents"]
        assert len(event_requests) == 2, "one run: two pages, no request of the eleven items after it"


@pytest.mark.parametrize("siblings", ["idle", "running"])
def test_a_tenants_one_backlog_takes_the_accounts_whole_rate_only_while_its_other_streams_are_idle(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    keyvault_sim: KeyVaultSim,
    identity_sim: ManagedIdentitySim,
    tmp_path: Path,
    siblings: str,
) -> None:
    """A tenant with three 1Password streams; auditevents has a backlog. With the other two idle its
    requests go at the account's own pace (one per 0.12 s); with them running, at a third of it.
    The real worker, the 1Password stand-in, file checkpoints; the gaps are the stand-in's arrivals."""
    keyvault_sim.set_secret("acme-op", onepassword_sim.issue_token())
    generated = onepassword_sim.generate("auditevents", 8_000, step=timedelta(seconds=5))
    data = tmp_path / "data"
    registry = FileTenantRegistry(data / "tenants.json")
    registry.put(
        Tenant("acme", {"ONEPASSWORD_BASE_URL": onepassword_sim.url, "ONEPASSWORD_TOKEN_SECRET": "acme-op"})
    )
    env = {**deployment_env(keyvault_sim, logs_ingestion_sim, data), "INITIAL_LOOKBACK": "1d"}
    store = TenantScopedStore(FileCheckpointStore(data / "checkpoints"), "acme")
    now = datetime.now(UTC)
    for stream in ("onepassword/itemusages", "onepassword/signinattempts"):
        sibling = Checkpoint(stream, last_status="idle", last_run=now - timedelta(minutes=4))
        if siblings == "running":
            sibling = replace(sibling, lease_owner="another-worker", lease_until=now + timedelta(minutes=8))
        store.save(sibling)

    report = work(
        WorkItem("acme", "onepassword/auditevents", now, "tick"),
        registry=registry,
        env=env,
        store=store.inner,
    )

    assert report is not None and [r.status for r in report.reports] == ["ok"]
    assert uuid_counts(event_rows(logs_ingestion_sim)) == Counter(e["uuid"] for e in generated)
    pages = [r.received for r in onepassword_sim.requests if r.path == "/api/v2/auditevents"]
    assert len(pages) == 8
    gaps = [b - a for a, b in itertools.pairwise(pages)]
    if siblings == "idle":
        # A third of the rate keeps requests three intervals apart (0.35-0.37 s measured); at the whole
        # rate they go one interval apart whenever reading and sending a page is quicker than that. On a
        # busy machine most pages are not (a median of 0.28 s under four workers), so one is enough.
        assert min(gaps) < 2 * ONEPASSWORD_ACCOUNT_INTERVAL, gaps
    else:
        # The pacer spaces the sends; arrivals can bunch when one request is held up on a loaded machine,
        # so the whole span is what must hold a third of the account's pace (less a fifth for the first
        # request's own delay).
        assert pages[-1] - pages[0] >= 0.8 * len(gaps) * 3 * ONEPASSWORD_ACCOUNT_INTERVAL, gaps


def test_a_failed_run_is_retried_by_the_next_item_and_a_duplicate_of_a_running_item_is_skipped(
    tenants: Any, azurite_queue_connection_string: str, work_queue_name: str, tmp_path: Path
) -> None:
    """Only a run that caught up supersedes an item: acme's first run is refused (401), so the next
    tick's item runs it again; globex's first run caught up, so its next item is acknowledged. Then a
    copy of an item that arrives while the item runs finds the lease held: ``skipped``, not a second run."""
    accounts, dcrs = tenants
    generated = {name: account.generate("auditevents", 1_500) for name, account in accounts.items()}
    accounts["acme"].inject(401, {"status": 401, "message": "Unauthorized"}, path="/api/v2/auditevents")
    settings = Settings.from_env(dict(os.environ))
    now = datetime.now(UTC)
    for tick in range(2):
        dispatch_tick(settings, os.environ, now=now - timedelta(minutes=10 - 5 * tick), run_id=f"tick{tick}")
    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    poison = open_queue(f"{work_queue_name}-poison", connection_string=azurite_queue_connection_string)

    def work_message(text: str, dequeue_count: int) -> None:
        indexed_function("work").get_user_function()(queue_message(text))

    assert local_drain(queue, poison, work_message, visibility=timedelta(minutes=5), idle_polls=1) == 4
    assert [(r["Status"], r["EventsIngested"]) for r in dcrs["acme"].rows("AuditSyncHealth_CL")] == [
        ("error", 0),
        ("ok", 1_500),
    ]
    assert [(r["Status"], r["EventsIngested"]) for r in dcrs["globex"].rows("AuditSyncHealth_CL")] == [
        ("ok", 1_500)
    ]

    more = accounts["acme"].generate("auditevents", 1_500)
    dispatch_tick(settings, os.environ, now=datetime.now(UTC), run_id="tick2")
    items = [WorkItem.from_json(m.content) for m in queue.receive_messages(messages_per_page=2)]
    (item,) = [i for i in items if i.tenant == "acme"]
    registry = FileTenantRegistry(tmp_path / "data" / "tenants.json")
    copies: list[Any] = []

    def duplicate_arrives(stream: str, delivered: int) -> None:
        if not copies:
            copies.append(work(item, registry=registry, env=os.environ))

    first = work(item, registry=registry, env=os.environ, progress=duplicate_arrives)

    assert first is not None and [(r.status, r.events) for r in first.reports] == [("ok", 1_500)]
    assert copies and [r.status for r in copies[0].reports] == ["skipped"]
    for name, dcr in dcrs.items():
        sent = generated[name] + (more if name == "acme" else [])
        assert uuid_counts(event_rows(dcr)) == Counter(e["uuid"] for e in sent), name
