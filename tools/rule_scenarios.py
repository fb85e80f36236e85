"""Prove every analytics rule on data: run it, in a real KQL engine, on a case that must fire and on a benign
case that must stay quiet, and write the outcome into docs/sentinel.md ("Rules proven by scenario").

Each scenario (tests/scenarios) is raw vendor events. They reach the workspace the way the collector
delivers them: grouped into collector runs every five minutes (so ``TimeGenerated`` is a minute or a few
after the event), shaped by the collector's own code (``shape_rows`` as the runner calls it), then either
through the table's DCR transform (Logs Ingestion) or as the Data Collector API stores the legacy records
(``LegacyShaper`` and the service's column typing). Heartbeats come from ``heartbeat_batches``; Key Vault
audit records are written in Azure's two shapes (``AZKVAuditLogs`` with Logs Ingestion, ``AzureDiagnostics``
with the Data Collector workspace). A rule then sees only rows of its ``queryPeriod``, as in Sentinel, and
runs with the real clock (``ago()`` is relative to now).

    python tools/rule_scenarios.py           # run every scenario, rewrite the docs section
    python tools/rule_scenarios.py --check   # exit 1 when the docs section differs from a fresh run
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from auditsync.heartbeat import heartbeat_batches  # noqa: E402
from auditsync.sinks.legacy_rows import LegacyShaper  # noqa: E402
from auditsync.tables import KEEPER_TABLE, ONEPASSWORD_TABLE, TABLES, TableDef  # noqa: E402
from auditsync.tables.rows import format_time, parse_time, shape_rows  # noqa: E402
from simulators.data_collector import column_for  # noqa: E402
from tests.scenarios import REGISTRY  # noqa: E402
from tests.scenarios.model import Case, KeyVaultRecord, Scenario  # noqa: E402
from tests.scenarios.vendors import COLLECTOR_PRINCIPAL, GEO, VAULT_NAME  # noqa: E402
from tools import build_sentinel, kql  # noqa: E402
from tools.kql_engine import WATCHLIST_COLUMNS, Workspace, geo_info_stand_in  # noqa: E402

DOC = ROOT / "docs" / "sentinel.md"
SECTION = "## Rules proven by scenario"
KEYVAULT_TABLES = ROOT / "tests" / "content" / "data" / "keyvault_tables.json"
WATCHLISTS = build_sentinel.SENTINEL / "watchlists"

JSON = dict[str, Any]

#: The two ways data reaches a workspace: Logs Ingestion (with the vault's resource-specific audit table)
#: and the legacy Data Collector API (with the vault's audit log in AzureDiagnostics).
SINKS = ("logs_ingestion", "data_collector")
SINK_TITLES = {"logs_ingestion": "Logs Ingestion", "data_collector": "Data Collector"}
RUN_EVERY = timedelta(minutes=5)
RUN_TAKES = timedelta(minutes=1)

#: What the deployment writes into the Key Vault parser (infra/modules/sentinelContent.bicep).
DEPLOYMENT_VALUES = {
    "__AUDITSYNC_KEY_VAULT_NAME__": VAULT_NAME,
    "__AUDITSYNC_FUNCTION_APP_PRINCIPAL_ID__": COLLECTOR_PRINCIPAL,
}
VAULT_RESOURCE_ID = (
    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG-AUDITSYNC"
    f"/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{VAULT_NAME.upper()}"
)
_OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
_LEGACY_TYPES = {"_s": "string", "_d": "real", "_b": "bool", "_t": "datetime", "_g": "guid"}


# -- how rows reach the workspace ---------------------------------------------------------------------------
def collector_runs(events: Iterable[JSON], now: datetime) -> list[tuple[datetime, list[JSON]]]:
    """Events grouped by the collector run that delivers them: runs start every five minutes and take one;
    a run never ends after ``now`` (the scenario's events are all in the past)."""
    runs: dict[datetime, list[JSON]] = {}
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    for event in events:
        when = parse_time(event.get("timestamp"))
        if when is None:
            raise ValueError(f"scenario event without a readable timestamp: {event}")
        slots = (when - epoch) // RUN_EVERY + 1
        at = min(epoch + RUN_EVERY * slots + RUN_TAKES, now - timedelta(seconds=30))
        runs.setdefault(at, []).append(event)
    return sorted(runs.items(), key=lambda item: item[0])


def _legacy_columns(rows: Sequence[JSON], known: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The columns the Data Collector API has made for ``rows`` (typed by suffix), ``known`` ones aside."""
    seen: dict[str, str] = {"TimeGenerated": "datetime", "SourceSystem": "string", "Type": "string"}
    for name in known:
        seen.setdefault(name, "")
    for row in rows:
        for name in row:
            if name not in seen:
                seen[name] = _LEGACY_TYPES[name[-2:]]
    return [(n, t) for n, t in seen.items() if t]


def deliver(ws: Workspace, sink: str, table: TableDef, rows: list[JSON], at: datetime) -> None:
    """Rows of ``table`` (as ``shape_rows`` made them) accepted by ``sink`` at ``at``."""
    if not rows:
        return
    if sink == "logs_ingestion":
        ws.insert(table.name, ws.transform(table.transform_kql, kql.stream_columns(table), rows, at))
        return
    shaper = LegacyShaper(table)
    name = f"{table.legacy_log_type}_CL"
    stored = []
    for row in rows:
        record: JSON = {"TimeGenerated": format_time(at), "SourceSystem": "RestAPI", "Type": name}
        for key, value in shaper.record(row).items():
            column = column_for(key, value)
            if column is not None:
                record[column[0]] = column[1]
        stored.append(record)
    ws.declare(name, _legacy_columns(stored))
    ws.insert(name, stored)


def keyvault_row(record: KeyVaultRecord, sink: str) -> tuple[str, JSON]:
    """A Key Vault audit record as Azure stores it: ``AZKVAuditLogs`` (resource-specific) or
    ``AzureDiagnostics`` (Key Vault's fields flattened into suffixed columns)."""
    claims = {}
    if record.caller_object_id:
        claims[_OID] = record.caller_object_id
    if record.caller_app_id:
        claims["appid"] = record.caller_app_id
    if record.caller_upn:
        claims[_UPN] = record.caller_upn
    uri = f"https://{VAULT_NAME}.vault.azure.net/secrets/{record.secret}" if record.secret else ""
    signature = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(record.status, "")
    if sink == "logs_ingestion":
        return "AZKVAuditLogs", {
            "TimeGenerated": record.time,
            "OperationName": record.operation,
            "ResultType": record.result,
            "ResultSignature": signature,
            "HttpStatusCode": record.status,
            "Identity": {"claim": claims} if claims else None,
            "CallerIpAddress": record.caller_ip,
            "Id": f"{uri}/5f0c2b7e1d8a4c3b9e6f7a8b9c0d1e2f" if uri else "",
            "RequestUri": f"{uri}?api-version=7.5"
            if uri
            else f"https://{VAULT_NAME}.vault.azure.net/secrets",
            "ClientInfo": record.client_info,
            "_ResourceId": VAULT_RESOURCE_ID.lower(),
            "Type": "AZKVAuditLogs",
        }
    row: JSON = {
        "TimeGenerated": record.time,
        "ResourceId": VAULT_RESOURCE_ID,
        "_ResourceId": VAULT_RESOURCE_ID.lower(),
        "ResourceProvider": "MICROSOFT.KEYVAULT",
        "ResourceType": "VAULTS",
        "Resource": VAULT_NAME.upper(),
        "Category": "AuditEvent",
        "OperationName": record.operation,
        "ResultType": record.result,
        "ResultSignature": signature,
        "CallerIPAddress": record.caller_ip,
        "httpStatusCode_d": float(record.status),
        "clientInfo_s": record.client_info,
        "requestUri_s": f"{uri}?api-version=7.5" if uri else f"https://{VAULT_NAME}.vault.azure.net/secrets",
        "Type": "AzureDiagnostics",
    }
    if uri:
        row["id_s"] = f"{uri}/5f0c2b7e1d8a4c3b9e6f7a8b9c0d1e2f"
    if record.caller_object_id:
        row["identity_claim_http_schemas_microsoft_com_identity_claims_objectidentifier_g"] = (
            record.caller_object_id
        )
    if record.caller_app_id:
        row["identity_claim_appid_g"] = record.caller_app_id
    if record.caller_upn:
        row["identity_claim_http_schemas_xmlsoap_org_ws_2005_05_identity_claims_upn_s"] = record.caller_upn
    return "AzureDiagnostics", row


def _keyvault_tables() -> dict[str, list[tuple[str, str]]]:
    doc = json.loads(KEYVAULT_TABLES.read_text(encoding="utf-8"))
    return {name: [(c[0], c[1]) for c in cols] for name, cols in doc["tables"].items()}


def _watchlist_key(alias: str) -> str:
    doc = yaml.safe_load((WATCHLISTS / f"{alias}.yaml").read_text(encoding="utf-8"))
    return str(doc["searchKey"])


def known_tables() -> set[str]:
    names = {t.name for t in TABLES.values()} | {kql.legacy_table_name(t) for t in TABLES.values()}
    return names | set(_keyvault_tables())


def workspace(case: Case, sink: str, now: datetime, parsers: Sequence[tuple[str, str]]) -> Workspace:
    """A workspace holding everything ``case`` sent through ``sink``, with the parsers registered."""
    ws = Workspace()
    vault_tables = _keyvault_tables()
    if sink == "logs_ingestion":
        for table in TABLES.values():
            ws.declare(table.name, kql.table_columns(table))
        ws.declare("AZKVAuditLogs", vault_tables["AZKVAuditLogs"])
    else:
        # The templates create the vendor tables whichever sink runs; they stay empty here. (duckdb-kql
        # needs a fuzzy union's first leg to exist to know its columns for a join.) The legacy tables
        # start with the columns a workspace collecting for a while has (every fixed field was sent once);
        # a field no record ever carried would be missing, which test_rule_scenarios checks separately.
        for name in (KEEPER_TABLE, ONEPASSWORD_TABLE):
            table = TABLES[name]
            ws.declare(name, kql.table_columns(table))
            ws.declare(kql.legacy_table_name(table), kql.legacy_columns(table))
        # AZKVAuditLogs is one of Azure Monitor's own tables: it exists, empty, when the vault writes to
        # AzureDiagnostics.
        ws.declare("AZKVAuditLogs", vault_tables["AZKVAuditLogs"])
        ws.declare("AzureDiagnostics", vault_tables["AzureDiagnostics"])
    ws.declare("Watchlist", WATCHLIST_COLUMNS)
    for event_type, events in case.onepassword.items():
        for at, batch in collector_runs(events, now):
            rows, _ = shape_rows(TABLES[ONEPASSWORD_TABLE], batch, now=at, event_type=event_type)
            deliver(ws, sink, TABLES[ONEPASSWORD_TABLE], rows, at)
    for at, batch in collector_runs(case.keeper, now):
        rows, _ = shape_rows(TABLES[KEEPER_TABLE], batch, now=at, event_type="events")
        deliver(ws, sink, TABLES[KEEPER_TABLE], rows, at)
    for number, (at, reports) in enumerate(case.heartbeats):
        for table_name, rows in heartbeat_batches(reports, now=at, run_id=f"run-{number:04d}"):
            deliver(ws, sink, TABLES[table_name], rows, at)
    vault_rows: dict[str, list[JSON]] = {}
    for record in case.keyvault:
        table_name, row = keyvault_row(record, sink)
        vault_rows.setdefault(table_name, []).append(row)
    for table_name, rows in vault_rows.items():
        if table_name == "AzureDiagnostics":
            ws.declare(table_name, _legacy_columns(rows, known=ws.columns[table_name]))
        ws.insert(table_name, rows)
    items = []
    for alias, entries in case.watchlists.items():
        key = _watchlist_key(alias)
        for number, entry in enumerate(entries):
            items.append(
                {
                    "TimeGenerated": now - timedelta(days=1),
                    "WatchlistAlias": alias,
                    "_DTItemId": f"{alias}-{number}",
                    "_DTItemStatus": "Create",
                    "SearchKey": str(entry[key]),
                    "WatchlistItem": entry,
                }
            )
    ws.insert("Watchlist", items)
    ws.register(parsers, known_tables=known_tables(), replacements=DEPLOYMENT_VALUES)
    return ws


def keep_query_period(ws: Workspace, period: timedelta, now: datetime) -> None:
    """Sentinel runs a scheduled rule over its queryPeriod only: older rows are out of its reach."""
    since = (now - period).astimezone(UTC).replace(tzinfo=None)
    for table, columns in ws.columns.items():
        if table != "Watchlist" and "TimeGenerated" in columns:
            ws.con.execute(f'DELETE FROM "{table}" WHERE "TimeGenerated" < ?', [since])


# -- running --------------------------------------------------------------------------------------------
GEO_PRELUDE = geo_info_stand_in(GEO)


@dataclass
class Outcome:
    """What one query returned in one sink's workspace."""

    rows: int
    with_entities: int = 0
    sample: JSON = field(default_factory=dict)


@dataclass
class Proof:
    """A rule's (or a hunting query's) results: per sink, the case that fires and the quiet one."""

    name: str
    title: str
    fires_story: str
    quiet_story: str
    fires: dict[str, Outcome] = field(default_factory=dict)
    quiet: dict[str, Outcome] = field(default_factory=dict)


def _entity_columns(rule: JSON) -> list[str]:
    return [f["columnName"] for e in rule.get("entityMappings", []) for f in e["fieldMappings"]]


def _outcome(rows: list[JSON], entities: Sequence[str]) -> Outcome:
    full = [r for r in rows if all(r.get(c) not in (None, "") for c in entities)]
    return Outcome(len(rows), len(full), full[0] if full else (rows[0] if rows else {}))


def rule_documents() -> dict[str, JSON]:
    docs = {}
    for path in build_sentinel.rule_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        docs[path.stem] = doc
    return docs


def hunting_documents() -> dict[str, JSON]:
    return {
        f"hunting/{p.stem}": yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(build_sentinel.SENTINEL.glob("hunting/*.yaml"))
    }


def parser_functions() -> list[tuple[str, str]]:
    return [(p["name"], p["query"]) for p in build_sentinel.load_parsers()]


def prove(scenario: Scenario, doc: JSON, now: datetime, parsers: Sequence[tuple[str, str]]) -> Proof:
    """Run the query of ``doc`` on both cases of ``scenario`` in both sinks' workspaces."""
    is_rule = "queryPeriod" in doc
    entities = _entity_columns(doc)
    proof = Proof(
        scenario.name, str(doc["name"]), scenario.fires.story, scenario.quiet.story if scenario.quiet else ""
    )
    period = timedelta(minutes=build_sentinel.duration_minutes(doc["queryPeriod"])) if is_rule else None
    cases = [("fires", scenario.fires)] + ([("quiet", scenario.quiet)] if scenario.quiet else [])
    text = str(doc["query"])
    # The stand-in only where the query calls it: an unused function still costs a parse per translation.
    prelude = GEO_PRELUDE if "geo_info_from_ip_address" in text else ""
    for label, case in cases:
        for sink in SINKS:
            ws = workspace(case, sink, now, parsers)
            try:
                if period is not None:
                    keep_query_period(ws, period, now)
                rows = ws.query(text, prelude=prelude)
            finally:
                ws.close()
            getattr(proof, label)[sink] = _outcome(rows, entities)
    return proof


def run_all(now: datetime | None = None) -> dict[str, Proof]:
    """Every registered scenario, proven; keyed by rule file stem or ``hunting/<stem>``."""
    now = now or datetime.now(UTC)
    parsers = parser_functions()
    docs = {**rule_documents(), **hunting_documents()}
    proofs = {}
    for name, build in sorted(REGISTRY.items()):
        if name not in docs:
            raise KeyError(f"scenario {name} names no rule or hunting query")
        proofs[name] = prove(build(now), docs[name], now, parsers)
    return proofs


# -- the docs section -----------------------------------------------------------------------------------
HEADER = [
    SECTION,
    "",
    "Generated by `python tools/rule_scenarios.py` from the scenarios in `tests/scenarios/` (a test fails",
    "when this section is not what a fresh run writes). Each rule ran in a real KQL engine (duckdb-kql)",
    "on raw vendor events shaped by the collector's own code and delivered as each sink stores them,",
    "restricted to the rule's queryPeriod, with the real clock. *Fires* counts the rows the rule returned",
    "(Logs Ingestion / Data Collector workspace; every mapped entity filled in at least one), *quiet* the",
    "rows it returned on a benign stretch of the same kinds of events (must be 0).",
    "",
    "| rule | fires on | rows | stays quiet on | rows |",
    "|---|---|---|---|---|",
]
FOOTER = [
    "",
    "Stand-ins for what the engine lacks (tools/kql_engine.py): `column_ifexists` is resolved against the",
    "columns each table really has in the workspace before the query runs (what Kusto decides when it",
    "analyses the query); `_GetWatchlist` is a stored function over a `Watchlist` table with Sentinel's",
    "columns; `geo_info_from_ip_address` answers from the scenarios' address plan (documentation ranges",
    "have no real location). Known engine differences: `make_set`/`make_list` ignore their size limit.",
    "",
]


def _cell(outcome: dict[str, Outcome]) -> str:
    return " / ".join(str(outcome[s].rows) for s in SINKS)


def row(proof: Proof) -> str:
    """The line of the docs table that ``proof`` makes (a rule's, or a hunting query's)."""
    if proof.name.startswith("hunting/"):
        return f"| {proof.title} | {proof.fires_story} | {_cell(proof.fires)} |"
    return (
        f"| {proof.title} | {proof.fires_story} | {_cell(proof.fires)} | {proof.quiet_story} | "
        f"{_cell(proof.quiet)} |"
    )


def section(rows: dict[str, str]) -> str:
    """The docs section around ``rows`` (rule file stem or ``hunting/<stem>`` -> its line): every rule in
    the order of its name (one without a row is marked), then the hunting queries that have a row."""
    rules = rule_documents()
    hunting = hunting_documents()
    lines = list(HEADER)
    for stem in sorted(rules, key=lambda s: str(rules[s]["name"])):
        lines.append(rows.get(stem, f"| {rules[stem]['name']} | **no scenario** | | | |"))
    lines += ["", "| hunting query | returns rows on | rows |", "|---|---|---|"]
    for name in sorted((n for n in hunting if n in rows), key=lambda n: str(hunting[n]["name"])):
        lines.append(rows[name])
    return "\n".join(lines + FOOTER)


def render(proofs: dict[str, Proof]) -> str:
    return section({name: row(proof) for name, proof in proofs.items()})


def committed_rows(doc: str) -> dict[str, str]:
    """The lines of the committed docs section, by the rule or hunting query their first cell names."""
    names = {str(d["name"]): n for n, d in {**rule_documents(), **hunting_documents()}.items()}
    rows = {}
    for line in doc.split(SECTION, 1)[-1].splitlines():
        title = line.split(" | ", 1)[0].removeprefix("| ")
        if line.startswith("| ") and title in names:
            rows[names[title]] = line
    return rows


def with_section(doc: str, section: str) -> str:
    head = doc.split(SECTION, 1)[0].rstrip("\n")
    return f"{head}\n\n{section}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/sentinel.md is stale")
    args = parser.parse_args(argv)
    section = render(run_all())
    current = DOC.read_text(encoding="utf-8")
    text = with_section(current, section)
    if args.check:
        if text != current:
            print(f"{DOC.relative_to(ROOT)} is stale: run python tools/rule_scenarios.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
