"""What an Azure SDK failure means for the operator: one line and the next step.

azure-identity's own message for a missing sign-in is a many-line list of every credential it tried
(and the SDK logs each of them as a WARNING); Key Vault answers every kind of refusal with ``403
Forbidden`` and tells them apart only in ``innererror.code``. These helpers turn both into one of our
errors whose hint fits where the code runs: the managed identity in Azure, ``az login`` (or a service
principal in the environment) on a workstation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from auditsync.errors import AuthError, ConfigError, RetryableError

#: Set by App Service / Azure Functions on every instance (never by ``func start`` on a workstation).
_AZURE_HOST_VARIABLES = ("WEBSITE_INSTANCE_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")


def running_in_azure(env: Mapping[str, str] | None = None) -> bool:
    """True on an App Service / Functions instance (a managed identity endpoint is there)."""
    env = os.environ if env is None else env
    return any(env.get(name) for name in _AZURE_HOST_VARIABLES)


def credential_hint(role: str, scope: str, env: Mapping[str, str] | None = None) -> str:
    """How to get a working credential where this process runs, and the role it then needs."""
    if running_in_azure(env):
        return (
            "Turn on the Function App's system-assigned managed identity (Identity blade; for a user-assigned "
            f"identity set AZURE_CLIENT_ID to its client id) and give it '{role}' on the {scope}."
        )
    return (
        "Sign in with 'az login' (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a "
        f"service principal); that identity needs '{role}' on the {scope}."
    )


_UNANSWERED = re.compile(
    r"timed out|timeout|connection (?:reset|refused|aborted)|failed to establish|unreachable|max retries",
    re.IGNORECASE,
)


def credential_failure(exc: BaseException, service: str, *, role: str, scope: str) -> AuthError:
    """No token could be obtained at all (no managed identity, not signed in): one line, not thirteen."""
    text = str(exc)
    tried = re.findall(r"^\s*(\w+Credential):", text, flags=re.MULTILINE)
    where = "in Azure (managed identity)" if running_in_azure() else "on this machine"
    detail = f"tried {', '.join(dict.fromkeys(tried))}" if tried else type(exc).__name__
    if _UNANSWERED.search(text):
        # A credential exists but its token endpoint did not answer: saying "no credential" would send
        # the operator to fix a configuration that is fine.
        return AuthError(
            f"no Entra token for {service}: the token endpoint {where} did not answer ({detail})",
            hint="Usually transient: the next run retries. If it persists, restart the Function App (its "
            "managed identity endpoint) or, locally, check the network and 'az login'.",
        )
    return AuthError(
        f"no Azure credential {where} for {service} ({detail})",
        hint=credential_hint(role, scope),
    )


class ExplainedCredential:
    """A TokenCredential whose "no token at all" failure is already our one-line AuthError.

    azure-data-tables 12.x cannot report a credential failure: its error decoder reads the headers of a
    response that does not exist and raises AttributeError instead. Raising our error from inside
    ``get_token`` (it is not an HttpResponseError, so the SDK passes it through) keeps the message and
    the hint intact whatever the SDK does with its own errors.
    """

    def __init__(self, inner: Any, service: str, *, role: str, scope: str) -> None:
        self.inner = inner
        self.service = service
        self.role = role
        self.scope = scope

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            token: AccessToken = self.inner.get_token(*scopes, **kwargs)
        except ClientAuthenticationError as exc:
            raise credential_failure(exc, self.service, role=self.role, scope=self.scope) from None
        return token


def service_error_codes(exc: HttpResponseError) -> tuple[str, str]:
    """``(error.code, innererror.code)`` of an Azure error body, empty strings when absent."""
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", "") or "")
    inner = getattr(error, "innererror", None) or {}
    inner_code = str(inner.get("code", "") if isinstance(inner, dict) else getattr(inner, "code", "") or "")
    return code, inner_code


def key_vault_forbidden(exc: HttpResponseError, secret: str, vault: str, setting: str) -> Exception:
    """Split Key Vault's 401/403 by its inner error code: role, access policy, firewall, disabled secret."""
    code, inner = service_error_codes(exc)
    reason = inner or code or str(exc.status_code)
    if inner == "SecretDisabled":
        return ConfigError(
            f"Key Vault secret '{secret}' in {vault} is disabled ({reason})",
            hint=f"Enable the secret's current version in the vault (Secrets > {secret} > version > Enabled), "
            f"or store a new enabled version; {setting} names the secret.",
        )
    if inner == "ForbiddenByFirewall":
        return AuthError(
            f"Key Vault {vault} refused the caller's network reading '{secret}' ({reason})",
            hint="The vault's firewall does not allow this caller: add the Function App's outbound addresses or "
            "its VNet to the vault's Networking rules (or a private endpoint); locally, add your IP address.",
        )
    if inner in ("AccessDenied",) or "does not have secrets get permission" in str(exc.message or ""):
        return AuthError(
            f"Key Vault {vault} denied reading secret '{secret}' ({reason}: no access policy)",
            hint="The vault uses access policies: add one granting this identity 'Get' on secrets, or switch "
            "the vault to Azure RBAC and assign 'Key Vault Secrets User'.",
        )
    if exc.status_code == 401:
        return AuthError(
            f"Key Vault {vault} did not accept the caller's token reading '{secret}' ({reason})",
            hint=credential_hint("Key Vault Secrets User", "vault"),
        )
    return AuthError(
        f"Key Vault {vault} denied reading secret '{secret}' ({reason})",
        hint="Grant the identity the 'Key Vault Secrets User' role on the vault (Access control (IAM)); "
        "new role assignments can take a few minutes to apply.",
    )


def unreachable(service: str, setting: str, exc: BaseException) -> RetryableError:
    """A connection that never got an HTTP answer (DNS, refused, TLS, proxy)."""
    return RetryableError(
        f"{service} could not be reached ({type(exc).__name__})",
        hint=f"Check {setting} and the outbound network (VNet, private endpoint, DNS, proxy).",
    )
