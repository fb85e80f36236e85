"""The Function App settings the templates set are settings the code reads, hold no secret, and make a
configuration the code accepts in both sink modes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditsync import app_insights
from auditsync.config import SETTINGS, Settings
from tests.content.armexpr import WORKSPACE_CUSTOMER_ID, WORKSPACE_KEY, ArmContext
from tests.fixtures.infra import WORKSPACE_ID, arm_resources, bicep_body

#: Settings the Functions host (not our code) reads.
HOST_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
#: Settings a Flex Consumption app rejects or ignores (functionAppConfig replaces them), and the shared-key
#: storage connection string, which the storage account refuses anyway.
FORBIDDEN = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
}
#: Settings that hold a secret value; the deployment reads them from Key Vault instead.
SECRET_SETTINGS = {"KEEPER_TOKEN", "ONEPASSWORD_TOKEN", "WORKSPACE_KEY", "CHECKPOINT_CONNECTION_STRING"}
TOKENS = {"keeperApiToken": "kpr-token-not-real-7f3a", "onePasswordApiToken": "op-token-not-real-91c2"}


def _arm_settings(arm_template: dict[str, Any]) -> list[dict[str, str]]:
    site = next(r for r in arm_resources(arm_template) if r["type"] == "Microsoft.Web/sites")
    settings: list[dict[str, str]] = site["properties"]["siteConfig"]["appSettings"]
    return settings


def _bicep_settings(bicep: dict[str, Any]) -> list[dict[str, Any]]:
    site = bicep_body(bicep["modules/functionApp.bicep"]["resources"]["site"])
    settings: list[dict[str, Any]] = site["properties"]["siteConfig"]["appSettings"]
    return settings


def _env(arm_template: dict[str, Any], **params: Any) -> tuple[ArmContext, dict[str, str]]:
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID, **TOKENS, **params})
    return ctx, {s["name"]: ctx.evaluate(s["value"]) for s in _arm_settings(arm_template)}


def test_both_templates_set_the_same_settings(arm_template: dict[str, Any], bicep: dict[str, Any]) -> None:
    arm_names = [s["name"] for s in _arm_settings(arm_template)]
    bicep_names = [s["name"] for s in _bicep_settings(bicep)]
    assert arm_names == bicep_names
    assert len(set(arm_names)) == len(arm_names), "a setting is set twice"


def test_every_setting_is_one_the_code_or_the_host_reads(arm_template: dict[str, Any]) -> None:
    names = {s["name"] for s in _arm_settings(arm_template)}
    unknown = names - set(SETTINGS) - HOST_SETTINGS
    assert not unknown, f"settings nobody reads: {sorted(unknown)}"
    assert not names & FORBIDDEN
    assert not names & SECRET_SETTINGS, "secrets belong in Key Vault, not in app settings"


def test_tenant_lines_are_exported_to_app_insights_with_the_managed_identity(
    arm_template: dict[str, Any],
) -> None:
    settings = {s["name"]: s["value"] for s in _arm_settings(arm_template)}
    _, env = _env(arm_template, sinkMode="logs_ingestion")
    wanted = Settings.from_env(env).fanout.log_export
    assert app_insights.enabled(wanted, {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k"})
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"


@pytest.mark.parametrize("sink", ["logs_ingestion", "data_collector"])
def test_the_deployed_settings_are_a_valid_configuration(arm_template: dict[str, Any], sink: str) -> None:
    ctx, env = _env(arm_template, sinkMode=sink)
    settings = Settings.from_env(env)  # raises ConfigError listing every missing or wrong setting
    assert settings.sink.kind == sink
    assert settings.store.kind == "table"
    assert settings.store.table_url.startswith("https://") and settings.store.table_url.endswith(
        ".table.core.windows.net"
    )
    assert settings.key_vault_url.endswith(".vault.azure.net")
    assert settings.sources == ("keeper", "onepassword")
    assert env["AzureWebJobsStorage__accountName"] == ctx.evaluate("[variables('storageAccountName')]")
    if sink == "logs_ingestion":
        dcr = ctx.evaluate("[variables('dcrName')]")
        assert settings.sink.logs_ingestion.endpoint.startswith(f"https://{dcr}")
        assert settings.sink.logs_ingestion.rule_id.startswith("dcr-")
    else:
        assert settings.sink.data_collector.workspace_id == WORKSPACE_CUSTOMER_ID
        assert settings.sink.data_collector.key.secret_name


@pytest.mark.parametrize("sink", ["logs_ingestion", "data_collector"])
def test_secret_names_point_at_the_secrets_the_template_stores(
    arm_template: dict[str, Any], sink: str
) -> None:
    ctx, env = _env(arm_template, sinkMode=sink)
    vault = ctx.evaluate("[variables('keyVaultName')]")
    stored = {}
    for secret in arm_resources(arm_template):
        if secret["type"] == "Microsoft.KeyVault/vaults/secrets" and ctx.evaluate(secret["condition"]):
            name = ctx.evaluate(secret["name"])
            assert name.startswith(f"{vault}/")
            stored[name.split("/", 1)[1]] = ctx.evaluate(secret["properties"]["value"])
    assert stored[env["KEEPER_TOKEN_SECRET"]] == TOKENS["keeperApiToken"]
    assert stored[env["ONEPASSWORD_TOKEN_SECRET"]] == TOKENS["onePasswordApiToken"]
    if sink == "data_collector":
        assert stored[env["WORKSPACE_KEY_SECRET"]] == WORKSPACE_KEY
    else:
        assert env["WORKSPACE_KEY_SECRET"] == "" and len(stored) == 2


def test_no_secret_reaches_an_app_setting(arm_template: dict[str, Any]) -> None:
    for sink in ("logs_ingestion", "data_collector"):
        _, env = _env(arm_template, sinkMode=sink)
        for name, value in env.items():
            for secret in (*TOKENS.values(), WORKSPACE_KEY):
                assert secret not in value, name
    raw = " ".join(s["value"] for s in _arm_settings(arm_template))
    assert "listKeys" not in raw
    secure = [
        n for n, p in arm_template["parameters"].items() if p["type"] in ("securestring", "secureObject")
    ]
    assert secure and not any(f"parameters('{n}')" in raw for n in secure)


def test_empty_tokens_create_no_empty_secrets(arm_template: dict[str, Any]) -> None:
    """A token left empty in the wizard is added to the vault later; the app still gets a valid config."""
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID})
    conditions = [
        ctx.evaluate(r["condition"])
        for r in arm_resources(arm_template)
        if r["type"] == "Microsoft.KeyVault/vaults/secrets"
    ]
    assert conditions == [False, False, False]
    Settings.from_env({s["name"]: ctx.evaluate(s["value"]) for s in _arm_settings(arm_template)})


@pytest.mark.parametrize("sources", ["keeper", "onepassword"])
def test_a_single_source_deploys_a_valid_configuration(arm_template: dict[str, Any], sources: str) -> None:
    _, env = _env(arm_template, sources=sources)
    assert Settings.from_env(env).sources == (sources,)


@pytest.mark.parametrize(
    ("lifetime", "left"),
    [
        ("never", None),
        ("24h", timedelta(hours=23)),
        ("30d", timedelta(days=30, hours=-1)),
        ("1y", timedelta(days=364, hours=23)),
    ],
)
def test_the_keeper_secret_expires_an_hour_short_of_the_tokens_lifetime(
    arm_template: dict[str, Any], lifetime: str, left: timedelta | None
) -> None:
    """Keeper's API never says when a token expires: the secret's expiry, set from the lifetime the
    wizard asks for, is what check, status, the workbook and the alerts read (auditsync.token_expiry)."""
    deployed = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
    ctx = ArmContext(
        arm_template,
        {
            "workspaceResourceId": WORKSPACE_ID,
            **TOKENS,
            "keeperApiTokenExpires": lifetime,
            "deploymentTime": deployed.strftime("%Y%m%dT%H%M%SZ"),
        },
    )
    secrets = {
        ctx.evaluate(r["name"]).split("/", 1)[1]: r["properties"]
        for r in arm_resources(arm_template)
        if r["type"] == "Microsoft.KeyVault/vaults/secrets" and ctx.evaluate(r["condition"])
    }
    keeper = ctx.evaluate(secrets["keeper-api-token"].get("attributes", "[createObject()]"))
    expected = {} if left is None else {"exp": int((deployed + left).timestamp())}
    assert keeper == expected
    assert "attributes" not in secrets["onepassword-api-token"], "1Password's token carries its own exp claim"


def test_deployment_time_defaults_to_the_deployments_own_time(arm_template: dict[str, Any]) -> None:
    assert arm_template["parameters"]["deploymentTime"]["defaultValue"] == "[utcNow()]"
    value = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID}).parameters["deploymentTime"]
    assert abs(
        datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) - datetime.now(UTC)
    ) < timedelta(minutes=1)
