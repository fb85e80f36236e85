"""The validation layer that fails like Microsoft's pipeline: ATT&CK pairs, entity mappings, custom
details and frequency limits (sentinel_schema), the compiled alert rule body against the alert rule API
version we deploy, the connector card against the GenericUI schema of the dataConnectors API version we
deploy (and the azure-mgmt-securityinsight models), dynamic paths the vendors never send and DCR transforms
that use what a transformation may not. Each check has a canary that must fail, so none passes vacuously."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.mgmt.securityinsight import models as si_models

from auditsync.tables import TABLES
from tests.content import sentinel_schema as schema
from tests.fixtures.kql import (
    PATH_CANARIES,
    SCENARIOS,
    TRANSFORM_CANARIES,
    SentinelKql,
    committed_content,
    transform_name,
)
from tools import build_sentinel

# The session's Kusto.Language analysis (sentinel_kql) runs on one worker, not once per worker.
pytestmark = pytest.mark.xdist_group("sentinel_kql")

CONTENT = committed_content()
PARSERS = [p["name"] for p in CONTENT["parsers"]]
QUERIES = [name for name, _ in build_sentinel.all_queries(CONTENT)]
RULES = {r["properties"]["displayName"]: r for r in CONTENT["alertRules"]}
RULE_FILES = build_sentinel.rule_files()
SENTINEL_INFRA = build_sentinel.ROOT / "infra" / "modules" / "sentinelContent.bicep"


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


# -- dynamic paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("parser", PARSERS)
def test_parser_reads_only_fields_the_vendor_sends(
    sentinel_kql: SentinelKql, scenario: str, parser: str
) -> None:
    assert schema.path_problems(sentinel_kql.parser(scenario, parser).paths) == []


@pytest.mark.parametrize("name", QUERIES)
def test_content_reads_only_fields_the_vendor_sends(sentinel_kql: SentinelKql, name: str) -> None:
    assert schema.path_problems(sentinel_kql.query("workspace", name).paths) == []


def test_path_check_sees_the_paths_content_reads(sentinel_kql: SentinelKql) -> None:
    """Not vacuous: the parsers' own reads are found and recognised as vendor fields."""
    texts = {p.text for p in sentinel_kql.parser("workspace", "OnePasswordEvents").paths}
    assert {"Session.ip", "Client.ip_address", "ActorDetails.email", "Location.country"} <= texts
    keeper = {p.text for p in sentinel_kql.parser("workspace", "KeeperEvents").paths}
    assert "Data.record_uid" in keeper


@pytest.mark.parametrize("name", sorted(PATH_CANARIES))
def test_path_check_reports_fields_the_vendor_never_sends(sentinel_kql: SentinelKql, name: str) -> None:
    checked = sentinel_kql.query("workspace", name)
    assert not checked.errors, "the canary must bind: only the path is wrong"
    problems = schema.path_problems(checked.paths)
    assert len(problems) == 1, problems


def test_every_dynamic_vendor_column_has_declared_fields() -> None:
    """A new dynamic column needs its known paths declared, or the path check would skip it."""
    for table in TABLES.values():
        for name, kind in table.table_columns:
            if kind == "dynamic":
                assert schema.root_key(name) in schema.ROOT_FIELDS, f"{table.name}.{name}"


# -- DCR transforms -------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(TABLES))
def test_dcr_transform_uses_only_what_a_transformation_allows(sentinel_kql: SentinelKql, table: str) -> None:
    checked = sentinel_kql.query("workspace", transform_name(table))
    assert schema.transform_problems(checked.operators, checked.calls) == []


@pytest.mark.parametrize("name", sorted(TRANSFORM_CANARIES))
def test_transform_check_reports_what_a_transformation_refuses(sentinel_kql: SentinelKql, name: str) -> None:
    checked = sentinel_kql.query("workspace", name)
    assert not checked.errors, checked.describe_errors()
    problems = schema.transform_problems(checked.operators, checked.calls)
    assert problems and all("not allowed in a DCR transformation" in p for p in problems)


# -- alert rules: the validators' rules and the API body ---------------------------------------------------


def test_attack_check_wants_a_tactic_of_each_technique() -> None:
    doc = {"tactics": ["PrivilegeEscalation", "Collection"], "relevantTechniques": ["T1098", "T1213"]}
    (problem,) = schema.attack_problems(doc)
    assert "T1098" in problem and "Persistence" in problem
    doc = {"tactics": ["InitialAccess"], "relevantTechniques": ["T1090.003"]}
    (problem,) = schema.attack_problems(doc)
    assert "CommandAndControl" in problem
    assert "not in" in schema.attack_problems({"tactics": ["Impact"], "relevantTechniques": ["T9999"]})[0]


