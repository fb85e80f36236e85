"""Tokens and keys: from Key Vault with the managed identity, or, for local runs, from the environment.

A new ``Secrets`` is made for every run, so a rotated token is picked up by the next run without a
restart. Secret values are registered with the run's Redactor the moment they are read, and never
logged. The three ways a vault read fails (secret missing, access denied, vault unreachable) are
three different errors, each telling the operator what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.keyvault.secrets import SecretClient

from auditsync.azure_errors import credential_failure, key_vault_forbidden
from auditsync.config import Settings, is_loopback_url
from auditsync.errors import ConfigError, RetryableError
from auditsync.http import Redactor, redact_url
from auditsync.token_shapes import check_token_shape

log = logging.getLogger(__name__)

CredentialFactory = Callable[[], Any]

_TOKEN_SETTINGS = {
    "keeper": ("keeper_token", "keeper_token_secret", "KEEPER_TOKEN", "KEEPER_TOKEN_SECRET"),
    "onepassword": (
        "onepassword_token",
        "onepassword_token_secret",
        "ONEPASSWORD_TOKEN",
        "ONEPASSWORD_TOKEN_SECRET",
    ),
}


def default_credential() -> Any:
    """The production credential: managed identity in Azure, developer sign-in locally."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


class Secrets:
    """Reads each secret at most once per run."""

    def __init__(
        self,
        settings: Settings,
        credential_factory: CredentialFactory,
        redactor: Redactor,
        *,
        retry_total: int | None = None,
    ) -> None:
        self.settings = settings
        self.credential_factory = credential_factory
        self.redactor = redactor
        self.retry_total = retry_total
        self._client: SecretClient | None = None
        self._cache: dict[str, str] = {}

    def token(self, source: str) -> str:
        """The bearer token of ``source`` (``keeper`` or ``onepassword``)."""
        direct_attr, secret_attr, direct_name, secret_name_setting = _TOKEN_SETTINGS[source]
        if self.settings.key_vault_url:
            name = getattr(self.settings, secret_attr)
            value = self._from_vault(name, secret_name_setting)
            check_token_shape(source, value, f"Key Vault secret '{name}' ({secret_name_setting})")
            return value
        value = str(getattr(self.settings, direct_attr))
        if not value:
            raise ConfigError(
                f"{direct_name}: no {source} token",
                hint=f"Set KEY_VAULT_URL (secret {getattr(self.settings, secret_attr)}) or {direct_name}.",
            )
        self.redactor.add(value)
        check_token_shape(source, value, direct_name)
        return value

    def workspace_key(self) -> str:
        """The Log Analytics shared key for the legacy Data Collector sink."""
        if self.settings.workspace_key:
            self.redactor.add(self.settings.workspace_key)
            return self.settings.workspace_key
        if self.settings.key_vault_url and self.settings.workspace_key_secret:
            return self._from_vault(self.settings.workspace_key_secret, "WORKSPACE_KEY_SECRET")
        raise ConfigError(
            "WORKSPACE_KEY_SECRET: no workspace key",
            hint="Set KEY_VAULT_URL and WORKSPACE_KEY_SECRET (or WORKSPACE_KEY for local runs).",
        )

    def _vault(self) -> SecretClient:
        if self._client is None:
            url = self.settings.key_vault_url
            kwargs: dict[str, Any] = {}
            if is_loopback_url(url):
                # A loopback stand-in cannot be in the vault.azure.net domain the challenge names.
                kwargs["verify_challenge_resource"] = False
            if self.retry_total is not None:
                kwargs["retry_total"] = self.retry_total
            self._client = SecretClient(url, self.credential_factory(), **kwargs)
        return self._client

    def _from_vault(self, name: str, setting: str) -> str:
        if name in self._cache:
            return self._cache[name]
        vault = redact_url(self.settings.key_vault_url)
        try:
            value = self._vault().get_secret(name).value
        except ResourceNotFoundError:
            raise ConfigError(
                f"Key Vault secret '{name}' does not exist in {vault}",
                hint=f"Create the secret '{name}' in the vault, or set {setting} to the name you used.",
            ) from None
        except ClientAuthenticationError as exc:
            if getattr(exc, "status_code", None) in (401, 403):
                raise key_vault_forbidden(exc, name, vault, setting) from None
            raise credential_failure(
                exc, f"Key Vault {vault}", role="Key Vault Secrets User", scope="vault"
            ) from None
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise key_vault_forbidden(exc, name, vault, setting) from None
            raise RetryableError(
                f"Key Vault {vault} answered {exc.status_code} reading secret '{name}'",
                hint="A transient vault failure; the next run retries.",
            ) from None
        except ServiceRequestError as exc:
            raise RetryableError(
                f"Key Vault {vault} could not be reached ({type(exc).__name__})",
                hint="Check KEY_VAULT_URL and the Function App's outbound network (VNet, private endpoint, DNS).",
            ) from None
        if not value:
            raise ConfigError(
                f"Key Vault secret '{name}' is empty",
                hint=f"Store the token in '{name}' (a new version of the secret).",
            )
        self.redactor.add(value)
        self._cache[name] = value
        return value
