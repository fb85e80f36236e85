"""Run the Sentinel content's KQL for real: duckdb-kql translates KQL to DuckDB SQL and DuckDB executes it.

A ``Workspace`` is one in-memory DuckDB database holding the tables a Log Analytics workspace would have,
declared from the table definitions (``auditsync/tables/*.json``), the Data Collector's column rules or
Microsoft's table reference, with the parsers registered as stored functions. Rows go in the way Azure
stores them: through the DCR transform (run by the engine itself, ``now()`` pinned to the ingestion time),
or as the Data Collector API's typed columns; absent strings are stored as ``""``, because a Kusto string
is never null.

Where the engine lacks a construct, a stand-in does what Kusto does (each says how faithful it is):

- ``column_ifexists(name, default)`` is resolved before the text reaches the engine, against the columns
  the table really has in this workspace (``resolve_column_ifexists``), as Kusto resolves it when it
  analyses the query;
- ``_GetWatchlist(alias)`` is a stored function over a ``Watchlist`` table with the documented columns;
- ``geo_info_from_ip_address(ip)`` is a scalar function prepended to the query, answering from a table of
  address ranges the caller gives (documentation ranges have no real location).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb_kql
from duckdb_kql import stored_functions
from duckdb_kql.engine import schema as engine_schema
from duckdb_kql.translate import CLOCK_SLOT
from duckdb_kql.types import kusto_type

from auditsync.tables.rows import parse_time

JSON = dict[str, Any]
#: ``(column, Kusto type)`` in table order.
Columns = Sequence[tuple[str, str]]

_DUCKDB_TYPE = {
    "string": "VARCHAR",
    "datetime": "TIMESTAMP",
    "dynamic": "JSON",
    "int": "INTEGER",
    "long": "BIGINT",
    "real": "DOUBLE",
    "bool": "BOOLEAN",
    "boolean": "BOOLEAN",
    "guid": "VARCHAR",
}

#: Sentinel's ``Watchlist`` table, the columns ``_GetWatchlist`` reads (Azure Monitor table reference).
WATCHLIST_COLUMNS: Columns = (
    ("TimeGenerated", "datetime"),
    ("WatchlistAlias", "string"),
    ("_DTItemId", "string"),
    ("_DTItemStatus", "string"),
    ("SearchKey", "string"),
    ("WatchlistItem", "dynamic"),
)

#: ``_GetWatchlist``: the current items of one watchlist, in the shape Sentinel's function returns.
GET_WATCHLIST = (
    "function _GetWatchlist(watchlistAlias:string) { Watchlist"
    ' | where WatchlistAlias == watchlistAlias and _DTItemStatus != "Delete"'
    " | project _DTItemId, LastUpdatedTimeUTC = TimeGenerated, SearchKey, WatchlistItem }"
)


#: Rows per INSERT statement (its parameters stay well under DuckDB's limit).
_INSERT_ROWS = 200


class KqlEngineError(RuntimeError):
    """A query or a stand-in could not be run; the message names the query and the reason."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kusto_name(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"['{name}']"


def _call_end(text: str, open_paren: int) -> int:
    """Index just after the parenthesis that closes the one at ``open_paren`` (strings skipped)."""
    depth = 0
    i = open_paren
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = text.index(ch, i + 1)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise KqlEngineError(f"unbalanced parentheses after position {open_paren}")


_COLUMN_IFEXISTS = re.compile(r'column_ifexists\(\s*"([^"]+)"\s*,\s*')


def resolve_column_ifexists(
    text: str, columns: Mapping[str, Iterable[str]], known_tables: Iterable[str]
) -> str:
    """Replace each ``column_ifexists("c", default)`` with ``c`` when the table it reads has that column,
    else with ``default``: what Kusto decides when it analyses the query.

    The table a call reads is the nearest table name before it (``known_tables``): right for parsers
    written as ``union (T1 | ...), (T2 | ...)`` or ``T | ...``, which is how ours are (a leg never
    creates a column it then tests with ``column_ifexists``). A table missing from ``columns`` does not
    exist in this workspace: every call in its leg takes the default (the fuzzy union skips the leg anyway).
    """
    names = sorted(set(known_tables), key=len, reverse=True)
    table_at = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b")
    out: list[str] = []
    pos = 0
    for match in _COLUMN_IFEXISTS.finditer(text):
        if match.start() < pos:
            continue
        tables = [m.group(1) for m in table_at.finditer(text, 0, match.start())]
        if not tables:
            raise KqlEngineError(f"column_ifexists({match.group(1)!r}) reads no known table")
        end = _call_end(text, match.start() + len("column_ifexists"))
        default = text[match.end() : end - 1].strip()
        present = match.group(1) in set(columns.get(tables[-1], ()))
        out.append(text[pos : match.start()])
        out.append(_kusto_name(match.group(1)) if present else f"({default})")
        pos = end
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class GeoRange:
    """Addresses starting with ``prefix`` are located in ``country``/``city`` (for the geo stand-in)."""

    prefix: str
    country: str
    city: str
    latitude: float
    longitude: float