def test_rule_checks_apply_the_validators_limits(sentinel_kql: SentinelKql) -> None:
    path = next(p for p in RULE_FILES if p.stem == "AuditSyncStreamSilent")
    good = _load(path)
    checked = sentinel_kql.query("workspace", f"rule/{good['name']}")
    assert checked.columns is not None
    projected = {c for c, _ in checked.columns}
    assert schema.rule_problems(good, projected) == []
    bad = copy.deepcopy(good)
    bad["queryFrequency"], bad["queryPeriod"] = "15m", "2d"
    bad["customDetails"] = {f"Detail{i}": "Stream" for i in range(21)} | {
        "1stBad": "Stream",
        "Ok": "not a column",
    }
    bad["entityMappings"] = [
        {"entityType": "Account", "fieldMappings": [{"identifier": "UPNSuffix", "columnName": "Stream"}]}
    ] * 6
    bad["alertDetailsOverride"] = {"alertDisplayNameFormat": "{{Stream}} {{Source}} {{Stream}} {{Source}}"}
    bad["triggerThreshold"] = 10_001
    problems = "\n".join(schema.rule_problems(bad, projected))
    for expected in (
        "needs a queryFrequency of at least 1h",
        "23 custom details, Sentinel allows 20",
        "custom detail key '1stBad'",
        "value 'not a column' is not a column name",
        "6 entity mappings, Sentinel allows 1..5",
        "Account mapping lacks a strong identifier",
        "has 4 placeholders, Sentinel allows 3",
        "triggerThreshold 10001 above 10000",
    ):
        assert expected in problems, f"{expected!r} not in\n{problems}"


@pytest.mark.parametrize("name", sorted(RULES))
def test_compiled_rule_is_what_the_deployed_api_version_defines(name: str) -> None:
    assert schema.alert_rule_body_problems(RULES[name]["properties"]) == []


def test_sub_techniques_exist_only_in_later_api_versions() -> None:
    """Verified against both sources: the stable 2024-03-01 spec has no subTechniques (so the build sends
    parents only), while azure-mgmt-securityinsight's models (a later preview API) do define it."""
    assert "subTechniques" not in schema.ALERT_RULES_API["ScheduledAlertRuleProperties"]["properties"]
    sdk = _rest_names(si_models.ScheduledAlertRuleProperties)
    assert "subTechniques" in sdk
    spec_names = set(schema.ALERT_RULES_API["ScheduledAlertRuleProperties"]["properties"])
    assert spec_names <= sdk | {"properties"}, spec_names - sdk
    assert "alertRules@2024-03-01" in SENTINEL_INFRA.read_text(encoding="utf-8")
    assert build_sentinel.ALERT_RULES_API_VERSION == "2024-03-01"
    assert schema.alert_rule_body_problems({**_any_rule(), "subTechniques": ["T1110.001"]}) == [
        "property 'subTechniques' not defined by alertRules@2024-03-01"
    ]


def _any_rule() -> dict[str, Any]:
    properties: dict[str, Any] = next(iter(RULES.values()))["properties"]
    return dict(properties)


# -- connector card ---------------------------------------------------------------------------------------


def _rest_fields(model: type) -> dict[str, str]:
    """Attribute name -> JSON name of every field the SDK model (and its bases) declares."""
    fields: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        for attr, value in vars(klass).items():
            if type(value).__name__ == "_RestField":
                fields[attr] = getattr(value, "_rest_name_input", None) or attr
    return fields


def _rest_names(model: type) -> set[str]:
    return set(_rest_fields(model).values())


def _required_rest_names(model: type) -> set[str]:
    """Fields whose annotation is not Optional (the models mark required ones that way)."""
    fields = _rest_fields(model)
    annotations: dict[str, Any] = {}
    for klass in reversed(model.__mro__):
        annotations.update(getattr(klass, "__annotations__", {}))
    return {rest for attr, rest in fields.items() if "Optional" not in str(annotations.get(attr, ""))}


def test_connector_card_matches_the_generic_ui_schema_of_the_deployed_api_version() -> None:
    card = CONTENT["dataConnector"]["connectorUiConfig"]
    assert schema.connector_problems(card) == []
    assert "dataConnectors@" + schema.CONNECTOR_SCHEMA["apiVersion"] in SENTINEL_INFRA.read_text(
        encoding="utf-8"
    )


