"""The ``sentinel`` command's settings and its pure template logic: every settings problem at once, each
naming the setting and the fix; which templates are ours, which rules are made from which template, and
which template versions are newer."""

from __future__ import annotations

import pytest

from auditsync.content.settings import SentinelSettings
from auditsync.content.templates import (
    Rule,
    RuleTemplate,
    Solution,
    UnknownRules,
    newer,
    ours,
    select,
    states,
)
from auditsync.errors import ConfigError

SUB = "11111111-2222-3333-4444-555555555555"
WORKSPACE_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/soc-ws"
)


def _problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        SentinelSettings.from_env(env)
    return caught.value.problems


def test_a_resource_id_or_the_three_parts_name_the_workspace() -> None:
    by_id = SentinelSettings.from_env({"SENTINEL_WORKSPACE_RESOURCE_ID": WORKSPACE_ID})
    by_parts = SentinelSettings.from_env(
        {
            "SENTINEL_SUBSCRIPTION_ID": SUB,
            "SENTINEL_RESOURCE_GROUP": "rg-soc",
            "SENTINEL_WORKSPACE_NAME": "soc-ws",
        }
    )
    assert by_id == by_parts
    assert by_id.workspace_id == WORKSPACE_ID
    assert by_id.arm_endpoint == "https://management.azure.com"
    assert by_id.scope == "https://management.azure.com/.default"
    lower = SentinelSettings.from_env({"SENTINEL_WORKSPACE_RESOURCE_ID": WORKSPACE_ID.lower()})
    assert lower.workspace_name == "soc-ws"


def test_sovereign_clouds_and_loopback_stand_ins() -> None:
    gov = SentinelSettings.from_env(
        {
            "SENTINEL_WORKSPACE_RESOURCE_ID": WORKSPACE_ID,
            "SENTINEL_ARM_ENDPOINT": "https://management.usgovcloudapi.net/",
        }
    )
    assert gov.scope == "https://management.usgovcloudapi.net/.default"
    local = SentinelSettings.from_env(
        {"SENTINEL_WORKSPACE_RESOURCE_ID": WORKSPACE_ID, "SENTINEL_ARM_ENDPOINT": "https://127.0.0.1:8443"}
    )
    assert local.scope == "https://127.0.0.1:8443/.default"


def test_nothing_set_names_every_missing_setting_and_the_alternative() -> None:
    problems = _problems({})
    assert [p.split(":")[0] for p in problems] == [
        "SENTINEL_SUBSCRIPTION_ID",
        "SENTINEL_RESOURCE_GROUP",
        "SENTINEL_WORKSPACE_NAME",
    ]
    assert all("SENTINEL_WORKSPACE_RESOURCE_ID" in p for p in problems)


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        {
            "SENTINEL_SUBSCRIPTION_ID": "my-subscription",
            "SENTINEL_RESOURCE_GROUP": "rg soc.",
            "SENTINEL_WORKSPACE_NAME": "-ws",
            "SENTINEL_ARM_ENDPOINT": "http://management.azure.com/path?x=1",
        }
    )
    text = "\n".join(problems)
    for expected in (
        "SENTINEL_SUBSCRIPTION_ID: subscription 'my-subscription' is not a subscription id",
        "SENTINEL_RESOURCE_GROUP: 'rg soc.' is not a resource group name",
        "SENTINEL_WORKSPACE_NAME: '-ws' is not a workspace name",
        "SENTINEL_ARM_ENDPOINT: must use https",
        "SENTINEL_ARM_ENDPOINT: must be the endpoint alone",
    ):
        assert expected in text, text
    assert len(problems) == 6  # the endpoint's query and its path are two problems


def test_a_resource_id_that_is_not_one_or_disagrees() -> None:
    (problem,) = _problems({"SENTINEL_WORKSPACE_RESOURCE_ID": "soc-ws"})
    assert problem.startswith(
        "SENTINEL_WORKSPACE_RESOURCE_ID: 'soc-ws' is not a Log Analytics workspace resource id"
    )
    assert "Properties (Resource ID)" in problem
    (problem,) = _problems(
        {"SENTINEL_WORKSPACE_RESOURCE_ID": WORKSPACE_ID, "SENTINEL_WORKSPACE_NAME": "other-ws"}
    )
    assert problem.startswith(
        "SENTINEL_WORKSPACE_NAME: 'other-ws' disagrees with SENTINEL_WORKSPACE_RESOURCE_ID"
    )


def test_an_endpoint_that_is_not_resource_manager_never_gets_a_token() -> None:
    (problem,) = _problems(
        {"SENTINEL_WORKSPACE_RESOURCE_ID": WORKSPACE_ID, "SENTINEL_ARM_ENDPOINT": "https://arm.evil.example"}
    )
    assert "'arm.evil.example' is not a known host; use one of management.azure.com" in problem
    assert "management.azure.com" in problem


