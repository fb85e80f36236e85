"""The one retry policy (auditsync/retry.py) as every client meets it, over real loopback sockets:
HttpClient (a vendor API), the checkpoint table and the work queue on Azurite (behind a forwarding
proxy that injects the faults), Key Vault and Logs Ingestion on the simulators.

Each retries the same statuses the same way, waits a Retry-After only when it ends before the deadline,
sends again a request whose answer was lost only where that is harmless, and gives up by the deadline
with an error that names the component. Waits run on a fake clock; only hangs take real seconds.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from azure.core.exceptions import AzureError
from azure.identity import DefaultAzureCredential

from auditsync.checkpoints.table import TableCheckpointStore
from auditsync.config import SecretRef
from auditsync.errors import AuditSyncError, CheckpointError, CredentialsError, RetryableError, SinkError
from auditsync.fanout.dispatch import queue_failure
from auditsync.fanout.queue import open_queue
from auditsync.http import HttpClient
from auditsync.model import Checkpoint, Clock, Deadline
from auditsync.redaction import Redactor
from auditsync.retry import AZURE_SERVICES, LOG_ANALYTICS, VENDOR_APIS, RetryRule
from auditsync.secrets import Secrets
from auditsync.sinks.logs_ingestion import LogsIngestionSink
from auditsync.tables import HEALTH_TABLE
from simulators.azurite import connection_string
from simulators.base import Request, Response, SimServer
from simulators.clock import FakeClock
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.proxy import ForwardingProxy
from tests.fixtures.pipeline import still

ROW = {"TimeGenerated": "2026-01-01T00:00:00Z", "Stream": "onepassword/auditevents", "Status": "ok"}
#: A run deadline far enough for every rule's retries (fake time: nobody waits for it).
ROOMY = timedelta(minutes=5)


class Echo(SimServer):
    def handle(self, request: Request) -> Response:
        return Response(200, {"ok": True})


@dataclass
class Case:
    """One client, the server its requests reach (where faults are injected) and one call of it."""

    name: str
    server: SimServer
    rule: RetryRule
    #: The component's name as its errors say it, and the error class of its outage.
    component: str
    outage: type[AuditSyncError]
    #: One idempotent call (a read) and one that is not (a POST), each with the deadline it is given.
    read: Callable[[Deadline], object]
    post: Callable[[Deadline], object] | None = None
    #: Requests that reach the server when nothing fails (Key Vault's challenge adds one).
    clean_requests: int = 1

    def requests(self) -> int:
        return len(self.server.requests)


CLIENTS = ["http", "table", "queue", "key_vault", "logs_ingestion"]


@pytest.fixture(params=CLIENTS)
def case(request: pytest.FixtureRequest) -> Case:
    found: Case = request.getfixturevalue(f"{request.param}_case")
    return found


@pytest.fixture
def http_case(fake_clock: FakeClock) -> Iterator[Case]:
    with Echo() as server:
        client = HttpClient(clock=still(fake_clock))
        yield Case(
            "http",
            server,
            VENDOR_APIS,
            "GET",
            RetryableError,
            read=lambda deadline: client.request("GET", server.url + "/api/x", deadline=deadline),
        )


@pytest.fixture
def table_case(azurite_port: int, azurite_table_name: str) -> Iterator[Case]:
    with ForwardingProxy(f"http://127.0.0.1:{azurite_port}") as proxy:
        proxied = connection_string("table", proxy.port)

        def store(deadline: Deadline) -> TableCheckpointStore:
            return TableCheckpointStore.from_connection_string(proxied, azurite_table_name, deadline=deadline)

        # The table exists, so a save is one POST (create entity) and a load one GET.
        direct = TableCheckpointStore.from_connection_string(
            connection_string("table", azurite_port), azurite_table_name
        )
        direct.delete(direct.save(Checkpoint("setup")))
        yield Case(
            "table",
            proxy,
            AZURE_SERVICES,
            "checkpoint table",
            CheckpointError,
            read=lambda deadline: store(deadline).load("keeper/events"),
            post=lambda deadline: store(deadline).save(Checkpoint(f"s{uuid.uuid4().hex[:8]}")),
        )


@pytest.fixture
def queue_case(
    azurite_queue_connection_string: str, work_queue_name: str, fake_clock: FakeClock
) -> Iterator[Case]:
    port = int(re.search(r"127\.0\.0\.1:(\d+)", azurite_queue_connection_string).group(1))  # type: ignore[union-attr]
    open_queue(work_queue_name, connection_string=azurite_queue_connection_string).create_queue()
    with ForwardingProxy(f"http://127.0.0.1:{port}") as proxy:
        queue = open_queue(
            work_queue_name, connection_string=connection_string("queue", proxy.port), clock=still(fake_clock)
        )

        def mapped(call: Callable[[], object], action: str) -> object:
            try:
                return call()
            except AzureError as exc:  # as the dispatcher maps its queue's failures
                raise queue_failure(exc, queue, action) from None

        yield Case(
            "queue",
            proxy,
            AZURE_SERVICES,
            "work queue",
            SinkError,
            read=lambda deadline: mapped(queue.get_queue_properties, "reading its properties"),
            post=lambda deadline: mapped(lambda: queue.send_message("work"), "enqueueing"),
        )


@pytest.fixture
def key_vault_case(keyvault_sim: KeyVaultSim, fake_clock: FakeClock) -> Iterator[Case]:
    keyvault_sim.set_secret("workspace-key", "c2VjcmV0LWtleQ==")
    ref = SecretRef("WORKSPACE_KEY", "WORKSPACE_KEY_SECRET", "workspace-key")

    def read(deadline: Deadline) -> str:
        return Secrets(keyvault_sim.url, DefaultAzureCredential, Redactor(), deadline=deadline).read(ref)

    yield Case(
        "key_vault", keyvault_sim, AZURE_SERVICES, "Key Vault", CredentialsError, read, clean_requests=2
    )


@pytest.fixture
def logs_ingestion_case(logs_ingestion_sim: LogsIngestionSim, fake_clock: FakeClock) -> Iterator[Case]:
    sink = LogsIngestionSink(
        logs_ingestion_sim.url, logs_ingestion_sim.dcr_id, DefaultAzureCredential(), clock=still(fake_clock)
    )
    send = lambda deadline: sink.send(HEALTH_TABLE, [ROW], deadline)  # noqa: E731
    yield Case("logs_ingestion", logs_ingestion_sim, LOG_ANALYTICS, "Logs Ingestion", SinkError, send, send)


def roomy(clock: FakeClock) -> Deadline:
    return Deadline.after(still(clock), ROOMY)


def within(wait: float, base: float, attempt: int, cap: float) -> bool:
    """A backoff wait for ``attempt`` drawn from the rule: [half, all] of base doubled, capped."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 <= wait <= ceiling


