"""Tokens and keys: from Key Vault with the managed identity, or, for local runs, from the environment.

A new ``Secrets`` is made for every run, so a rotated token is picked up by the next run without a
restart. Secret values are registered for redaction the moment they are read (before they are even
checked), and never logged. A vault secret's ``expires`` attribute comes back with its value and is
kept for ``token_expiry`` (no request of its own). Surrounding whitespace is stripped (``az keyvault
secret set --file`` stores the file's trailing newline); a value with a control character or
whitespace inside is a config error that names the secret and its setting, never the value. The ways a vault read fails
(secret missing, access denied, vault unreachable) are different errors (``auditsync.failures``), each
telling the operator what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError
from azure.keyvault.secrets import SecretClient

from auditsync.config import SecretRef
from auditsync.errors import ConfigError
from auditsync.failures import KEY_VAULT, azure_failure, redact_url
from auditsync.model import Clock, Deadline
from auditsync.redaction import Redactor, register
from auditsync.retry import AZURE_SERVICES, MANAGED_IDENTITY, DeadlineRetryPolicy
from auditsync.secret_values import secret_value_problem
from auditsync.token_expiry import TokenExpiry, token_expiry
from auditsync.token_shapes import check_token_shape
from auditsync.urls import is_loopback_url

log = logging.getLogger(__name__)

CredentialFactory = Callable[[], Any]


def default_credential() -> Any:
    """The production credential: managed identity in Azure, developer sign-in locally."""
    from azure.identity import DefaultAzureCredential

    # Bounded like every other client (a token request that hangs would otherwise wait 300 s per try), by
    # the retry table's row as azure-core's settings: azure-identity takes no retry policy object.
    return DefaultAzureCredential(
        exclude_interactive_browser_credential=True, **MANAGED_IDENTITY.sdk_options()
    )


class Secrets:
    """Reads each secret at most once per run: given directly in its setting, or from the Key Vault
    within ``deadline`` (else the retry table's budget)."""

    def __init__(
        self,
        key_vault_url: str,
        credential_factory: CredentialFactory,
        redactor: Redactor,
        *,
        retry_total: int | None = None,
        clock: Clock | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self.key_vault_url = key_vault_url
        self.credential_factory = credential_factory
        self.redactor = redactor
        self.retry_total = retry_total
        self.clock = clock
        self.deadline = deadline
        self._client: SecretClient | None = None
        self._cache: dict[str, str] = {}
        #: The ``expires`` attribute of each secret read (None: the secret has none).
        self._expires: dict[str, datetime | None] = {}

    def token(self, source: str, ref: SecretRef) -> str:
        """The bearer token of ``source`` (``keeper`` or ``onepassword``), checked for its shape."""
        value = self.read(ref, what=f"{source} token")
        check_token_shape(source, value, self.where(ref))
        return value

    def token_expiry(self, source: str, ref: SecretRef) -> TokenExpiry:
        """When the token ``token`` returned expires: the earlier of its Key Vault secret's expiry and
        (1Password) its own ``exp`` claim. Reads nothing more than ``token`` did (call it after ``token``)."""
        value = self.read(ref, what=f"{source} token")
        secret_expiry = self._expires.get(ref.secret_name) if self.in_vault(ref) else None
        return token_expiry(source, value, secret_expiry)

    def in_vault(self, ref: SecretRef) -> bool:
        """Whether ``read`` takes ``ref``'s value from the Key Vault (not given directly in its setting)."""
        return not ref.value and bool(self.key_vault_url and ref.secret_name)

    def read(self, ref: SecretRef, *, what: str = "secret") -> str:
        """The secret's value: the one given directly wins, else the Key Vault secret ``ref`` names."""
        if ref.value:
            return _clean(ref.value, ref.setting)
        if self.key_vault_url and ref.secret_name:
            return self._from_vault(ref.secret_name, ref.secret_setting)
        raise ConfigError(
            f"{ref.secret_setting if self.key_vault_url else ref.setting}: no {what}",
            hint=f"Set KEY_VAULT_URL and {ref.secret_setting} (the secret's name) or, for local runs, "
            f"{ref.setting}.",
        )

    def where(self, ref: SecretRef) -> str:
        """Where ``read`` takes the value from, for messages: the setting, or the secret and its setting."""
        if not self.in_vault(ref):
            return ref.setting
        return f"Key Vault secret '{ref.secret_name}' ({ref.secret_setting})"

    def _vault(self) -> SecretClient:
        if self._client is None:
            url = self.key_vault_url
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
        vault = redact_url(self.key_vault_url)
        try:
            secret = self._vault().get_secret(name)
        except AzureError as exc:
            raise azure_failure(
                KEY_VAULT,
                exc,
                f"Key Vault {vault}",
                action=f"reading secret '{name}'",
                about={"secret": name, "setting": setting},
            ) from None
        value = secret.value
        register(value or "")
        value = (value or "").strip()
        if not value:
            raise ConfigError(
                f"Key Vault secret '{name}' is empty",
                hint=f"Store the token in '{name}' (a new version of the secret).",
            )
        register(value)
        problem, fix = secret_value_problem(value)
        if problem:
            raise ConfigError(
                f"Key Vault secret '{name}' (named by {setting}) {problem}",
                hint=f"{fix[0].upper()}{fix[1:]}, as a new version of the secret '{name}'.",
            )
        self._cache[name] = value
        self._expires[name] = secret.properties.expires_on
        return value


def _clean(value: str, setting: str) -> str:
    """A secret given directly in a setting: registered, stripped and checked (Settings already did, but a
    Settings built in code skips the parser)."""
    register(value)
    value = value.strip()
    register(value)
    problem, fix = secret_value_problem(value)
    if problem:
        raise ConfigError(f"{setting}: {problem}", hint=f"{fix[0].upper()}{fix[1:]}.")
    return value
