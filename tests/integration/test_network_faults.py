"""The simulators' network faults as real clients meet them, and what our clients make of each:
a named failure (DNS, TLS, reset, timeout) with a hint, never a raw exception, within the deadline."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from azure.identity import DefaultAzureCredential

from auditsync.errors import RetryableError, SinkError
from auditsync.failures import KEEPER_API, ONEPASSWORD_API, Component
from auditsync.http import HttpClient
from auditsync.model import Clock, Deadline
from auditsync.sinks.logs_ingestion import LogsIngestionSink
from auditsync.tables import HEALTH_TABLE
from simulators.base import Request, Response, SimServer
from simulators.clock import FakeClock
from simulators.identity import ManagedIdentitySim
from simulators.logs_ingestion import LogsIngestionSim


class Echo(SimServer):
    def handle(self, request: Request) -> Response:
        return Response(200, {"ok": True, "pad": "x" * 2_000})


def fetch(url: str, clock: FakeClock, seconds: float = 30.0) -> None:
    still = Clock(now=clock.now, sleep=clock.sleep)
    HttpClient(clock=still, max_attempts=2).request(
        "GET", url, deadline=Deadline.after(still, timedelta(seconds=seconds))
    )


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("reset", "could not be reached: connection reset"),
        ("cut", "answer was cut short: connection reset"),
        ("hang", "could not be reached: timed out"),
    ],
)
def test_each_network_fault_is_a_named_retryable_error(
    fault: str, reason: str, fake_clock: FakeClock
) -> None:
    with Echo() as server:
        server.inject_network(fault, times=2)
        started = time.monotonic()
        # A 2-second deadline: the hanging socket is given up after 2 real seconds, no retry after it.
        with pytest.raises(RetryableError) as caught:
            fetch(server.url + "/x", fake_clock, seconds=2.0)
        assert time.monotonic() - started < 5
        assert reason in str(caught.value) and caught.value.hint
        server.faults.clear()
        fetch(server.url + "/x", fake_clock)  # the same client code, answered once the network behaves


def test_stop_releases_every_hanging_connection(fake_clock: FakeClock) -> None:
    before = threading.active_count()
    server = Echo().start()
    server.inject_network("hang", times=3)
    failures: list[str] = []

    def client() -> None:
        try:
            fetch(server.url, fake_clock, 20.0)
        except RetryableError as error:
            failures.append(str(error))

    clients = [threading.Thread(target=client) for _ in range(3)]
    for client in clients:
        client.start()
    while len(server.requests) < 3:
        time.sleep(0.01)
    server.stop()
    for client in clients:
        client.join(timeout=5)
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before, "the handler threads ended with stop()"
    assert len(failures) == 3 and all("could not be reached" in f for f in failures), failures


def test_dns_failure_is_named(fake_clock: FakeClock) -> None:
    with pytest.raises(RetryableError) as caught:
        fetch("http://auditsync-faults.invalid/x", fake_clock)
    assert "DNS lookup failed" in str(caught.value) and "DNS" in caught.value.hint


@pytest.mark.parametrize(
    ("component", "setting"), [(KEEPER_API, "KEEPER_BASE_URL"), (ONEPASSWORD_API, "ONEPASSWORD_BASE_URL")]
)
@pytest.mark.parametrize("in_azure", [False, True])
def test_a_vendor_host_that_does_not_resolve_names_its_setting_and_the_fix_where_the_code_runs(
    component: Component, setting: str, in_azure: bool, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDENTITY_ENDPOINT", raising=False)
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    if in_azure:
        monkeypatch.setenv("WEBSITE_INSTANCE_ID", "instance-1")
    else:
        monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    still = Clock(now=fake_clock.now, sleep=fake_clock.sleep)
    with pytest.raises(RetryableError) as caught:
        HttpClient(clock=still, max_attempts=1).request(
            "GET",
            "https://events.auditsync-faults.invalid/x",
            deadline=Deadline.after(still, timedelta(seconds=30)),
            component=component,
        )
    hint = caught.value.hint
    assert "DNS lookup failed" in str(caught.value) and setting in hint and "KEEPER_BASE_URL, ONE" not in hint
    assert ("private DNS zone" in hint) is in_azure, hint


def test_tls_failure_is_named_for_requests_and_azure_core(
    identity_sim: ManagedIdentitySim, fake_clock: FakeClock
) -> None:
    with Echo() as plain:  # speaks plain http: an https client's handshake fails
        with pytest.raises(RetryableError) as caught:
            fetch(plain.url.replace("http://", "https://") + "/x", fake_clock)
        assert "TLS handshake failed" in str(caught.value)
        sink = LogsIngestionSink(
            plain.url.replace("http://", "https://"), "dcr-x", DefaultAzureCredential(), max_attempts=1
        )
        with pytest.raises(SinkError) as sink_caught:
            sink.send(HEALTH_TABLE, [{"TimeGenerated": "2026-01-01T00:00:00Z", "Stream": "s"}])
        assert "TLS handshake failed" in str(sink_caught.value)


def sink_for(logs: LogsIngestionSim, clock: FakeClock) -> LogsIngestionSink:
    still = Clock(now=clock.now, sleep=clock.sleep)
    return LogsIngestionSink(logs.url, logs.dcr_id, DefaultAzureCredential(), clock=still)


ROW = {"TimeGenerated": "2026-01-01T00:00:00Z", "Stream": "onepassword/auditevents", "Status": "ok"}


def test_sink_waits_retry_after_only_when_it_ends_before_the_deadline(
    logs_ingestion_sim: LogsIngestionSim, fake_clock: FakeClock
) -> None:
    sink = sink_for(logs_ingestion_sim, fake_clock)
    still = Clock(now=fake_clock.now, sleep=fake_clock.sleep)
    logs_ingestion_sim.inject(429, headers={"Retry-After": "3"}, times=1)
    sink.send(HEALTH_TABLE, [ROW], Deadline.after(still, timedelta(seconds=30)))
    assert fake_clock.sleeps == [3.0] and len(logs_ingestion_sim.rows(HEALTH_TABLE)) == 1

    logs_ingestion_sim.inject(429, headers={"Retry-After": "25"}, times=1)
    with pytest.raises(SinkError) as caught:
        sink.send(HEALTH_TABLE, [ROW], Deadline.after(still, timedelta(seconds=20)))
    assert "HTTP 429" in str(caught.value) and fake_clock.sleeps == [3.0], "no wait past the deadline"


def test_sink_reset_after_the_request_is_retried_not_a_crash(
    logs_ingestion_sim: LogsIngestionSim, fake_clock: FakeClock
) -> None:
    # azure-core never retries a POST whose connection dropped after sending (ServiceResponseError).
    logs_ingestion_sim.inject_network("cut", times=1)
    logs_ingestion_sim.inject_network("reset", times=1)
    sink_for(logs_ingestion_sim, fake_clock).send(HEALTH_TABLE, [ROW])
    assert len(logs_ingestion_sim.rows(HEALTH_TABLE)) == 1 and len(fake_clock.sleeps) == 2


def test_a_sink_that_never_answers_is_given_up_at_the_deadline(
    logs_ingestion_sim: LogsIngestionSim, fake_clock: FakeClock
) -> None:
    logs_ingestion_sim.inject_network("hang", times=10)
    still = Clock(now=fake_clock.now, sleep=fake_clock.sleep)
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        sink_for(logs_ingestion_sim, fake_clock).send(
            HEALTH_TABLE, [ROW], Deadline.after(still, timedelta(seconds=2))
        )
    assert time.monotonic() - started < 5, "read timeout taken from the 2 s left, not azure-core's 300 s"
    assert "timed out" in str(caught.value)