# -- what is retried, and how ---------------------------------------------------------------------------


def test_a_retry_after_is_waited_exactly_by_every_client(case: Case, fake_clock: FakeClock) -> None:
    case.server.inject(503, headers={"Retry-After": "2"}, times=2)
    case.read(roomy(fake_clock))
    assert fake_clock.sleeps == [2.0, 2.0]
    assert case.requests() == 2 + case.clean_requests


def test_throttling_without_retry_after_backs_off_by_the_table(case: Case, fake_clock: FakeClock) -> None:
    case.server.inject(429, times=2)
    case.read(roomy(fake_clock))
    first, second = fake_clock.sleeps
    rule = case.rule
    assert within(first, rule.throttle_backoff, 1, rule.backoff_cap), fake_clock.sleeps
    assert within(second, rule.throttle_backoff, 2, rule.backoff_cap), fake_clock.sleeps


def test_a_failing_server_is_retried_as_often_as_the_table_says_then_named(
    case: Case, fake_clock: FakeClock
) -> None:
    case.server.inject(500, times=100)
    with pytest.raises(case.outage) as caught:
        case.read(roomy(fake_clock))
    assert case.requests() == case.rule.attempts
    assert len(fake_clock.sleeps) == case.rule.attempts - 1
    assert all(
        within(wait, case.rule.backoff, attempt, case.rule.backoff_cap)
        for attempt, wait in enumerate(fake_clock.sleeps, 1)
    ), fake_clock.sleeps
    assert case.component in str(caught.value) and "500" in str(caught.value) and caught.value.hint


