"""Every resource of the templates validates against the model Microsoft generates from its REST spec for
that resource type and api-version (azure-mgmt-* packages, dev dependencies only): an unknown or misspelt
property fails here, before Azure rejects or silently ignores it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.content.azure_models import MODELS, UNAVAILABLE, validate, validate_bicep
from tests.fixtures.infra import INFRA, arm_resources, bicep_body, bicep_resources


def _arm_types(template: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["type"], r["apiVersion"]) for r in arm_resources(template)}


def test_every_type_and_api_version_has_a_model_or_a_stated_reason(
    arm_template: dict[str, Any], bicep: dict[str, Any]
) -> None:
    used = _arm_types(arm_template) | {(r["type"], r["api_version"]) for _, _, r in bicep_resources(bicep)}
    assert not set(MODELS) & set(UNAVAILABLE)
    assert used == set(MODELS) | set(UNAVAILABLE), "update tests/content/azure_models.py"
    for (kind, api), ref in MODELS.items():
        assert ref.api_version == api, f"{kind}: model {ref.api_version} for template {api}"
        assert ref.load()


def _resources() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in ("azuredeploy.json", "codeDeployment.json"):
        template = json.loads((INFRA / name).read_text(encoding="utf-8"))
        for resource in arm_resources(template):
            if (resource["type"], resource["apiVersion"]) in MODELS:
                out.append((f"{name}:{resource['type']}:{resource['name']}", resource))
    return out


RESOURCES = _resources()


@pytest.mark.parametrize(("where", "resource"), RESOURCES, ids=[w for w, _ in RESOURCES])
def test_resource_validates_against_its_azure_model(where: str, resource: dict[str, Any]) -> None:
    assert validate(resource) == []


def test_bicep_resources_use_only_property_names_their_model_knows(bicep: dict[str, Any]) -> None:
    checked, problems = 0, []
    for file, name, resource in bicep_resources(bicep):
        key = (resource["type"], resource["api_version"])
        if key in MODELS:
            checked += 1
            problems += [f"{file} {name}: {p}" for p in validate_bicep(*key, bicep_body(resource))]
    assert checked >= 18
    assert problems == []


def test_a_misspelt_bicep_property_fails(bicep: dict[str, Any]) -> None:
    resource = bicep["modules/functionApp.bicep"]["resources"]["site"]
    body = copy.deepcopy(bicep_body(resource))
    body["properties"]["siteConfig"]["ftpState"] = "Disabled"
    (problem,) = validate_bicep(resource["type"], resource["api_version"], body)
    assert "siteConfig.ftpState: unknown property" in problem


def test_most_resources_are_checked() -> None:
    assert len(RESOURCES) >= 18
    assert {r["type"] for _, r in RESOURCES} >= {
        "Microsoft.Web/sites",
        "Microsoft.KeyVault/vaults",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Insights/scheduledQueryRules",
        "Microsoft.Insights/dataCollectionRules",
        "Microsoft.Authorization/roleAssignments",
    }


@pytest.mark.parametrize(
    ("kind", "path", "typo"),
    [
        ("Microsoft.Storage/storageAccounts", ("properties",), "allowBlobPublicAcess"),
        ("Microsoft.Web/sites", ("properties", "functionAppConfig", "runtime"), "verison"),
        ("Microsoft.Insights/scheduledQueryRules", ("properties",), "autoMitigated"),
        ("Microsoft.KeyVault/vaults", ("properties",), "enableRbacAuthorisation"),
        ("Microsoft.Insights/dataCollectionRules", ("properties", "destinations"), "logAnalytic"),
    ],
)
def test_a_misspelt_property_fails(kind: str, path: tuple[str, ...], typo: str) -> None:
    resource = copy.deepcopy(next(r for _, r in RESOURCES if r["type"] == kind))
    node = resource
    for key in path:
        node = node[key]
    node[typo] = True
    problems = validate(resource)
    assert len(problems) == 1 and f"{typo}: unknown property" in problems[0], problems
