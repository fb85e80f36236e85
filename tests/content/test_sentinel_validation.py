"""The validation layer that fails like Microsoft's pipeline: ATT&CK pairs, entity mappings, custom
details and frequency limits (sentinel_schema), every resource of the solution (content package,
templates, metadata, the connector definition, the rule templates and the rules made from them) against
the azure-mgmt-securityinsight models and the api-version we deploy, the connector card against that
version's schema, dynamic paths the vendors never send and DCR transforms that use what a transformation
may not. Each check has a canary that must fail, so none passes vacuously."""

from __future__ import annotations

import copy
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.mgmt.applicationinsights.v2023_06_01.models import Workbook
from azure.mgmt.securityinsight import models as si_models

from auditsync.content import api
from auditsync.content.templates import RuleTemplate
from auditsync.tables import TABLES
from tests.content import sentinel_models as models
from tests.content import sentinel_schema as schema
from tests.content.azure_models import Validator, _tree
from tests.fixtures.infra import ARM_PATH
from tests.fixtures.kql import (
    PATH_CANARIES,
    SCENARIOS,
    TRANSFORM_CANARIES,
    SentinelKql,
    committed_content,
    transform_name,
)
from tests.fixtures.sentinel_api import Deployed, solution_resources, solution_template
from tools import build_sentinel

# The session's Kusto.Language analysis (sentinel_kql) runs on one worker, not once per worker.
pytestmark = pytest.mark.xdist_group("sentinel_kql")

CONTENT = committed_content()
PARSERS = [p["name"] for p in CONTENT["parsers"]]
QUERIES = [name for name, _ in build_sentinel.all_queries(CONTENT)]
RULES = {r["properties"]["displayName"]: r for r in CONTENT["alertRules"]}
RULE_FILES = build_sentinel.rule_files()
SENTINEL_INFRA = build_sentinel.ROOT / "infra" / "modules" / "sentinelContent.bicep"
#: Every resource the Deploy to Azure template installs for the solution, evaluated as ARM would.
SOLUTION: list[Deployed] = solution_resources(
    solution_template(json.loads(ARM_PATH.read_text(encoding="utf-8")))
)


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
def test_a_rule_made_from_the_template_is_what_the_deployed_api_version_defines(name: str) -> None:
    """The body ``sentinel enable`` sends: the product's own conversion of the installed template."""
    template = RuleTemplate.from_content_template(_installed_rule_template(name))
    assert template is not None
    rule = template.rule()
    assert rule["kind"] == "Scheduled"
    assert schema.alert_rule_body_problems(rule["properties"]) == []
    assert rule["properties"]["alertRuleTemplateName"] == RULES[name]["id"]
    assert rule["properties"]["templateVersion"] == RULES[name]["version"]


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_template_is_what_the_template_model_defines(name: str) -> None:
    props = dict(RULES[name]["properties"])
    creation = {k: props.pop(k) for k in models.RULE_CREATION_PROPERTIES if k in props}
    assert set(creation) == set(models.RULE_CREATION_PROPERTIES)
    assert models.model_problems(props, si_models.ScheduledAlertRuleTemplateProperties, name) == []
    assert not models.required_fields(si_models.ScheduledAlertRuleTemplateProperties) - set(props)
    rule_props = set(schema.ALERT_RULES_API["ScheduledAlertRuleProperties"]["properties"])
    assert set(creation) <= rule_props, "what a rule starts with must be a property of a rule"
    assert "subTechniques" not in props, "techniques are sent as parents (alertRules@2024-03-01)"


def test_template_checks_report_what_the_model_does_not_define() -> None:
    props = dict(next(iter(RULES.values()))["properties"])
    props["queryFrequncy"] = "PT1H"
    props["entityMappings"] = [{"entityType": "Account", "fieldMapings": []}]
    problems = models.model_problems(props, si_models.ScheduledAlertRuleTemplateProperties, "t")
    assert "t.queryFrequncy: not defined by ScheduledAlertRuleTemplateProperties" in problems, problems
    assert "t.entityMappings[0].fieldMapings: not defined by EntityMapping" in problems, problems


