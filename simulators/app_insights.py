"""An Application Insights ingestion endpoint (Breeze, ``<IngestionEndpoint>/v2.1/track``) with local auth off.

What azure-monitor-opentelemetry-exporter sends and reads: a POST of a JSON array of telemetry
envelopes (``Content-Encoding: gzip`` accepted too), answered 200 with
``{"itemsReceived", "itemsAccepted", "errors": [{"index", "statusCode", "message"}]}``. The exporter
authenticates with an Entra ID bearer token for ``https://monitor.azure.com``; a resource with local
auth off answers 401 without a valid token and 403 when the identity lacks Monitoring Metrics
Publisher. Accepted envelopes are kept for tests to read.
"""

from __future__ import annotations

import json
import ssl
import threading
import zlib
from typing import Any

from simulators.base import Request, Response, SimServer
from simulators.identity import ManagedIdentitySim

MONITOR_RESOURCE = "https://monitor.azure.com"
TRACK_PATH = "/v2.1/track"
INSTRUMENTATION_KEY = "00000000-0000-4000-8000-0000000000a1"


class AppInsightsSim(SimServer):
    """One Application Insights resource that accepts only Entra ID tokens from ``identity``."""

    def __init__(self, identity: ManagedIdentitySim, *, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context=ssl_context)
        self.identity = identity
        self.denied = False
        self.attempts = 0
        self._envelopes: list[dict[str, Any]] = []
        self._store = threading.Lock()

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url}/"

    def envelopes(self) -> list[dict[str, Any]]:
        with self._store:
            return list(self._envelopes)

    def traces(self) -> list[dict[str, Any]]:
        """The ``traces`` rows: (message, severityLevel, properties) of each accepted MessageData."""
        return [
            e["data"]["baseData"]
            for e in self.envelopes()
            if e.get("data", {}).get("baseType") == "MessageData"
        ]

    def deny(self, denied: bool = True) -> None:
        """Take away the Monitoring Metrics Publisher role."""
        self.denied = denied

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path.rstrip("/") != TRACK_PATH:
            return Response(404, {"itemsReceived": 0, "itemsAccepted": 0, "errors": []})
        with self.lock:
            self.attempts += 1
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.identity.valid(token.strip(), MONITOR_RESOURCE):
            return Response(
                401,
                {
                    "itemsReceived": 0,
                    "itemsAccepted": 0,
                    "errors": [
                        {
                            "index": 0,
                            "statusCode": 401,
                            "message": "Authentication is required (local auth is disabled).",
                        }
                    ],
                },
            )
        if self.denied:
            return Response(
                403,
                {
                    "itemsReceived": 0,
                    "itemsAccepted": 0,
                    "errors": [
                        {
                            "index": 0,
                            "statusCode": 403,
                            "message": "The identity is not authorized to publish telemetry.",
                        }
                    ],
                },
            )
        body = request.body
        if (request.header("content-encoding") or "").strip().lower() == "gzip":
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        envelopes = json.loads(body)
        if not isinstance(envelopes, list):
            envelopes = [envelopes]
        errors = [
            {"index": i, "statusCode": 400, "message": "Field 'iKey' on type 'Envelope' is required."}
            for i, e in enumerate(envelopes)
            if e.get("iKey") != INSTRUMENTATION_KEY
        ]
        rejected = {e["index"] for e in errors}
        with self._store:
            self._envelopes.extend(e for i, e in enumerate(envelopes) if i not in rejected)
        accepted = len(envelopes) - len(rejected)
        return Response(200, {"itemsReceived": len(envelopes), "itemsAccepted": accepted, "errors": errors})
