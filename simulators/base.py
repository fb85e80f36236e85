"""A threaded loopback HTTP(S) server with request recording and fault injection.

Standard library only (http.server), so the demo and benchmarks need nothing from the test stack.
Subclasses implement ``handle``; ``inject`` queues canned failures (401, 429 with Retry-After, 500...)
that are served before ``handle`` sees a matching request, and ``inject_network`` queues failures on the
wire itself (a connection reset before or after the answer starts, a socket that never answers).
``latency`` (seconds, 0 by default) is the response time: no answer leaves sooner than that after its
request arrived (the simulator's own work counts toward it), as over a wide-area link to a busy service.
Benchmarks set it; tests leave it off or inject ``sleep``.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One received request, as the simulator saw it on the wire."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    #: ``time.monotonic()`` when the request line and headers had arrived.
    received: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


#: Network faults ``inject_network`` can serve. ``reset``: close with a TCP RST right after the request
#: headers, before the body is read. ``cut``: send the status line, headers and half the body, then RST.
#: ``hang``: accept, read nothing more and never answer, until the client gives up or ``stop()``.
NETWORK_FAULTS = ("reset", "cut", "hang")
#: How much of a body goes out before ``SimServer.between_head_and_rest``.
HEAD_BYTES = 8 * 1024
#: With ``SimServer.bandwidth``, a body goes out in pieces this big, each followed by its transfer time.
BANDWIDTH_CHUNK = 64 * 1024
_EARLY = ("reset", "hang")


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: One of NETWORK_FAULTS to misbehave on the wire instead of answering normally.
    network: str = ""

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Fault:
    """A canned response served ``times`` times to requests whose path starts with ``path``."""

    response: Response
    times: int = 1
    path: str = ""
    when: Callable[[Request], bool] | None = None

    def matches(self, request: Request) -> bool:
        if self.times <= 0 or not request.path.startswith(self.path):
            return False
        return self.when is None or self.when(request)


class SimServer:
    """Base class: start on a free loopback port, record requests, serve injected faults, then ``handle``."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.record_bodies = True
        #: Seconds from a request's arrival to its answer, at least (each connection's thread waits on
        #: its own, so concurrent connections overlap their waits as they would over a real network).
        self.latency = 0.0
        #: Bytes a second an answer's body goes out at (0: as fast as loopback): the transfer time a real
        #: network adds to a large answer on top of ``latency``.
        self.bandwidth = 0.0
        self.sleep: Callable[[float], None] = time.sleep
        #: Called between the first ``HEAD_BYTES`` of an answer's body and the rest, with the request it
        #: answers: a test holds the rest there to see what the client does with an answer half read.
        self.between_head_and_rest: Callable[[Request], None] | None = None
        #: Called with each request after its answer is ready and before it goes out (outside the
        #: simulator's lock, unlike a fault's ``when``): a test holds an answer there.
        self.before_answer: Callable[[Request], None] | None = None
        self._ssl_context = ssl_context
        self._host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Set by ``stop()``: releases every connection a ``hang`` fault holds.
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the body waits for the client's
            # delayed ACK (40 ms on Linux), which would add 40 ms to every response.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read records instead
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=b"",
                )
                early = sim._early_fault(request)
                if early is not None:
                    self._misbehave(early.network, b"")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                request.body = self.rfile.read(length) if length else b""
                arrived = time.monotonic()
                response = sim._dispatch(request)
                payload = response.encode()
                if response.network:
                    self._misbehave(response.network, payload)
                    return
                if sim.before_answer is not None:
                    sim.before_answer(request)
                if sim.latency > 0:  # the simulator's own work counts toward the response time
                    sim.sleep(max(0.0, sim.latency - (time.monotonic() - arrived)))
                self.send_response(response.status)
                headers = {k.lower(): v for k, v in response.headers.items()}
                if "content-type" not in headers and payload:
                    self.send_header("Content-Type", "application/json")
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload and self.command != "HEAD":
                    pause = sim.between_head_and_rest
                    if pause is not None and len(payload) > HEAD_BYTES:
                        self.wfile.write(payload[:HEAD_BYTES])
                        pause(request)
                        payload = payload[HEAD_BYTES:]
                    if sim.bandwidth > 0:
                        for start in range(0, len(payload), BANDWIDTH_CHUNK):
                            chunk = payload[start : start + BANDWIDTH_CHUNK]
                            self.wfile.write(chunk)
                            sim.sleep(len(chunk) / sim.bandwidth)
                    else:
                        self.wfile.write(payload)

            def _misbehave(self, fault: str, payload: bytes) -> None:
                self.close_connection = True
                if fault == "hang":
                    sim._stopping.wait()
                elif fault == "cut":
                    payload = payload or b'{"status": "accepted", "detail": "cut short"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                # SO_LINGER 0: close() sends RST instead of FIN, as a dropped connection does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_MERGE = _serve

        server = ThreadingHTTPServer((self._host, 0), Handler)
        server.daemon_threads = True
        if self._ssl_context is not None:
            server.socket = self._ssl_context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._stopping.clear()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    # -- behaviour -------------------------------------------------------------------------------
    def inject(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        path: str = "",
        when: Callable[[Request], bool] | None = None,
    ) -> None:
        """Serve ``status`` (with ``body``) to the next ``times`` requests under ``path``."""
        with self.lock:
            self.faults.append(Fault(Response(status, body, dict(headers or {})), times, path, when))

    def inject_network(
        self,
        fault: str,
        *,
        times: int = 1,
        path: str = "",
        when: Callable[[Request], bool] | None = None,
    ) -> None:
        """Misbehave on the wire (one of NETWORK_FAULTS) for the next ``times`` requests under ``path``.

        ``reset`` and ``hang`` act before the body is read, so ``when`` sees the request without its body.
        """
        if fault not in NETWORK_FAULTS:
            raise ValueError(f"unknown network fault {fault!r}; one of {NETWORK_FAULTS}")
        with self.lock:
            self.faults.append(Fault(Response(0, network=fault), times, path, when))

    def _early_fault(self, request: Request) -> Response | None:
        """A queued ``reset`` or ``hang`` fault for ``request`` (headers only, body not read yet), or None."""
        with self.lock:
            for fault in self.faults:
                if fault.response.network in _EARLY and fault.matches(request):
                    fault.times -= 1
                    self.requests.append(request)
                    return fault.response
        return None

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(
                request
                if self.record_bodies
                else Request(
                    request.method, request.path, request.query, request.headers, b"", request.received
                )
            )
            for fault in self.faults:
                if fault.response.network not in _EARLY and fault.matches(request):
                    fault.times -= 1
                    return fault.response
        try:
            return self.handle(request)
        except Exception as exc:  # a simulator bug must show up as a 500, not a hung socket
            return Response(500, {"status": 500, "message": f"simulator error: {type(exc).__name__}: {exc}"})

    def handle(self, request: Request) -> Response:
        raise NotImplementedError
