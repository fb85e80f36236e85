"""Dispatcher and local worker on Azurite's queue service, with the semantics of the Functions host."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditsync.errors import ConfigError
from auditsync.fanout.dispatch import dispatch
from auditsync.fanout.local_worker import drain
from auditsync.fanout.queue import open_queue, poison_queue_name
from auditsync.fanout.work_item import WorkItem
from auditsync.tenants import FileTenantRegistry, Tenant

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DEPLOYMENT = {"KEY_VAULT_URL": "https://vault.vault.azure.net"}


def _registry(tmp_path: Path) -> FileTenantRegistry:
    registry = FileTenantRegistry(tmp_path / "tenants.json")
    registry.put(Tenant("acme", {"SOURCES": "keeper,onepassword"}))
    registry.put(Tenant("globex", {"SOURCES": "onepassword", "ONEPASSWORD_EVENT_TYPES": "itemusages"}))
    registry.put(Tenant("initech", {"SOURCES": "keeper"}, enabled=False))
    registry.put(Tenant("umbrella", {"SOURCES": "keeper", "KEEPER_BASE_URL": "https://keeper.example.com"}))
    return registry


def test_dispatch_enqueues_one_item_per_stream_of_each_enabled_valid_tenant(
    tmp_path: Path, azurite_queue_connection_string: str, work_queue_name: str
) -> None:
    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    queue.create_queue()
    report = dispatch(_registry(tmp_path), DEPLOYMENT, queue, now=NOW, run_id="tick1")

    assert report.disabled == ["initech"]
    assert list(report.failed) == ["umbrella"]
    assert isinstance(report.failed["umbrella"], ConfigError)
    assert "KEEPER_BASE_URL" in str(report.failed["umbrella"])

    messages = list(queue.receive_messages(max_messages=32))
    items = sorted((WorkItem.from_json(m.content) for m in messages), key=lambda i: (i.tenant, i.stream))
    assert [(i.tenant, i.stream) for i in items] == [
        ("acme", "keeper/events"),
        ("acme", "onepassword/auditevents"),
        ("acme", "onepassword/itemusages"),
        ("acme", "onepassword/signinattempts"),
        ("globex", "onepassword/itemusages"),
    ]
    assert {i.run_id for i in items} == {"tick1"} and {i.dispatched for i in items} == {NOW}


def test_messages_are_base64_json_as_the_functions_trigger_expects(
    azurite_queue_connection_string: str, work_queue_name: str
) -> None:
    from azure.storage.queue import QueueClient

    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    queue.create_queue()
    queue.send_message(WorkItem("acme", "keeper/events", NOW, "r1").to_json())
    plain = QueueClient.from_connection_string(azurite_queue_connection_string, work_queue_name)
    (message,) = plain.receive_messages()
    assert json.loads(base64.b64decode(message.content)) == {
        "dispatched": NOW.isoformat(),
        "run_id": "r1",
        "stream": "keeper/events",
        "tenant": "acme",
    }


def test_concurrent_local_workers_complete_every_item_once_and_poison_what_keeps_failing(
    azurite_queue_connection_string: str, work_queue_name: str
) -> None:
    queue = open_queue(work_queue_name, connection_string=azurite_queue_connection_string)
    queue.create_queue()
    poison = open_queue(poison_queue_name(work_queue_name), connection_string=azurite_queue_connection_string)
    poison.create_queue()
    items = [WorkItem(f"t{n:02d}", "keeper/events", NOW, "r") for n in range(30)]
    for item in items:
        queue.send_message(item.to_json())

    seen: list[str] = []
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def handler(text: str, dequeue_count: int) -> None:
        item = WorkItem.from_json(text)
        with lock:
            attempts[item.tenant] = max(attempts.get(item.tenant, 0), dequeue_count)
            if item.tenant == "t07":
                raise RuntimeError("this tenant's message always fails")
            seen.append(item.tenant)

    def worker() -> None:
        drain(
            open_queue(work_queue_name, connection_string=azurite_queue_connection_string),
            poison,
            handler,
            visibility=timedelta(seconds=30),
            max_dequeue_count=3,
            poll_interval=0.05,
        )

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(seen) == sorted(i.tenant for i in items if i.tenant != "t07")  # each exactly once
    assert attempts["t07"] == 3
    poisoned = [WorkItem.from_json(m.content) for m in poison.receive_messages(max_messages=32)]
    assert [p.tenant for p in poisoned] == ["t07"]
    assert list(queue.receive_messages()) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"tenant": "a"}',
        '{"tenant":"a","stream":"x/../y","dispatched":"2026-01-01T00:00:00+00:00","run_id":"r"}',
    ],
)
def test_a_foreign_message_is_refused_clearly(text: str) -> None:
    with pytest.raises(ConfigError, match="queue message"):
        WorkItem.from_json(text)
