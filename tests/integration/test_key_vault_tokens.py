"""Tokens from Key Vault through the managed identity: the three ways a read fails are three clear errors,
and a rotated token is picked up by the next run without a restart."""

from __future__ import annotations

import socket

import pytest
from azure.identity import DefaultAzureCredential

from auditsync.config import Settings
from auditsync.errors import AuthError, ConfigError, RetryableError
from auditsync.http import Redactor
from auditsync.secrets import Secrets
from simulators.keyvault import KeyVaultSim
from tests.fixtures.pipeline import Pipeline


def vault_settings(url: str) -> Settings:
    return Settings.from_env({"SOURCES": "onepassword", "KEY_VAULT_URL": url})


def secrets_for(url: str) -> Secrets:
    return Secrets(vault_settings(url).key_vault_url, DefaultAzureCredential, Redactor(), retry_total=0)


def onepassword_token(url: str) -> str:
    return secrets_for(url).token("onepassword", vault_settings(url).onepassword.token)


def test_missing_secret_is_a_config_error_naming_it(keyvault_sim: KeyVaultSim) -> None:
    with pytest.raises(ConfigError) as caught:
        onepassword_token(keyvault_sim.url)
    assert "secret 'onepassword-api-token' does not exist" in str(caught.value)
    assert "ONEPASSWORD_TOKEN_SECRET" in caught.value.hint


def test_denied_vault_is_an_auth_error_naming_the_role(keyvault_sim: KeyVaultSim) -> None:
    keyvault_sim.set_secret("onepassword-api-token", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln")
    keyvault_sim.deny()
    with pytest.raises(AuthError) as caught:
        onepassword_token(keyvault_sim.url)
    assert "denied" in str(caught.value) and "Key Vault Secrets User" in caught.value.hint


def test_unreachable_vault_is_a_credentials_error_naming_the_vault(identity_sim: object) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RetryableError) as caught:
        onepassword_token(f"https://127.0.0.1:{port}")
    assert caught.value.kind == "credentials", "not the vendor's failure: the run got no token"
    assert f"Key Vault https://127.0.0.1:{port} could not be reached: connection refused" in str(caught.value)
    assert "KEY_VAULT_URL" in caught.value.hint


def test_rotated_token_is_used_by_the_next_run(pipeline: Pipeline, keyvault_sim: KeyVaultSim) -> None:
    old = pipeline.onepassword.issue_token()
    keyvault_sim.set_secret("onepassword-api-token", old)
    pipeline.onepassword.generate("auditevents", 10)
    settings = pipeline.settings("auditevents", KEY_VAULT_URL=keyvault_sim.url, ONEPASSWORD_TOKEN="")
    assert pipeline.run(settings).reports[0].status == "ok"

    pipeline.onepassword.revoke(old)
    keyvault_sim.set_secret("onepassword-api-token", pipeline.onepassword.issue_token())
    pipeline.onepassword.generate("auditevents", 5)
    (stream,) = pipeline.run(settings).reports
    assert (stream.status, stream.events) == ("ok", 5)
