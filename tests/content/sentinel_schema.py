"""What a valid analytics rule or hunting query file looks like: the checks Sentinel's content pipeline
(Azure-Sentinel's detection template validators) and the alert rule API apply, which a deployment would
otherwise find one at a time. Each check returns readable problems instead of asserting, so one test run
lists every defect of every file. The facts the checks use are data under tests/content/data, each file
naming its source."""

from __future__ import annotations

import fnmatch
import json
import re
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tools.build_sentinel import TRIGGER_OPERATORS, duration_minutes
from tools.kql import DynamicPath

DATA = Path(__file__).parent / "data"


def _data(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return loaded


#: Parent technique -> the ATT&CK Enterprise tactics it belongs to (source named in the file).
ATTACK = _data("mitre_attack_enterprise.json")
TACTICS = frozenset(ATTACK["tactics"])
TECHNIQUE_TACTICS: dict[str, list[str]] = ATTACK["techniques"]
#: Entity types, their identifiers and the identifier sets Sentinel requires (source named in the file).
ENTITIES = _data("sentinel_entity_identifiers.json")
ENTITY_IDENTIFIERS = {kind: set(e["identifiers"]) for kind, e in ENTITIES["entities"].items()}
MIN_ENTITY_MAPPINGS, MAX_ENTITY_MAPPINGS = ENTITIES["limits"]["entityMappings"]
MIN_IDENTIFIERS_PER_ENTITY, MAX_IDENTIFIERS_PER_ENTITY = ENTITIES["limits"]["fieldMappings"]
COLUMN_NAME = re.compile(ENTITIES["limits"]["columnNamePattern"])

TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
SEVERITIES = frozenset({"Informational", "Low", "Medium", "High"})
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
DURATION = re.compile(r"^\d+[mhd]$")
MIN_MINUTES, MAX_MINUTES = 5, 14 * 24 * 60
#: Sentinel refuses a query period of two days or more unless the rule runs at most once an hour.
LONG_PERIOD_MINUTES, LONG_PERIOD_MIN_FREQUENCY = 2 * 24 * 60, 60
MAX_NAME, MAX_DESCRIPTION, MAX_QUERY, MAX_THRESHOLD = 256, 5000, 10_000, 10_000
#: customDetails (ScheduledTemplateInternalModel): at most 20, keys up to 20 characters, both identifiers.
MAX_CUSTOM_DETAILS, MAX_CUSTOM_DETAIL_KEY = 20, 20
CUSTOM_DETAIL_KEY = re.compile(r"^[a-zA-Z]+\w*$")
CUSTOM_DETAIL_VALUE = re.compile(r"^[a-zA-Z_]+\w*$")
#: alertDetailsOverride formats may reference at most three columns each.
MAX_PLACEHOLDERS = 3

REQUIRED_RULE_FIELDS = (
    "id",
    "name",
    "description",
    "severity",
    "requiredDataConnectors",
    "queryFrequency",
    "queryPeriod",
    "triggerOperator",
    "triggerThreshold",
    "tactics",
    "relevantTechniques",
    "query",
    "entityMappings",
    "version",
    "kind",
)


def attack_problems(doc: dict[str, Any]) -> list[str]:
    """Tactic names as the API spells them, technique ids, and every technique's parent mapped, in
    ATT&CK Enterprise, to at least one listed tactic (what the content pipeline refuses otherwise)."""
    problems = []
    tactics = doc.get("tactics") or []
    techniques = doc.get("relevantTechniques") or []
    if not tactics:
        problems.append("no tactics")
    if not techniques:
        problems.append("no relevantTechniques")
    problems += [f"unknown tactic {t!r}" for t in tactics if t not in TACTICS]
    for t in techniques:
        if not TECHNIQUE.match(str(t)):
            problems.append(f"technique {t!r} is not of the form T1234 or T1234.001")
            continue
        parent = str(t).split(".")[0]
        known = TECHNIQUE_TACTICS.get(parent)
        if known is None:
            problems.append(f"technique {t!r} is not in tests/content/data/mitre_attack_enterprise.json")
        elif not set(known) & set(tactics):
            problems.append(
                f"technique {t!r} needs one of the tactics {known}, the rule lists {list(tactics)}"
            )
    return problems


def _is_guid(value: Any) -> bool:
    try:
        return str(uuid.UUID(str(value))) == str(value).lower()
    except ValueError:
        return False


def rule_problems(doc: dict[str, Any], projected: Collection[str] | None) -> list[str]:
    """Everything wrong with one analytics rule. ``projected`` are the columns the rule's query returns
    according to Kusto.Language (None when the query could not be analysed)."""
    problems = [f"missing {f}" for f in REQUIRED_RULE_FIELDS if doc.get(f) in (None, "", [])]
    if doc.get("triggerThreshold") == 0:
        problems = [p for p in problems if p != "missing triggerThreshold"]
    if doc.get("id") and not _is_guid(doc["id"]):
        problems.append(f"id {doc['id']!r} is not a lower-case GUID")
    if doc.get("severity") and doc["severity"] not in SEVERITIES:
        problems.append(f"severity {doc['severity']!r} not in {sorted(SEVERITIES)}")
    if doc.get("kind") and doc["kind"] != "Scheduled":
        problems.append(f"kind {doc['kind']!r} is not Scheduled")
    if doc.get("version") and not VERSION.match(str(doc["version"])):
        problems.append(f"version {doc['version']!r} is not major.minor.patch")
    if doc.get("triggerOperator") and doc["triggerOperator"] not in TRIGGER_OPERATORS:
        problems.append(f"triggerOperator {doc['triggerOperator']!r} not in {sorted(TRIGGER_OPERATORS)}")
    threshold = doc.get("triggerThreshold")
    if threshold is not None and (
        not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0
    ):
        problems.append(f"triggerThreshold {threshold!r} is not a non-negative integer")
    problems += attack_problems(doc)

    if len(str(doc.get("name", ""))) > MAX_NAME:
        problems.append(f"name longer than {MAX_NAME} characters")
    if len(str(doc.get("description", ""))) > MAX_DESCRIPTION:
        problems.append(f"description longer than {MAX_DESCRIPTION} characters")
    if not 1 <= len(str(doc.get("query", ""))) <= MAX_QUERY:
        problems.append(f"query must be 1..{MAX_QUERY} characters")
    if isinstance(threshold, int) and threshold > MAX_THRESHOLD:
        problems.append(f"triggerThreshold {threshold} above {MAX_THRESHOLD}")
    connectors = doc.get("requiredDataConnectors") or []
    if any(not c.get("connectorId") or not c.get("dataTypes") for c in connectors):
        problems.append("every requiredDataConnectors entry needs a connectorId and dataTypes")

    durations = {}
    for key in ("queryFrequency", "queryPeriod"):
        value = str(doc.get(key, ""))
        if not DURATION.match(value):
            problems.append(f"{key} {value!r} is not <n>m, <n>h or <n>d")
            continue
        minutes = duration_minutes(value)
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            problems.append(f"{key} {value} outside Sentinel's 5m..14d")
        durations[key] = minutes
    if len(durations) == 2 and durations["queryFrequency"] > durations["queryPeriod"]:
        problems.append(
            f"queryFrequency {doc['queryFrequency']} is longer than queryPeriod {doc['queryPeriod']}"
        )
    if (
        len(durations) == 2
        and durations["queryPeriod"] >= LONG_PERIOD_MINUTES
        and durations["queryFrequency"] < LONG_PERIOD_MIN_FREQUENCY
    ):
        problems.append(
            f"queryPeriod {doc['queryPeriod']} (2 days or more) needs a queryFrequency of at least 1h, "
            f"got {doc['queryFrequency']}"
        )

    problems += entity_mapping_problems(doc.get("entityMappings") or [], projected)
    problems += custom_detail_problems(doc.get("customDetails") or {}, projected)
    for key, template in (doc.get("alertDetailsOverride") or {}).items():
        placeholders = re.findall(r"\{\{(\w+)\}\}", str(template))
        if len(placeholders) > MAX_PLACEHOLDERS:
            problems.append(f"{key} has {len(placeholders)} placeholders, Sentinel allows {MAX_PLACEHOLDERS}")
        for column in placeholders:
            if projected is not None and column not in projected:
                problems.append(f"{key} uses {{{{{column}}}}}, not projected by the query")
    return problems


def entity_mapping_problems(mappings: list[dict[str, Any]], projected: Collection[str] | None) -> list[str]:
    """Entity mappings as ValidEntityMappings checks them, plus: every column the query returns."""
    problems = []
    if not MIN_ENTITY_MAPPINGS <= len(mappings) <= MAX_ENTITY_MAPPINGS:
        problems.append(
            f"{len(mappings)} entity mappings, Sentinel allows {MIN_ENTITY_MAPPINGS}..{MAX_ENTITY_MAPPINGS}"
        )
    for mapping in mappings:
        kind = mapping.get("entityType")
        fields = mapping.get("fieldMappings") or []
        if kind not in ENTITY_IDENTIFIERS:
            problems.append(f"entity type {kind!r} not known")
            continue
        if not MIN_IDENTIFIERS_PER_ENTITY <= len(fields) <= MAX_IDENTIFIERS_PER_ENTITY:
            problems.append(
                f"{kind} mapping needs {MIN_IDENTIFIERS_PER_ENTITY}..{MAX_IDENTIFIERS_PER_ENTITY} field mappings"
            )
        used = [f.get("identifier") for f in fields]
        if len(set(used)) != len(used):
            problems.append(f"{kind} maps an identifier twice: {used}")
        required = ENTITIES["entities"][kind]["required"]
        if not any(set(combo) <= set(used) for combo in required):
            problems.append(f"{kind} mapping lacks a strong identifier: one of {required}")
        for f in fields:
            column = str(f.get("columnName", ""))
            if f.get("identifier") not in ENTITY_IDENTIFIERS[kind]:
                problems.append(f"{kind} has no identifier {f.get('identifier')!r}")
            if not COLUMN_NAME.match(column):
                problems.append(f"{kind}.{f.get('identifier')} column {column!r} is not a column name")
            if projected is not None and column not in projected:
                problems.append(
                    f"{kind}.{f.get('identifier')} maps column {column!r}, not projected by the query"
                )
    return problems


def custom_detail_problems(details: dict[str, Any], projected: Collection[str] | None) -> list[str]:
    problems = []
    if len(details) > MAX_CUSTOM_DETAILS:
        problems.append(f"{len(details)} custom details, Sentinel allows {MAX_CUSTOM_DETAILS}")
    for name, column in details.items():
        if len(name) > MAX_CUSTOM_DETAIL_KEY or not CUSTOM_DETAIL_KEY.match(name):
            problems.append(f"custom detail key {name!r} must be a letter then [A-Za-z0-9_], at most 20")
        if not CUSTOM_DETAIL_VALUE.match(str(column)):
            problems.append(f"custom detail {name} value {column!r} is not a column name")
        if projected is not None and column not in projected:
            problems.append(f"custom detail {name} names column {column!r}, not projected by the query")
    return problems


def hunting_problems(doc: dict[str, Any]) -> list[str]:
    """Hunting queries: what QueryBasedTemplateInternalModel checks (query length, version) and ATT&CK."""
    problems = [f"missing {f}" for f in ("id", "name", "description", "query", "version") if not doc.get(f)]
    if doc.get("id") and not _is_guid(doc["id"]):
        problems.append(f"id {doc['id']!r} is not a lower-case GUID")
    if not 1 <= len(str(doc.get("query", ""))) <= MAX_QUERY:
        problems.append(f"query must be 1..{MAX_QUERY} characters")
    if doc.get("version") and not VERSION.match(str(doc["version"])):
        problems.append(f"version {doc['version']!r} is not major.minor.patch")
    return problems + attack_problems(doc)


# -- KQL facts: dynamic paths the vendor never sends, operators a DCR transform may not use ------------

VENDOR_PATHS = _data("vendor_dynamic_paths.json")
DCR_TRANSFORM = _data("dcr_transform_kql.json")


def root_key(name: str) -> str:
    """``ActorDetails``, ``actor_details`` and a join's ``actor_details1`` are one root."""
    return re.sub(r"\d+$", "", name).replace("_", "").lower()


ROOT_FIELDS: dict[str, list[str]] = {
    root_key(root): [field for obj in objects for field in VENDOR_PATHS["objects"][obj]]
    for root, objects in VENDOR_PATHS["roots"].items()
}


def path_problems(paths: Collection[DynamicPath]) -> list[str]:
    """Every ``x.y.z`` into a vendor object must name a field the vendor sends (or a prefix of one).
    Roots that are not vendor objects (values the query builds itself) are not checked."""
    problems = []
    for p in paths:
        fields = ROOT_FIELDS.get(root_key(p.root))
        if fields is None:
            continue
        segments = list(p.path[: p.path.index("[]")] if "[]" in p.path else p.path)
        if not segments:
            continue
        text = ".".join(segments)
        if not any(text == f or f.startswith(text + ".") or fnmatch.fnmatchcase(text, f) for f in fields):
            problems.append(
                f"{p.text}: {root_key(p.root)} events carry no {text!r} (known: {sorted(fields)})"
            )
    return problems


def transform_problems(operators: Collection[str], calls: Collection[str]) -> list[str]:
    """What a DCR transformation may not use (operators and functions outside Azure Monitor's list)."""
    allowed_ops, allowed_fns = set(DCR_TRANSFORM["operators"]), set(DCR_TRANSFORM["functions"])
    problems = [
        f"operator {op} is not allowed in a DCR transformation" for op in operators if op not in allowed_ops
    ]
    problems += [
        f"function {fn}() is not allowed in a DCR transformation" for fn in calls if fn not in allowed_fns
    ]
    return problems


# -- The compiled alert rule body against the API version the templates deploy -----------------------

ALERT_RULES_API = _data("alert_rules_2024-03-01.json")


def alert_rule_body_problems(properties: dict[str, Any]) -> list[str]:
    """Property names the deployed API version defines, its required ones, and nested shapes."""
    spec = ALERT_RULES_API["ScheduledAlertRuleProperties"]
    problems = [
        f"property {k!r} not defined by alertRules@{ALERT_RULES_API['apiVersion']}"
        for k in properties
        if k not in spec["properties"] or k in spec["readOnly"]
    ]
    problems += [f"required property {k!r} missing" for k in spec["required"] if k not in properties]
    incident = properties.get("incidentConfiguration") or {}
    for name, value in (
        ("IncidentConfiguration", incident),
        ("GroupingConfiguration", incident.get("groupingConfiguration") or {}),
        ("EventGroupingSettings", properties.get("eventGroupingSettings") or {}),
        ("AlertDetailsOverride", properties.get("alertDetailsOverride") or {}),
    ):
        known = ALERT_RULES_API[name]
        problems += [f"{name}.{k} not defined" for k in value if k not in known["properties"]]
        problems += [f"{name}.{k} missing" for k in known.get("required", []) if value and k not in value]
    if properties.get("severity") not in ALERT_RULES_API["AlertSeverity"]:
        problems.append(f"severity {properties.get('severity')!r}")
    if properties.get("triggerOperator") not in ALERT_RULES_API["TriggerOperator"]:
        problems.append(f"triggerOperator {properties.get('triggerOperator')!r}")
    problems += [
        f"entity type {m.get('entityType')!r} not in the API's EntityMappingType"
        for m in properties.get("entityMappings", [])
        if m.get("entityType") not in ALERT_RULES_API["EntityMappingType"]
    ]
    return problems
