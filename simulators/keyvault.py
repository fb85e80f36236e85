"""Azure Key Vault secrets over TLS, with the bearer challenge flow the SDK expects.

A request without ``Authorization`` gets 401 and a ``WWW-Authenticate`` challenge; the SDK then fetches
a token (from the managed-identity simulator when one is attached, which is also the only issuer this
vault trusts) and retries. Answers and error bodies follow the real service, so the SDK raises the same
exceptions it would in Azure (404 → ResourceNotFoundError, 403 → HttpResponseError).

A secret's attributes come back with its value as the REST API's "Get Secret" returns them: ``enabled``,
``created``, ``updated`` and, only when set, ``exp`` and ``nbf``, all in epoch seconds. As in Azure, a
get outside the ``nbf``/``exp`` window still answers 200 (the dates are for the client to act on).
"""

from __future__ import annotations

import re
import secrets
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.base import Request, Response, SimServer
from simulators.identity import ManagedIdentitySim

VAULT_RESOURCE = "https://vault.azure.net"
_SECRET_PATH = re.compile(r"^/secrets/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?/?$")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


@dataclass
class _Version:
    version: str
    value: str
    created: int
    content_type: str | None = None
    enabled: bool = True
    expires: int | None = None
    not_before: int | None = None
    updated: int = 0

    def attributes(self) -> dict[str, Any]:
        """The ``attributes`` object of a Get Secret answer (epoch seconds; ``exp``/``nbf`` only when set)."""
        attributes: dict[str, Any] = {"enabled": self.enabled}
        if self.not_before is not None:
            attributes["nbf"] = self.not_before
        if self.expires is not None:
            attributes["exp"] = self.expires
        attributes.update(
            {
                "created": self.created,
                "updated": self.updated or self.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            }
        )
        return attributes


