"""The portal wizard (createUiDefinition.json) feeds the ARM template: every output is a parameter, every
parameter a user should set is asked for (the others are listed with the reason), tokens are secure text,
the choices and ranges offered are values the template accepts, the defaults are the template's, and the
controls follow the rules of Microsoft's template test toolkit (arm-ttk) for CreateUIDefinition."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.infra import UI_PATH

#: Template parameters the wizard deliberately does not ask for, and why. A new template parameter must be
#: offered or listed here.
NOT_OFFERED = {
    "onePasswordEventTypes": "all three event types by default; a token lacking one makes only that stream "
    "fail (auth, naming it), and the app setting ONEPASSWORD_EVENT_TYPES narrows the list",
    "timerSchedule": "every five minutes suits one tenant and many; the app setting TIMER_SCHEDULE changes it",
    "initialLookback": "a day of history on a stream's first run; python -m auditsync backfill re-sends older "
    "ranges",
    "deploymentTime": "its default, utcNow(), is the deployment's own time, where the Keeper token's "
    "lifetime counts from (ARM allows utcNow only as a parameter's default)",
    "tags": "the portal's tag control (Microsoft.Common.TagsByResource) gives tags per resource type, the "
    "template one object for every resource: tag the resource group, or deploy the template with tags",
}
#: Controls arm-ttk does not ask a tooltip of (Tooltips-Should-Be-Present).
NO_TOOLTIP = {"Microsoft.Common.InfoBox", "Microsoft.Common.Section", "Microsoft.Common.TextBlock"}


@pytest.fixture(scope="module")
def ui() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(UI_PATH.read_text(encoding="utf-8"))
    return doc["parameters"]


def _elements(items: list[dict[str, Any]], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in items:
        path = f"{prefix}.{item['name']}"
        yield path, item
        yield from _elements(item.get("elements", []), path)


def _all_elements(ui: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = dict(_elements(ui["basics"], "basics"))
    for step in ui["steps"]:
        found.update(_elements(step["elements"], f"steps.{step['name']}"))
    return found


def _references(expression: str) -> list[str]:
    """``steps('s').a.b`` -> ``steps.s.a.b``; ``basics('w').id`` -> ``basics.w`` (a property of the element)."""
    refs = [f"steps.{s}{rest}" for s, rest in re.findall(r"steps\('([^']+)'\)((?:\.\w+)*)", expression)]
    refs += [f"basics.{b}" for b in re.findall(r"basics\('([^']+)'\)", expression)]
    return refs


def test_schema_and_handler(ui: dict[str, Any]) -> None:
    doc = json.loads(UI_PATH.read_text(encoding="utf-8"))
    assert doc["handler"] == "Microsoft.Azure.CreateUIDef"
    assert doc["$schema"].endswith("CreateUIDefinition.MultiVm.json#")


def test_every_output_is_an_arm_parameter(ui: dict[str, Any], arm_template: dict[str, Any]) -> None:
    unknown = set(ui["outputs"]) - set(arm_template["parameters"])
    assert not unknown


def test_every_required_arm_parameter_is_covered(ui: dict[str, Any], arm_template: dict[str, Any]) -> None:
    required = {n for n, p in arm_template["parameters"].items() if "defaultValue" not in p}
    assert required and required <= set(ui["outputs"])


def test_the_wizard_asks_for_what_the_issue_names(ui: dict[str, Any]) -> None:
    wanted = {
        "workspaceResourceId",
        "sources",
        "onePasswordBaseUrl",
        "keeperBaseUrl",
        "keeperApiToken",
        "onePasswordApiToken",
        "sinkMode",
    }
    assert wanted <= set(ui["outputs"])


def test_every_output_reads_an_element_that_exists(ui: dict[str, Any]) -> None:
    elements = _all_elements(ui)
    for name, expression in ui["outputs"].items():
        for ref in _references(expression):
            assert ref in elements, f"output {name} reads {ref}, which the wizard does not have"
    workspace = elements["basics.workspace"]
    assert workspace["type"] == "Microsoft.Solutions.ResourceSelector"
    assert workspace["resourceType"] == "Microsoft.OperationalInsights/workspaces"
    assert ui["outputs"]["workspaceResourceId"] == "[basics('workspace').id]"


def test_secure_parameters_come_from_password_boxes(ui: dict[str, Any], arm_template: dict[str, Any]) -> None:
    elements = _all_elements(ui)
    secure = [n for n, p in arm_template["parameters"].items() if p["type"] == "securestring"]
    assert secure
    for name in secure:
        refs = _references(ui["outputs"][name])
        assert refs and all(elements[r]["type"] == "Microsoft.Common.PasswordBox" for r in refs), name


def test_offered_choices_are_allowed_by_the_template(
    ui: dict[str, Any], arm_template: dict[str, Any]
) -> None:
    elements = _all_elements(ui)
    for name, expression in ui["outputs"].items():
        allowed = arm_template["parameters"][name].get("allowedValues")
        if not allowed:
            continue
        for ref in _references(expression):
            offered = [v["value"] for v in elements[ref]["constraints"]["allowedValues"]]
            assert offered and set(offered) <= set(allowed), name
        fallback = re.search(r"coalesce\([^,]+,\s*'([^']*)'\)", expression)
        if fallback:
            assert fallback.group(1) in allowed, name


def test_name_prefix_rule_matches_the_template(ui: dict[str, Any], arm_template: dict[str, Any]) -> None:
    regex = re.compile(_all_elements(ui)["basics.namePrefix"]["constraints"]["regex"])
    spec = arm_template["parameters"]["namePrefix"]
    assert regex.match(spec["defaultValue"])
    assert not regex.match("x" * (spec["maxLength"] + 1)) and not regex.match("x" * (spec["minLength"] - 1))


def test_every_parameter_is_offered_or_listed_with_the_reason(
    ui: dict[str, Any], arm_template: dict[str, Any]
) -> None:
    parameters = set(arm_template["parameters"])
    offered = set(ui["outputs"])
    assert set(NOT_OFFERED) <= parameters, "a parameter listed as not offered no longer exists"
    assert not set(NOT_OFFERED) & offered, "a parameter listed as not offered is offered"
    assert parameters - offered == set(NOT_OFFERED), "offer the new parameter, or list it with the reason"
    assert all(len(reason) > 40 for reason in NOT_OFFERED.values())


def _default_value(element: dict[str, Any]) -> Any:
    """What the element gives when the user changes nothing: a choice's value, not its label."""
    default = element.get("defaultValue")
    choices = (element.get("constraints") or {}).get("allowedValues")
    if choices:
        (value,) = [c["value"] for c in choices if c["label"] == default]
        return value
    return default


