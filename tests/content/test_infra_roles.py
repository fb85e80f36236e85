"""Least privilege: the app's identity gets exactly the roles the code and host need, each scoped to the
one resource that needs it, in both templates."""

from __future__ import annotations

from typing import Any

from tests.content.armexpr import ArmContext
from tests.fixtures.infra import WORKSPACE_ID, arm_resources, bicep_body, dotted

MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
#: The work queues of a multi-tenant deployment: send (dispatcher), receive and delete (queue triggers).
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"

#: (role id, type of the one resource it is scoped to). App Insights with local auth disabled accepts
#: the host's telemetry only from an identity holding Monitoring Metrics Publisher on the component.
ALLOWED = {
    (MONITORING_METRICS_PUBLISHER, "Microsoft.Insights/dataCollectionRules"),
    (KEY_VAULT_SECRETS_USER, "Microsoft.KeyVault/vaults"),
    (STORAGE_BLOB_DATA_OWNER, "Microsoft.Storage/storageAccounts"),
    (STORAGE_TABLE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts"),
    (STORAGE_QUEUE_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts"),
    (MONITORING_METRICS_PUBLISHER, "Microsoft.Insights/components"),
}


def test_arm_role_assignments_are_exactly_the_allowed_ones(arm_template: dict[str, Any]) -> None:
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID})
    deployed = {(r["type"], ctx.evaluate(r["name"])) for r in arm_template["resources"]}
    site = next(r for r in arm_template["resources"] if r["type"] == "Microsoft.Web/sites")
    found = []
    for assignment in arm_resources(arm_template):
        if assignment["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        assert "condition" not in assignment
        scope = ctx.evaluate(assignment["scope"])
        provider, kind, name = scope.split("/")
        scope_type = f"{provider}/{kind}"
        assert (scope_type, name) in deployed, f"role scoped to {scope}, which this template does not create"
        role = ctx.evaluate(assignment["properties"]["roleDefinitionId"])
        assert (
            role.startswith("/subscriptions/")
            and "/providers/Microsoft.Authorization/roleDefinitions/" in role
        )
        principal = assignment["properties"]["principalId"]
        assert principal.startswith(
            "[reference(resourceId('Microsoft.Web/sites', variables('functionAppName'))"
        )
        assert principal.endswith(".identity.principalId]")
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
        found.append((role.rsplit("/", 1)[1], scope_type))
    assert sorted(found) == sorted(ALLOWED)
    assert site["identity"] == {"type": "SystemAssigned"}


def test_arm_role_assignment_names_are_unique(arm_template: dict[str, Any]) -> None:
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID})
    names = [
        ctx.evaluate(r["name"]) for r in arm_template["resources"] if r["type"].endswith("/roleAssignments")
    ]
    assert len(set(names)) == len(names) == len(ALLOWED)


def test_bicep_role_assignments_are_exactly_the_allowed_ones(bicep: dict[str, Any]) -> None:
    found = []
    for file, doc in bicep.items():
        resources = doc.get("resources") or {}
        variables = {k: v["value"] for k, v in (doc.get("variables") or {}).items()}
        for resource in resources.values():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            assert file == "modules/roles.bicep", "role assignments live in modules/roles.bicep only"
            body = bicep_body(resource)
            scope = resources[body["scope"]]
            assert scope["existing"], "roles are scoped to the resources the other modules created"
            role_function = body["properties"]["roleDefinitionId"]["function"]
            assert role_function["type"] == "subscription_resource_id"
            role = variables[role_function["parameters"]["resource_name_1"]]
            assert body["properties"]["principalId"] == "principalId"
            found.append((role, scope["type"]))
    assert sorted(found) == sorted(ALLOWED)


def test_bicep_roles_module_gets_the_names_of_the_resources_it_scopes_to(bicep: dict[str, Any]) -> None:
    """roles.bicep looks resources up by name: each name must come from the module that creates that type."""
    main = bicep["main.bicep"]
    roles = bicep["modules/roles.bicep"]
    params = main["modules"]["roles"]["config"]["params"]
    assert dotted(params["principalId"]) == "functionApp.outputs.principalId"
    for symbol, resource in roles["resources"].items():
        if not resource["existing"]:
            continue
        name_param = resource["config"]["name"]
        module_name, _, output = dotted(params[name_param]).split(".")
        module_file = main["modules"][module_name]["detail"]["path"]
        module = bicep[module_file]
        source_symbol = dotted(module["outputs"][output]["value"]).split(".")[0]
        source = module["resources"][source_symbol]
        assert source["type"] == resource["type"] and not source["existing"], symbol
