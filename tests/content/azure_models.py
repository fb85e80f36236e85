"""Check template resource bodies against Azure's own resource models: the ``azure-mgmt-*`` packages that
Microsoft generates from its REST specs, in the api-version folder that matches the template.

A model's ``_attribute_map`` names each JSON property (flattened ones as ``properties.x``) and its type;
walking a resource body against it finds a property Azure does not know (a typo ARM would reject, or
silently ignore). Values that are ARM expressions cannot be checked before deployment and are skipped.

Hand-written because the SDKs only offer (de)serialisation, which drops unknown keys silently instead of
reporting them.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

#: Keys of an ARM resource that belong to the template language, not to the resource's REST body.
TEMPLATE_KEYS = {
    "type",
    "apiVersion",
    "name",
    "dependsOn",
    "condition",
    "scope",
    "copy",
    "comments",
    "subscriptionId",
    "resourceGroup",
}


@dataclass(frozen=True)
class ModelRef:
    """Where the model of one resource type at one api-version lives."""

    module: str
    cls: str
    #: The api-version the model was generated for (equal to the template's, or the note says why not).
    api_version: str

    def load(self) -> type:
        model: type = getattr(importlib.import_module(self.module), self.cls)
        return model


#: (type, apiVersion used by the templates) -> its model.
MODELS: dict[tuple[str, str], ModelRef] = {
    ("Microsoft.Storage/storageAccounts", "2023-05-01"): ModelRef(
        "azure.mgmt.storage.v2023_05_01.models", "StorageAccountCreateParameters", "2023-05-01"
    ),
    ("Microsoft.Storage/storageAccounts/blobServices", "2023-05-01"): ModelRef(
        "azure.mgmt.storage.v2023_05_01.models", "BlobServiceProperties", "2023-05-01"
    ),
    ("Microsoft.Storage/storageAccounts/blobServices/containers", "2023-05-01"): ModelRef(
        "azure.mgmt.storage.v2023_05_01.models", "BlobContainer", "2023-05-01"
    ),
    ("Microsoft.Storage/storageAccounts/tableServices", "2023-05-01"): ModelRef(
        "azure.mgmt.storage.v2023_05_01.models", "TableServiceProperties", "2023-05-01"
    ),
    ("Microsoft.Storage/storageAccounts/tableServices/tables", "2023-05-01"): ModelRef(
        "azure.mgmt.storage.v2023_05_01.models", "Table", "2023-05-01"
    ),
    ("Microsoft.Storage/storageAccounts/queueServices", "2023-05-01"): ModelRef(
        "azure.mgmt.storage.v2023_05_01.models", "QueueServiceProperties", "2023-05-01"
    ),
    ("Microsoft.Storage/storageAccounts/queueServices/queues", "2023-05-01"): ModelRef(
        "azure.mgmt.storage.v2023_05_01.models", "StorageQueue", "2023-05-01"
    ),
    ("Microsoft.KeyVault/vaults", "2023-07-01"): ModelRef(
        "azure.mgmt.keyvault.v2023_07_01.models", "VaultCreateOrUpdateParameters", "2023-07-01"
    ),
    ("Microsoft.KeyVault/vaults/secrets", "2023-07-01"): ModelRef(
        "azure.mgmt.keyvault.v2023_07_01.models", "SecretCreateOrUpdateParameters", "2023-07-01"
    ),
    ("Microsoft.Insights/components", "2020-02-02"): ModelRef(
        "azure.mgmt.applicationinsights.v2020_02_02.models", "ApplicationInsightsComponent", "2020-02-02"
    ),
    ("Microsoft.Web/serverfarms", "2024-04-01"): ModelRef(
        "azure.mgmt.web.v2024_04_01.models", "AppServicePlan", "2024-04-01"
    ),
    ("Microsoft.Web/sites", "2024-04-01"): ModelRef(
        "azure.mgmt.web.v2024_04_01.models", "Site", "2024-04-01"
    ),
    ("Microsoft.Authorization/roleAssignments", "2022-04-01"): ModelRef(
        "azure.mgmt.authorization.v2022_04_01.models", "RoleAssignmentCreateParameters", "2022-04-01"
    ),
    # azure-mgmt-monitor 7.0.0 is a composite package: each operation group at its own api-version; these
    # three are exactly the templates' (its operations send 2023-03-11, 2023-12-01 and 2023-01-01).
    ("Microsoft.Insights/dataCollectionRules", "2023-03-11"): ModelRef(
        "azure.mgmt.monitor.models", "DataCollectionRuleResource", "2023-03-11"
    ),
    ("Microsoft.Insights/scheduledQueryRules", "2023-12-01"): ModelRef(
        "azure.mgmt.monitor.models", "ScheduledQueryRuleResource", "2023-12-01"
    ),
    ("Microsoft.Insights/actionGroups", "2023-01-01"): ModelRef(
        "azure.mgmt.monitor.models", "ActionGroupResource", "2023-01-01"
    ),
    ("Microsoft.Resources/deployments", "2022-09-01"): ModelRef(
        "azure.mgmt.resource.resources.v2022_09_01.models", "Deployment", "2022-09-01"
    ),
}

#: Types whose model at the templates' api-version no installable azure-mgmt release carries (why).
UNAVAILABLE: dict[tuple[str, str], str] = {
    ("Microsoft.Insights/diagnosticSettings", "2021-05-01-preview"): (
        "azure-mgmt-monitor 7.0.0 dropped diagnostic settings; 6.0.2 has v2021_05_01_preview but lacks the "
        "2023-03-11 DCR and 2023-12-01 scheduled query rule models, and one environment holds one release"
    ),
    ("Microsoft.Web/sites/extensions", "2024-04-01"): (
        "OneDeploy's request body has no model in azure-mgmt-web (the SDK deploys through Kudu, not ARM)"
    ),
    ("Microsoft.OperationalInsights/workspaces/tables", "2022-10-01"): (
        "azure-mgmt-loganalytics 13.1+/14.0 are TypeSpec-generated for 2025-07-01 only (no _attribute_map); "
        "12.0.0 predates 2022-10-01"
    ),
    ("Microsoft.OperationalInsights/workspaces/savedSearches", "2020-08-01"): (
        "same package as workspaces/tables: only 2025-07-01 TypeSpec models in current releases"
    ),
    **{
        (f"Microsoft.SecurityInsights/{kind}", "2024-03-01"): (
            "azure-mgmt-securityinsight models 2021-10-01 (1.0.0) and 2025-10-01-preview (2.0.0b4), not 2024-03-01; "
            "tests/content/test_sentinel_validation.py checks these against the 2025-10-01-preview models and the "
            "2024-03-01 REST spec instead"
        )
        for kind in (
            "onboardingStates",
            "contentPackages",
            "contentTemplates",
            "metadata",
            "dataConnectorDefinitions",
        )
    },
}

_SPLIT = re.compile(r"(?<!\\)\.")


def _tree(model: type) -> dict[str, Any]:
    """JSON property name -> type string or nested dict, from a model's (flattened) ``_attribute_map``."""
    tree: dict[str, Any] = {}
    attribute_map: dict[str, dict[str, str]] = getattr(model, "_attribute_map")  # noqa: B009
    for spec in attribute_map.values():
        parts = [p.replace("\\.", ".") for p in _SPLIT.split(spec["key"])]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a property both flattened and typed: trust the type
                break
        else:
            node.setdefault(parts[-1], spec["type"])
    return tree


