"""Scale-out in both templates: the work queues, the tenant registry parameter, the instance limit."""

from __future__ import annotations

from typing import Any

from tests.content.armexpr import ArmContext
from tests.fixtures.infra import WORKSPACE_ID, arm_resources, bicep_body, bicep_resources


def test_both_templates_create_the_work_queue_and_its_poison_queue(
    bicep: dict[str, Any], arm_template: dict[str, Any]
) -> None:
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID})
    kind = "Microsoft.Storage/storageAccounts/queueServices/queues"
    arm = sorted(
        str(ctx.evaluate(r["name"])).split("/")[-1] for r in arm_resources(arm_template) if r["type"] == kind
    )
    assert arm == ["auditsync-work", "auditsync-work-poison"]
    in_bicep = sorted(bicep_body(r)["name"] for _, _, r in bicep_resources(bicep) if r["type"] == kind)
    assert in_bicep == ["${workQueueName}-poison", "workQueueName"]


def test_the_registry_and_the_instance_limit_are_parameters(arm_template: dict[str, Any]) -> None:
    params = arm_template["parameters"]
    assert params["tenantRegistry"]["defaultValue"] == "none", "single tenant unless asked"
    assert params["tenantRegistry"]["allowedValues"] == ["none", "table"]
    assert params["maximumInstanceCount"]["defaultValue"] == 40
    site = next(r for r in arm_resources(arm_template) if r["type"] == "Microsoft.Web/sites")
    ctx = ArmContext(
        arm_template,
        {"workspaceResourceId": WORKSPACE_ID, "tenantRegistry": "table", "maximumInstanceCount": 100},
    )
    scale = ctx.evaluate(site["properties"]["functionAppConfig"]["scaleAndConcurrency"])
    assert scale["maximumInstanceCount"] == 100
    settings = {s["name"]: ctx.evaluate(s["value"]) for s in site["properties"]["siteConfig"]["appSettings"]}
    assert settings["TENANT_REGISTRY"] == "table" and settings["WORK_QUEUE"] == "auditsync-work"