def geo_info_stand_in(ranges: Sequence[GeoRange]) -> str:
    """``geo_info_from_ip_address`` as a scalar ``let`` function: the bag Kusto returns (country, state,
    city, latitude, longitude) for the listed prefixes, and an empty bag for any other address (Kusto's
    answer for an address its database does not know)."""
    branches = []
    for r in ranges:
        bag = json.dumps(
            {
                "country": r.country,
                "state": "",
                "city": r.city,
                "latitude": r.latitude,
                "longitude": r.longitude,
            }
        )
        branches.append(f'ip startswith "{r.prefix}", dynamic({bag})')
    body = ", ".join([*branches, "dynamic({})"]) if branches else "dynamic({})"
    expression = f"case({body})" if branches else body
    return f"let geo_info_from_ip_address = (ip:string) {{ {expression} }};\n"


def _db_value(value: Any, kind: str) -> Any:
    if value is None:
        return "" if kind in ("string", "guid") else None
    if kind == "dynamic":
        return json.dumps(value, ensure_ascii=False)
    if kind == "datetime":
        parsed = parse_time(value)
        if parsed is None:
            raise KqlEngineError(f"not a time: {value!r}")
        return parsed.astimezone(UTC).replace(tzinfo=None)
    if kind in ("string", "guid"):
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if kind in ("int", "long"):
        return int(value)
    if kind == "real":
        return float(value)
    if kind in ("bool", "boolean"):
        return bool(value)
    raise KqlEngineError(f"unknown type {kind}")