def test_clicking_through_deploys_the_template_defaults(
    ui: dict[str, Any], arm_template: dict[str, Any]
) -> None:
    """An output that reads one control gets the template's default when the user changes nothing."""
    elements = _all_elements(ui)
    compared = 0
    for name, expression in ui["outputs"].items():
        refs = _references(expression)
        default = arm_template["parameters"][name].get("defaultValue")
        if len(refs) != 1 or default is None or "defaultValue" not in elements[refs[0]]:
            continue
        compared += 1
        assert _default_value(elements[refs[0]]) == default, name
    assert compared >= 10


def test_offered_ranges_are_within_the_template_limits(
    ui: dict[str, Any], arm_template: dict[str, Any]
) -> None:
    elements = _all_elements(ui)
    sliders = 0
    for name, expression in ui["outputs"].items():
        spec = arm_template["parameters"][name]
        for ref in _references(expression):
            element = elements[ref]
            if element["type"] != "Microsoft.Common.Slider":
                continue
            sliders += 1
            assert spec["type"] == "int", name
            assert element["min"] >= spec.get("minValue", element["min"]), name
            assert element["max"] <= spec.get("maxValue", element["max"]), name
            assert element["min"] <= element["defaultValue"] <= element["max"], name
        for fallback in re.findall(r",\s*(\d+)\)\]?$", expression):  # a value used when the control is hidden
            assert spec.get("minValue", 0) <= int(fallback) <= spec.get("maxValue", int(fallback)), name
    assert sliders >= 2


def test_the_wizard_offers_the_fan_out_settings(ui: dict[str, Any], arm_template: dict[str, Any]) -> None:
    """One tenant or many (the tenant registry), and for many the scale-out limit of the queue workers:
    Flex Consumption allows 1 to 1,000 instances (learn.microsoft.com, Event-driven scaling: Limit scale-out),
    the template's own bounds."""
    elements = _all_elements(ui)
    step = "steps.tenantsStep"
    registry = elements[f"{step}.tenantRegistry"]
    assert registry["type"] == "Microsoft.Common.OptionsGroup"
    assert {c["value"] for c in registry["constraints"]["allowedValues"]} == set(
        arm_template["parameters"]["tenantRegistry"]["allowedValues"]
    )
    assert ui["outputs"]["tenantRegistry"] == "[steps('tenantsStep').tenantRegistry]"

    many = "[equals(steps('tenantsStep').tenantRegistry, 'table')]"
    one = "[equals(steps('tenantsStep').tenantRegistry, 'none')]"
    instances = elements[f"{step}.maximumInstanceCount"]
    spec = arm_template["parameters"]["maximumInstanceCount"]
    assert instances["type"] == "Microsoft.Common.Slider"
    assert (instances["min"], instances["max"]) == (spec["minValue"], spec["maxValue"]) == (1, 1000)
    assert instances["visible"] == many
    # Hidden for one tenant: a control that is not visible has no value (Microsoft, CreateUiDefinition
    # logical functions, coalesce), so the output passes the template's default then.
    assert ui["outputs"]["maximumInstanceCount"] == (
        f"[if({many[1:-1]}, steps('tenantsStep').maximumInstanceCount, {spec['defaultValue']})]"
    )
    explained = {
        e["visible"]: e["options"]["text"]
        for e in ui["steps"][_step_index(ui, "tenantsStep")]["elements"]
        if e["type"] == "Microsoft.Common.InfoBox"
    }
    assert set(explained) == {one, many}, "what each choice means, shown with it"
    assert "tenants add" in explained[many] and "1 to 40 lowercase letters" in explained[many]
    assert "Sources step" in explained[one]


def _step_index(ui: dict[str, Any], name: str) -> int:
    return [s["name"] for s in ui["steps"]].index(name)


def test_controls_have_tooltips_and_textboxes_are_well_formed(ui: dict[str, Any]) -> None:
    """arm-ttk's Tooltips-Should-Be-Present and Textboxes-Are-Well-Formed."""
    for path, element in _all_elements(ui).items():
        if element["type"] not in NO_TOOLTIP:
            assert str(element.get("toolTip", "")).strip(), f"{path} has no tooltip"
        if element["type"] == "Microsoft.Common.TextBox":
            constraints = element.get("constraints") or {}
            re.compile(constraints["regex"])
            assert constraints.get("validationMessage"), path
        if element["type"] == "Microsoft.Common.InfoBox":
            assert element["options"]["icon"] in ("None", "Info", "Warning", "Error"), path