def test_generic_ui_schema_agrees_with_the_sdk_model() -> None:
    """The hand-transcribed schema and azure-mgmt-securityinsight name the same properties and required ones."""
    model = si_models.CodelessUiConnectorConfigProperties
    assert _rest_names(model) == set(schema.CONNECTOR_SCHEMA["properties"])
    assert _required_rest_names(model) == set(schema.CONNECTOR_SCHEMA["required"])


def test_connector_check_rejects_the_repository_spelling() -> None:
    card = copy.deepcopy(CONTENT["dataConnector"]["connectorUiConfig"])
    card["connectivityCriterias"] = card.pop("connectivityCriteria")
    del card["graphQueriesTableName"]
    card["id"] = "AuditSyncPasswordManagers"
    problems = "\n".join(schema.connector_problems(card))
    assert "'graphQueriesTableName' is a required property" in problems
    assert "'connectivityCriteria' is a required property" in problems
    assert re.search(r"Additional properties are not allowed \('(connectivityCriterias|id)'", problems)


def test_data_files_name_their_source() -> None:
    for path in sorted(schema.DATA.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc.get("source") or doc.get("$comment"), f"{path.name} does not say where its facts come from"


# -- deployment-time values ----------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"__AUDITSYNC_[A-Z_]+__")


def test_placeholders_appear_only_in_parsers_and_both_templates_fill_them() -> None:
    """The token vault parser names the vault and the collector's identity; the templates write them in.
    Nothing else may carry a placeholder, because only parser queries are rewritten at deployment."""
    in_parsers = {m for p in CONTENT["parsers"] for m in PLACEHOLDER.findall(p["query"])}
    assert in_parsers == {"__AUDITSYNC_KEY_VAULT_NAME__", "__AUDITSYNC_FUNCTION_APP_PRINCIPAL_ID__"}
    elsewhere = [name for name, text in build_sentinel.all_queries(CONTENT) if PLACEHOLDER.search(text)]
    assert elsewhere == []
    bicep = SENTINEL_INFRA.read_text(encoding="utf-8")
    arm = json.loads((build_sentinel.ROOT / "infra" / "azuredeploy.json").read_text(encoding="utf-8"))
    nested = next(r for r in arm["resources"] if r.get("name") == "auditsync-sentinel")
    parsers = next(
        r for r in nested["properties"]["template"]["resources"] if r.get("copy", {}).get("name") == "parsers"
    )
    for placeholder in in_parsers:
        assert f"'{placeholder}'" in bicep
        assert f"'{placeholder}'" in parsers["properties"]["query"]
    assert set(nested["properties"]["parameters"]) >= {"keyVaultName", "functionAppPrincipalId"}


# -- the two shapes of the vault's audit log, and the stopped-collector rule --------------------------------


def test_vault_parser_reads_either_shape_alone_with_the_same_schema() -> None:
    """The diagnostic setting writes AZKVAuditLogs or AzureDiagnostics; the parser binds on a workspace
    that has only one of them and returns the same columns."""
    from tests.fixtures.kql import SENTINEL_BUILTINS, keyvault_tables
    from tools import kql

    parser = next(p for p in CONTENT["parsers"] if p["name"] == "AuditSyncKeyVaultAudit")
    scenarios = [
        kql.Scenario(table["name"], [table], [(parser["name"], parser["query"])], [], SENTINEL_BUILTINS)
        for table in keyvault_tables()
    ]
    results = kql.check(scenarios)
    schemas = set()
    for scenario in scenarios:
        checked = results[scenario.name].functions[parser["name"]]
        assert not checked.errors, checked.describe_errors()
        assert checked.columns and not [c for c in checked.columns if c[1] == "unknown"]
        schemas.add(tuple(checked.columns))
    assert len(schemas) == 1


def test_stopped_collector_is_still_detected_within_the_hour() -> None:
    """The fix for the 2-day period keeps a 15-minute cadence: a look-back of one day (under Sentinel's
    2-day limit for frequent rules) that the query's own time filter matches."""
    doc = _load(next(p for p in RULE_FILES if p.stem == "AuditSyncStreamSilent"))
    assert doc["queryFrequency"] == "15m" and doc["queryPeriod"] == "1d"
    assert f"ago({doc['queryPeriod']})" in doc["query"]
    assert re.search(r"let silence = 30m;", doc["query"])
