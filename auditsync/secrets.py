"""Tokens and keys: from Key Vault with the managed identity, or, for local runs, from the environment.

A new ``Secrets`` is made for every run, so a rotated token is picked up by the next run without a
restart. Secret values are registered for redaction the moment they are read (before they are even
checked), and never logged. Surrounding whitespace is stripped (``az keyvault secret set --file``
stores the file's trailing newline); a value with a control character or whitespace inside is a
config error that names the secret and its setting, never the value. The ways a vault read fails
(secret missing, access denied, vault unreachable) are different errors (``auditsync.failures``), each
telling the operator what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import AzureError
from azure.keyvault.secrets import SecretClient

from auditsync.config import Settings, is_loopback_url, secret_value_problem
from auditsync.errors import ConfigError
from auditsync.failures import KEY_VAULT, azure_failure, redact_url
from auditsync.model import Clock, Deadline
from auditsync.redaction import Redactor, register
from auditsync.retry import AZURE_SERVICES, MANAGED_IDENTITY, DeadlineRetryPolicy
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

    # Bounded like every other client (a token request that hangs would otherwise wait 300 s per try), by
    # the retry table's row as azure-core's settings: azure-identity takes no retry policy object.
    return DefaultAzureCredential(
        exclude_interactive_browser_credential=True, **MANAGED_IDENTITY.sdk_options()
    )


class Secrets:
    """Reads each secret at most once per run, within ``deadline`` (else the retry table's budget)."""

    def __init__(
        self,
        settings: Settings,
        credential_factory: CredentialFactory,
        redactor: Redactor,
        *,
        retry_total: int | None = None,
        clock: Clock | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self.settings = settings
        self.credential_factory = credential_factory
        self.redactor = redactor
        self.retry_total = retry_total
        self.clock = clock
        self.deadline = deadline
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
        value = _clean(str(getattr(self.settings, direct_attr)), direct_name)
        if not value:
            raise ConfigError(
                f"{direct_name}: no {source} token",
                hint=f"Set KEY_VAULT_URL (secret {getattr(self.settings, secret_attr)}) or {direct_name}.",
            )
        check_token_shape(source, value, direct_name)
        return value

    def workspace_key(self) -> str:
        """The Log Analytics shared key for the legacy Data Collector sink."""
        if self.settings.workspace_key:
            return _clean(self.settings.workspace_key, "WORKSPACE_KEY")
        if self.settings.key_vault_url and self.settings.workspace_key_secret:
            return self._from_vault(self.settings.workspace_key_secret, "WORKSPACE_KEY_SECRET")
        raise ConfigError(
            "WORKSPACE_KEY_SECRET: no workspace key",
            hint="Set KEY_VAULT_URL and WORKSPACE_KEY_SECRET (or WORKSPACE_KEY for local runs).",
        )

    def _vault(self) -> SecretClient:
        if self._client is None:
            url = self.settings.key_vault_url
            retry = DeadlineRetryPolicy(
                AZURE_SERVICES, clock=self.clock, deadline=self.deadline, retry_total=self.retry_total
            )
            # A loopback stand-in cannot be in the vault.azure.net domain the challenge names.
            self._client = SecretClient(
                url,
                self.credential_factory(),
                retry_policy=retry,
                verify_challenge_resource=not is_loopback_url(url),
            )
        return self._client

    def _from_vault(self, name: str, setting: str) -> str:
        if name in self._cache:
            return self._cache[name]
        vault = redact_url(self.settings.key_vault_url)
        try:
            value = self._vault().get_secret(name).value
        except AzureError as exc:
            raise azure_failure(
                KEY_VAULT,
                exc,
                f"Key Vault {vault}",
                action=f"reading secret '{name}'",
                about={"secret": name, "setting": setting},
            ) from None
        register(value or "")
        value = (value or "").strip()
        if not value:
            raise ConfigError(
                f"Key Vault secret '{name}' is empty",
                hint=f"Store the token in '{name}' (a new version of the secret).",
            )
        register(value)
        problem = secret_value_problem(value)
        if problem:
            raise ConfigError(
                f"Key Vault secret '{name}' (named by {setting}) {problem}",
                hint=f"Store the value alone, on one line, as a new version of the secret '{name}'.",
            )
        self._cache[name] = value
        return value


def _clean(value: str, setting: str) -> str:
    """A secret given directly in a setting: registered, stripped and checked (Settings already did, but a
    Settings built in code skips the parser)."""
    register(value)
    value = value.strip()
    register(value)
    problem = secret_value_problem(value)
    if problem:
        raise ConfigError(f"{setting}: {problem}", hint="Store the secret alone, on one line.")
    return value
