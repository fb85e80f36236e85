"""Shape raw vendor events into rows of a destination table, reading only the table definition.

Only declared columns are emitted, each coerced to its declared type; a value that cannot be coerced
is not dropped silently: the row keeps what it can and the count is reported (health row Details).
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from auditsync.tables import Column, TableDef

JSON = dict[str, Any]


#: An ISO-8601 UTC time with fixed-width fields: among strings of one length, text order is time order.
_FIXED_WIDTH_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def newest_time(values: list[Any]) -> datetime | None:
    """The latest of ``values`` as ``parse_time`` reads them (None when none is a time).

    A page's timestamps are usually written alike (UTC, ``Z``, the same number of digits): then the
    greatest string is the latest time and only it is parsed, instead of a thousand ``parse_time``
    calls for one maximum (they were a twentieth of a 1Password drain's CPU). Anything else (offsets,
    epochs, mixed precision, a value that is not a time) is parsed one by one.
    """
    if values and all(type(v) is str for v in values):
        width = len(values[0])
        if all(len(v) == width and _FIXED_WIDTH_UTC.fullmatch(v) for v in values):
            latest = parse_time(max(values))
            if latest is not None:
                return latest
    times = [t for t in map(parse_time, values) if t is not None]
    return max(times) if times else None


def parse_time(value: Any) -> datetime | None:
    """Accept ISO-8601 (with or without fraction, ``Z`` or offset), epoch seconds or milliseconds.

    Returns an aware UTC datetime, or None when the value is not a time.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return parse_time(int(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def format_time(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``: what Log Analytics parses without guessing."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _lookup_parts(event: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    value: Any = event
    for part in parts:
        # ``type(...) is dict`` first: the ABC check costs far more and JSON gives plain dicts.
        if (type(value) is not dict and not isinstance(value, Mapping)) or part not in value:
            return None
        value = value[part]
    return value


class _Uncoercible(Exception):
    pass


_UNCOERCIBLE = object()


def _coerced(value: Any, kind: str) -> Any:
    """``_coerce`` for a value known before the events are read; ``_UNCOERCIBLE`` when it does not fit."""
    if value is None:
        return None
    try:
        return _coerce(value, kind)
    except _Uncoercible:
        return _UNCOERCIBLE


def _coerce(value: Any, kind: str) -> Any:
    if kind == "dynamic":
        return value
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, Mapping | list):
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return str(value).lower() if isinstance(value, bool) else str(value)
    if kind in ("int", "long"):
        if isinstance(value, bool):
            raise _Uncoercible
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise _Uncoercible
    if kind == "real":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _Uncoercible from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _Uncoercible
    if kind == "datetime":
        parsed = parse_time(value)
        if parsed is None:
            raise _Uncoercible
        return format_time(parsed)
    raise ValueError(kind)


@functools.lru_cache(maxsize=64)
def _compiled(
    table: TableDef,
) -> tuple[frozenset[str], str | None, tuple[tuple[Column, tuple[str | tuple[str, ...], ...]], ...]]:
    """A table's shaping plan, once per table: the fields other columns consume, the ``$rest`` column,
    and per column its sources (``$now``/``$event_type`` as they are, paths split into their parts)."""
    consumed = frozenset(s.split(".")[0] for c in table.columns for s in c.sources if not s.startswith("$"))
    rest_column = next((c.name for c in table.columns if "$rest" in c.sources), None)
    columns = tuple(
        (
            column,
            tuple(
                source if source in ("$now", "$event_type") else tuple(source.split("."))
                for source in column.sources
                if source != "$rest"
            ),
        )
        for column in table.columns
    )
    return consumed, rest_column, columns


def shape_rows(
    table: TableDef,
    events: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    event_type: str = "",
) -> tuple[list[JSON], Counter[str]]:
    """Turn raw events into rows of ``table``; return the rows and counters of values we could not type.

    A value that does not fit its column's type (say an unparseable timestamp) leaves the column empty
    and, when the table has a ``$rest`` column, is kept there under its original name, so nothing is
    lost; the counter ``uncoercible_<column>`` tells the health row.
    """
    counters: Counter[str] = Counter()
    consumed, rest_column, compiled = _compiled(table)
    now_text = format_time(now)
    # The table's plan is compiled once; only the constants ``$now``/``$event_type`` (coerced once
    # here) change from call to call.
    plan: list[tuple[Column, list[tuple[Any, Any, tuple[str, ...] | None]]]] = []
    for column, sources in compiled:
        steps: list[tuple[Any, Any, tuple[str, ...] | None]] = []
        for source in sources:
            if isinstance(source, tuple):
                steps.append((None, None, source))
            else:
                constant = now_text if source == "$now" else event_type or None
                steps.append((constant, _coerced(constant, column.type), None))
        plan.append((column, steps))
    rows = []
    for event in events:
        row: JSON = {}
        kept: JSON = {}
        for column, steps in plan:
            value: Any = None
            found = None
            for step in steps:
                constant, _, parts = step
                value = constant if parts is None else _lookup_parts(event, parts)
                if value is not None:
                    found = step
                    break
            if found is None:
                continue
            try:
                _, coerced, parts = found
                if parts is not None:
                    coerced = _coerce(value, column.type)
                elif coerced is _UNCOERCIBLE:
                    raise _Uncoercible
                row[column.name] = coerced
            except _Uncoercible:
                counters[f"uncoercible_{column.name}"] += 1
                kept[column.sources[0]] = value
        if rest_column is not None:
            rest = {k: v for k, v in event.items() if k not in consumed}
            rest.update(kept)
            row[rest_column] = rest
        rows.append(row)
    return rows, counters
