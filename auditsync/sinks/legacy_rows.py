"""Rows in the shape the legacy HTTP Data Collector API expects, derived from the same table JSON.

The Data Collector API has no schema: it names each column after the JSON field plus a type suffix
(``_s`` string, ``_d`` number, ``_b`` bool, ``_t`` ISO datetime, ``_g`` GUID-shaped string) and stores
nested objects as JSON text. So the legacy record is the table row with three changes:

- ``$now`` columns (``TimeGenerated``) are left out: the service sets ``TimeGenerated`` to the
  ingestion time, which is what the DCR tables do too (``extend TimeGenerated = now()``);
- the ``$rest`` column (Keeper's ``data``) is flattened into top-level fields, one column per
  event-specific field (``record_uid_s``...), which is what Keeper's own legacy push writes to ``Keeper_CL``;
- a declared name that already ends with the suffix of its type (``uuid_s``) is sent without it, so
  the service does not double it (``uuid_s``, not ``uuid_s_s``).

Dynamic values are serialised to JSON text here rather than by the service, so the 32 KB field limit
is checked on the exact text that will be stored; longer text is cut with a visible marker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from auditsync.sinks.limits import TRUNCATION_MARKER, truncate_text
from auditsync.tables import Column, TableDef

__all__ = [
    "FIELD_LIMIT_BYTES",
    "TRUNCATION_MARKER",
    "LegacyShaper",
    "fit_field",
    "legacy_columns",
    "legacy_name",
]

JSON = dict[str, Any]

#: The service keeps at most 32 KB of a field. We read "KB" as 1,000 bytes (the stricter of the two
#: readings) so no value we send is ever cut by the service without our marker.
FIELD_LIMIT_BYTES = 32_000

#: Suffix the service appends for a value of each declared column type (a string that looks like a
#: GUID or an ISO datetime gets ``_g``/``_t`` instead; see docs/data-collector.md).
SUFFIX_BY_TYPE = {
    "string": "_s",
    "int": "_d",
    "long": "_d",
    "real": "_d",
    "boolean": "_b",
    "datetime": "_t",
    "dynamic": "_s",
}
#: Names Log Analytics reserves in every table; a flattened field with one of these names is prefixed.
RESERVED_NAMES = frozenset(
    {"TimeGenerated", "Type", "TenantId", "SourceSystem", "_ResourceId", "id", "UniqueId", "Title"}
)


def legacy_name(column: Column) -> str:
    """The field name to send for ``column`` (its suffix stripped when it already carries its type's)."""
    suffix = SUFFIX_BY_TYPE[column.type]
    if column.name.endswith(suffix) and len(column.name) > len(suffix):
        return column.name[: -len(suffix)]
    return column.name


def legacy_columns(table: TableDef) -> list[tuple[str, str]]:
    """``(column as a KQL user sees it, declared type)`` for every fixed column, for docs and tests.

    Event-specific fields flattened out of a ``$rest`` column are not listed: they depend on the event.
    """
    result = []
    for column in table.columns:
        if "$now" in column.sources or "$rest" in column.sources or column.name in RESERVED_NAMES:
            continue
        result.append((legacy_name(column) + SUFFIX_BY_TYPE[column.type], column.type))
    return result


def fit_field(text: str, limit: int = FIELD_LIMIT_BYTES) -> tuple[str, bool]:
    """``text`` itself when it fits ``limit`` UTF-8 bytes, else cut and marked; True when it was cut."""
    if len(text.encode("utf-8")) <= limit:
        return text, False
    return truncate_text(text, limit), True


class LegacyShaper:
    """Turns shaped table rows into Data Collector records; counts the fields it had to truncate."""

    def __init__(self, table: TableDef, *, field_limit: int = FIELD_LIMIT_BYTES) -> None:
        self.table = table
        self.field_limit = field_limit
        self.truncated_fields = 0
        self.truncated_columns: set[str] = set()

    def record(self, row: Mapping[str, Any]) -> JSON:
        record: JSON = {}
        rest: list[tuple[str, Mapping[str, Any]]] = []
        for column in self.table.columns:
            if "$now" in column.sources or column.name in RESERVED_NAMES:
                continue
            value = row.get(column.name)
            if value is None:
                continue
            if "$rest" in column.sources and isinstance(value, Mapping):
                rest.append((column.name, value))
                continue
            record[legacy_name(column)] = self._value(legacy_name(column), value)
        # Flattened last so that a declared column always keeps its own name.
        for prefix, fields in rest:
            for key, value in fields.items():
                if value is None:
                    continue
                name = key if key not in record and key not in RESERVED_NAMES else f"{prefix}_{key}"
                record[name] = self._value(name, value)
        return record

    def _value(self, name: str, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            # JSON has no NaN/Infinity: send it as text rather than fail the whole page.
            return value if math.isfinite(value) else str(value)
        if isinstance(value, Mapping | list | tuple):
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        elif not isinstance(value, str):
            value = str(value)
        text, cut = fit_field(value, self.field_limit)
        if cut:
            self.truncated_fields += 1
            self.truncated_columns.add(name)
        return text
