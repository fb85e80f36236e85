"""Compile the Sentinel content sources under ``sentinel/`` into ``sentinel/build/content.json``.

The sources are written for people (YAML rules and hunting queries in the shape of the Azure-Sentinel
repository, parser YAML, a workbook and a connector card as JSON); the infra templates want one JSON
file in the shape of the ARM resources they deploy. This script is the only bridge between the two, so
the generated file is committed and a test checks that it is up to date with its sources.

    python tools/build_sentinel.py           # write sentinel/build/content.json
    python tools/build_sentinel.py --check   # exit 1 when the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SENTINEL = ROOT / "sentinel"
OUTPUT = SENTINEL / "build" / "content.json"

JSON = dict[str, Any]

TRIGGER_OPERATORS = {"gt": "GreaterThan", "lt": "LessThan", "eq": "Equal", "ne": "NotEqual"}
_DURATION = re.compile(r"^(\d+)([mhd])$")


class ContentError(ValueError):
    """A content source is malformed; the message names the file and the field."""


def iso_duration(text: str, *, where: str) -> str:
    """``5m`` / ``1h`` / ``14d`` (the Azure-Sentinel YAML convention) to ISO 8601 (PT5M, PT1H, P14D)."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ContentError(f"{where}: duration {text!r} is not of the form <n>m, <n>h or <n>d")
    amount, unit = int(match.group(1)), match.group(2)
    return f"P{amount}D" if unit == "d" else f"PT{amount}{unit.upper()}"