def _py_value(value: Any, kind: str) -> Any:
    if kind == "dynamic" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class Workspace:
    """One Log Analytics workspace, in memory: tables, rows, functions, and queries run against them."""

    def __init__(self, *, now: datetime | None = None) -> None:
        if _IDLE:
            self.con = _IDLE.pop()
        else:
            self.con = duckdb_kql.connect()
            self.con.execute("SET TimeZone='UTC'")  # KQL datetimes are UTC (duckdb-kql's connect sets it too)
        self.now = now
        self.columns: dict[str, dict[str, str]] = {}
        self._functions: list[tuple[str, str]] = []
        self._known: set[str] = set()
        self._replacements: dict[str, str] = {}
        self._parsed: Any = None
        self._functions_key: tuple[str, ...] = ()
        self._schema: dict[str, list[str]] | None = None

    # -- tables ---------------------------------------------------------------------------------------
    def declare(self, table: str, columns: Columns) -> None:
        """Create ``table`` with ``columns`` (Kusto types); an existing table gains the missing columns."""
        self._schema = self._parsed = None
        known = self.columns.get(table)
        if known is None:
            body = ", ".join(f"{_quote(c)} {_DUCKDB_TYPE[t]}" for c, t in columns)
            self.con.execute(f"CREATE TABLE {_quote(table)} ({body})")
            self.columns[table] = dict(columns)
            return
        for name, kind in columns:
            if name not in known:
                self.con.execute(
                    f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)} {_DUCKDB_TYPE[kind]}"
                )
                # Rows already stored read "" in a string column they never had, as Kusto shows them.
                if kind in ("string", "guid"):
                    self.con.execute(f"UPDATE {_quote(table)} SET {_quote(name)} = ''")
                known[name] = kind

    def drop(self, table: str) -> None:
        self._schema = self._parsed = None
        self.con.execute(f"DROP TABLE IF EXISTS {_quote(table)}")
        self.columns.pop(table, None)

    def close(self) -> None:
        """Drop every table and leave the connection, empty, to the next workspace: opening a database
        costs more than most queries."""
        for table in list(self.columns):
            self.drop(table)
        _IDLE.append(self.con)
        del self.con

    def insert(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        columns = self.columns[table]
        names = list(columns)
        values = [[_db_value(row.get(n), columns[n]) for n in names] for row in rows]
        marks = "(" + ", ".join("?" for _ in names) + ")"
        for start in range(0, len(values), _INSERT_ROWS):  # a statement per row costs a bind per row
            chunk = values[start : start + _INSERT_ROWS]
            self.con.execute(
                f"INSERT INTO {_quote(table)} ({', '.join(_quote(n) for n in names)}) VALUES "
                + ", ".join(marks for _ in chunk),
                [v for row in chunk for v in row],
            )
        return len(values)

    def transform(
        self, transform_kql: str, stream: Columns, rows: Sequence[Mapping[str, Any]], at: datetime
    ) -> list[JSON]:
        """What a DCR does with ``rows`` of its input ``stream`` at ingestion time ``at``: the transform,
        run by the engine with ``now()`` pinned to ``at``."""
        scratch = _scratch(stream)
        scratch.con.execute('DELETE FROM "source"')
        scratch.insert("source", rows)
        return scratch.query(transform_kql, now=at)

    # -- functions ------------------------------------------------------------------------------------
    def register(
        self,
        functions: Sequence[tuple[str, str]],
        *,
        known_tables: Iterable[str] = (),
        replacements: Mapping[str, str] | None = None,
    ) -> None:
        """Save parser functions (``(name, body)``, dependencies first) as stored functions, their
        ``column_ifexists`` calls resolved against this workspace's tables (``known_tables``: every table
        a parser may name, present here or not), ``replacements`` made as the deployment makes them, and
        ``_GetWatchlist`` beside them."""
        self._functions = list(functions)
        self._known = set(known_tables)
        self._parsed = None
        self._replacements = dict(replacements or {})

    def _function_definitions(self) -> Any:
        if self._parsed is None:
            tables = tuple(sorted((t, tuple(c)) for t, c in self.columns.items()))
            key = (tuple(self._functions), frozenset(self._known), tuple(self._replacements.items()), tables)
            if key not in _DEFINITIONS:  # the same for every workspace with these tables
                _DEFINITIONS[key] = self._parse_functions()
            self._functions_key, self._parsed = _DEFINITIONS[key]
        return self._parsed

    def _parse_functions(self) -> tuple[tuple[str, ...], Any]:
        definitions = [GET_WATCHLIST]
        known = self._known | set(self.columns)
        for name, body in self._functions:
            for placeholder, value in self._replacements.items():
                body = body.replace(placeholder, value)
            resolved = resolve_column_ifexists(body, self.columns, known)
            definitions.append(f"function {name}() {{ {resolved} }}")
        merged: dict[str, Any] = {}
        for definition in definitions:  # parsed one by one: most are the same with other tables
            parsed = _FUNCTIONS.get(definition)
            if parsed is None:
                resolved_functions = stored_functions.parse_functions([definition])
                assert resolved_functions is not None
                parsed = _FUNCTIONS[definition] = resolved_functions[None]
            merged.update(parsed)
        return tuple(definitions), {None: merged}

    # -- queries --------------------------------------------------------------------------------------
    def query(self, text: str, *, now: datetime | None = None, prelude: str = "") -> list[JSON]:
        """Rows of ``text`` as dicts (dynamic values parsed), with ``now()``/``ago()`` at ``now`` (default:
        the workspace's ``now``, else the wall clock)."""
        moment = (now or self.now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        functions = self._function_definitions() if self._functions else None
        try:
            translated = self._translate(prelude + text, functions, moment)
            parameters = dict(translated.parameters)
            if CLOCK_SLOT in parameters:
                parameters[CLOCK_SLOT] = moment
            result = self.con.execute(translated.statement, parameters or None)
            names = [d[0] for d in result.description]
            types = [kusto_type(str(d[1])) for d in result.description]
            return [
                {n: _py_value(v, k) for n, v, k in zip(names, row, types, strict=True)}
                for row in result.fetchall()
            ]
        except Exception as exc:  # the engine's errors carry no query name: add what failed
            raise KqlEngineError(f"{type(exc).__name__}: {exc}") from exc

    def _translate(self, text: str, functions: Any, moment: datetime) -> _Translation:
        """The SQL of ``text`` for this workspace's schema, translated and parsed once per schema and
        functions: the clock is a parameter of the SQL, so one translation serves every ``now``."""
        if self._schema is None:  # read from the catalog, as the engine reads it; changed only by DDL here
            self._schema = engine_schema(self.con)
        schema = self._schema
        key = (text, tuple(sorted((t, tuple(c)) for t, c in schema.items())), self._functions_key)
        translated = _TRANSLATIONS.get(key)
        if translated is None:
            sql = duckdb_kql.to_sql(text, schema=schema, functions=functions, query_now=moment)
            (statement,) = self.con.extract_statements(str(sql))
            translated = _TRANSLATIONS[key] = _Translation(statement, dict(sql.parameters))
        return translated


@dataclass(frozen=True)
class _Translation:
    """A query's SQL, parsed by DuckDB (the parse of a parser's SQL costs as much as running it; a parsed
    statement runs on any connection), and the values of its parameters."""

    statement: Any
    parameters: dict[str, Any]


_TRANSLATIONS: dict[tuple[Any, ...], Any] = {}
_SCRATCH: dict[tuple[tuple[str, str], ...], Workspace] = {}
_IDLE: list[Any] = []


def _scratch(stream: Columns) -> Workspace:
    """The workspace where every DCR transform of one input stream runs, its ``source`` table declared
    once (a connection, or a change of tables, costs more than the transform)."""
    key = tuple(stream)
    if key not in _SCRATCH:
        _SCRATCH[key] = Workspace()
        _SCRATCH[key].declare("source", stream)
    return _SCRATCH[key]


_FUNCTIONS: dict[str, Any] = {}
_DEFINITIONS: dict[tuple[Any, ...], tuple[tuple[str, ...], Any]] = {}
