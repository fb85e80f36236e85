"""What a valid analytics rule or hunting query file looks like: the checks Sentinel's deployment (or an
analyst) would otherwise find one at a time. Each check returns readable problems instead of asserting,
so one test run lists every defect of every file."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from typing import Any

from tools.build_sentinel import TRIGGER_OPERATORS, duration_minutes

# MITRE ATT&CK Enterprise tactics, spelled as the Sentinel alert rule API expects them.
TACTICS = frozenset(
    {
        "Reconnaissance",
        "ResourceDevelopment",
        "InitialAccess",
        "Execution",
        "Persistence",
        "PrivilegeEscalation",
        "DefenseEvasion",
        "CredentialAccess",
        "Discovery",
        "LateralMovement",
        "Collection",
        "CommandAndControl",
        "Exfiltration",
        "Impact",
    }
)
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
SEVERITIES = frozenset({"Informational", "Low", "Medium", "High"})
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
DURATION = re.compile(r"^\d+[mhd]$")

# Identifiers per entity type that Sentinel accepts in field mappings (the ones our content may use).
ENTITY_IDENTIFIERS = {
    "Account": {"FullName", "Name", "NTDomain", "UPNSuffix", "Sid", "AadTenantId", "AadUserId", "ObjectGuid"},
    "IP": {"Address"},
    "Host": {"HostName", "DnsDomain", "FullName", "AzureID", "OMSAgentID"},
    "CloudApplication": {"AppId", "Name", "InstanceName"},
    "URL": {"Url"},
    "DNS": {"DomainName"},
    "MailMessage": {"Recipient", "Sender"},
}
MAX_ENTITY_MAPPINGS = 10
MAX_IDENTIFIERS_PER_ENTITY = 3
MIN_MINUTES, MAX_MINUTES = 5, 14 * 24 * 60

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
    problems = []
    tactics = doc.get("tactics") or []
    techniques = doc.get("relevantTechniques") or []
    if not tactics:
        problems.append("no tactics")
    if not techniques:
        problems.append("no relevantTechniques")
    problems += [f"unknown tactic {t!r}" for t in tactics if t not in TACTICS]
    problems += [
        f"technique {t!r} is not of the form T1234 or T1234.001"
        for t in techniques
        if not TECHNIQUE.match(str(t))
    ]
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
    if durations.get("queryPeriod", 0) > 2 * 24 * 60 and durations.get("queryFrequency", 60) < 60:
        problems.append("a queryPeriod over 2 days needs a queryFrequency of at least 1h")

    mappings = doc.get("entityMappings") or []
    if len(mappings) > MAX_ENTITY_MAPPINGS:
        problems.append(f"{len(mappings)} entity mappings, Sentinel allows {MAX_ENTITY_MAPPINGS}")
    for mapping in mappings:
        kind = mapping.get("entityType")
        fields = mapping.get("fieldMappings") or []
        if kind not in ENTITY_IDENTIFIERS:
            problems.append(f"entity type {kind!r} not known")
            continue
        if not fields or len(fields) > MAX_IDENTIFIERS_PER_ENTITY:
            problems.append(f"{kind} mapping needs 1..{MAX_IDENTIFIERS_PER_ENTITY} field mappings")
        for f in fields:
            if f.get("identifier") not in ENTITY_IDENTIFIERS[kind]:
                problems.append(f"{kind} has no identifier {f.get('identifier')!r}")
            if projected is not None and f.get("columnName") not in projected:
                column = f.get("columnName")
                problems.append(
                    f"{kind}.{f.get('identifier')} maps column {column!r}, not projected by the query"
                )
    for name, column in (doc.get("customDetails") or {}).items():
        if projected is not None and column not in projected:
            problems.append(f"custom detail {name} names column {column!r}, not projected by the query")
    for key, template in (doc.get("alertDetailsOverride") or {}).items():
        for column in re.findall(r"\{\{(\w+)\}\}", str(template)):
            if projected is not None and column not in projected:
                problems.append(f"{key} uses {{{{{column}}}}}, not projected by the query")
    return problems


def hunting_problems(doc: dict[str, Any]) -> list[str]:
    problems = [f"missing {f}" for f in ("id", "name", "description", "query", "version") if not doc.get(f)]
    if doc.get("id") and not _is_guid(doc["id"]):
        problems.append(f"id {doc['id']!r} is not a lower-case GUID")
    return problems + attack_problems(doc)
