"""The App Service / Azure Functions managed-identity endpoint (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``).

azure-identity (through MSAL) calls ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>``
with the header ``X-IDENTITY-HEADER``. Answering that lets the production credential path
(``DefaultAzureCredential`` / ``ManagedIdentityCredential``) run unchanged; the other Azure simulators ask
``valid(token, resource)`` to decide whether a bearer token is one this endpoint issued.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simulators.base import Request, Response, SimServer

TOKEN_PATH = "/msi/token"
API_VERSION = "2019-08-01"


#: Variables that would make DefaultAzureCredential pick another credential or managed-identity flavour
#: than this endpoint; whoever points a process at the simulator clears them.
COMPETING_CREDENTIAL_ENV = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_resource(resource: str) -> str:
    """``https://vault.azure.net/`` and ``https://vault.azure.net/.default`` name the same audience."""
    if resource.endswith("/.default"):
        resource = resource[: -len("/.default")]
    return resource.rstrip("/")


@dataclass(frozen=True)
class IssuedToken:
    resource: str
    expires_at: datetime


class ManagedIdentitySim(SimServer):
    """Issues opaque access tokens per resource and remembers them so other simulators can check them."""

    def __init__(
        self,
        *,
        now: Callable[[], datetime] = _utcnow,
        lifetime: timedelta = timedelta(hours=1),
        header: str | None = None,
        client_id: str = "00000000-0000-0000-0000-00000000a11d",
    ) -> None:
        super().__init__()
        self.now = now
        self.lifetime = lifetime
        self.header_value = header or secrets.token_hex(16)
        self.client_id = client_id
        self.requested: list[str] = []
        self._tokens: dict[str, IssuedToken] = {}
        self._token_lock = threading.Lock()

    def env(self) -> dict[str, str]:
        """What the Functions host would set for a system-assigned identity."""
        return {"IDENTITY_ENDPOINT": self.url + TOKEN_PATH, "IDENTITY_HEADER": self.header_value}

    def valid(self, token: str, resource: str | None = None) -> bool:
        """True when this endpoint issued ``token``, it has not expired and (if given) is for ``resource``."""
        with self._token_lock:
            issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= self.now():
            return False
        return resource is None or issued.resource == normalize_resource(resource)

    def revoke_all(self) -> None:
        """Forget every issued token (as if the identity was recreated): later bearer checks fail."""
        with self._token_lock:
            self._tokens.clear()

    def handle(self, request: Request) -> Response:
        if request.method != "GET" or request.path.rstrip("/") != TOKEN_PATH:
            return Response(404, {"error": "not_found", "error_description": f"no such path {request.path}"})
        if request.header("x-identity-header") != self.header_value:
            # App Service answers a missing/wrong header with 400 (never 401: there is no challenge).
            return Response(
                400, {"error": "invalid_request", "error_description": "X-IDENTITY-HEADER missing or wrong"}
            )
        if request.arg("api-version") != API_VERSION:
            return Response(
                400, {"error": "invalid_request", "error_description": f"api-version must be {API_VERSION}"}
            )
        resource = request.arg("resource")
        if not resource:
            return Response(400, {"error": "invalid_request", "error_description": "resource is required"})
        resource = normalize_resource(resource)
        token = "mi." + secrets.token_urlsafe(32)
        expires_at = self.now() + self.lifetime
        with self._token_lock:
            self.requested.append(resource)
            self._tokens[token] = IssuedToken(resource, expires_at)
        return Response(
            200,
            {
                "access_token": token,
                "expires_on": str(int(expires_at.timestamp())),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": self.client_id,
            },
        )