def duration_minutes(text: str) -> int:
    """Length of a ``5m`` / ``1h`` / ``14d`` duration in minutes (callers validated the form)."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ContentError(f"duration {text!r} is not of the form <n>m, <n>h or <n>d")
    amount, unit = int(match.group(1)), match.group(2)
    return amount * {"m": 1, "h": 60, "d": 1440}[unit]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _load_yaml(path: Path) -> JSON:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ContentError(f"{_rel(path)}: expected a mapping at the top level")
    return doc


def _require(doc: JSON, keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if doc.get(k) in (None, "", [])]
    if missing:
        raise ContentError(f"{where}: missing {', '.join(missing)}")


def _order_by_dependency(parsers: list[JSON]) -> list[JSON]:
    """Parsers that call other parsers come after them (Sentinel saves them in this order, and the KQL
    checks declare each one before the next is analysed)."""
    names = {p["name"] for p in parsers}
    deps = {
        p["name"]: {n for n in names if n != p["name"] and re.search(rf"\b{re.escape(n)}\b", p["query"])}
        for p in parsers
    }
    ordered: list[JSON] = []
    done: set[str] = set()
    pending = sorted(parsers, key=lambda p: p["name"])
    while pending:
        ready = [p for p in pending if deps[p["name"]] <= done]
        if not ready:
            raise ContentError(f"parsers call each other in a cycle: {[p['name'] for p in pending]}")
        for p in ready:
            ordered.append(p)
            done.add(p["name"])
        pending = [p for p in pending if p["name"] not in done]
    return ordered


def load_parsers() -> list[JSON]:
    """Parsers (``sentinel/parsers``) and ASIM parsers (``sentinel/asim``) as saved KQL functions."""
    parsers = []
    for path in sorted([*SENTINEL.glob("parsers/*.yaml"), *SENTINEL.glob("asim/*.yaml")]):
        doc = _load_yaml(path)
        where = _rel(path)
        _require(doc, ("name", "displayName", "category", "query"), where)
        if path.stem != doc["name"]:
            raise ContentError(f"{where}: file name must be the function name {doc['name']!r}")
        parsers.append(
            {
                "name": doc["name"],
                "displayName": doc["displayName"],
                "category": doc["category"],
                "query": doc["query"].strip(),
            }
        )
    return _order_by_dependency(parsers)


RULE_FIELDS = (
    "id",
    "name",
    "description",
    "severity",
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


def rule_files() -> list[Path]:
    return sorted(SENTINEL.glob("analytics/**/*.yaml"))


#: The alert rule API version the templates deploy (infra/modules/sentinelContent.bicep). Its
#: ScheduledAlertRuleProperties define ``tactics`` and ``techniques`` but no ``subTechniques``
#: (azure-rest-api-specs, securityinsights stable/2024-03-01/AlertRules.json): a sub-technique list
#: would be dropped, so the rule carries the parent techniques and the sub-techniques stay in the source.
ALERT_RULES_API_VERSION = "2024-03-01"


def parent_techniques(techniques: list[str]) -> list[str]:
    """``T1110.001`` and ``T1110.003`` to ``T1110``: the ``techniques`` the alert rule API takes."""
    parents: list[str] = []
    for t in techniques:
        parent = t.split(".")[0]
        if parent not in parents:
            parents.append(parent)
    return parents


def compile_rule(path: Path) -> JSON:
    """One Azure-Sentinel-style rule YAML to the ARM ``alertRules`` resource body the infra deploys."""
    doc = _load_yaml(path)
    where = _rel(path)
    _require(doc, [f for f in RULE_FIELDS if f != "triggerThreshold"], where)
    if doc.get("triggerThreshold") is None:
        raise ContentError(f"{where}: missing triggerThreshold")
    if doc["kind"] != "Scheduled":
        raise ContentError(f"{where}: only Scheduled rules are built, got {doc['kind']!r}")
    operator = TRIGGER_OPERATORS.get(str(doc["triggerOperator"]))
    if operator is None:
        raise ContentError(f"{where}: triggerOperator must be one of {sorted(TRIGGER_OPERATORS)}")
    properties: JSON = {
        "displayName": doc["name"],
        "description": doc["description"].strip(),
        "severity": doc["severity"],
        "enabled": bool(doc.get("enabled", True)),
        "query": doc["query"].strip(),
        "queryFrequency": iso_duration(doc["queryFrequency"], where=f"{where} queryFrequency"),
        "queryPeriod": iso_duration(doc["queryPeriod"], where=f"{where} queryPeriod"),
        "triggerOperator": operator,
        "triggerThreshold": int(doc["triggerThreshold"]),
        "suppressionDuration": iso_duration(
            doc.get("suppressionDuration", "5h"), where=f"{where} suppression"
        ),
        "suppressionEnabled": bool(doc.get("suppressionEnabled", False)),
        "tactics": list(doc["tactics"]),
        "techniques": parent_techniques(list(doc["relevantTechniques"])),
        "entityMappings": doc["entityMappings"],
        "templateVersion": str(doc["version"]),
        "eventGroupingSettings": doc.get("eventGroupingSettings", {"aggregationKind": "AlertPerResult"}),
        "incidentConfiguration": {
            "createIncident": bool(doc.get("createIncident", True)),
            "groupingConfiguration": {
                "enabled": True,
                "reopenClosedIncident": False,
                "lookbackDuration": "PT5H",
                "matchingMethod": "AllEntities",
                "groupByEntities": [],
                "groupByAlertDetails": [],
                "groupByCustomDetails": [],
            },
        },
    }
    if doc.get("customDetails"):
        properties["customDetails"] = doc["customDetails"]
    if doc.get("alertDetailsOverride"):
        properties["alertDetailsOverride"] = doc["alertDetailsOverride"]
    return {"id": str(doc["id"]), "kind": "Scheduled", "properties": properties}


def load_hunting() -> list[JSON]:
    queries = []
    for path in sorted(SENTINEL.glob("hunting/*.yaml")):
        doc = _load_yaml(path)
        where = _rel(path)
        _require(doc, ("name", "description", "query", "tactics", "relevantTechniques"), where)
        queries.append(
            {
                "name": path.stem,
                "displayName": doc["name"],
                "query": doc["query"].strip(),
                "tactics": list(doc["tactics"]),
                "techniques": list(doc["relevantTechniques"]),
                "description": doc["description"].strip(),
            }
        )
    return queries


def load_workbook() -> JSON:
    path = SENTINEL / "workbook" / "auditsync.workbook.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {
        "displayName": "auditsync: password manager audit and connector health",
        "serializedData": json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
    }


def load_connector() -> JSON:
    path = SENTINEL / "connector" / "connector.json"
    return {"connectorUiConfig": json.loads(path.read_text(encoding="utf-8"))}


def build_content() -> JSON:
    """Everything the templates deploy, in deployment order (parsers before what calls them)."""
    return {
        "parsers": load_parsers(),
        "huntingQueries": load_hunting(),
        "alertRules": [compile_rule(p) for p in rule_files()],
        "workbook": load_workbook(),
        "dataConnector": load_connector(),
    }


def render(content: JSON) -> str:
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def workbook_queries(workbook: JSON) -> list[tuple[str, str]]:
    """Every KQL query inside a workbook (query items, wherever they are nested), by item name."""
    found: list[tuple[str, str]] = []

    def walk(items: list[JSON]) -> None:
        for item in items:
            content = item.get("content", {})
            if item.get("type") == 3 and "query" in content:
                found.append((item.get("name", "?"), content["query"]))
            for p in content.get("parameters", []) if item.get("type") == 9 else []:
                if p.get("query"):
                    found.append((f"{item.get('name', '?')}/{p.get('name', '?')}", p["query"]))
            walk(content.get("items", []))

    walk(workbook.get("items", []))
    return found


def all_queries(content: JSON) -> list[tuple[str, str]]:
    """Every KQL text in the built content except the parsers, each with a name that says where it is."""
    queries: list[tuple[str, str]] = []
    for q in content["huntingQueries"]:
        queries.append((f"hunting/{q['name']}", q["query"]))
    for r in content["alertRules"]:
        queries.append((f"rule/{r['properties']['displayName']}", r["properties"]["query"]))
    workbook = json.loads(content["workbook"]["serializedData"])
    for name, query in workbook_queries(workbook):
        queries.append((f"workbook/{name}", query))
    card = content["dataConnector"]["connectorUiConfig"]
    for i, g in enumerate(card.get("graphQueries", [])):
        queries.append((f"connector/graph/{i}", g["baseQuery"]))
    for i, s in enumerate(card.get("sampleQueries", [])):
        queries.append((f"connector/sample/{i}", s["query"]))
    for d in card.get("dataTypes", []):
        queries.append((f"connector/lastDataReceived/{d['name']}", d["lastDataReceivedQuery"]))
    for c in card.get("connectivityCriteria", []):
        for i, v in enumerate(c.get("value", [])):
            queries.append((f"connector/connectivity/{i}", v))
    return queries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed file is stale")
    args = parser.parse_args(argv)
    try:
        text = render(build_content())
    except ContentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run python tools/build_sentinel.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
