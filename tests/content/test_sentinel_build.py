"""The generated sentinel/build/content.json: up to date with its sources, and in the shape the infra
templates deploy (ARM alertRules bodies, saved-search parsers, workbook, GenericUI connector card)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from tests.fixtures.kql import committed_content
from tools import build_sentinel

ISO = re.compile(r"^P(T\d+[MH]|\d+D)$")


def _minutes(iso: str) -> int:
    match = ISO.match(iso)
    assert match, iso
    amount = int(re.sub(r"\D", "", iso))
    return amount * (1440 if iso.endswith("D") and "T" not in iso else 60 if iso.endswith("H") else 1)


def test_committed_content_is_up_to_date_with_its_sources() -> None:
    committed = build_sentinel.OUTPUT.read_text(encoding="utf-8")
    assert committed == build_sentinel.render(build_sentinel.build_content()), (
        "sentinel/build/content.json is stale: run python tools/build_sentinel.py and commit it"
    )
    assert build_sentinel.main(["--check"]) == 0


def test_top_level_shape() -> None:
    content = committed_content()
    assert list(content) == ["parsers", "huntingQueries", "alertRules", "workbook", "dataConnector"]
    for parser in content["parsers"]:
        assert set(parser) == {"name", "displayName", "category", "query"}
    for hunt in content["huntingQueries"]:
        assert set(hunt) == {"name", "displayName", "query", "tactics", "techniques", "description"}
    assert set(content["workbook"]) == {"displayName", "serializedData"}
    assert set(content["dataConnector"]) == {"connectorUiConfig"}


def test_parsers_come_before_the_parsers_that_call_them() -> None:
    names = [p["name"] for p in committed_content()["parsers"]]
    assert names.index("KeeperEvents") < names.index("ASimAuthenticationKeeper")
    assert names.index("OnePasswordEvents") < names.index("ASimAuditEventOnePassword")
    assert {"KeeperEvents", "OnePasswordEvents", "AuditSyncHealth"} <= set(names)


def test_alert_rules_are_arm_ready() -> None:
    rules = committed_content()["alertRules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for rule in rules:
        assert str(uuid.UUID(rule["id"])) == rule["id"]
        assert rule["kind"] == "Scheduled"
        props = rule["properties"]
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
        "title",
        "publisher",
        "descriptionMarkdown",
        "graphQueriesTableName",
        "graphQueries",
        "sampleQueries",
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
        build_sentinel.compile_rule(rule)


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
