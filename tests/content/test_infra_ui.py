"""The portal wizard (createUiDefinition.json) feeds the ARM template: every output is a parameter, every
required parameter is asked for, tokens are secure text, and the choices offered are values the template
accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.infra import UI_PATH


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