def test_sub_techniques_exist_only_in_later_api_versions() -> None:
    """Verified against both sources: the stable 2024-03-01 spec has no subTechniques (so the build sends
    parents only), while azure-mgmt-securityinsight's models (a later preview API) do define it."""
    assert "subTechniques" not in schema.ALERT_RULES_API["ScheduledAlertRuleProperties"]["properties"]
    sdk = _rest_names(si_models.ScheduledAlertRuleProperties)
    assert "subTechniques" in sdk
    spec_names = set(schema.ALERT_RULES_API["ScheduledAlertRuleProperties"]["properties"])
    assert spec_names <= sdk | {"properties"}, spec_names - sdk
    assert "contentTemplates@2024-03-01" in SENTINEL_INFRA.read_text(encoding="utf-8")
    assert build_sentinel.ALERT_RULES_API_VERSION == "2024-03-01"
    assert api.API_VERSION == build_sentinel.SECURITY_INSIGHTS_API_VERSION == "2024-03-01"
    assert schema.alert_rule_body_problems({**_any_rule(), "subTechniques": ["T1110.001"]}) == [
        "property 'subTechniques' not defined by alertRules@2024-03-01"
    ]


def _any_rule() -> dict[str, Any]:
    template = RuleTemplate.from_content_template(_installed_rule_template(next(iter(RULES))))
    assert template is not None
    properties: dict[str, Any] = template.rule()["properties"]
    return properties


def _installed_rule_template(name: str) -> dict[str, Any]:
    """A rule's content template as the deployment writes it (what the API returns, expanded)."""
    rule_id = RULES[name]["id"]
    return next(
        r.body
        for r in SOLUTION
        if r.type.endswith("/contentTemplates") and r.body["properties"]["contentId"] == rule_id
    )


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


def test_connector_card_matches_the_customizable_schema_of_the_deployed_api_version() -> None:
    card = CONTENT["dataConnector"]["connectorUiConfig"]
    assert models.connector_problems(card) == []
    infra = SENTINEL_INFRA.read_text(encoding="utf-8")
    assert "dataConnectorDefinitions@" + models.CONNECTOR_SCHEMA["apiVersion"] in infra
    (connector,) = [r for r in SOLUTION if r.type == "Microsoft.SecurityInsights/dataConnectorDefinitions"]
    assert connector.body["kind"] in models.CONTENT_API["DataConnectorDefinitionKind"]
    assert models.model_problems(connector.body, si_models.CustomizableConnectorDefinition, "connector") == []


def test_customizable_schema_agrees_with_the_sdk_model() -> None:
    """The hand-transcribed schema and azure-mgmt-securityinsight name the same properties and required ones."""
    model = si_models.CustomizableConnectorUiConfig
    assert _rest_names(model) == set(models.CONNECTOR_SCHEMA["properties"])
    assert _required_rest_names(model) == set(models.CONNECTOR_SCHEMA["required"])


def test_connector_check_reports_what_the_customizable_schema_does_not_define() -> None:
    """GenericUI's graphQueriesTableName (which Microsoft's 1Password package still writes into a
    Customizable definition) is not in the spec; neither is a misspelt criteria key."""
    card = copy.deepcopy(CONTENT["dataConnector"]["connectorUiConfig"])
    card["connectivityCriterias"] = card.pop("connectivityCriteria")
    card["graphQueriesTableName"] = "AuditSyncHealth_CL"
    del card["title"]
    problems = "\n".join(models.connector_problems(card))
    assert "'title' is a required property" in problems
    assert "'connectivityCriteria' is a required property" in problems
    assert re.search(
        r"Additional properties are not allowed \('(connectivityCriterias|graphQueriesTableName)'", problems
    )


# -- the solution: package, templates, metadata --------------------------------------------------------

