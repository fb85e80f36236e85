"""Generate the deployment files that cannot be written by a Bicep compiler here.

- ``infra/tables.json``: the custom tables and DCR parts (stream declarations, data flows) derived from
  ``auditsync/tables/*.json``. The Bicep loads it with ``loadJsonContent``: building an object keyed by
  stream name needs a lambda (``toObject``), which pycep-parser (checkov's Bicep parser) cannot read.
- ``infra/azuredeploy.json``: the ARM template the Deploy to Azure button deploys, written to mean what
  ``infra/main.bicep`` means (tests compare the two: parameters, resource types and API versions, role
  assignments, app settings, tables). It embeds ``infra/tables.json`` and ``sentinel/build/content.json``
  the way ``loadJsonContent`` would.

- The release locations (tools/release.py, from the repository in pyproject.toml and the version): the
  ``packageUrl`` defaults of both templates and of ``infra/codeDeployment.json`` (the code deployment alone,
  also nested in ``azuredeploy.json``), the wizard's advanced field, and the Deploy to Azure buttons in
  README.md and docs/deployment.md.

Run ``python tools/build_infra.py`` after changing a table, the Sentinel content, the templates or the version;
``--check`` exits 1 when the committed files are stale (tests do the same).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
TABLES_JSON = INFRA / "tables.json"
ARM_JSON = INFRA / "azuredeploy.json"
CODE_JSON = INFRA / "codeDeployment.json"
UI_JSON = INFRA / "createUiDefinition.json"
MAIN_BICEP = INFRA / "main.bicep"
CODE_BICEP = INFRA / "modules" / "codeDeployment.bicep"
README = ROOT / "README.md"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
CONTENT_JSON = ROOT / "sentinel" / "build" / "content.json"

sys.path.insert(0, str(ROOT))
from auditsync.tables import load_tables  # noqa: E402
from tools.release import release  # noqa: E402

JSON = dict[str, Any]

#: Log Analytics table schemas spell this type in camel case; stream declarations accept both.
ARM_TABLE_TYPES = {"datetime": "dateTime"}

ROLE_IDS = {
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
}

API = {
    "workspaces": "2022-10-01",
    "tables": "2022-10-01",
    "dcr": "2023-03-11",
    "storage": "2023-05-01",
    "vault": "2023-07-01",
    "components": "2020-02-02",
    "web": "2024-04-01",
    "roles": "2022-04-01",
    "actionGroups": "2023-01-01",
    "scheduledQueryRules": "2023-12-01",
    "deployments": "2022-09-01",
    # SecurityInsights: every resource of the Sentinel solution (tools/build_sentinel.py says why this one).
    "securityInsights": "2024-03-01",
    "savedSearches": "2020-08-01",
    "workbooks": "2023-06-01",
    "diagnosticSettings": "2021-05-01-preview",
}

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"


def tables_content() -> JSON:
    """Tables, stream declarations and data flows, with only what ARM accepts (name and type)."""
    tables = load_tables()
    return {
        "tables": [
            {
                "name": t.name,
                "columns": [{"name": n, "type": ARM_TABLE_TYPES.get(k, k)} for n, k in t.table_columns],
            }
            for t in tables.values()
        ],
        "streamDeclarations": {
            t.stream: {"columns": [{"name": c.name, "type": c.type} for c in t.columns]}
            for t in tables.values()
        },
        "dataFlows": [
            {
                "streams": [t.stream],
                "destinations": ["workspace"],
                "transformKql": t.transform_kql,
                "outputStream": f"Custom-{t.name}",
            }
            for t in tables.values()
        ],
    }


def sentinel_content() -> JSON:
    return json.loads(CONTENT_JSON.read_text(encoding="utf-8"))


def _param(kind: str, description: str, default: Any = None, **extra: Any) -> JSON:
    out: JSON = {"type": kind}
    if default is not None:
        out["defaultValue"] = default
    out.update(extra)
    out["metadata"] = {"description": description}
    return out


KEEPER_EXPIRES_DESCRIPTION = (
    "The lifetime you gave the Keeper API token (public-api-key generate --expires): its Key Vault secret "
    "expires one hour short of it, counted from this deployment, so check, status, the workbook and the "
    "alerts warn before the token stops working. never: no expiry."
)
#: Keeper's ``--expires`` choices as ISO 8601 durations (dateTimeAdd).
KEEPER_TOKEN_LIFETIMES = {"24h": "PT24H", "7d": "P7D", "30d": "P30D", "1y": "P365D"}
PACKAGE_URL_DESCRIPTION = (
    "URL of the function package zip. The default is this release's asset (self-contained: dependencies "
    "included, no remote build); host a copy yourself in a locked-down tenant."
)
KV_AUDIT_DESCRIPTION = (
    "Send the Key Vault's audit logs (who read which secret, from where; failed attempts) to the workspace."
)


def parameters() -> JSON:
    return {
        "location": _param(
            "string",
            "Region of the connector (Function App, storage, Key Vault, Application Insights). "
            "The data collection rule always goes to the workspace region.",
            "[resourceGroup().location]",
        ),
        "workspaceResourceId": _param(
            "string",
            "Resource id of the existing Log Analytics workspace (optionally Sentinel-enabled) "
            "that receives the events.",
        ),
        "namePrefix": _param(
            "string",
            "Short prefix for resource names (letters and digits).",
            "auditsync",
            minLength=3,
            maxLength=9,
        ),
        "sources": _param(
            "string",
            "Sources to collect.",
            "keeper,onepassword",
            allowedValues=["keeper,onepassword", "keeper", "onepassword"],
        ),
        "keeperBaseUrl": _param(
            "string",
            "Keeper region host.",
            "https://keepersecurity.com",
            allowedValues=[
                "https://keepersecurity.com",
                "https://keepersecurity.eu",
                "https://keepersecurity.com.au",
                "https://keepersecurity.ca",
                "https://keepersecurity.jp",
                "https://govcloud.keepersecurity.us",
            ],
        ),
        "onePasswordBaseUrl": _param(
            "string",
            "1Password Events API host of your account region.",
            "https://events.1password.com",
            allowedValues=[
                "https://events.1password.com",
                "https://events.ent.1password.com",
                "https://events.1password.ca",
                "https://events.1password.eu",
            ],
        ),
        "onePasswordEventTypes": _param(
            "string",
            "1Password event types to collect (comma separated: auditevents, itemusages, signinattempts).",
            "auditevents,itemusages,signinattempts",
        ),
        "keeperApiToken": _param(
            "securestring",
            "Keeper Admin REST API token. Stored only in Key Vault; leave empty to add the secret later.",
            "",
        ),
        "keeperApiTokenExpires": _param(
            "string",
            KEEPER_EXPIRES_DESCRIPTION,
            "never",
            allowedValues=["never", *KEEPER_TOKEN_LIFETIMES],
        ),
        "deploymentTime": _param(
            "string",
            "When this deployment runs (leave the default): where keeperApiTokenExpires counts from.",
            "[utcNow()]",
        ),
        "onePasswordApiToken": _param(
            "securestring",
            "1Password Events API bearer token. Stored only in Key Vault; leave empty to add the secret later.",
            "",
        ),
        "sinkMode": _param(
            "string",
            "logs_ingestion (DCR-based tables, recommended) or data_collector (legacy HTTP Data Collector "
            "API, retired by Microsoft on 2026-09-14).",
            "logs_ingestion",
            allowedValues=["logs_ingestion", "data_collector"],
        ),
        "packageUrl": _param(
            "string",
            PACKAGE_URL_DESCRIPTION,
            release().package_url,
        ),
        "timerSchedule": _param(
            "string", "NCRONTAB schedule of the collection timer (UTC, seconds first).", "0 */5 * * * *"
        ),
        "initialLookback": _param(
            "string", "History pulled by a stream's very first run (for example 1d, 12h).", "1d"
        ),
        "tenantRegistry": _param(
            "string",
            "none: one tenant, the tokens above. table: many tenants from the auditsynctenants table "
            "(python -m auditsync tenants add ...); the timer dispatches to a queue, queue workers scale out "
            "(docs/scale-out.md).",
            "none",
            allowedValues=["none", "table"],
        ),
        "maximumInstanceCount": _param(
            "int",
            "Most Flex Consumption instances the queue workers may scale out to (many tenants).",
            40,
            minValue=1,
            maxValue=1000,
        ),
        "lagThresholdMinutes": _param(
            "int",
            "Raise the lag alert when delivered events are older than this many minutes.",
            60,
            minValue=5,
        ),
        "tokenExpiryWarningDays": _param(
            "int",
            TOKEN_EXPIRY_DESCRIPTION,
            14,
            minValue=TOKEN_EXPIRY_URGENT_DAYS + 1,
            maxValue=180,
        ),
        "alertEmail": _param(
            "string", "Email address for connector health alerts; empty = alerts without notification.", ""
        ),
        "deploySentinelContent": _param(
            "bool",
            "Install the auditsync Sentinel solution: connector page, parsers, hunting queries, and analytics "
            "rule and workbook templates (no rule is turned on). Needs Microsoft Sentinel on the workspace "
            "(already enabled, or onboardSentinel).",
            False,
        ),
        "onboardSentinel": _param(
            "bool", "Enable Microsoft Sentinel on the workspace (leave off if it is already enabled).", False
        ),
        "enableKeyVaultAuditLogs": _param(
            "bool",
            KV_AUDIT_DESCRIPTION,
            True,
        ),
        "tags": _param("object", "Tags for every resource the template creates.", {}),
    }


def variables() -> JSON:
    return {
        "workspaceIdParts": "[split(parameters('workspaceResourceId'), '/')]",
        "workspaceSubscriptionId": "[variables('workspaceIdParts')[2]]",
        "workspaceResourceGroup": "[variables('workspaceIdParts')[4]]",
        "workspaceName": "[last(variables('workspaceIdParts'))]",
        "suffix": "[uniqueString(resourceGroup().id, parameters('workspaceResourceId'))]",
        "compactPrefix": "[toLower(replace(parameters('namePrefix'), '-', ''))]",
        "functionAppName": "[format('{0}-func-{1}', parameters('namePrefix'), variables('suffix'))]",
        "appInsightsName": "[format('{0}-ai', variables('functionAppName'))]",
        "planName": "[format('{0}-plan', variables('functionAppName'))]",
        "storageAccountName": "[format('{0}{1}', variables('compactPrefix'), variables('suffix'))]",
        "keyVaultName": "[format('kv-{0}-{1}', take(variables('compactPrefix'), 7), variables('suffix'))]",
        "dcrName": "[format('{0}-dcr-{1}', parameters('namePrefix'), variables('suffix'))]",
        "legacyMode": "[equals(parameters('sinkMode'), 'data_collector')]",
        "deploymentContainerName": "app-package",
        "checkpointTableName": "auditsynccheckpoints",
        "workQueueName": "auditsync-work",
        "keeperTokenSecretName": "keeper-api-token",
        "keeperTokenLifetimes": dict(KEEPER_TOKEN_LIFETIMES),
        "onePasswordTokenSecretName": "onepassword-api-token",
        "workspaceKeySecretName": "workspace-shared-key",
        "lagThresholdSeconds": "[mul(parameters('lagThresholdMinutes'), 60)]",
        "notify": "[not(empty(parameters('alertEmail')))]",
        "roleIds": dict(ROLE_IDS),
        "tableContent": tables_content(),
    }


def _workspace_ref(full: bool = False) -> str:
    extra = ", 'full'" if full else ""
    return f"reference(parameters('workspaceResourceId'), '{API['workspaces']}'{extra})"


def _rid(kind: str, *names: str) -> str:
    return f"resourceId('{kind}', {', '.join(names)})"


DCR_ID = _rid("Microsoft.Insights/dataCollectionRules", "variables('dcrName')")
VAULT_ID = _rid("Microsoft.KeyVault/vaults", "variables('keyVaultName')")
STORAGE_ID = _rid("Microsoft.Storage/storageAccounts", "variables('storageAccountName')")
AI_ID = _rid("Microsoft.Insights/components", "variables('appInsightsName')")
SITE_ID = _rid("Microsoft.Web/sites", "variables('functionAppName')")
PLAN_ID = _rid("Microsoft.Web/serverfarms", "variables('planName')")
TABLES_DEPLOYMENT_ID = (
    "resourceId(variables('workspaceSubscriptionId'), variables('workspaceResourceGroup'), "
    "'Microsoft.Resources/deployments', 'auditsync-tables')"
)


def tables_deployment() -> JSON:
    return {
        "type": "Microsoft.Resources/deployments",
        "apiVersion": API["deployments"],
        "name": "auditsync-tables",
        "subscriptionId": "[variables('workspaceSubscriptionId')]",
        "resourceGroup": "[variables('workspaceResourceGroup')]",
        "properties": {
            "mode": "Incremental",
            "expressionEvaluationOptions": {"scope": "inner"},
            "parameters": {
                "workspaceName": {"value": "[variables('workspaceName')]"},
                "tables": {"value": "[variables('tableContent').tables]"},
            },
            "template": {
                "$schema": SCHEMA,
                "contentVersion": "1.0.0.0",
                "parameters": {"workspaceName": {"type": "string"}, "tables": {"type": "array"}},
                "resources": [
                    {
                        "copy": {"name": "customTables", "count": "[length(parameters('tables'))]"},
                        "type": "Microsoft.OperationalInsights/workspaces/tables",
                        "apiVersion": API["tables"],
                        "name": "[format('{0}/{1}', parameters('workspaceName'), "
                        "parameters('tables')[copyIndex()].name)]",
                        "properties": {
                            "plan": "Analytics",
                            "schema": {
                                "name": "[parameters('tables')[copyIndex()].name]",
                                "columns": "[parameters('tables')[copyIndex()].columns]",
                            },
                        },
                    }
                ],
            },
        },
    }


def dcr() -> JSON:
    return {
        "type": "Microsoft.Insights/dataCollectionRules",
        "apiVersion": API["dcr"],
        "name": "[variables('dcrName')]",
        "location": f"[{_workspace_ref(full=True)}.location]",
        "tags": "[parameters('tags')]",
        "kind": "Direct",
        "properties": {
            "description": "auditsync: Keeper and 1Password audit events and connector health",
            "streamDeclarations": "[variables('tableContent').streamDeclarations]",
            "destinations": {
                "logAnalytics": [
                    {"name": "workspace", "workspaceResourceId": "[parameters('workspaceResourceId')]"}
                ]
            },
            "dataFlows": "[variables('tableContent').dataFlows]",
        },
        "dependsOn": [f"[{TABLES_DEPLOYMENT_ID}]"],
    }


def storage() -> list[JSON]:
    account = "[variables('storageAccountName')]"
    resources: list[JSON] = [
        {
            "type": "Microsoft.Storage/storageAccounts",
            "apiVersion": API["storage"],
            "name": account,
            "location": "[parameters('location')]",
            "tags": "[parameters('tags')]",
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "properties": {
                "accessTier": "Hot",
                "allowBlobPublicAccess": False,
                "allowSharedKeyAccess": False,
                "allowCrossTenantReplication": False,
                "defaultToOAuthAuthentication": True,
                "minimumTlsVersion": "TLS1_2",
                "supportsHttpsTrafficOnly": True,
                "encryption": {
                    "keySource": "Microsoft.Storage",
                    "requireInfrastructureEncryption": True,
                    "services": {"blob": {"enabled": True}, "table": {"enabled": True}},
                },
            },
        },
        {
            "type": "Microsoft.Storage/storageAccounts/blobServices",
            "apiVersion": API["storage"],
            "name": "[format('{0}/default', variables('storageAccountName'))]",
            "properties": {"deleteRetentionPolicy": {"enabled": True, "days": 7}},
            "dependsOn": [f"[{STORAGE_ID}]"],
        },
        {
            "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
            "apiVersion": API["storage"],
            "name": "[format('{0}/default/{1}', variables('storageAccountName'), "
            "variables('deploymentContainerName'))]",
            "properties": {"publicAccess": "None"},
            "dependsOn": [
                "[resourceId('Microsoft.Storage/storageAccounts/blobServices', "
                "variables('storageAccountName'), 'default')]"
            ],
        },
        {
            "type": "Microsoft.Storage/storageAccounts/tableServices",
            "apiVersion": API["storage"],
            "name": "[format('{0}/default', variables('storageAccountName'))]",
            "dependsOn": [f"[{STORAGE_ID}]"],
        },
        {
            "type": "Microsoft.Storage/storageAccounts/tableServices/tables",
            "apiVersion": API["storage"],
            "name": "[format('{0}/default/{1}', variables('storageAccountName'), variables('checkpointTableName'))]",
            "dependsOn": [
                "[resourceId('Microsoft.Storage/storageAccounts/tableServices', "
                "variables('storageAccountName'), 'default')]"
            ],
        },
        {
            "type": "Microsoft.Storage/storageAccounts/queueServices",
            "apiVersion": API["storage"],
            "name": "[format('{0}/default', variables('storageAccountName'))]",
            "dependsOn": [f"[{STORAGE_ID}]"],
        },
    ]
    return resources + [
        {
            "type": "Microsoft.Storage/storageAccounts/queueServices/queues",
            "apiVersion": API["storage"],
            "name": f"[format('{{0}}/default/{{1}}{suffix}', variables('storageAccountName'), "
            "variables('workQueueName'))]",
            "dependsOn": [
                "[resourceId('Microsoft.Storage/storageAccounts/queueServices', "
                "variables('storageAccountName'), 'default')]"
            ],
        }
        for suffix in ("", "-poison")
    ]


def _secret(name_var: str, value: str, condition: str, attributes: str | None = None) -> JSON:
    properties: JSON = {"value": value, "contentType": "text/plain"}
    if attributes is not None:
        properties["attributes"] = attributes
    return {
        "condition": condition,
        "type": "Microsoft.KeyVault/vaults/secrets",
        "apiVersion": API["vault"],
        "name": f"[format('{{0}}/{{1}}', variables('keyVaultName'), variables('{name_var}'))]",
        "properties": properties,
        "dependsOn": [f"[{VAULT_ID}]"],
    }


def key_vault() -> list[JSON]:
    return [
        {
            "type": "Microsoft.KeyVault/vaults",
            "apiVersion": API["vault"],
            "name": "[variables('keyVaultName')]",
            "location": "[parameters('location')]",
            "tags": "[parameters('tags')]",
            "properties": {
                "tenantId": "[subscription().tenantId]",
                "sku": {"family": "A", "name": "standard"},
                "enableRbacAuthorization": True,
                "enableSoftDelete": True,
                "softDeleteRetentionInDays": 90,
                "enablePurgeProtection": True,
                "enabledForDeployment": False,
                "enabledForDiskEncryption": False,
                "enabledForTemplateDeployment": False,
            },
        },
        _secret(
            "keeperTokenSecretName",
            "[parameters('keeperApiToken')]",
            "[not(empty(parameters('keeperApiToken')))]",
            "[if(equals(parameters('keeperApiTokenExpires'), 'never'), createObject(), createObject('exp', "
            "dateTimeToEpoch(dateTimeAdd(dateTimeAdd(parameters('deploymentTime'), "
            "variables('keeperTokenLifetimes')[parameters('keeperApiTokenExpires')]), '-PT1H'))))]",
        ),
        _secret(
            "onePasswordTokenSecretName",
            "[parameters('onePasswordApiToken')]",
            "[not(empty(parameters('onePasswordApiToken')))]",
        ),
        _secret(
            "workspaceKeySecretName",
            f"[listKeys(parameters('workspaceResourceId'), '{API['workspaces']}').primarySharedKey]",
            "[variables('legacyMode')]",
        ),
        key_vault_audit_logs(),
    ]


#: Key Vault's resource logs: the ``audit`` category group (AuditEvent: every secret read, with caller
#: identity and IP, and failed attempts), into resource-specific tables (AZKVAuditLogs) rather than the
#: shared AzureDiagnostics table.
KV_DIAGNOSTICS = {
    "name": "auditsync-keyvault-audit",
    "logAnalyticsDestinationType": "Dedicated",
    "logs": [{"categoryGroup": "audit", "enabled": True}],
}


def key_vault_audit_logs() -> JSON:
    return {
        "condition": "[parameters('enableKeyVaultAuditLogs')]",
        "type": "Microsoft.Insights/diagnosticSettings",
        "apiVersion": API["diagnosticSettings"],
        "scope": "[format('Microsoft.KeyVault/vaults/{0}', variables('keyVaultName'))]",
        "name": KV_DIAGNOSTICS["name"],
        "properties": {
            "workspaceId": "[parameters('workspaceResourceId')]",
            "logAnalyticsDestinationType": KV_DIAGNOSTICS["logAnalyticsDestinationType"],
            "logs": KV_DIAGNOSTICS["logs"],
        },
        "dependsOn": [f"[{VAULT_ID}]"],
    }


APP_SETTINGS: list[tuple[str, str]] = [
    ("AzureWebJobsStorage__accountName", "[variables('storageAccountName')]"),
    ("AzureWebJobsStorage__credential", "managedidentity"),
    (
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        f"[reference({AI_ID}, '{API['components']}').ConnectionString]",
    ),
    ("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "Authorization=AAD"),
    ("TENANT_LOG_EXPORT", "true"),
    ("SOURCES", "[parameters('sources')]"),
    ("KEEPER_BASE_URL", "[parameters('keeperBaseUrl')]"),
    ("ONEPASSWORD_BASE_URL", "[parameters('onePasswordBaseUrl')]"),
    ("ONEPASSWORD_EVENT_TYPES", "[parameters('onePasswordEventTypes')]"),
    ("KEY_VAULT_URL", f"[reference({VAULT_ID}, '{API['vault']}').vaultUri]"),
    ("KEEPER_TOKEN_SECRET", "[variables('keeperTokenSecretName')]"),
    ("ONEPASSWORD_TOKEN_SECRET", "[variables('onePasswordTokenSecretName')]"),
    ("SINK", "[parameters('sinkMode')]"),
    ("LOGS_INGESTION_ENDPOINT", f"[reference({DCR_ID}, '{API['dcr']}').endpoints.logsIngestion]"),
    ("LOGS_INGESTION_RULE_ID", f"[reference({DCR_ID}, '{API['dcr']}').immutableId]"),
    ("WORKSPACE_ID", f"[if(variables('legacyMode'), {_workspace_ref()}.customerId, '')]"),
    ("WORKSPACE_KEY_SECRET", "[if(variables('legacyMode'), variables('workspaceKeySecretName'), '')]"),
    ("CHECKPOINT_STORE", "table"),
    ("CHECKPOINT_TABLE_URL", f"[reference({STORAGE_ID}, '{API['storage']}').primaryEndpoints.table]"),
    ("CHECKPOINT_TABLE", "[variables('checkpointTableName')]"),
    ("INITIAL_LOOKBACK", "[parameters('initialLookback')]"),
    ("TIMER_SCHEDULE", "[parameters('timerSchedule')]"),
    ("TENANT_REGISTRY", "[parameters('tenantRegistry')]"),
    ("WORK_QUEUE", "[variables('workQueueName')]"),
]


def function_app() -> list[JSON]:
    return [
        {
            "type": "Microsoft.Insights/components",
            "apiVersion": API["components"],
            "name": "[variables('appInsightsName')]",
            "location": "[parameters('location')]",
            "tags": "[parameters('tags')]",
            "kind": "web",
            "properties": {
                "Application_Type": "web",
                "WorkspaceResourceId": "[parameters('workspaceResourceId')]",
                "DisableLocalAuth": True,
                "IngestionMode": "LogAnalytics",
            },
        },
        {
            "type": "Microsoft.Web/serverfarms",
            "apiVersion": API["web"],
            "name": "[variables('planName')]",
            "location": "[parameters('location')]",
            "tags": "[parameters('tags')]",
            "kind": "functionapp",
            "sku": {"name": "FC1", "tier": "FlexConsumption"},
            "properties": {"reserved": True},
        },
        {
            "type": "Microsoft.Web/sites",
            "apiVersion": API["web"],
            "name": "[variables('functionAppName')]",
            "location": "[parameters('location')]",
            "tags": "[parameters('tags')]",
            "kind": "functionapp,linux",
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "serverFarmId": f"[{PLAN_ID}]",
                "httpsOnly": True,
                "clientCertEnabled": False,
                "functionAppConfig": {
                    "deployment": {
                        "storage": {
                            "type": "blobContainer",
                            "value": f"[format('{{0}}{{1}}', reference({STORAGE_ID}, '{API['storage']}')"
                            ".primaryEndpoints.blob, variables('deploymentContainerName'))]",
                            "authentication": {"type": "SystemAssignedIdentity"},
                        }
                    },
                    "scaleAndConcurrency": {
                        "maximumInstanceCount": "[parameters('maximumInstanceCount')]",
                        "instanceMemoryMB": 2048,
                    },
                    "runtime": {"name": "python", "version": "3.11"},
                },
                "siteConfig": {
                    "ftpsState": "Disabled",
                    "minTlsVersion": "1.2",
                    "http20Enabled": True,
                    "appSettings": [{"name": n, "value": v} for n, v in APP_SETTINGS],
                },
            },
            "dependsOn": [
                f"[{PLAN_ID}]",
                f"[{AI_ID}]",
                f"[{STORAGE_ID}]",
                f"[{VAULT_ID}]",
                f"[{DCR_ID}]",
                "[resourceId('Microsoft.Storage/storageAccounts/blobServices/containers', "
                "variables('storageAccountName'), 'default', variables('deploymentContainerName'))]",
                "[resourceId('Microsoft.Storage/storageAccounts/tableServices/tables', "
                "variables('storageAccountName'), 'default', variables('checkpointTableName'))]",
                "[resourceId('Microsoft.Storage/storageAccounts/queueServices/queues', "
                "variables('storageAccountName'), 'default', variables('workQueueName'))]",
            ],
        },
    ]


#: (symbolic name, role key, scope resource type, scope name variable, scope id expression)
ROLE_ASSIGNMENTS = [
    (
        "dcrPublisher",
        "monitoringMetricsPublisher",
        "Microsoft.Insights/dataCollectionRules",
        "dcrName",
        DCR_ID,
    ),
    ("vaultSecretsUser", "keyVaultSecretsUser", "Microsoft.KeyVault/vaults", "keyVaultName", VAULT_ID),
    (
        "storageBlobOwner",
        "storageBlobDataOwner",
        "Microsoft.Storage/storageAccounts",
        "storageAccountName",
        STORAGE_ID,
    ),
    (
        "storageTableContributor",
        "storageTableDataContributor",
        "Microsoft.Storage/storageAccounts",
        "storageAccountName",
        STORAGE_ID,
    ),
    (
        "storageQueueContributor",
        "storageQueueDataContributor",
        "Microsoft.Storage/storageAccounts",
        "storageAccountName",
        STORAGE_ID,
    ),
    (
        "appInsightsPublisher",
        "monitoringMetricsPublisher",
        "Microsoft.Insights/components",
        "appInsightsName",
        AI_ID,
    ),
]

PRINCIPAL = f"reference({SITE_ID}, '{API['web']}', 'full').identity.principalId"


def role_assignments() -> list[JSON]:
    out = []
    for _, role, scope_type, name_var, scope_id in ROLE_ASSIGNMENTS:
        role_id = f"variables('roleIds').{role}"
        out.append(
            {
                "type": "Microsoft.Authorization/roleAssignments",
                "apiVersion": API["roles"],
                "name": f"[guid({scope_id}, {SITE_ID}, {role_id})]",
                "scope": f"[format('{scope_type}/{{0}}', variables('{name_var}'))]",
                "properties": {
                    "principalId": f"[{PRINCIPAL}]",
                    "principalType": "ServicePrincipal",
                    "roleDefinitionId": f"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
                    f"{role_id})]",
                },
                "dependsOn": [f"[{SITE_ID}]", f"[{scope_id}]"],
            }
        )
    return out


CODE_DEPLOYMENT_NAME = "auditsync-code"


def code_deployment_template() -> JSON:
    """The code deployment alone (also written to infra/codeDeployment.json): re-run it by itself when the
    first deployment met a role that had not propagated yet (docs/deployment.md)."""
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {
            "description": "auditsync: deploy (or re-deploy) the function package to an existing auditsync "
            "Function App. Generated by tools/build_infra.py; do not edit."
        },
        "parameters": {
            "functionAppName": _param(
                "string", "Name of the auditsync Function App (output functionAppName)."
            ),
            "packageUrl": _param("string", PACKAGE_URL_DESCRIPTION, release().package_url),
        },
        "resources": [
            {
                "type": "Microsoft.Web/sites/extensions",
                "apiVersion": API["web"],
                "name": "[format('{0}/onedeploy', parameters('functionAppName'))]",
                # The zip carries its dependencies (.python_packages): nothing is built on the platform.
                "properties": {"packageUri": "[parameters('packageUrl')]", "remoteBuild": False},
            }
        ],
    }


def code_deployment() -> JSON:
    """A nested deployment of its own, last in line: after the role assignments (OneDeploy writes the package
    to the deployment container with the app's identity) and after everything else, so the roles have had
    the longest possible time to propagate; and a named unit that can be redeployed alone."""
    return {
        "type": "Microsoft.Resources/deployments",
        "apiVersion": API["deployments"],
        "name": CODE_DEPLOYMENT_NAME,
        "properties": {
            "mode": "Incremental",
            "expressionEvaluationOptions": {"scope": "inner"},
            "parameters": {
                "functionAppName": {"value": "[variables('functionAppName')]"},
                "packageUrl": {"value": "[parameters('packageUrl')]"},
            },
            "template": code_deployment_template(),
        },
        "dependsOn": [f"[{SITE_ID}]"]
        + [
            f"[extensionResourceId(format('{scope_type}/{{0}}', variables('{name_var}')), "
            f"'Microsoft.Authorization/roleAssignments', guid({scope_id}, {SITE_ID}, variables('roleIds').{role}))]"
            for _, role, scope_type, name_var, scope_id in ROLE_ASSIGNMENTS
        ]
        + [f"[{_rid('Microsoft.Insights/scheduledQueryRules', name)}]" for name in _alert_names()],
    }


#: The dead-app query: ``count()`` over an empty input still returns one row (0), so the rule fires when
#: no health row at all arrived in the window, also when the table has never had a row; it clears only
#: when rows arrive again, never by ageing out (tests/content/test_infra_alerts.py runs it through Kusto).
DEAD_APP_QUERY = "AuditSyncHealth_CL | where TimeGenerated > ago(15m) | summarize HealthRows = count() | where HealthRows == 0"
#: Failed function executions, from the Application Insights the host writes to: a crash, an import
#: error or an invocation that raised (function_app.py raises when any stream failed).
FAILED_EXECUTIONS_QUERY = (
    "requests | where success == false | project timestamp, operation_Name, resultCode, cloud_RoleName"
)

#: The second token expiry alert, more urgent, fires this many days before (the first: a parameter).
TOKEN_EXPIRY_URGENT_DAYS = 3
TOKEN_EXPIRY_DESCRIPTION = (
    "Raise the token expiry alert when a Keeper or 1Password API token expires within this many days "
    f"(a second, more severe alert follows at {TOKEN_EXPIRY_URGENT_DAYS} days)."
)
#: Each token's last known expiry (the newest health row of each tenant and source that knows it), in days
#: from now; ``{0}`` is the threshold. One alert per token (Tenant, Source); it resolves once the rows carry
#: the next token's expiry.
TOKEN_EXPIRY_QUERY = (
    "AuditSyncHealth_CL | where isnotnull(TokenExpiresOn) "
    "| summarize arg_max(TimeGenerated, TokenExpiresOn, Stream) by Tenant, Source "
    "| extend DaysLeft = round((TokenExpiresOn - now()) / 1d, 1) | where DaysLeft <= {0} "
    "| project TimeGenerated, Tenant, Source, Stream, TokenExpiresOn, DaysLeft"
)

HEALTH_ALERTS: list[JSON] = [
    {
        "suffix": "no-health-rows",
        "title": "auditsync: no health row at all for 15 minutes (connector down)",
        "description": "No stream wrote a health row for 15 minutes, or none ever did: the Function App has no code, "
        "fails to start, is stopped, or cannot reach the workspace. Resolves only when rows arrive again.",
        "severity": 1,
        "query": DEAD_APP_QUERY,
        "override": None,
        "dimensions": [],
        "scope": "workspace",
    },
    {
        "suffix": "no-heartbeat",
        "title": "auditsync: no heartbeat from a stream for 15 minutes",
        "description": "A stream wrote no health row for 15 minutes: the Function App is stopped, failing to start, or "
        "cannot reach the workspace.",
        "severity": 2,
        "query": "AuditSyncHealth_CL | summarize LastSeen = max(TimeGenerated) by Tenant, Stream | where LastSeen < ago(15m)",
        "override": "P2D",
        "dimensions": ["Tenant", "Stream"],
        "scope": "workspace",
    },
    {
        "suffix": "stream-error",
        "title": "auditsync: a stream reported an error",
        "description": "A health row has Status error; its Message and Hint say what failed and what to do.",
        "severity": 1,
        "query": 'AuditSyncHealth_CL | where Status == "error" | project TimeGenerated, Tenant, Stream, ErrorKind, Message, Hint',
        "override": None,
        "dimensions": ["Tenant", "Stream"],
        "scope": "workspace",
    },
    {
        "suffix": "stream-lag",
        "title": "auditsync: a stream is behind",
        "description": "Events delivered by a run were older than the lag threshold: the connector is catching up or "
        "throttled.",
        "severity": 3,
        "query": '[format(\'AuditSyncHealth_CL | where Status in ("ok", "behind") and LagSeconds > {0} '
        "| project TimeGenerated, Tenant, Stream, LagSeconds', variables('lagThresholdSeconds'))]",
        "override": None,
        "dimensions": ["Tenant", "Stream"],
        "scope": "workspace",
    },
    {
        "suffix": "token-expiring",
        "title": "auditsync: an API token expires soon",
        "description": "A Keeper or 1Password API token expires within the days of the tokenExpiryWarningDays "
        "parameter (as its Key Vault secret or the token itself says): issue a new token and store it as a new "
        "version of its secret before then (docs/tokens.md). Resolves when the runs read the new token.",
        "severity": 2,
        "query": f"[format('{TOKEN_EXPIRY_QUERY}', parameters('tokenExpiryWarningDays'))]",
        "override": None,
        "dimensions": ["Tenant", "Source"],
        "scope": "workspace",
        "every": "PT1H",
    },
    {
        "suffix": "token-expiring-urgent",
        "title": f"auditsync: an API token expires within {TOKEN_EXPIRY_URGENT_DAYS} days",
        "description": f"A Keeper or 1Password API token expires within {TOKEN_EXPIRY_URGENT_DAYS} days, or has "
        "expired: collection stops when it does. Issue a new token and store it as a new version of its Key "
        "Vault secret (docs/tokens.md). Resolves when the runs read the new token.",
        "severity": 1,
        "query": TOKEN_EXPIRY_QUERY.format(TOKEN_EXPIRY_URGENT_DAYS),
        "override": None,
        "dimensions": ["Tenant", "Source"],
        "scope": "workspace",
        "every": "PT1H",
    },
    {
        "suffix": "failed-executions",
        "title": "auditsync: function executions failed",
        "description": "Application Insights recorded failed executions of the collect function: see the exception "
        "in Application Insights (Failures) and the Message and Hint of the health rows.",
        "severity": 2,
        "query": FAILED_EXECUTIONS_QUERY,
        "override": None,
        "dimensions": [],
        "scope": "appInsights",
    },
]

ACTION_GROUP_ID = _rid("Microsoft.Insights/actionGroups", "format('{0}-health', parameters('namePrefix'))")


def _alert_names() -> list[str]:
    return [f"format('{{0}}-{a['suffix']}', parameters('namePrefix'))" for a in HEALTH_ALERTS]


def alerts() -> list[JSON]:
    out: list[JSON] = [
        {
            "condition": "[variables('notify')]",
            "type": "Microsoft.Insights/actionGroups",
            "apiVersion": API["actionGroups"],
            "name": "[format('{0}-health', parameters('namePrefix'))]",
            "location": "global",
            "tags": "[parameters('tags')]",
            "properties": {
                "groupShortName": "auditsync",
                "enabled": True,
                "emailReceivers": [
                    {
                        "name": "operator",
                        "emailAddress": "[parameters('alertEmail')]",
                        "useCommonAlertSchema": True,
                    }
                ],
            },
        }
    ]
    for alert in HEALTH_ALERTS:
        on_workspace = alert["scope"] == "workspace"
        properties: JSON = {
            "displayName": alert["title"],
            "description": alert["description"],
            "severity": alert["severity"],
            "enabled": True,
            "scopes": ["[parameters('workspaceResourceId')]" if on_workspace else f"[{AI_ID}]"],
            "evaluationFrequency": alert.get("every", "PT5M"),
            "windowSize": alert.get("every", "PT15M"),
        }
        if alert["override"]:
            properties["overrideQueryTimeRange"] = alert["override"]
        condition: JSON = {
            "query": alert["query"],
            "timeAggregation": "Count",
            "operator": "GreaterThan",
            "threshold": 0,
        }
        if alert["dimensions"]:
            condition["dimensions"] = [
                {"name": name, "operator": "Include", "values": ["*"]} for name in alert["dimensions"]
            ]
        condition["failingPeriods"] = {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
        properties.update(
            {
                "criteria": {"allOf": [condition]},
                "autoMitigate": True,
                "actions": {
                    "actionGroups": f"[if(variables('notify'), createArray({ACTION_GROUP_ID}), createArray())]"
                },
            }
        )
        out.append(
            {
                "type": "Microsoft.Insights/scheduledQueryRules",
                "apiVersion": API["scheduledQueryRules"],
                "name": f"[format('{{0}}-{alert['suffix']}', parameters('namePrefix'))]",
                "location": f"[{_workspace_ref(full=True)}.location]"
                if on_workspace
                else "[parameters('location')]",
                "tags": "[parameters('tags')]",
                "properties": properties,
                "dependsOn": [
                    f"[{TABLES_DEPLOYMENT_ID}]" if on_workspace else f"[{AI_ID}]",
                    f"[{ACTION_GROUP_ID}]",
                ],
            }
        )
    return out


def _joined(expr: str) -> str:
    """The same string()/replace() chain as sentinelContent.bicep (pycep cannot read join())."""
    return f"[replace(replace(replace(string({expr}), '[\"', ''), '\"]', ''), '\",\"', ',')]"


_SI_SCOPE = "[format('Microsoft.OperationalInsights/workspaces/{0}', parameters('workspaceName'))]"
_WORKSPACE_ID = "resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspaceName'))"
_PACKAGE_ID = (
    f"extensionResourceId({_WORKSPACE_ID}, 'Microsoft.SecurityInsights/contentPackages', "
    "variables('content').solution.id)"
)
_TEMPLATE_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
_METADATA_TYPE = "Microsoft.OperationalInsights/workspaces/providers/metadata"
_FILL_PARSER = (
    "replace(replace({query}, '__AUDITSYNC_KEY_VAULT_NAME__', parameters('keyVaultName')), "
    "'__AUDITSYNC_FUNCTION_APP_PRINCIPAL_ID__', parameters('functionAppPrincipalId'))"
)


def _by_solution() -> JSON:
    """Who made a piece of content, as every metadata and template of the solution says it."""
    return {
        "source": "[variables('content').solution.source]",
        "author": "[variables('content').solution.author]",
        "support": "[variables('content').solution.support]",
    }


def _metadata(kind: str, item: str, parent_id: str) -> JSON:
    """The properties of a metadata resource linking one item (``item`` an ARM expression) to the solution."""
    return {
        "parentId": f"[{parent_id}]",
        "contentId": f"[{item}.contentId]",
        "kind": kind,
        "version": f"[{item}.version]",
        **_by_solution(),
    }


def _inner_metadata(kind: str, name: str, item: str, parent_id: str) -> JSON:
    """A metadata resource inside a content template (the shape Microsoft's packages write there)."""
    return {
        "type": _METADATA_TYPE,
        "apiVersion": API["securityInsights"],
        "name": f"[format('{{0}}/Microsoft.SecurityInsights/{kind}-{{1}}', parameters('workspaceName'), {name})]",
        "properties": _metadata(kind, item, parent_id),
    }


def _content_template(
    kind: str, item: str, display_name: str, resources: list[JSON], loop: tuple[str, str] | None = None
) -> JSON:
    """A ``contentTemplates`` resource: one piece of content, its ARM template and its package."""
    resource: JSON = {
        "type": "Microsoft.SecurityInsights/contentTemplates",
        "apiVersion": API["securityInsights"],
        "scope": _SI_SCOPE,
        "name": f"[{item}.templateName]",
        "properties": {
            "packageId": "[variables('content').solution.id]",
            "packageKind": "Solution",
            "packageName": "[variables('content').solution.name]",
            "packageVersion": "[variables('content').solution.version]",
            "contentSchemaVersion": "[variables('content').solution.contentSchemaVersion]",
            **_by_solution(),
            "contentId": f"[{item}.contentId]",
            "contentProductId": f"[{item}.contentProductId]",
            "contentKind": kind,
            "displayName": f"[{display_name}]",
            "version": f"[{item}.version]",
            "mainTemplate": {
                "$schema": _TEMPLATE_SCHEMA,
                "contentVersion": f"[{item}.version]",
                "parameters": {},
                "variables": {},
                "resources": resources,
            },
        },
        "dependsOn": [f"[{_PACKAGE_ID}]"],
    }
    if loop:
        name, array = loop
        resource = {"copy": {"name": name, "count": f"[length(variables('content').{array})]"}, **resource}
    return resource


def _hunting_tags(hunt: str) -> list[JSON]:
    return [
        {"name": "description", "value": f"[{hunt}.description]"},
        {"name": "tactics", "value": _joined(f"{hunt}.tactics")},
        {"name": "techniques", "value": _joined(f"{hunt}.techniques")},
    ]


def sentinel_deployment() -> JSON:
    """The Sentinel solution, as infra/modules/sentinelContent.bicep deploys it (see its header)."""
    workspace_id = _WORKSPACE_ID
    onboarding_id = (
        f"extensionResourceId({workspace_id}, 'Microsoft.SecurityInsights/onboardingStates', 'default')"
    )
    si = API["securityInsights"]
    parser = "variables('content').parsers[copyIndex()]"
    hunt = "variables('content').huntingQueries[copyIndex()]"
    rule = "variables('content').alertRules[copyIndex()]"
    workbook = "variables('content').workbook"
    connector = "variables('content').dataConnector"
    workbook_name = f"guid({workspace_id}, 'auditsync-workbook')"

    def saved_search_id(name: str) -> str:
        return f"resourceId('Microsoft.OperationalInsights/workspaces/savedSearches', parameters('workspaceName'), {name})"

    parser_body = {
        "category": f"[{parser}.category]",
        "displayName": f"[{parser}.displayName]",
        "query": "[" + _FILL_PARSER.format(query=f"{parser}.query") + "]",
        "functionAlias": f"[{parser}.name]",
        "version": 2,
    }
    hunting_body = {
        "category": "Hunting Queries",
        "displayName": f"[{hunt}.displayName]",
        "query": f"[{hunt}.query]",
        "version": 2,
        "tags": _hunting_tags(hunt),
    }
    connector_id = f"extensionResourceId({workspace_id}, 'Microsoft.SecurityInsights/dataConnectorDefinitions', {connector}.id)"
    solution = "variables('content').solution"
    template = {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            "workspaceName": {"type": "string"},
            "location": {"type": "string"},
            "onboardSentinel": {"type": "bool"},
            "keyVaultName": {"type": "string"},
            "functionAppPrincipalId": {"type": "string"},
        },
        "variables": {"content": sentinel_content()},
        "resources": [
            {
                "condition": "[parameters('onboardSentinel')]",
                "type": "Microsoft.SecurityInsights/onboardingStates",
                "apiVersion": si,
                "scope": _SI_SCOPE,
                "name": "default",
                "properties": {},
            },
            {
                "type": "Microsoft.SecurityInsights/contentPackages",
                "apiVersion": si,
                "scope": _SI_SCOPE,
                "name": f"[{solution}.id]",
                "properties": {
                    "contentId": f"[{solution}.id]",
                    "contentProductId": f"[{solution}.contentProductId]",
                    "contentKind": "Solution",
                    "contentSchemaVersion": f"[{solution}.contentSchemaVersion]",
                    "displayName": f"[{solution}.name]",
                    "version": f"[{solution}.version]",
                    "publisherDisplayName": f"[{solution}.publisher]",
                    "description": f"[{solution}.description]",
                    **_by_solution(),
                    "dependencies": f"[{solution}.dependencies]",
                    "categories": f"[{solution}.categories]",
                    "providers": f"[{solution}.providers]",
                    "firstPublishDate": f"[{solution}.firstPublishDate]",
                    "lastPublishDate": f"[{solution}.lastPublishDate]",
                },
                "dependsOn": [f"[{onboarding_id}]"],
            },
            {
                "copy": {
                    "name": "parsers",
                    "count": "[length(variables('content').parsers)]",
                    "mode": "serial",
                    "batchSize": 1,
                },
                "type": "Microsoft.OperationalInsights/workspaces/savedSearches",
                "apiVersion": API["savedSearches"],
                "name": f"[format('{{0}}/{{1}}', parameters('workspaceName'), {parser}.name)]",
                "properties": parser_body,
            },
            {
                "copy": {"name": "parserMetadata", "count": "[length(variables('content').parsers)]"},
                "type": "Microsoft.SecurityInsights/metadata",
                "apiVersion": si,
                "scope": _SI_SCOPE,
                "name": f"[format('Parser-{{0}}', {parser}.name)]",
                "properties": _metadata("Parser", parser, saved_search_id(f"{parser}.name")),
                "dependsOn": [f"[{saved_search_id(f'{parser}.name')}]", f"[{_PACKAGE_ID}]"],
            },
            _content_template(
                "Parser",
                parser,
                f"{parser}.displayName",
                [
                    {
                        "type": "Microsoft.OperationalInsights/workspaces/savedSearches",
                        "apiVersion": API["savedSearches"],
                        "name": f"[format('{{0}}/{{1}}', parameters('workspaceName'), {parser}.name)]",
                        "properties": parser_body,
                    },
                    _inner_metadata("Parser", f"{parser}.name", parser, saved_search_id(f"{parser}.name")),
                ],
                loop=("parserTemplates", "parsers"),
            ),
            {
                "copy": {"name": "huntingQueries", "count": "[length(variables('content').huntingQueries)]"},
                "type": "Microsoft.OperationalInsights/workspaces/savedSearches",
                "apiVersion": API["savedSearches"],
                "name": f"[format('{{0}}/{{1}}', parameters('workspaceName'), {hunt}.name)]",
                "properties": hunting_body,
                "dependsOn": ["parsers"],
            },
            {
                "copy": {"name": "huntingMetadata", "count": "[length(variables('content').huntingQueries)]"},
                "type": "Microsoft.SecurityInsights/metadata",
                "apiVersion": si,
                "scope": _SI_SCOPE,
                "name": f"[format('HuntingQuery-{{0}}', {hunt}.name)]",
                "properties": _metadata("HuntingQuery", hunt, saved_search_id(f"{hunt}.name")),
                "dependsOn": [f"[{saved_search_id(f'{hunt}.name')}]", f"[{_PACKAGE_ID}]"],
            },
            _content_template(
                "HuntingQuery",
                hunt,
                f"{hunt}.displayName",
                [
                    {
                        "type": "Microsoft.OperationalInsights/workspaces/savedSearches",
                        "apiVersion": API["savedSearches"],
                        "name": f"[format('{{0}}/{{1}}', parameters('workspaceName'), {hunt}.name)]",
                        "properties": hunting_body,
                    },
                    _inner_metadata("HuntingQuery", f"{hunt}.name", hunt, saved_search_id(f"{hunt}.name")),
                ],
                loop=("huntingTemplates", "huntingQueries"),
            ),
            _content_template(
                "AnalyticsRule",
                rule,
                f"{rule}.properties.displayName",
                [
                    {
                        "type": "Microsoft.SecurityInsights/AlertRuleTemplates",
                        "apiVersion": si,
                        "name": f"[{rule}.id]",
                        "kind": f"[{rule}.kind]",
                        "properties": f"[{rule}.properties]",
                    },
                    _inner_metadata(
                        "AnalyticsRule",
                        f"{rule}.id",
                        rule,
                        f"resourceId('Microsoft.SecurityInsights/AlertRuleTemplates', {rule}.id)",
                    ),
                ],
                loop=("ruleTemplates", "alertRules"),
            ),
            _content_template(
                "Workbook",
                workbook,
                f"{workbook}.displayName",
                [
                    {
                        "type": "Microsoft.Insights/workbooks",
                        "apiVersion": API["workbooks"],
                        "name": f"[{workbook_name}]",
                        "location": "[parameters('location')]",
                        "kind": "shared",
                        "properties": {
                            "displayName": f"[{workbook}.displayName]",
                            "serializedData": f"[{workbook}.serializedData]",
                            "sourceId": f"[{workspace_id}]",
                            "category": "sentinel",
                        },
                    },
                    _inner_metadata(
                        "Workbook",
                        workbook_name,
                        workbook,
                        f"resourceId('Microsoft.Insights/workbooks', {workbook_name})",
                    ),
                ],
            ),
            {
                "type": "Microsoft.SecurityInsights/dataConnectorDefinitions",
                "apiVersion": si,
                "scope": _SI_SCOPE,
                "name": f"[{connector}.id]",
                "kind": "Customizable",
                "properties": {"connectorUiConfig": f"[{connector}.connectorUiConfig]"},
                "dependsOn": [f"[{onboarding_id}]"],
            },
            {
                "type": "Microsoft.SecurityInsights/metadata",
                "apiVersion": si,
                "scope": _SI_SCOPE,
                "name": f"[format('DataConnector-{{0}}', {connector}.id)]",
                "properties": _metadata("DataConnector", connector, connector_id),
                "dependsOn": [f"[{connector_id}]", f"[{_PACKAGE_ID}]"],
            },
            _content_template(
                "DataConnector",
                connector,
                f"{connector}.connectorUiConfig.title",
                [
                    {
                        "type": "Microsoft.OperationalInsights/workspaces/providers/dataConnectorDefinitions",
                        "apiVersion": si,
                        "name": f"[format('{{0}}/Microsoft.SecurityInsights/{{1}}', parameters('workspaceName'), {connector}.id)]",
                        "kind": "Customizable",
                        "properties": {"connectorUiConfig": f"[{connector}.connectorUiConfig]"},
                    },
                    _inner_metadata("DataConnector", f"{connector}.id", connector, connector_id),
                ],
            ),
        ],
    }
    return {
        "condition": "[parameters('deploySentinelContent')]",
        "type": "Microsoft.Resources/deployments",
        "apiVersion": API["deployments"],
        "name": "auditsync-sentinel",
        "subscriptionId": "[variables('workspaceSubscriptionId')]",
        "resourceGroup": "[variables('workspaceResourceGroup')]",
        "properties": {
            "mode": "Incremental",
            "expressionEvaluationOptions": {"scope": "inner"},
            "parameters": {
                "workspaceName": {"value": "[variables('workspaceName')]"},
                "location": {"value": f"[{_workspace_ref(full=True)}.location]"},
                "onboardSentinel": {"value": "[parameters('onboardSentinel')]"},
                "keyVaultName": {"value": "[variables('keyVaultName')]"},
                "functionAppPrincipalId": {"value": f"[{PRINCIPAL}]"},
            },
            "template": template,
        },
        "dependsOn": [f"[{TABLES_DEPLOYMENT_ID}]", f"[{VAULT_ID}]", f"[{SITE_ID}]"],
    }


def outputs() -> JSON:
    return {
        "functionAppName": {"type": "string", "value": "[variables('functionAppName')]"},
        "dcrImmutableId": {"type": "string", "value": f"[reference({DCR_ID}, '{API['dcr']}').immutableId]"},
        "logsIngestionEndpoint": {
            "type": "string",
            "value": f"[reference({DCR_ID}, '{API['dcr']}').endpoints.logsIngestion]",
        },
        "keyVaultUri": {"type": "string", "value": f"[reference({VAULT_ID}, '{API['vault']}').vaultUri]"},
        "redeployCodeCommand": {"type": "string", "value": REDEPLOY_COMMAND},
    }


def code_template_url() -> str:
    return release().template_url.replace("azuredeploy.json", "codeDeployment.json")


#: The one command that re-runs only the code deployment (for a first deployment that met an RBAC role
#: still propagating): the same template as the nested ``auditsync-code`` deployment.
REDEPLOY_COMMAND = (
    "[format('az deployment group create --resource-group {0} --name auditsync-code --template-uri "
    f"{code_template_url()} "
    "--parameters functionAppName={1}', resourceGroup().name, variables('functionAppName'))]"
)


def arm_template() -> JSON:
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {
            "description": "auditsync: Keeper and 1Password audit events into Microsoft Sentinel. "
            "Generated by tools/build_infra.py from the same definitions as infra/main.bicep; do not edit."
        },
        "parameters": parameters(),
        "variables": variables(),
        "resources": [
            tables_deployment(),
            dcr(),
            *storage(),
            *key_vault(),
            *function_app(),
            *role_assignments(),
            code_deployment(),
            *alerts(),
            sentinel_deployment(),
        ],
        "outputs": outputs(),
    }


