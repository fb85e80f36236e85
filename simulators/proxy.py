"""A forwarding stand-in: puts SimServer's faults in front of a service we do not simulate (Azurite).

Every request is passed to ``target`` unchanged (method, path, query, headers, body) and the answer
comes back unchanged, so the client cannot tell it from the service until a fault injected with
``inject``/``inject_network`` fires.
"""

from __future__ import annotations

import http.client
from urllib.parse import quote, urlencode, urlsplit

from simulators.base import Request, Response, SimServer

#: Hop-by-hop headers (RFC 9110 7.6.1) and the ones http.client sets itself.
_SKIP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
)


class ForwardingProxy(SimServer):
    """Forward to ``target`` (``http://host:port``); plain http only, like Azurite."""

    def __init__(self, target: str, *, timeout: float = 30.0) -> None:
        super().__init__()
        parts = urlsplit(target)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError("ForwardingProxy needs http://host:port")
        self.target_host, self.target_port = parts.hostname, parts.port
        self.timeout = timeout

    def handle(self, request: Request) -> Response:
        query = urlencode(request.query, doseq=True, quote_via=quote)
        path = request.path + (f"?{query}" if query else "")
        headers = {k: v for k, v in request.headers.items() if k not in _SKIP}
        connection = http.client.HTTPConnection(self.target_host, self.target_port, timeout=self.timeout)
        try:
            connection.request(request.method, path, body=request.body or None, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            kept = {k: v for k, v in answer.getheaders() if k.lower() not in _SKIP}
            return Response(answer.status, body, kept)
        finally:
            connection.close()