def _epoch(when: datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError("secret dates must be timezone-aware")
    return int(when.timestamp())


@dataclass
class _Secret:
    versions: list[_Version] = field(default_factory=list)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": {"code": code, "message": message}}, dict(headers or {}))


#: reason -> (innererror code, message) as Azure Key Vault answers them (vault name and ids templated).
_DENIALS = {
    "rbac": (
        "ForbiddenByRbac",
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments "
        "or role definitions were changed recently, please observe propagation time.\r\nCaller: "
        "appid={appid}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"
        "Assignment: (not found)\r\nVault: {vault};location=westeurope\r\n",
    ),
    "access_policy": (
        "AccessDenied",
        "The user, group or application 'appid={appid}' does not have secrets get permission on key vault "
        "'{vault};location=westeurope'. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125287",
    ),
    "firewall": (
        "ForbiddenByFirewall",
        "Client address is not authorized and caller is not a trusted service.\r\nClient address: "
        "203.0.113.7\r\nCaller: appid={appid}\r\nVault: {vault};location=westeurope",
    ),
}


class KeyVaultSim(SimServer):
    """Secrets with versions; ``deny(reason)`` answers 403 the way Azure does for that reason.

    Azure's 403 bodies all carry ``code: Forbidden``; the ``innererror.code`` tells them apart:
    ``ForbiddenByRbac`` (no role in an RBAC vault), ``AccessDenied`` (no access policy),
    ``ForbiddenByFirewall`` (caller's network not allowed) and ``SecretDisabled``.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        identity: ManagedIdentitySim | None = None,
        tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47",
        vault_name: str = "auditsync-test-kv",
    ) -> None:
        super().__init__(ssl_context=ssl_context)
        self.identity = identity
        self.tenant_id = tenant_id
        self.vault_name = vault_name
        self.denied = ""
        self._secrets: dict[str, _Secret] = {}

    # -- test controls ---------------------------------------------------------------------------
    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        expires: datetime | None = None,
        not_before: datetime | None = None,
    ) -> str:
        """Store a new version of ``name`` and return its id; a GET without version reads the latest.

        ``expires``/``not_before`` are the version's ``exp``/``nbf`` (``az keyvault secret set --expires``).
        """
        if not _SECRET_NAME.match(name):
            raise ValueError(f"invalid secret name {name!r}")
        version = secrets.token_hex(16)
        created = int(datetime.now(UTC).timestamp())
        stored = _Version(
            version, value, created, content_type, expires=_epoch(expires), not_before=_epoch(not_before)
        )
        with self.lock:
            self._secrets.setdefault(name.lower(), _Secret()).versions.append(stored)
        return version

    def set_attributes(self, name: str, *, expires: datetime | None = None) -> None:
        """Change the latest version's expiry (``az keyvault secret set-attributes --expires``)."""
        with self.lock:
            latest = self._secrets[name.lower()].versions[-1]
            latest.expires = _epoch(expires)
            latest.updated = int(datetime.now(UTC).timestamp())

    def disable_secret(self, name: str) -> None:
        """Disable the latest version: Azure answers 403 ``Forbidden`` (inner code ``SecretDisabled``)."""
        with self.lock:
            self._secrets[name.lower()].versions[-1].enabled = False

    def deny(self, denied: bool = True, *, reason: str = "rbac") -> None:
        """Take away (or give back) ``secrets get`` for the caller.

        ``reason``: ``rbac`` (no Key Vault Secrets User role), ``access_policy`` (vault in access-policy
        mode without a get permission) or ``firewall`` (the vault's network rules refuse the caller).
        """
        if reason not in _DENIALS:
            raise ValueError(f"unknown reason {reason!r}")
        with self.lock:
            self.denied = reason if denied else ""

    @property
    def client_id(self) -> str:
        return self.identity.client_id if self.identity is not None else "unknown"

    def secret_id(self, name: str, version: str) -> str:
        return f"{self.url}/secrets/{name}/{version}"

    # -- protocol --------------------------------------------------------------------------------
    def _challenge(self, code: str, message: str) -> Response:
        header = (
            f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
            f'resource="{VAULT_RESOURCE}"'
        )
        return _error(401, code, message, {"WWW-Authenticate": header})

    def _authorized(self, request: Request) -> Response | None:
        authorization = request.header("authorization") or ""
        if not authorization:
            return self._challenge("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._challenge("Unauthorized", "AKV10001: Authorization header is not a Bearer token.")
        if self.identity is not None and not self.identity.valid(token.strip(), VAULT_RESOURCE):
            return self._challenge("Unauthorized", "AKV10032: Invalid issuer or expired token.")
        return None

    def handle(self, request: Request) -> Response:
        if not request.arg("api-version"):
            return _error(400, "BadParameter", "The request is missing the api-version query parameter.")
        refused = self._authorized(request)
        if refused is not None:
            return refused
        match = _SECRET_PATH.match(request.path)
        if request.method != "GET" or match is None:
            return _error(
                405 if match else 404, "NotSupported", f"{request.method} {request.path} is not served"
            )
        name, version = match["name"], match["version"] or ""
        if not _SECRET_NAME.match(name):
            return _error(400, "BadParameter", f"The secret name '{name}' is not valid.")
        with self.lock:
            if self.denied:
                inner, message = _DENIALS[self.denied]
                return Response(
                    403,
                    {
                        "error": {
                            "code": "Forbidden",
                            "message": message.format(appid=self.client_id, vault=self.vault_name),
                            "innererror": {"code": inner},
                        }
                    },
                )
            stored = self._secrets.get(name.lower())
            found = None
            if stored is not None:
                found = (
                    next((v for v in stored.versions if v.version == version), None)
                    if version
                    else stored.versions[-1]
                )
        if found is None:
            what = f"{name}/{version}" if version else name
            return _error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {what} was not found in this key vault. If you recently deleted "
                "this secret you may be able to recover it using the correct recovery command.",
            )
        if not found.enabled:
            return Response(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Operation get is not allowed on a disabled secret.",
                        "innererror": {"code": "SecretDisabled"},
                    }
                },
            )
        body: dict[str, Any] = {
            "value": found.value,
            "id": self.secret_id(name, found.version),
            "attributes": found.attributes(),
            "tags": {},
        }
        if found.content_type:
            body["contentType"] = found.content_type
        return Response(200, body)
