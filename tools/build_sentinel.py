"""Compile the Sentinel content sources under ``sentinel/`` into ``sentinel/build/content.json``.

The sources are written for people (YAML rules and hunting queries in the shape of the Azure-Sentinel
repository, parser YAML, a workbook and a connector card as JSON, the solution's own facts in
``sentinel/solution.yaml``); the infra templates want one JSON file with every piece of content in the
shape of the resources a Content Hub solution installs (rule template properties, saved searches, the
connector definition) plus the ids and versions Content Hub tracks them by. This script is the only
bridge between the two, so the generated files are committed and a test checks that they are up to date.

It also writes ``auditsync/content/solution.json``: the solution id and the recommended rules, the two
facts ``python -m auditsync sentinel`` needs and cannot read from a workspace.

    python tools/build_sentinel.py           # write both files
    python tools/build_sentinel.py --check   # exit 1 when a committed file is stale
"""

from __future__ import annotations

import argparse
import hashlib
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
#: What the CLI's ``sentinel`` command needs to know about the solution (package data of auditsync).
CLI_OUTPUT = ROOT / "auditsync" / "content" / "solution.json"

sys.path.insert(0, str(ROOT))
from tools.package import version as auditsync_version  # noqa: E402

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


#: Content Hub's schema of the package and template resources (the value Microsoft's packages write).
CONTENT_SCHEMA_VERSION = "3.0.0"
#: Short kind codes in template names and product ids, as Microsoft's packages abbreviate them.
KIND_CODES = {
    "Solution": "sl",
    "AnalyticsRule": "ar",
    "HuntingQuery": "hq",
    "Parser": "pr",
    "Workbook": "wb",
    "DataConnector": "dc",
}


def load_solution() -> JSON:
    """``sentinel/solution.yaml`` plus the package version (auditsync's)."""
    path = SENTINEL / "solution.yaml"
    doc = _load_yaml(path)
    where = _rel(path)
    _require(
        doc,
        ("id", "name", "publisher", "description", "firstPublishDate", "lastPublishDate", "versions"),
        where,
    )
    solution_id, name = str(doc["id"]), str(doc["name"])
    version = auditsync_version(ROOT)
    return {
        "id": solution_id,
        "name": name,
        "version": version,
        "publisher": str(doc["publisher"]),
        "description": " ".join(str(doc["description"]).split()),
        "contentSchemaVersion": CONTENT_SCHEMA_VERSION,
        "contentProductId": product_id(solution_id, "Solution", solution_id, version),
        "firstPublishDate": str(doc["firstPublishDate"]),
        "lastPublishDate": str(doc["lastPublishDate"]),
        "providers": list(doc.get("providers", [])),
        "categories": dict(doc.get("categories", {})),
        "source": {"kind": "Solution", "name": name, "sourceId": solution_id},
        # No repository links: the content is built once, while a fork's templates are rewritten from
        # pyproject.toml (tools/release.py), which would leave the links pointing at the original.
        "author": dict(doc.get("author", {})),
        "support": dict(doc.get("support", {})),
        "versions": {k: str(v) for k, v in doc["versions"].items()},
        "workbook": dict(doc.get("workbook", {})),
    }


def product_id(solution_id: str, kind: str, content_id: str, version: str) -> str:
    """A content item's ``contentProductId``: one per (solution, kind, id, version), as Content Hub keys them.

    Microsoft's packages compute it with ARM's ``uniqueString``; any stable digest serves, so the build
    writes it once for both templates instead of repeating the expression in Bicep and ARM.
    """
    digest = hashlib.sha256(f"{solution_id}-{kind}-{content_id}-{version}".encode()).hexdigest()[:13]
    return f"{solution_id[:50]}-{KIND_CODES[kind]}-{digest}"


def _packaged(solution: JSON, kind: str, content_id: str, version: str) -> JSON:
    """The ids and version Content Hub tracks one content item by."""
    return {
        "contentId": content_id,
        "version": version,
        "contentProductId": product_id(solution["id"], kind, content_id, version),
        "templateName": f"{KIND_CODES[kind]}-{content_id}",
    }