# -- templates and rules -------------------------------------------------------------------------------

SOLUTION = Solution("auditsync.x", "auditsync - x", "AuditSyncPasswordManagers", {"aaaa": "A rule"})


def _template(content_id: str, version: str = "1.0.0", package: str = "auditsync.x") -> RuleTemplate:
    resource = {
        "name": f"ar-{content_id}",
        "properties": {
            "contentId": content_id,
            "contentKind": "AnalyticsRule",
            "version": version,
            "displayName": f"Rule {content_id}",
            "packageId": package,
            "packageName": "auditsync - x",
            "packageVersion": "0.1.0",
            "mainTemplate": {
                "resources": [
                    {
                        "type": "Microsoft.SecurityInsights/AlertRuleTemplates",
                        "name": content_id,
                        "kind": "Scheduled",
                        "properties": {
                            "displayName": f"Rule {content_id}",
                            "query": "T | take 1",
                            "requiredDataConnectors": [],
                            "status": "Available",
                            "enabled": False,
                        },
                    },
                    {"type": "Microsoft.OperationalInsights/workspaces/providers/metadata", "name": "m"},
                ]
            },
        },
    }
    template = RuleTemplate.from_content_template(resource)
    assert template is not None
    return template


def _rule(name: str, template: str, version: str, enabled: bool = True) -> Rule:
    return Rule.from_resource(
        {
            "name": name,
            "id": f"/x/alertRules/{name}",
            "properties": {
                "displayName": name,
                "enabled": enabled,
                "alertRuleTemplateName": template,
                "templateVersion": version,
            },
        }
    )


def test_a_rule_from_a_template_is_enabled_linked_and_carries_only_rule_properties() -> None:
    body = _template("aaaa", "1.2.0").rule()
    assert body == {
        "kind": "Scheduled",
        "properties": {
            "displayName": "Rule aaaa",
            "query": "T | take 1",
            "suppressionDuration": "PT5H",
            "suppressionEnabled": False,
            "enabled": True,
            "alertRuleTemplateName": "aaaa",
            "templateVersion": "1.2.0",
        },
    }


def test_only_analytics_rule_templates_with_one_rule_template_inside_count() -> None:
    assert RuleTemplate.from_content_template({"properties": {"contentKind": "Workbook"}}) is None
    assert RuleTemplate.from_content_template({"properties": {"contentKind": "AnalyticsRule"}}) is None


def test_our_templates_their_rules_and_newer_versions() -> None:
    templates = ours(
        [_template("bbbb", "1.1.0"), _template("aaaa"), _template("cccc", package="other.solution")], SOLUTION
    )
    assert [t.content_id for t in templates] == ["aaaa", "bbbb"]
    rules = [_rule("r1", "AAAA", "1.0.0", enabled=False), _rule("r2", "bbbb", "1.0.0"), _rule("r3", "", "")]
    table = states(templates, rules, SOLUTION)
    assert [(s.template.content_id, s.recommended, [r.name for r in s.rules]) for s in table] == [
        ("aaaa", True, ["r1"]),
        ("bbbb", False, ["r2"]),
    ]
    assert [r.name for s in table for r in s.outdated] == ["r2"]


@pytest.mark.parametrize(
    ("template", "rule", "expected"),
    [
        ("1.0.1", "1.0.0", True),
        ("1.10.0", "1.9.3", True),
        ("1.0.0", "1.0.0", False),
        ("1.0.0", "1.1.0", False),
        ("2.0", "1.9.9", True),
        ("1.0.0", "", True),
        ("", "1.0.0", False),
    ],
)
def test_version_order(template: str, rule: str, expected: bool) -> None:
    assert newer(template, rule) is expected


def test_selection_by_recommendation_everything_id_or_name() -> None:
    templates = [_template("aaaa"), _template("bbbb")]
    assert [
        t.content_id for t in select(templates, SOLUTION, recommended=True, everything=False, names=[])
    ] == ["aaaa"]
    assert len(select(templates, SOLUTION, recommended=False, everything=True, names=[])) == 2
    chosen = select(
        templates, SOLUTION, recommended=False, everything=False, names=["BBBB", "rule aaaa", "bbbb"]
    )
    assert [t.content_id for t in chosen] == ["bbbb", "aaaa"]
    with pytest.raises(UnknownRules) as unknown:
        select(templates, SOLUTION, recommended=False, everything=False, names=["zzzz", "aaaa", "nope"])
    assert unknown.value.names == ["zzzz", "nope"]
