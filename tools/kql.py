"""KQL validation with Kusto.Language: the workspace schema our content runs against, and one call that
checks any number of queries in a single node process (tools/kql_check.js).

The schema comes from the table definitions (``auditsync/tables/*.json``) and, for the legacy HTTP Data
Collector tables, from the column rules the Data Collector sink follows (docs/data-collector.md) applied to
the same definitions: ``_s`` string, ``_d`` number, ``_b`` bool, ``_t`` datetime, nested objects as JSON
text in ``_s`` columns, Keeper's event-specific fields flattened into their own columns, no doubled suffix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditsync.sinks import legacy_rows
from auditsync.tables import HEALTH_TABLE, KEEPER_TABLE, ONEPASSWORD_TABLE, TABLES, TableDef

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "tools" / "kql_check.js"

Columns = list[tuple[str, str]]

# Kusto.Language spells a few types differently from the table API.
_KUSTO_TYPE = {"boolean": "bool", "int": "int", "long": "long", "real": "real"}

# Keeper's legacy push writes event-specific fields as top-level columns (keeper-events-api.md).
KEEPER_EVENT_FIELDS_TEXT = (
    "record_uid",
    "shared_folder_uid",
    "folder_uid",
    "folder_type",
    "team_uid",
    "app_uid",
    "secret_uid",
    "to_username",
    "from_username",
    "node",
    "channel",
    "result_code",
    "device_name",
    "enforcement",
    "value",
    "email",
    "attachment_id",
    "origin",
    "recipient",
    "name",
)
KEEPER_EVENT_FIELDS_NUMBER = ("role_id", "node_id")

#: Kusto types of the Data Collector suffixes (numbers are stored as real).
LEGACY_TYPE = {"_s": "string", "_d": "real", "_b": "bool", "_t": "datetime"}


def kusto_type(table_type: str) -> str:
    return _KUSTO_TYPE.get(table_type, table_type)


def table_columns(table: TableDef) -> Columns:
    """Columns of the Log Analytics table (after the DCR transform)."""
    return [(name, kusto_type(kind)) for name, kind in table.table_columns]


def stream_columns(table: TableDef) -> Columns:
    """Columns of the DCR input stream: what the transform sees as ``source``."""
    return [(c.name, kusto_type(c.type)) for c in table.columns]


def legacy_columns(table: TableDef) -> Columns:
    """Columns the HTTP Data Collector API creates for our sink's records (``legacy_rows`` decides the names),
    plus TimeGenerated, SourceSystem and the Keeper event-specific fields it flattens out of ``data``."""
    # The service stamps TimeGenerated and SourceSystem ("RestAPI") on every Data Collector record.
    columns: Columns = [("TimeGenerated", "datetime"), ("SourceSystem", "string")]
    columns += [(name, LEGACY_TYPE[name[-2:]]) for name, _ in legacy_rows.legacy_columns(table)]
    if table.name == KEEPER_TABLE:
        columns += [(f"{n}_s", "string") for n in KEEPER_EVENT_FIELDS_TEXT]
        columns += [(f"{n}_d", "real") for n in KEEPER_EVENT_FIELDS_NUMBER]
    return columns


def legacy_table_name(table: TableDef) -> str:
    return f"{table.legacy_log_type}_CL"


def workspace_tables(*, legacy: bool = True) -> list[dict[str, Any]]:
    """Tables of a workspace with our Logs Ingestion tables and, when ``legacy``, the Data Collector ones.

    The legacy health log type writes to the same table name as the Logs Ingestion health table, so it is
    not declared a second time; the ``legacy_health_only`` scenario covers its other column shape.
    """
    tables = [{"name": t.name, "columns": table_columns(t)} for t in TABLES.values()]
    if legacy:
        for t in TABLES.values():
            if legacy_table_name(t) != t.name:
                tables.append({"name": legacy_table_name(t), "columns": legacy_columns(t)})
    return tables


def legacy_only_tables() -> list[dict[str, Any]]:
    """A workspace fed only by the legacy sink: no Logs Ingestion tables, health rows in suffixed columns."""
    health = TABLES[HEALTH_TABLE]
    tables = [{"name": health.name, "columns": legacy_columns(health)}]
    for name in (KEEPER_TABLE, ONEPASSWORD_TABLE):
        t = TABLES[name]
        tables.append({"name": legacy_table_name(t), "columns": legacy_columns(t)})
    return tables


@dataclass
class Diagnostic:
    severity: str
    code: str
    message: str
    start: int
    length: int

    def describe(self, query: str) -> str:
        line = query.count("\n", 0, self.start) + 1
        snippet = query[self.start : self.start + max(self.length, 1)]
        return f"{self.severity} {self.code} line {line} at {snippet!r}: {self.message}"


@dataclass(frozen=True)
class DynamicPath:
    """One ``x.y["z"]`` access into a dynamic value. ``root`` is the column (or the column inside
    ``todynamic(x)``/``parse_json(x)``, ``root_kind`` ``call:<fn>``) the path starts from."""

    root: str
    root_kind: str
    path: tuple[str, ...]
    start: int

    @property
    def text(self) -> str:
        return ".".join((self.root, *self.path))


@dataclass
class Checked:
    """One analysed query: its diagnostics, the columns of its tabular result (None if scalar) and what
    its syntax tree uses (dynamic paths, query operators, functions called)."""

    name: str
    query: str
    diagnostics: list[Diagnostic]
    columns: Columns | None
    paths: list[DynamicPath] = field(default_factory=list)
    operators: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "Error"]

    def describe_errors(self) -> str:
        return "\n".join(f"  {self.name}: {d.describe(self.query)}" for d in self.errors)


@dataclass
class Scenario:
    """A workspace schema, the functions declared in it (analysed in order) and queries to check.
    ``builtins`` are functions the workspace provides, as ``(name, "(param:type)", "{ body }")``."""

    name: str
    tables: list[dict[str, Any]]
    functions: list[tuple[str, str]] = field(default_factory=list)
    queries: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)
    builtins: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class ScenarioResult:
    functions: dict[str, Checked]
    queries: dict[str, Checked]


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: the KQL checks need Node.js (./dev setup installs the rest)")
    return node


def check(scenarios: list[Scenario], *, timeout: float = 300) -> dict[str, ScenarioResult]:
    """Analyse every function and query of every scenario in one node process."""
    payload = [
        {
            "name": s.name,
            "tables": s.tables,
            "builtins": [{"name": n, "parameters": p, "body": b} for n, p, b in s.builtins],
            "functions": [{"name": n, "query": q} for n, q in s.functions],
            "queries": [{"name": n, "query": q, "tables": extra} for n, q, extra in s.queries],
        }
        for s in scenarios
    ]
    done = subprocess.run(
        [node_executable(), str(CHECKER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kql_check.js failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    raw = json.loads(done.stdout)
    results: dict[str, ScenarioResult] = {}
    for scenario, out in zip(scenarios, raw, strict=True):
        texts = {n: q for n, q in scenario.functions}
        texts.update({n: q for n, q, _ in scenario.queries})

        def checked(item: dict[str, Any], texts: dict[str, str] = texts) -> Checked:
            columns = item["columns"]
            return Checked(
                name=item["name"],
                query=texts[item["name"]],
                diagnostics=[Diagnostic(**d) for d in item["diagnostics"]],
                columns=[(c[0], c[1]) for c in columns] if columns is not None else None,
                paths=[
                    DynamicPath(p["root"], p["rootKind"], tuple(p["path"]), p["start"])
                    for p in item.get("paths", [])
                ],
                operators=list(item.get("operators", [])),
                calls=list(item.get("calls", [])),
            )

        results[scenario.name] = ScenarioResult(
            functions={f["name"]: checked(f) for f in out["functions"]},
            queries={q["name"]: checked(q) for q in out["queries"]},
        )
    return results
