"""A threaded loopback HTTP(S) server with request recording and fault injection.

Standard library only (http.server), so the demo and benchmarks need nothing from the test stack.
Subclasses implement ``handle``; ``inject`` queues canned failures (401, 429 with Retry-After, 500...)
that are served before ``handle`` sees a matching request. ``latency`` (seconds, 0 by default) is the
response time: no answer leaves sooner than that after its request arrived (the simulator's own work
counts toward it), as over a wide-area link to a busy service. Benchmarks set it; tests leave it off or
inject ``sleep``.
"""

from __future__ import annotations

import json
import ssl
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

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

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
        self.sleep: Callable[[float], None] = time.sleep
        self._ssl_context = ssl_context
        self._host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                arrived = time.monotonic()
                response = sim._dispatch(request)
                payload = response.encode()
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
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        server = ThreadingHTTPServer((self._host, 0), Handler)
        server.daemon_threads = True
        if self._ssl_context is not None:
            server.socket = self._ssl_context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
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

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(
                request
                if self.record_bodies
                else Request(request.method, request.path, request.query, request.headers, b"")
            )
            for fault in self.faults:
                if fault.matches(request):
                    fault.times -= 1
                    return fault.response
        try:
            return self.handle(request)
        except Exception as exc:  # a simulator bug must show up as a 500, not a hung socket
            return Response(500, {"status": 500, "message": f"simulator error: {type(exc).__name__}: {exc}"})

    def handle(self, request: Request) -> Response:
        raise NotImplementedError