def render(doc: JSON) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def ui_definition() -> JSON:
    """createUiDefinition.json (hand-written) with the advanced step's package URL set to this release."""
    doc: JSON = json.loads(UI_JSON.read_text(encoding="utf-8"))
    for step in doc["parameters"]["steps"]:
        for element in step["elements"]:
            if element["name"] == "packageUrl":
                element["defaultValue"] = release().package_url
    return doc


def _with_literal(text: str, declaration: str, value: str) -> str:
    """A Bicep file whose ``<declaration> = '...'`` line (a param default or a var) is set to ``value``."""
    pattern = re.compile(rf"^({re.escape(declaration)} = )'[^']*'$", re.M)
    if not pattern.search(text):
        raise ValueError(f"no `{declaration} = '...'` line")
    return pattern.sub(lambda m: f"{m.group(1)}'{value}'", text)


def _with_button(text: str) -> str:
    """README with the Deploy to Azure button pointing at this release's templates."""
    pattern = re.compile(r"\(https://portal\.azure\.com/#create/Microsoft\.Template/uri/[^)\s]+\)")
    if not pattern.search(text):
        raise ValueError("README has no Deploy to Azure button link")
    return pattern.sub(lambda m: f"({release().button_url})", text)


def outputs_by_path() -> dict[Path, str]:
    package_url = release().package_url
    return {
        TABLES_JSON: render(tables_content()),
        ARM_JSON: render(arm_template()),
        CODE_JSON: render(code_deployment_template()),
        UI_JSON: render(ui_definition()),
        MAIN_BICEP: _with_literal(
            _with_literal(MAIN_BICEP.read_text(encoding="utf-8"), "param packageUrl string", package_url),
            "var codeTemplateUrl",
            code_template_url(),
        ),
        CODE_BICEP: _with_literal(
            CODE_BICEP.read_text(encoding="utf-8"), "param packageUrl string", package_url
        ),
        README: _with_button(README.read_text(encoding="utf-8")),
        DEPLOYMENT_DOC: _with_button(DEPLOYMENT_DOC.read_text(encoding="utf-8")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs_by_path().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale (run python tools/build_infra.py): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
