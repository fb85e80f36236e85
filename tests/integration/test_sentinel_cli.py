"""``python -m auditsync sentinel enable|status`` against the stateful SecurityInsights stand-in, with the
solution deployed from the real ARM template, tokens from the managed-identity simulator and TLS.

What a SOC relies on: ``enable`` creates a rule only where none exists for a template, so a rule they
disabled or tuned stays as they left it after ``enable`` and after a redeployment; ``status`` shows the
rules whose template got newer; every failure is one classified line with a next step, no traceback,
no token.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import replace
from typing import Any

import pytest
import requests

from auditsync.cli import main
from auditsync.content import commands as sentinel_commands
from auditsync.content.templates import Solution
from auditsync.retry import RESOURCE_MANAGER
from simulators.identity import ManagedIdentitySim
from tests.fixtures.sentinel_api import SentinelWorkspace, arm_token
from tools import build_sentinel

CONTENT = json.loads(build_sentinel.OUTPUT.read_text(encoding="utf-8"))
TEMPLATES = {r["id"]: r for r in CONTENT["alertRules"]}
RECOMMENDED = {r["id"] for r in CONTENT["alertRules"] if r["recommended"]}
#: Short timeouts and no back-off, for the fault tests.
FAST = {
    "rule": replace(RESOURCE_MANAGER, connect_timeout=2.0, read_timeout=1.0, backoff=0.0, floor=1.0),
    "retry_total": 2,
}


def _cli(sentinel: SentinelWorkspace, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["sentinel", *argv], env={**sentinel.env(), **(env or {})}, out=out)
    return code, out.getvalue()


def _run(sentinel: SentinelWorkspace, *argv: str, **options: Any) -> tuple[int, str]:
    """The command module directly, with short timeouts and no back-off (fault tests)."""
    parser = argparse.ArgumentParser()
    sentinel_commands.register(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    code = sentinel_commands.run(
        parser.parse_args(["sentinel", *argv]), sentinel.env(), out, api_options={**FAST, **options}
    )
    return code, out.getvalue()


def _by_template(sentinel: SentinelWorkspace) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for rule in sentinel.rules():
        found.setdefault(rule["properties"].get("alertRuleTemplateName", ""), []).append(rule)
    return found


def _writes(sentinel: SentinelWorkspace, collection: str) -> int:
    return sum(1 for r in sentinel.api.requests if r.method == "PUT" and f"/{collection}/" in r.path)


def _tune(sentinel: SentinelWorkspace, template_id: str) -> dict[str, Any]:
    """What a SOC engineer does in the portal: read the rule, switch it off, change query and threshold."""
    (rule,) = _by_template(sentinel)[template_id]
    token = arm_token(sentinel.identity, sentinel.api.url)
    url = sentinel.api.url + rule["id"]
    params = {"api-version": "2024-03-01"}
    headers = {"Authorization": f"Bearer {token}"}
    verify = str(sentinel.tls.ca_pem)
    current = requests.get(url, params=params, headers=headers, verify=verify, timeout=10).json()
    current["properties"] |= {
        "enabled": False,
        "query": current["properties"]["query"] + '\n| where Username !endswith "@contractor.example"',
        "triggerThreshold": 3,
    }
    answer = requests.put(url, params=params, json=current, headers=headers, verify=verify, timeout=10)
    assert answer.status_code == 200, answer.text
    tuned: dict[str, Any] = answer.json()
    return tuned


# -- enable --------------------------------------------------------------------------------------------


def test_enable_recommended_creates_one_enabled_rule_per_recommended_template(
    sentinel_workspace: SentinelWorkspace,
) -> None:
    sentinel_workspace.deploy()
    assert sentinel_workspace.rules() == [], "deploying the solution must not create a single rule"
    code, out = _cli(sentinel_workspace, "enable", "--recommended")
    assert code == 0, out
    rules = _by_template(sentinel_workspace)
    assert set(rules) == RECOMMENDED
    for template_id, (rule,) in rules.items():
        template = TEMPLATES[template_id]
        props = rule["properties"]
        assert rule["kind"] == "Scheduled"
        assert props["enabled"] is True
        assert props["templateVersion"] == template["version"]
        for key in ("displayName", "query", "queryFrequency", "queryPeriod", "severity", "entityMappings"):
            assert props[key] == template["properties"][key], (template_id, key)
        assert props["triggerThreshold"] == template["properties"]["triggerThreshold"]
        assert props["incidentConfiguration"] == template["properties"]["incidentConfiguration"]
    links = sentinel_workspace.api.stored(sentinel_workspace.workspace, "metadata")
    linked = {
        m["properties"]["parentId"]: m["properties"] for m in links if m["name"].startswith("analyticsrule-")
    }
    for template_id, (rule,) in rules.items():
        assert linked[rule["id"]]["contentId"] == template_id
        assert linked[rule["id"]]["source"]["sourceId"] == CONTENT["solution"]["id"]
    assert f"{len(RECOMMENDED)} rule(s) created, 0 left as they are." in out


def test_enable_twice_creates_nothing_the_second_time(sentinel_workspace: SentinelWorkspace) -> None:
    sentinel_workspace.deploy()
    assert _cli(sentinel_workspace, "enable", "--all")[0] == 0
    before = sentinel_workspace.rules()
    writes = _writes(sentinel_workspace, "alertRules")
    code, out = _cli(sentinel_workspace, "enable", "--all")
    assert code == 0, out
    assert _writes(sentinel_workspace, "alertRules") == writes, "the second run wrote a rule"
    assert sentinel_workspace.rules() == before
    assert f"0 rule(s) created, {len(TEMPLATES)} left as they are." in out
    assert len(before) == len(TEMPLATES)


def test_a_disabled_and_edited_rule_stays_so_after_enable_and_after_a_redeployment(
    sentinel_workspace: SentinelWorkspace,
) -> None:
    sentinel_workspace.deploy()
    assert _cli(sentinel_workspace, "enable", "--recommended")[0] == 0
    template_id = sorted(RECOMMENDED)[0]
    tuned = _tune(sentinel_workspace, template_id)

    code, out = _cli(sentinel_workspace, "enable", "--recommended")
    assert code == 0, out
    assert f"{TEMPLATES[template_id]['properties']['displayName']}: has a rule already (disabled)" in out
    sentinel_workspace.deploy()  # a redeployment, or an upgrade to the same version
    assert _cli(sentinel_workspace, "enable", "--all")[0] == 0

    (rule,) = _by_template(sentinel_workspace)[template_id]
    assert rule == tuned, "the tuned rule changed"
    assert rule["properties"]["enabled"] is False
    assert rule["properties"]["triggerThreshold"] == 3
    assert rule["properties"]["query"].endswith('!endswith "@contractor.example"')
    assert all(len(rules) == 1 for rules in _by_template(sentinel_workspace).values())


def test_enable_by_id_and_by_name_and_unknown_names(sentinel_workspace: SentinelWorkspace) -> None:
    sentinel_workspace.deploy()
    first, second = sorted(TEMPLATES)[:2]
    name = TEMPLATES[second]["properties"]["displayName"]
    code, out = _cli(sentinel_workspace, "enable", first.upper(), name.lower())
    assert code == 0, out
    assert set(_by_template(sentinel_workspace)) == {first, second}
    code, out = _cli(sentinel_workspace, "enable", "Keeper - No such rule", first)
    assert code == 2
    assert "no rule template of the solution is named 'Keeper - No such rule'" in out
    assert "sentinel status" in out
    code, out = _cli(sentinel_workspace, "enable")
    assert code == 2 and "--recommended, --all, or rule template ids or names" in out
    assert len(sentinel_workspace.rules()) == 2


# -- status --------------------------------------------------------------------------------------------


def _bump(template_id: str, version: str) -> Any:
    def change(content: dict[str, Any]) -> None:
        rule = next(r for r in content["alertRules"] if r["id"] == template_id)
        rule["version"] = rule["properties"]["version"] = version
        rule["properties"]["query"] += "\n| where isnotempty(Username)"

    return change


def test_status_shows_templates_rules_and_a_rule_whose_template_is_newer(
    sentinel_workspace: SentinelWorkspace,
) -> None:
    sentinel_workspace.deploy()
    template_id = sorted(RECOMMENDED)[1]
    assert _cli(sentinel_workspace, "enable", template_id)[0] == 0
    (before,) = _by_template(sentinel_workspace)[template_id]

    code, out = _cli(sentinel_workspace, "status")
    assert code == 0, out
    assert "Every rule was made from the current version of its template." in out
    assert f"{len(TEMPLATES)} rule templates, 1 rule(s) made from them" in out

    sentinel_workspace.deploy(_bump(template_id, "1.9.0"))  # the next release changed the rule
    code, out = _cli(sentinel_workspace, "status")
    assert code == 0, out
    display = TEMPLATES[template_id]["properties"]["displayName"]
    assert (
        f"^ {display} (rule {before['name']}): made from {TEMPLATES[template_id]['version']}, template is 1.9.0"
        in out
    )
    code, out = _cli(sentinel_workspace, "status", "--json")
    doc = json.loads(out)
    assert doc["outdated"] == [
        {
            "rule": before["name"],
            "displayName": display,
            "ruleTemplateVersion": TEMPLATES[template_id]["version"],
            "template": template_id,
            "templateVersion": "1.9.0",
        }
    ]
    recommended = {t["id"] for t in doc["templates"] if t["recommended"]}
    assert recommended == RECOMMENDED
    (after,) = _by_template(sentinel_workspace)[template_id]
    assert after == before, "a newer template must not change the rule made from it"


def test_status_reads_every_page(sentinel_workspace: SentinelWorkspace) -> None:
    sentinel_workspace.api.page_size = 7
    sentinel_workspace.deploy()
    assert _cli(sentinel_workspace, "enable", "--all")[0] == 0
    code, out = _cli(sentinel_workspace, "status", "--json")
    assert code == 0
    doc = json.loads(out)
    assert {t["id"] for t in doc["templates"]} == set(TEMPLATES)
    assert all(len(t["rules"]) == 1 for t in doc["templates"])
    pages = [r for r in sentinel_workspace.api.requests if r.arg("$skipToken")]
    assert pages, "the stand-in paged, the command followed nextLink"


def test_no_solution_installed_says_how_to_install_it(sentinel_workspace: SentinelWorkspace) -> None:
    code, out = _cli(sentinel_workspace, "status")
    assert code == 1
    assert "solution is not installed in workspace soc-workspace" in out
    assert "deploySentinelContent=true" in out


# -- settings and faults ---------------------------------------------------------------------------------


def test_settings_problems_are_reported_all_at_once(sentinel_workspace: SentinelWorkspace) -> None:
    out = io.StringIO()
    code = main(
        ["sentinel", "status"],
        env={"SENTINEL_SUBSCRIPTION_ID": "not-a-guid", "SENTINEL_ARM_ENDPOINT": "http://arm.example.com"},
        out=out,
    )
    text = out.getvalue()
    assert code == 2
    for expected in (
        "SENTINEL_RESOURCE_GROUP: missing",
        "SENTINEL_WORKSPACE_NAME: missing",
        "SENTINEL_SUBSCRIPTION_ID: subscription 'not-a-guid' is not a subscription id",
        "SENTINEL_ARM_ENDPOINT: must use https",
        "SENTINEL_ARM_ENDPOINT: 'arm.example.com' is not a known host",
    ):
        assert expected in text, text
    assert not sentinel_workspace.api.requests


def _clean(out: str, capsys: pytest.CaptureFixture[str], identity: ManagedIdentitySim) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in out + err
    for token in list(identity._tokens):
        assert token not in out + err


def test_a_refused_token_says_how_to_sign_in_with_the_role(
    sentinel_workspace: SentinelWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel_workspace.deploy()
    sentinel_workspace.api.inject(
        401,
        {"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}},
        times=5,
    )
    code, out = _run(sentinel_workspace, "status")
    assert code == 1
    assert "did not accept the caller's token" in out and "InvalidAuthenticationToken" in out
    assert "Microsoft Sentinel Contributor" in out
    _clean(out, capsys, sentinel_workspace.identity)


def test_a_missing_role_names_the_role_to_grant_and_creates_nothing(
    sentinel_workspace: SentinelWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel_workspace.deploy()
    sentinel_workspace.api.deny("Microsoft.SecurityInsights/alertRules/write")
    code, out = _run(sentinel_workspace, "enable", "--recommended")
    assert code == 1
    assert "AuthorizationFailed" in out and "Microsoft.SecurityInsights/alertRules/write denied" in out
    assert "Assign 'Microsoft Sentinel Contributor' on the workspace" in out
    assert sentinel_workspace.rules() == []
    assert _run(sentinel_workspace, "status")[0] == 0, "reading needs no write permission"
    _clean(out, capsys, sentinel_workspace.identity)


def test_an_unknown_workspace_says_what_to_check(
    sentinel_workspace: SentinelWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    for env, expected in (
        (
            {
                "SENTINEL_WORKSPACE_RESOURCE_ID": sentinel_workspace.env()["SENTINEL_WORKSPACE_RESOURCE_ID"]
                + "x"
            },
            "the workspace",
        ),
        (
            {
                "SENTINEL_WORKSPACE_RESOURCE_ID": sentinel_workspace.env()[
                    "SENTINEL_WORKSPACE_RESOURCE_ID"
                ].replace("rg-auditsync", "rg-other")
            },
            "the resource group",
        ),
    ):
        code, out = _cli(sentinel_workspace, "status", env=env)
        assert code == 1
        assert f"x {expected} was not found" in out
        assert "Check SENTINEL_WORKSPACE_RESOURCE_ID" in out
        _clean(out, capsys, sentinel_workspace.identity)


def test_a_workspace_without_sentinel_says_how_to_enable_it(
    sentinel_workspace: SentinelWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel_workspace.workspace.onboarded = False
    code, out = _cli(sentinel_workspace, "enable", "--recommended")
    assert code == 1
    assert "Microsoft Sentinel is not enabled on workspace soc-workspace" in out
    assert "onboardSentinel=true" in out
    _clean(out, capsys, sentinel_workspace.identity)


def test_throttling_is_waited_out(sentinel_workspace: SentinelWorkspace) -> None:
    sentinel_workspace.deploy()
    sentinel_workspace.api.inject(
        429,
        {"error": {"code": "TooManyRequests", "message": "Too many requests."}},
        headers={"Retry-After": "0"},
        times=2,
        path="/subscriptions",
    )
    code, out = _run(sentinel_workspace, "enable", "--recommended", retry_total=3)
    assert code == 0, out
    assert set(_by_template(sentinel_workspace)) == RECOMMENDED


def test_throttling_that_outlasts_the_retries_is_reported(
    sentinel_workspace: SentinelWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel_workspace.deploy()
    sentinel_workspace.api.inject(
        429,
        {"error": {"code": "TooManyRequests", "message": "Slow down."}},
        headers={"Retry-After": "0"},
        times=10,
    )
    code, out = _run(sentinel_workspace, "status")
    assert code == 1
    assert "kept throttling" in out and "run the command again" in out
    _clean(out, capsys, sentinel_workspace.identity)


def test_a_rule_created_behind_a_cut_answer_is_not_created_twice(
    sentinel_workspace: SentinelWorkspace,
) -> None:
    """The service creates the rule, then the connection drops halfway through its answer: the retry PUTs
    the same rule name again, so the template still has exactly one rule."""
    api = sentinel_workspace.api

    def created_then_cut(request: Any) -> bool:
        if request.method != "PUT" or "/alertRules/" not in request.path:
            return False
        assert api.handle(request).status == 201  # the work is done before the answer is lost
        return True

    sentinel_workspace.deploy()
    api.inject_network("cut", times=1, when=created_then_cut)
    api.inject_network("reset", times=1, when=lambda r: r.method == "GET" and r.path.endswith("/alertRules"))
    code, out = _run(sentinel_workspace, "enable", "--recommended")
    assert code == 0, out
    cut = [r for r in api.requests if r.method == "PUT" and "/alertRules/" in r.path]
    assert len(cut) == len(RECOMMENDED) + 1 and cut[0].path == cut[1].path, "the cut PUT was retried as is"
    rules = _by_template(sentinel_workspace)
    assert set(rules) == RECOMMENDED and all(len(r) == 1 for r in rules.values())


def test_an_api_that_never_answers_ends_the_command_with_a_next_step(
    sentinel_workspace: SentinelWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel_workspace.api.inject_network("hang", times=10)
    code, out = _run(sentinel_workspace, "status", retry_total=1)
    assert code == 1
    assert "could not be reached" in out and "SENTINEL_ARM_ENDPOINT" in out
    _clean(out, capsys, sentinel_workspace.identity)


def test_the_package_data_names_the_deployed_solution() -> None:
    solution = Solution.load()
    assert solution.solution_id == CONTENT["solution"]["id"]
    assert solution.connector_id == CONTENT["dataConnector"]["id"]
    assert set(solution.recommended) == RECOMMENDED
