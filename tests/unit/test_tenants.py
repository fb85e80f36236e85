"""A tenant is the deployment's settings with a few overrides, validated by the same rules."""

from __future__ import annotations

import pytest

from auditsync.errors import ConfigError
from auditsync.tenants import Tenant, settings_for

DEPLOYMENT = {
    "KEY_VAULT_URL": "https://vault.vault.azure.net",
    "SINK": "logs_ingestion",
    "LOGS_INGESTION_ENDPOINT": "https://dce.westeurope-1.ingest.monitor.azure.com",
    "LOGS_INGESTION_RULE_ID": "dcr-" + "0" * 32,
    "CHECKPOINT_STORE": "table",
    "CHECKPOINT_TABLE_URL": "https://acct.table.core.windows.net",
    "KEEPER_TOKEN": "a-token-that-belongs-to-the-deployment-only",
}


def test_tenant_settings_override_the_deployment_and_keep_the_rest() -> None:
    tenant = Tenant(
        "acme",
        {
            "SOURCES": "keeper",
            "KEEPER_BASE_URL": "https://keepersecurity.eu",
            "KEEPER_TOKEN_SECRET": "acme-keeper",
            "LOGS_INGESTION_RULE_ID": "dcr-" + "1" * 32,
        },
    )
    settings = settings_for(tenant, DEPLOYMENT)
    assert settings.sources == ("keeper",)
    assert settings.keeper.base_url == "https://keepersecurity.eu"
    assert settings.keeper.token.secret_name == "acme-keeper"
    assert settings.sink.logs_ingestion.rule_id == "dcr-" + "1" * 32
    assert settings.store.table_url == DEPLOYMENT["CHECKPOINT_TABLE_URL"]
    # the deployment's own token is never handed to a tenant: it reads its secret from Key Vault
    assert settings.keeper.token.value == ""


@pytest.mark.parametrize(
    ("name", "settings", "problem"),
    [
        ("Acme", {}, "lowercase"),
        ("-acme", {}, "lowercase"),
        ("a" * 41, {}, "lowercase"),
        ("acme", {"ONEPASSWORD_TOKEN": "x"}, "ONEPASSWORD_TOKEN cannot be a tenant setting"),
        ("acme", {"RUN_TIME_BUDGET": "1m"}, "RUN_TIME_BUDGET is not a tenant setting"),
    ],
)
def test_bad_tenants_are_refused_with_the_reason(name: str, settings: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Tenant(name, settings)


def test_a_bad_tenant_value_is_reported_as_that_tenants_problem() -> None:
    tenant = Tenant("globex", {"KEEPER_BASE_URL": "https://keeper.example.com"})
    with pytest.raises(ConfigError) as caught:
        settings_for(tenant, DEPLOYMENT)
    assert str(caught.value).startswith("tenant globex: ")
    assert any("KEEPER_BASE_URL" in p and p.startswith("tenant globex") for p in caught.value.problems)