def _is_expression(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("[")
        and not value.startswith("[[")
        and value.endswith("]")
    )


def _is_bicep_expression(value: Any) -> bool:
    """pycep-parser's shape of a Bicep expression (function call, operator, ternary, accessor)."""
    return isinstance(value, dict) and bool(value) and set(value) <= {"function", "operator"}


@dataclass
class Validator:
    """Walks JSON against the models of one ``models`` module (type names resolve there).

    ``bicep``: the body comes from pycep-parser, where a bare string may be a symbol or parameter
    name; only property names are checked there, values' types are not.
    """

    models: Any
    bicep: bool = False

    def check(self, value: Any, kind: Any, path: str) -> list[str]:
        if _is_expression(value) or (self.bicep and _is_bicep_expression(value)):
            return []
        if self.bicep and not isinstance(value, dict | list):
            return []
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                return [f"{path}: expected an object, got {type(value).__name__}"]
            problems = []
            for key, item in value.items():
                if key not in kind:
                    problems.append(f"{path}.{key}: unknown property (known: {', '.join(sorted(kind))})")
                else:
                    problems += self.check(item, kind[key], f"{path}.{key}")
            return problems
        if kind.startswith("[") and kind.endswith("]"):
            if not isinstance(value, list):
                return [f"{path}: expected an array"]
            return [p for i, item in enumerate(value) for p in self.check(item, kind[1:-1], f"{path}[{i}]")]
        if kind.startswith("{") and kind.endswith("}"):
            if not isinstance(value, dict):
                return [f"{path}: expected a map"]
            return [p for k, item in value.items() for p in self.check(item, kind[1:-1], f"{path}.{k}")]
        primitive = {"str": str, "bool": bool, "int": int, "float": (int, float), "long": int}
        if kind in primitive:
            ok = isinstance(value, primitive[kind]) and not (
                kind in ("int", "long") and isinstance(value, bool)
            )
            return [] if ok else [f"{path}: expected {kind}, got {value!r}"]
        model = getattr(self.models, kind, None)
        if model is None or not hasattr(model, "_attribute_map"):
            return []  # object, duration, iso-8601, enums spelt as their class: no structure to check
        return self.check(value, _tree(model), path)


def validate(resource: dict[str, Any]) -> list[str]:
    """Problems of one ARM resource body against its model ([] when it validates)."""
    ref = MODELS[(resource["type"], resource["apiVersion"])]
    body = {k: v for k, v in resource.items() if k not in TEMPLATE_KEYS}
    validator = Validator(importlib.import_module(ref.module))
    return validator.check(body, _tree(ref.load()), resource["type"])


def validate_bicep(kind: str, api_version: str, body: dict[str, Any]) -> list[str]:
    """Problems of one Bicep resource body (pycep-parser's, wrappers unwrapped): unknown property names."""
    ref = MODELS[(kind, api_version)]
    body = {k: v for k, v in body.items() if k not in TEMPLATE_KEYS | {"parent"}}
    validator = Validator(importlib.import_module(ref.module), bicep=True)
    return validator.check(body, _tree(ref.load()), kind)