_INNER_MODELS: dict[str, type] = {
    "Microsoft.SecurityInsights/AlertRuleTemplates": si_models.ScheduledAlertRuleTemplate,
    "Microsoft.OperationalInsights/workspaces/providers/metadata": si_models.MetadataModel,
    "Microsoft.OperationalInsights/workspaces/providers/dataConnectorDefinitions": (
        si_models.CustomizableConnectorDefinition
    ),
}
#: Keys of a resource in an ARM template that are the template language's, not the resource body's.
_TEMPLATE_KEYS = ("type", "apiVersion", "name", "dependsOn")


def _inner(resource: Deployed) -> list[dict[str, Any]]:
    inner: list[dict[str, Any]] = resource.body["properties"]["mainTemplate"]["resources"]
    return inner


def test_the_solution_is_one_package_with_a_template_for_every_piece_of_content() -> None:
    (package,) = [r for r in SOLUTION if r.type == "Microsoft.SecurityInsights/contentPackages"]
    props = package.body["properties"]
    assert props["contentKind"] == "Solution" and props["version"] == CONTENT["solution"]["version"]
    templates = [r.body["properties"] for r in SOLUTION if r.type.endswith("/contentTemplates")]
    expected = {
        ("DataConnector", CONTENT["dataConnector"]["contentId"]),
        ("Workbook", CONTENT["workbook"]["contentId"]),
    }
    expected |= {("Parser", p["contentId"]) for p in CONTENT["parsers"]}
    expected |= {("HuntingQuery", h["contentId"]) for h in CONTENT["huntingQueries"]}
    expected |= {("AnalyticsRule", r["id"]) for r in CONTENT["alertRules"]}
    assert {(t["contentKind"], t["contentId"]) for t in templates} == expected
    assert len(templates) == len(expected)
    criteria = {(c["kind"], c["contentId"], c["version"]) for c in props["dependencies"]["criteria"]}
    assert criteria == {(t["contentKind"], t["contentId"], t["version"]) for t in templates}
    assert all(
        t["packageId"] == props["contentId"] and t["packageVersion"] == props["version"] for t in templates
    )


def _resource_problems(resource: Deployed) -> list[str]:
    """Every problem of one resource of the solution (and of the resources inside a content template)."""
    body, props = resource.body, resource.body.get("properties") or {}
    if resource.type == "Microsoft.SecurityInsights/contentPackages":
        problems = models.model_problems(body, si_models.PackageModel, resource.path)
        return (
            problems
            + models.required_problems(props, "packageProperties")
            + models.provenance_problems(props)
        )
    if resource.type == "Microsoft.SecurityInsights/metadata":
        problems = models.model_problems(body, si_models.MetadataModel, resource.path)
        return (
            problems
            + models.required_problems(props, "metadataProperties")
            + models.provenance_problems(props)
        )
    if resource.type == "Microsoft.SecurityInsights/dataConnectorDefinitions":
        return models.model_problems(body, si_models.CustomizableConnectorDefinition, resource.path)
    if resource.type != "Microsoft.SecurityInsights/contentTemplates":
        return []  # saved searches: no model (tests/content/azure_models.py says why)
    problems = models.model_problems(body, si_models.TemplateModel, resource.path)
    problems += models.required_problems(props, "templateProperties") + models.provenance_problems(props)
    for inner in _inner(resource):
        inner_body = {k: v for k, v in inner.items() if k not in _TEMPLATE_KEYS}
        where = f"{resource.path} {inner['type']}"
        if inner["type"] in _INNER_MODELS:
            checked = inner_body
            if inner["type"].endswith("/AlertRuleTemplates"):  # see test_rule_template_is_what_...
                extra = models.RULE_CREATION_PROPERTIES
                checked = {
                    **inner_body,
                    "properties": {k: v for k, v in inner_body["properties"].items() if k not in extra},
                }
            problems += models.model_problems(checked, _INNER_MODELS[inner["type"]], where)
        elif inner["type"] == "Microsoft.Insights/workbooks":
            validator = Validator(
                importlib.import_module("azure.mgmt.applicationinsights.v2023_06_01.models")
            )
            problems += validator.check(inner_body, _tree(Workbook), where)
        elif inner["type"] != "Microsoft.OperationalInsights/workspaces/savedSearches":
            problems.append(f"{where}: no model to check this resource type against")
        if inner["type"].endswith("/metadata"):
            problems += models.required_problems(inner["properties"], "metadataProperties")
            problems += models.provenance_problems(inner["properties"])
    return problems


