"""The generated sentinel/build/content.json (and the CLI's auditsync/content/solution.json): up to date
with their sources, and in the shape the infra templates install (rule templates, saved-search parsers and
hunting queries, the workbook, the connector definition, each with the ids and versions Content Hub
tracks, and the solution's package)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import yaml

from tests.fixtures.kql import committed_content
from tools import build_sentinel

ISO = re.compile(r"^P(T\d+[MH]|\d+D)$")


def _minutes(iso: str) -> int:
    match = ISO.match(iso)
    assert match, iso
    amount = int(re.sub(r"\D", "", iso))
    return amount * (1440 if iso.endswith("D") and "T" not in iso else 60 if iso.endswith("H") else 1)


PACKAGED = {"contentId", "version", "contentProductId", "templateName"}


def test_committed_files_are_up_to_date_with_their_sources() -> None:
    for path, text in build_sentinel.outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(build_sentinel.ROOT)} is stale: run python tools/build_sentinel.py and commit it"
        )
    assert build_sentinel.main(["--check"]) == 0


def test_top_level_shape() -> None:
    content = committed_content()
    assert list(content) == [
        "solution",
        "parsers",
        "huntingQueries",
        "alertRules",
        "workbook",
        "dataConnector",
    ]
    for parser in content["parsers"]:
        assert set(parser) == {"name", "displayName", "category", "query"} | PACKAGED
    for hunt in content["huntingQueries"]:
        assert (
            set(hunt) == {"name", "displayName", "query", "tactics", "techniques", "description"} | PACKAGED
        )
    for rule in content["alertRules"]:
        assert set(rule) == {"id", "kind", "version", "recommended", "properties"} | PACKAGED
        assert rule["contentId"] == rule["id"]
    assert set(content["workbook"]) == {"displayName", "serializedData"} | PACKAGED
    assert set(content["dataConnector"]) == {"id", "connectorUiConfig"} | PACKAGED
    assert content["dataConnector"]["id"] == content["dataConnector"]["connectorUiConfig"]["id"]


def test_the_solution_is_versioned_with_auditsync_and_lists_its_content() -> None:
    from auditsync import __version__

    solution = committed_content()["solution"]
    assert solution["version"] == __version__
    assert solution["source"] == {"kind": "Solution", "name": solution["name"], "sourceId": solution["id"]}
    assert solution["contentProductId"].startswith(solution["id"][:50] + "-sl-")
    content = committed_content()
    ids = [c["contentId"] for c in solution["dependencies"]["criteria"]]
    assert (
        len(ids)
        == len(set(ids))
        == 2 + len(content["parsers"]) + len(content["huntingQueries"]) + len(content["alertRules"])
    )
    products = [
        i["contentProductId"] for k in ("parsers", "huntingQueries", "alertRules") for i in content[k]
    ]
    assert len(products) == len(set(products))


def test_product_ids_change_with_the_version() -> None:
    a = build_sentinel.product_id("x.y", "AnalyticsRule", "id", "1.0.0")
    assert a == build_sentinel.product_id("x.y", "AnalyticsRule", "id", "1.0.0")
    assert a != build_sentinel.product_id("x.y", "AnalyticsRule", "id", "1.0.1")
    assert a.startswith("x.y-ar-")


def test_recommended_rules_come_from_the_list_and_a_rule_file_overrides_it(tmp_path: Path) -> None:
    content = committed_content()
    listed = build_sentinel.load_recommended()
    assert {r["id"] for r in content["alertRules"] if r["recommended"]} == listed
    assert 10 <= len(listed) < len(content["alertRules"])
    by_id = {r["id"]: r for r in content["alertRules"]}
    assert not by_id["c2eed73a-ee30-40e8-a29f-b88b081c5c92"]["recommended"], (
        "Secrets Manager blocked ranges ship as placeholders: never recommended"
    )
    source = next(p for p in build_sentinel.rule_files() if p.stem == "KeeperVaultExport")
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    assert build_sentinel.compile_rule(source)["recommended"] is True
    doc["recommended"] = False
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert build_sentinel.compile_rule(override)["recommended"] is False
    doc["recommended"] = "yes"
    override.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(build_sentinel.ContentError, match="recommended must be true or false"):
        build_sentinel.compile_rule(override)


def test_a_recommended_id_that_names_no_rule_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = build_sentinel.load_recommended() | {"00000000-0000-0000-0000-00000000dead"}
    monkeypatch.setattr(build_sentinel, "load_recommended", lambda: listed)
    with pytest.raises(build_sentinel.ContentError, match="no rule has the id"):
        build_sentinel.load_rules(build_sentinel.load_solution())


def test_the_cli_knows_the_solution_and_its_recommended_rules() -> None:
    data = json.loads(build_sentinel.CLI_OUTPUT.read_text(encoding="utf-8"))
    content = committed_content()
    assert data["solutionId"] == content["solution"]["id"]
    assert data["connectorId"] == content["dataConnector"]["id"]
    assert data["recommended"] == {
        r["id"]: r["properties"]["displayName"] for r in content["alertRules"] if r["recommended"]
    }


def test_parsers_come_before_the_parsers_that_call_them() -> None:
    names = [p["name"] for p in committed_content()["parsers"]]
    assert names.index("KeeperEvents") < names.index("ASimAuthenticationKeeper")
    assert names.index("OnePasswordEvents") < names.index("ASimAuditEventOnePassword")
    assert {"KeeperEvents", "OnePasswordEvents", "AuditSyncHealth"} <= set(names)


def test_rule_templates_are_arm_ready() -> None:
    rules = committed_content()["alertRules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for rule in rules:
        assert str(uuid.UUID(rule["id"])) == rule["id"]
        assert rule["kind"] == "Scheduled"
        props = rule["properties"]
        assert props["version"] == rule["version"] and props["status"] == "Available"
        assert props["enabled"] is False, "a template never says a rule made from it starts enabled"
        assert props["requiredDataConnectors"]
        for key in ("queryFrequency", "queryPeriod", "suppressionDuration"):
            assert ISO.match(props[key]), (props["displayName"], key, props[key])
        assert _minutes(props["queryFrequency"]) <= _minutes(props["queryPeriod"])
        assert props["triggerOperator"] in {"GreaterThan", "LessThan", "Equal", "NotEqual"}
        assert all(re.fullmatch(r"T\d{4}", t) for t in props["techniques"])
        assert "subTechniques" not in props, "alertRules@2024-03-01 defines no subTechniques"
        assert props["entityMappings"] and props["tactics"]


def test_workbook_has_health_keeper_and_onepassword_tabs() -> None:
    workbook = json.loads(committed_content()["workbook"]["serializedData"])
    assert workbook["version"] == "Notebook/1.0"
    tabs = {i["conditionalVisibility"]["value"]: i for i in workbook["items"] if i["type"] == 12}
    assert set(tabs) == {"health", "keeper", "onepassword"}
    for name, group in tabs.items():
        queries = [i for i in group["content"]["items"] if i["type"] == 3]
        assert len(queries) >= 4, f"tab {name} has only {len(queries)} queries"
    links = next(i for i in workbook["items"] if i["type"] == 11)["content"]["links"]
    assert {link["subTarget"] for link in links} == set(tabs)


def test_connector_card_is_connected_by_a_recent_ok_or_idle_heartbeat() -> None:
    card = committed_content()["dataConnector"]["connectorUiConfig"]
    for key in (
        "id",
        "title",
        "publisher",
        "descriptionMarkdown",
        "graphQueries",
        "dataTypes",
        "connectivityCriteria",
        "availability",
        "permissions",
        "instructionSteps",
    ):
        assert card.get(key), key
    (criteria,) = card["connectivityCriteria"]
    assert criteria["type"] == "IsConnectedQuery"
    (query,) = criteria["value"]
    assert query.startswith("AuditSyncHealth") and '"ok", "idle"' in query
    assert {d["name"] for d in card["dataTypes"]} == {
        "KeeperSecurityEventNewLogs_CL",
        "OnePasswordEventLogs_CL",
        "AuditSyncHealth_CL",
    }


def test_build_rejects_malformed_sources(tmp_path: Path) -> None:
    with pytest.raises(build_sentinel.ContentError, match="not of the form"):
        build_sentinel.iso_duration("5 minutes", where="x")
    assert build_sentinel.iso_duration("14d", where="x") == "P14D"
    assert build_sentinel.iso_duration("5m", where="x") == "PT5M"
    rule = tmp_path / "broken.yaml"
    rule.write_text(
        "id: 00000000-0000-0000-0000-000000000000\nname: broken\nkind: Scheduled\n", encoding="utf-8"
    )
    with pytest.raises(build_sentinel.ContentError, match=r"broken.yaml: missing description"):
        build_sentinel.compile_rule(rule, set())


def test_docs_list_every_rule_and_hunting_query() -> None:
    doc = (build_sentinel.ROOT / "docs" / "sentinel.md").read_text(encoding="utf-8")
    content = committed_content()
    names = [r["properties"]["displayName"].split(" - ", 1)[1] for r in content["alertRules"]]
    names += [h["displayName"] for h in content["huntingQueries"]]
    missing = [n for n in names if f"| {n} |" not in doc]
    assert not missing, f"docs/sentinel.md does not list {missing}"


def test_parsers_are_ordered_by_what_they_call_and_cycles_are_refused() -> None:
    a = {"name": "A", "query": "B | union C"}
    b = {"name": "B", "query": "C | take 1"}
    c = {"name": "C", "query": "T_CL"}
    assert [p["name"] for p in build_sentinel._order_by_dependency([a, b, c])] == ["C", "B", "A"]
    with pytest.raises(build_sentinel.ContentError, match="cycle"):
        build_sentinel._order_by_dependency([{"name": "X", "query": "Y"}, {"name": "Y", "query": "X"}])


def test_sub_techniques_become_their_parent_technique() -> None:
    assert build_sentinel.parent_techniques(["T1110.001", "T1110.003", "T1078"]) == ["T1110", "T1078"]