def test_a_status_outside_the_table_is_not_retried(case: Case, fake_clock: FakeClock) -> None:
    case.server.inject(501, times=100)
    try:
        case.read(roomy(fake_clock))  # HttpClient hands the answer back; the SDKs raise
    except AuditSyncError as error:
        assert case.component in str(error)
    assert case.requests() == 1 and fake_clock.sleeps == []


# -- never past the deadline ----------------------------------------------------------------------------


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(case: Case, fake_clock: FakeClock) -> None:
    # 60 s left (the queue and Key Vault have no run deadline: their 20 s operation budget bounds them).
    case.server.inject(429, headers={"Retry-After": "58"}, times=100)
    started = time.monotonic()
    with pytest.raises(AuditSyncError) as caught:
        case.read(Deadline.after(still(fake_clock), timedelta(seconds=60)))
    assert fake_clock.sleeps == [] and case.requests() == 1
    assert time.monotonic() - started < 5
    assert "429" in str(caught.value)


def test_a_retry_after_that_ends_before_the_margin_is_waited(case: Case, fake_clock: FakeClock) -> None:
    case.server.inject(429, headers={"Retry-After": "10"}, times=1)
    case.read(Deadline.after(still(fake_clock), timedelta(seconds=16)))  # 10 s wait + 5 s margin fit
    assert fake_clock.sleeps == [10.0]


# -- transport failures --------------------------------------------------------------------------------


def test_a_reset_read_is_retried_by_the_table_then_named(case: Case, fake_clock: FakeClock) -> None:
    case.server.inject_network("reset", times=100)
    with pytest.raises(case.outage) as caught:
        case.read(roomy(fake_clock))
    assert case.requests() == case.rule.attempts, "a read whose answer was lost is asked for again"
    assert case.component in str(caught.value) and "connection reset" in str(caught.value)
    assert caught.value.hint


@pytest.mark.parametrize("name", ["table", "queue", "logs_ingestion"])
def test_a_post_whose_answer_was_lost_is_sent_again_only_where_that_is_harmless(
    name: str, request: pytest.FixtureRequest, fake_clock: FakeClock
) -> None:
    case: Case = request.getfixturevalue(f"{name}_case")
    assert case.post is not None
    case.server.inject_network("reset", times=100)
    with pytest.raises(case.outage) as caught:
        case.post(roomy(fake_clock))
    # Log Analytics delivers at least once; a create or a message sent twice would meet itself.
    assert case.requests() == (case.rule.attempts if case.rule.repeat_sent else 1)
    assert case.component in str(caught.value) and "connection reset" in str(caught.value)


def test_a_hanging_table_is_given_up_at_the_deadline(table_case: Case, fake_clock: FakeClock) -> None:
    table_case.server.inject_network("hang", times=100)
    started = time.monotonic()
    with pytest.raises(CheckpointError) as caught:
        table_case.read(Deadline.after(still(fake_clock), timedelta(seconds=1)))
    # Past (or at) its deadline an operation still gets the floor: one attempt, no retry.
    assert time.monotonic() - started < AZURE_SERVICES.floor + 2
    assert table_case.requests() == 1 and fake_clock.sleeps == []
    assert "checkpoint table" in str(caught.value) and "timed out" in str(caught.value)


def test_retry_total_zero_still_turns_off_retries(azurite_port: int, azurite_table_name: str) -> None:
    with ForwardingProxy(f"http://127.0.0.1:{azurite_port}") as proxy:
        proxy.inject(503, times=100)
        store = TableCheckpointStore.from_connection_string(
            connection_string("table", proxy.port), azurite_table_name, retry_total=0
        )
        with pytest.raises(CheckpointError):
            store.load("keeper/events")
        assert len(proxy.requests) == 1


def test_waits_use_the_deadlines_clock_not_real_time(table_case: Case, fake_clock: FakeClock) -> None:
    table_case.server.inject(503, headers={"Retry-After": "3"}, times=2)
    started = time.monotonic()
    table_case.read(Deadline.after(Clock(now=fake_clock.now, sleep=fake_clock.sleep), ROOMY))
    assert fake_clock.sleeps == [3.0, 3.0] and time.monotonic() - started < 3