def test_every_resource_of_the_solution_validates_against_the_models() -> None:
    problems = [p for resource in SOLUTION for p in _resource_problems(resource)]
    assert problems == []
    kinds = {r.type for r in SOLUTION} | {
        i["type"] for r in SOLUTION if r.type.endswith("/contentTemplates") for i in _inner(r)
    }
    assert kinds >= {
        *_INNER_MODELS,
        "Microsoft.Insights/workbooks",
        "Microsoft.SecurityInsights/contentPackages",
    }


def test_model_checks_report_a_misspelt_or_missing_property() -> None:
    package = next(r for r in SOLUTION if r.type == "Microsoft.SecurityInsights/contentPackages")
    body = copy.deepcopy(package.body)
    body["properties"]["descriptionHtml"] = (
        "<p>what Microsoft's packages write, and the model does not define</p>"
    )
    body["properties"]["source"]["sourceID"] = "x"
    del body["properties"]["contentProductId"]
    problems = _resource_problems(Deployed(package.type, package.api_version, "p", body))
    assert "p.properties.descriptionHtml: not defined by PackageProperties" in problems
    assert "p.properties.source.sourceID: not defined by MetadataSource" in problems
    assert "required property 'contentProductId' of packageProperties@2024-03-01 missing" in problems
    template = next(
        r for r in SOLUTION if r.type.endswith("/contentTemplates") and "Workbook" in str(r.body)[:4000]
    )
    body = copy.deepcopy(template.body)
    body["properties"]["mainTemplate"]["resources"][0]["properties"]["serialisedData"] = "{}"
    problems = _resource_problems(Deployed(template.type, template.api_version, "t", body))
    assert any("serialisedData: unknown property" in p for p in problems), problems


# -- the connector every rule names -----------------------------------------------------------------------

#: Connector ids of Microsoft's own that a rule may name: the token vault's audit log comes from a
#: diagnostic setting on the vault, which Sentinel shows on Microsoft's Azure Key Vault connector.
MICROSOFT_CONNECTORS = {"AzureKeyVault": {"AzureDiagnostics", "AZKVAuditLogs"}}


def test_every_rule_and_hunting_query_names_the_deployed_connector() -> None:
    (connector,) = [r for r in SOLUTION if r.type == "Microsoft.SecurityInsights/dataConnectorDefinitions"]
    deployed = connector.path.rsplit("/", 1)[1]
    assert (
        deployed == connector.body["properties"]["connectorUiConfig"]["id"] == CONTENT["dataConnector"]["id"]
    )
    assert "name: content.dataConnector.id" in SENTINEL_INFRA.read_text(encoding="utf-8")
    ours = {t.name for t in TABLES.values()}
    for path in [*RULE_FILES, *sorted(build_sentinel.SENTINEL.glob("hunting/*.yaml"))]:
        for required in _load(path)["requiredDataConnectors"]:
            types = set(required["dataTypes"])
            if required["connectorId"] in MICROSOFT_CONNECTORS:
                assert types <= MICROSOFT_CONNECTORS[required["connectorId"]], path.name
            else:
                assert required["connectorId"] == deployed, f"{path.name} names {required['connectorId']!r}"
                assert types <= ours, path.name
    in_templates = {
        c["connectorId"] for r in CONTENT["alertRules"] for c in r["properties"]["requiredDataConnectors"]
    }
    assert in_templates == {deployed} | set(MICROSOFT_CONNECTORS)


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
