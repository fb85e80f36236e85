"""Destination tables as data: one JSON file per table is the single source of truth for columns.

The code shapes rows from these files, the Bicep loads them with ``loadJsonContent``, the ARM JSON, the
KQL checks and the Logs Ingestion simulator are tested against them. A column declared nowhere else
is a column Azure would drop silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TABLES_DIR = Path(__file__).parent
COLUMN_TYPES = ("string", "int", "long", "real", "boolean", "datetime", "dynamic")

ONEPASSWORD_TABLE = "OnePasswordEventLogs_CL"
KEEPER_TABLE = "KeeperSecurityEventNewLogs_CL"
HEALTH_TABLE = "AuditSyncHealth_CL"


@dataclass(frozen=True)
class Column:
    """One input-stream column. ``sources`` are where its value comes from, first present wins:
    a dotted path into the raw event, or ``$now``, ``$event_type``, ``$rest`` (every field no other
    column takes)."""

    name: str
    type: str
    sources: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class TableDef:
    """A destination table: its DCR input stream, transform, and the columns on both sides of it."""

    name: str
    stream: str
    transform_kql: str
    columns: tuple[Column, ...]
    table_columns: tuple[tuple[str, str], ...]
    legacy_log_type: str
    description: str = ""

    @property
    def column_types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}


def _load(path: Path) -> TableDef:
    doc = json.loads(path.read_text(encoding="utf-8"))
    columns = []
    for c in doc["columns"]:
        if c["type"] not in COLUMN_TYPES:
            raise ValueError(f"{path.name}: column {c['name']} has unknown type {c['type']}")
        source = c.get("from", c["name"])
        columns.append(
            Column(
                c["name"],
                c["type"],
                tuple(source) if isinstance(source, list) else (source,),
                c.get("description", ""),
            )
        )
    table_columns = tuple((c["name"], c["type"]) for c in doc.get("tableColumns", doc["columns"]))
    return TableDef(
        name=doc["name"],
        stream=doc["stream"],
        transform_kql=doc["transformKql"],
        columns=tuple(columns),
        table_columns=table_columns,
        legacy_log_type=doc["legacyLogType"],
        description=doc.get("description", ""),
    )


def load_tables() -> dict[str, TableDef]:
    """Every ``*.json`` beside this module, by table name."""
    tables = {}
    for path in sorted(TABLES_DIR.glob("*.json")):
        table = _load(path)
        tables[table.name] = table
    return tables


TABLES: dict[str, TableDef] = load_tables()