def load_parsers(solution: JSON | None = None) -> list[JSON]:
    """Parsers (``sentinel/parsers``) and ASIM parsers (``sentinel/asim``) as saved KQL functions."""
    solution = solution or load_solution()
    parsers = []
    for path in sorted([*SENTINEL.glob("parsers/*.yaml"), *SENTINEL.glob("asim/*.yaml")]):
        doc = _load_yaml(path)
        where = _rel(path)
        _require(doc, ("name", "displayName", "category", "query"), where)
        if path.stem != doc["name"]:
            raise ContentError(f"{where}: file name must be the function name {doc['name']!r}")
        version = str(doc.get("version", solution["versions"]["parsers"]))
        parsers.append(
            {
                "name": doc["name"],
                "displayName": doc["displayName"],
                "category": doc["category"],
                "query": doc["query"].strip(),
                **_packaged(solution, "Parser", f"{doc['name']}-Parser", version),
            }
        )
    return _order_by_dependency(parsers)


RULE_FIELDS = (
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


def rule_files() -> list[Path]:
    return sorted(SENTINEL.glob("analytics/**/*.yaml"))


#: The SecurityInsights api-version of everything the templates install (content packages and templates,
#: metadata, the connector definition, onboarding) and of the rules ``sentinel enable`` creates: the
#: newest stable version that models all of them. Its ScheduledAlertRuleProperties define ``tactics`` and
#: ``techniques`` but no ``subTechniques`` (azure-rest-api-specs, securityinsights
#: stable/2024-03-01/AlertRules.json): a sub-technique list would be dropped, so a rule carries the parent
#: techniques and the sub-techniques stay in the source.
ALERT_RULES_API_VERSION = "2024-03-01"
SECURITY_INSIGHTS_API_VERSION = ALERT_RULES_API_VERSION


def parent_techniques(techniques: list[str]) -> list[str]:
    """``T1110.001`` and ``T1110.003`` to ``T1110``: the ``techniques`` the alert rule API takes."""
    parents: list[str] = []
    for t in techniques:
        parent = t.split(".")[0]
        if parent not in parents:
            parents.append(parent)
    return parents


def load_recommended() -> set[str]:
    """Rule ids listed in ``sentinel/recommended.yaml`` (a rule file's own ``recommended`` field wins)."""
    path = SENTINEL / "recommended.yaml"
    doc = _load_yaml(path)
    ids = doc.get("recommended") or []
    if not isinstance(ids, list):
        raise ContentError(f"{_rel(path)}: recommended must be a list of rule ids")
    return {str(i).lower() for i in ids}


def compile_rule(path: Path, recommended: set[str] | None = None) -> JSON:
    """One Azure-Sentinel-style rule YAML to the rule template a solution installs (AlertRuleTemplate).

    Besides the template's own properties it carries what a rule made from it starts with (``enabled``
    false, suppression, incident settings), as Microsoft's solution packages do: the AlertRuleTemplate
    model defines none of them, the portal's rule wizard and ``sentinel enable`` read them.
    """
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
    if "recommended" in doc and not isinstance(doc["recommended"], bool):
        raise ContentError(f"{where}: recommended must be true or false")
    version = str(doc["version"])
    properties: JSON = {
        "displayName": doc["name"],
        "description": doc["description"].strip(),
        "severity": doc["severity"],
        "requiredDataConnectors": doc["requiredDataConnectors"],
        "query": doc["query"].strip(),
        "queryFrequency": iso_duration(doc["queryFrequency"], where=f"{where} queryFrequency"),
        "queryPeriod": iso_duration(doc["queryPeriod"], where=f"{where} queryPeriod"),
        "triggerOperator": operator,
        "triggerThreshold": int(doc["triggerThreshold"]),
        "tactics": list(doc["tactics"]),
        "techniques": parent_techniques(list(doc["relevantTechniques"])),
        "entityMappings": doc["entityMappings"],
        "eventGroupingSettings": doc.get("eventGroupingSettings", {"aggregationKind": "AlertPerResult"}),
        "version": version,
        "status": "Available",
    }
    if doc.get("customDetails"):
        properties["customDetails"] = doc["customDetails"]
    if doc.get("alertDetailsOverride"):
        properties["alertDetailsOverride"] = doc["alertDetailsOverride"]
    properties |= {
        "enabled": False,
        "suppressionDuration": iso_duration(
            doc.get("suppressionDuration", "5h"), where=f"{where} suppression"
        ),
        "suppressionEnabled": bool(doc.get("suppressionEnabled", False)),
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
    rule_id = str(doc["id"])
    listed = rule_id.lower() in (recommended if recommended is not None else load_recommended())
    return {
        "id": rule_id,
        "kind": "Scheduled",
        "version": version,
        "recommended": bool(doc.get("recommended", listed)),
        "properties": properties,
    }


def load_rules(solution: JSON) -> list[JSON]:
    """Every rule template, with its Content Hub ids; a recommended id that names no rule is an error."""
    recommended = load_recommended()
    rules = []
    for path in rule_files():
        rule = compile_rule(path, recommended)
        rules.append({**rule, **_packaged(solution, "AnalyticsRule", rule["id"], rule["version"])})
    unknown = recommended - {r["id"].lower() for r in rules}
    if unknown:
        raise ContentError(f"sentinel/recommended.yaml: no rule has the id(s) {sorted(unknown)}")
    return rules


def load_hunting(solution: JSON | None = None) -> list[JSON]:
    solution = solution or load_solution()
    queries = []
    for path in sorted(SENTINEL.glob("hunting/*.yaml")):
        doc = _load_yaml(path)
        where = _rel(path)
        _require(doc, ("id", "name", "description", "query", "tactics", "relevantTechniques"), where)
        version = str(doc.get("version", solution["versions"]["hunting"]))
        queries.append(
            {
                "name": path.stem,
                "displayName": doc["name"],
                "query": doc["query"].strip(),
                "tactics": list(doc["tactics"]),
                "techniques": list(doc["relevantTechniques"]),
                "description": doc["description"].strip(),
                **_packaged(solution, "HuntingQuery", str(doc["id"]), version),
            }
        )
    return queries


def load_workbook(solution: JSON | None = None) -> JSON:
    solution = solution or load_solution()
    path = SENTINEL / "workbook" / "auditsync.workbook.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    meta = solution["workbook"]
    _require(meta, ("contentId", "displayName"), "sentinel/solution.yaml workbook")
    return {
        "displayName": meta["displayName"],
        "serializedData": json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
        **_packaged(solution, "Workbook", meta["contentId"], solution["versions"]["workbook"]),
    }


def load_connector(solution: JSON | None = None) -> JSON:
    """The connector page: a ``dataConnectorDefinitions`` resource (kind Customizable) named by its ``id``."""
    solution = solution or load_solution()
    path = SENTINEL / "connector" / "connector.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    if not re.fullmatch(r"[a-zA-Z0-9_-]+", str(card.get("id", ""))):
        raise ContentError(f"{_rel(path)}: id must name the connector definition ([a-zA-Z0-9_-]+)")
    return {
        "id": card["id"],
        **_packaged(solution, "DataConnector", card["id"], solution["versions"]["connector"]),
        "connectorUiConfig": card,
    }


def dependencies(content: JSON) -> JSON:
    """The package's ``dependencies``: every piece of content it installs, by kind, id and version."""
    items = [
        ("DataConnector", content["dataConnector"]),
        *(("Parser", p) for p in content["parsers"]),
        *(("HuntingQuery", h) for h in content["huntingQueries"]),
        *(("AnalyticsRule", r) for r in content["alertRules"]),
        ("Workbook", content["workbook"]),
    ]
    return {
        "operator": "AND",
        "criteria": [{"kind": k, "contentId": i["contentId"], "version": i["version"]} for k, i in items],
    }


def build_content() -> JSON:
    """Everything the templates deploy, in deployment order (parsers before what calls them)."""
    solution = load_solution()
    content: JSON = {
        "solution": solution,
        "parsers": load_parsers(solution),
        "huntingQueries": load_hunting(solution),
        "alertRules": load_rules(solution),
        "workbook": load_workbook(solution),
        "dataConnector": load_connector(solution),
    }
    for internal in ("versions", "workbook"):  # read by the loaders above, not deployed
        del solution[internal]
    solution["dependencies"] = dependencies(content)
    return content


def cli_data(content: JSON) -> JSON:
    """``auditsync/content/solution.json``: which solution is ours and which of its rules are recommended."""
    return {
        "solutionId": content["solution"]["id"],
        "solutionName": content["solution"]["name"],
        "connectorId": content["dataConnector"]["id"],
        "recommended": {
            r["id"]: r["properties"]["displayName"] for r in content["alertRules"] if r["recommended"]
        },
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
    for d in card.get("dataTypes", []):
        queries.append((f"connector/lastDataReceived/{d['name']}", d["lastDataReceivedQuery"]))
    for c in card.get("connectivityCriteria", []):
        for i, v in enumerate(c.get("value", [])):
            queries.append((f"connector/connectivity/{i}", v))
    return queries


def outputs() -> dict[Path, str]:
    """Each generated file and its text."""
    content = build_content()
    return {OUTPUT: render(content), CLI_OUTPUT: render(cli_data(content))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a committed file is stale")
    args = parser.parse_args(argv)
    try:
        texts = outputs()
    except ContentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = []
    for path, text in texts.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}: run python tools/build_sentinel.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
