"""Draw the Sentinel workbook's tabs from a simulated day into PNG files, with the workbook's own queries.

    python tools/render_workbook.py               # docs/images/workbook-<tab>.png (and the README's teaser)
    python tools/render_workbook.py --out DIR     # somewhere else
    ./dev pictures

The data is a day of collection by the real collector against the bundled simulators
(tools/workbook_day.py). It reaches an in-memory workspace the way Azure stores it (the DCR transform
of each table, run by the KQL engine at the moment the run delivered it; Key Vault's audit records in
AZKVAuditLogs), with the parsers registered as stored functions (tools/kql_engine.py, the same engine
and helpers the rule scenarios use). Each query item of the workbook then runs as the workbook runs it:
its parameters expanded, limited to the item's time range, ``now()`` at the moment the workbook is
opened; and is drawn the way its ``visualization`` says (tools/workbook_charts.py).

A query the engine cannot run, an unknown visualization or an item that returns no rows stops the
command with the item's name: a picture of an empty chart would say nothing true about the workbook.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from auditsync.tables import TABLES  # noqa: E402
from tools import kql, rule_scenarios  # noqa: E402
from tools.kql_engine import (  # noqa: E402
    Columns,
    GeoRange,
    KqlEngineError,
    Workspace,
    _db_value,
    _quote,
    geo_info_stand_in,
)
from tools.workbook_day import Day, simulate  # noqa: E402
from tools.workbook_model import (  # noqa: E402
    VISUALIZATIONS,
    Item,
    RenderError,
    Result,
    Tab,
    Workbook,
    expand,
    read_workbook,
    time_range,
)

JSON = dict[str, Any]

OUT = ROOT / "docs" / "images"
#: The tab shown in the README, and how many of its items (the part a reader sees without scrolling).
TEASER = ("health", 4)
#: The workbook is opened this long after the day's last run.
OPENED_AFTER = timedelta(minutes=5)

#: Where the simulated addresses are (documentation ranges have no real location; this is the day's
#: own address plan, for ``geo_info_from_ip_address``). First match wins.
GEO = (
    GeoRange("203.0.113.1", "DE", "Frankfurt am Main", 50.1109, 8.6821),
    GeoRange("203.0.113.2", "FR", "Paris", 48.8566, 2.3522),
    GeoRange("203.0.113.3", "GB", "London", 51.5072, -0.1276),
    GeoRange("203.0.113.4", "NL", "Amsterdam", 52.3676, 4.9041),
    GeoRange("203.0.113.5", "PL", "Kraków", 50.0647, 19.945),
    GeoRange("203.0.113.", "CH", "Zürich", 47.3769, 8.5417),
    GeoRange("2001:db8::", "US", "Chicago", 41.8781, -87.6298),
)


# -- the workspace --------------------------------------------------------------------------------------
class BulkWorkspace(Workspace):
    """A ``Workspace`` that inserts a batch in one statement (each column a list, unnested): on duckdb
    2.0.1 the ``executemany`` of ``Workspace.insert`` costs milliseconds a row, minutes for a day of
    events. The DCR transforms run in scratch workspaces of the same kind, one per input stream."""

    def __init__(self, *, now: datetime | None = None) -> None:
        super().__init__(now=now)
        self._scratch: dict[tuple[tuple[str, str], ...], BulkWorkspace] = {}

    def insert(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        columns = self.columns[table]
        names = list(columns)
        values = [[_db_value(row.get(n), columns[n]) for row in rows] for n in names]
        select = ", ".join(f"unnest(${i + 1})" for i in range(len(names)))
        self.con.execute(
            f"INSERT INTO {_quote(table)} ({', '.join(_quote(n) for n in names)}) SELECT {select}", values
        )
        return len(rows)

    def transform(
        self, transform_kql: str, stream: Columns, rows: Sequence[Mapping[str, Any]], at: datetime
    ) -> list[JSON]:
        key = tuple(stream)
        scratch = self._scratch.get(key)
        if scratch is None:
            scratch = self._scratch[key] = BulkWorkspace()
            scratch.declare("source", stream)
        else:
            scratch.con.execute('DELETE FROM "source"')
        scratch.insert("source", rows)
        return scratch.query(transform_kql, now=at)


def load(day: Day, since: datetime | None = None) -> Workspace:
    """A workspace holding what the day delivered (Logs Ingestion tables, AZKVAuditLogs), the parsers
    registered; rows ingested before ``since`` left out (the query's time range)."""
    ws = BulkWorkspace(now=day.end + OPENED_AFTER)
    for table in TABLES.values():
        ws.declare(table.name, kql.table_columns(table))
    vault_tables = json.loads(rule_scenarios.KEYVAULT_TABLES.read_text(encoding="utf-8"))["tables"]
    ws.declare("AZKVAuditLogs", [(c[0], c[1]) for c in vault_tables["AZKVAuditLogs"]])
    ws.declare("Watchlist", rule_scenarios.WATCHLIST_COLUMNS)
    for table in TABLES.values():
        for at, rows in day.batches(table.name):
            rule_scenarios.deliver(ws, "logs_ingestion", table, rows, at)
    ws.insert("AZKVAuditLogs", [rule_scenarios.keyvault_row(r, "logs_ingestion")[1] for r in day.keyvault])
    ws.register(
        rule_scenarios.parser_functions(),
        known_tables=rule_scenarios.known_tables(),
        replacements=rule_scenarios.DEPLOYMENT_VALUES,
    )
    if since is not None:
        rule_scenarios.keep_query_period(ws, (day.end + OPENED_AFTER) - since, day.end + OPENED_AFTER)
    return ws


class Runner:
    """Runs items against the day, one workspace per distinct time range (built when first needed)."""

    def __init__(self, day: Day, workbook: Workbook) -> None:
        self.day = day
        self.workbook = workbook
        self.now = day.end + OPENED_AFTER
        self._workspaces: dict[timedelta | None, Workspace] = {}
        self._prelude = geo_info_stand_in(GEO)

    def workspace(self, span: timedelta | None) -> Workspace:
        if span not in self._workspaces:
            self._workspaces[span] = load(self.day, None if span is None else self.now - span)
        return self._workspaces[span]

    def run(self, item: Item) -> Result:
        span = time_range(item, self.workbook.parameters)
        text = expand(item.query, self.workbook.parameters, self.now, item.name)
        try:
            rows = self.workspace(span).query(text, prelude=self._prelude)
        except KqlEngineError as error:
            raise RenderError(f"item {item.name!r} ({item.title}): the query failed: {error}") from error
        if not rows:
            raise RenderError(
                f"item {item.name!r} ({item.title}) returned no rows on the simulated day: extend "
                "tools/workbook_day.py so the day has what it shows"
            )
        return Result(item, rows, span)


def run_tab(runner: Runner, tab: Tab) -> list[Result | Item]:
    """Every item of ``tab``: text items as they are, query items with their rows."""
    out: list[Result | Item] = []
    for item in tab.items:
        if item.kind == "query":
            if item.visualization not in VISUALIZATIONS:
                raise RenderError(f"item {item.name!r}: visualization {item.visualization!r} is not drawn")
            out.append(runner.run(item))
        else:
            out.append(item)
    return out


# -- the command ----------------------------------------------------------------------------------------
def render(out: Path, tabs: Sequence[str] | None = None) -> list[Path]:
    """Simulate the day, run every item of ``tabs`` (default: all) and write one PNG per tab to ``out``."""
    from tools import workbook_charts

    workbook = read_workbook()
    with tempfile.TemporaryDirectory(prefix="auditsync-workbook-") as scratch:
        day = simulate(Path(scratch))
        runner = Runner(day, workbook)
        written = []
        out.mkdir(parents=True, exist_ok=True)
        for tab in [workbook.tab(t) for t in tabs] if tabs else workbook.tabs:
            results = run_tab(runner, tab)
            path = out / f"workbook-{tab.value}.png"
            workbook_charts.draw_tab(workbook, tab, results, runner.now, path)
            written.append(path)
            if tab.value == TEASER[0]:
                teaser = out / f"workbook-{tab.value}-top.png"
                workbook_charts.draw_tab(workbook, tab, results[: TEASER[1]], runner.now, teaser)
                written.append(teaser)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="directory for the PNG files (docs/images)")
    parser.add_argument("--tab", action="append", help="only this tab (health, keeper, onepassword)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        written = render(args.out, args.tab)
    except RenderError as error:
        print(f"render_workbook: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"{len(written)} pictures in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
