"""The HTTP client's retry policy, over a real loopback socket, with an injected clock (no real waiting)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from auditsync.errors import RetryableError, ThrottledError
from auditsync.failures import redact_url
from auditsync.http import HttpClient, Redactor
from auditsync.model import Deadline
from simulators.base import Request, Response, SimServer
from simulators.clock import FakeClock
from tests.fixtures.pipeline import still

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Echo(SimServer):
    def handle(self, request: Request) -> Response:
        return Response(200, {"ok": True})


@pytest.fixture
def server() -> Echo:
    with Echo() as sim:
        yield sim  # type: ignore[misc]


def client(time: FakeClock, secret: str = "") -> HttpClient:
    return HttpClient(clock=still(time), redactor=Redactor([secret] if secret else []))


def test_retry_after_is_honoured(server: Echo) -> None:
    time = FakeClock(START)
    server.inject(429, {"message": "slow down"}, headers={"Retry-After": "7"}, times=2)
    response = client(time).request(
        "GET", server.url + "/x", deadline=Deadline.after(still(time), timedelta(minutes=5))
    )
    assert response.status_code == 200
    assert time.sleeps == [7.0, 7.0]
    assert len(server.requests) == 3


def test_server_errors_back_off_exponentially_then_fail_clearly(server: Echo) -> None:
    time = FakeClock(START)
    server.inject(503, {"message": "down"}, times=100)
    with pytest.raises(RetryableError) as caught:
        client(time).request(
            "GET",
            server.url + "/api/x?token=abc",
            deadline=Deadline.after(still(time), timedelta(minutes=30)),
        )
    message = str(caught.value)
    assert message.startswith(f"GET {server.url}/api/x -> 503: down")
    assert "token=abc" not in message
    assert len(server.requests) == 6
    assert all(b >= a / 2 for a, b in zip(time.sleeps, time.sleeps[1:], strict=False))
    assert time.sleeps[-1] > time.sleeps[0]


def test_no_wait_beyond_the_deadline(server: Echo) -> None:
    time = FakeClock(START)
    server.inject(429, headers={"Retry-After": "600"}, times=5)
    with pytest.raises(ThrottledError):
        client(time).request("GET", server.url, deadline=Deadline.after(still(time), timedelta(minutes=2)))
    assert time.sleeps == []
    assert len(server.requests) == 1


def test_caller_defined_throttling_is_retried(server: Echo) -> None:
    time = FakeClock(START)
    server.inject(403, {"error": "throttled", "message": "Too many requests"}, times=1)
    response = client(time).request(
        "GET",
        server.url,
        deadline=Deadline.after(still(time), timedelta(minutes=5)),
        throttled=lambda r: r.status_code == 403 and "throttled" in r.text,
    )
    assert response.status_code == 200 and len(time.sleeps) == 1


def test_non_retryable_status_is_returned_to_the_caller(server: Echo) -> None:
    time = FakeClock(START)
    server.inject(401, {"message": "Unauthorized"})
    response = client(time).request(
        "GET", server.url, deadline=Deadline.after(still(time), timedelta(minutes=5))
    )
    assert response.status_code == 401 and time.sleeps == []


def test_unreachable_host_is_a_clear_retryable_error() -> None:
    time = FakeClock(START)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RetryableError) as caught:
        client(time).request(
            "GET", f"http://127.0.0.1:{port}/p", deadline=Deadline.after(still(time), timedelta(minutes=5))
        )
    assert "could not be reached" in str(caught.value)


def test_secret_echoed_by_a_server_is_redacted(server: Echo) -> None:
    time = FakeClock(START)
    secret = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0.sig"
    server.inject(500, {"message": f"bad token {secret}"}, times=10)
    with pytest.raises(RetryableError) as caught:
        client(time, secret).request(
            "GET", server.url, deadline=Deadline.after(still(time), timedelta(minutes=30))
        )
    assert secret not in str(caught.value) and "***" in str(caught.value)


def test_redact_url_keeps_only_where() -> None:
    assert redact_url("https://user:pw@host.example:8443/a/b?sig=1#f") == "https://host.example:8443/a/b"


def test_unknown_tokens_are_masked_by_shape() -> None:
    redact = Redactor()
    assert redact("token eyJhbGciOi.eyJzdWIiOi.c2ln here") == "token *** here"
    assert redact("Authorization: Bearer abcdefghijkl") == "Authorization: ***"
    assert redact("nothing secret") == "nothing secret"
