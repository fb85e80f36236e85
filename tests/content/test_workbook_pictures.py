"""The workbook pictures (tools/render_workbook.py) say something true: every query item of every tab runs
in the KQL engine on the simulated day and returns rows its visualization can draw; the day has the
history the health tab is about; a query that fails or finds nothing stops the renderer with the item's
name; each tab is drawn into a PNG (here into tmp) and the committed pictures and docs cover every tab."""

from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from tools import workbook_charts
from tools.render_workbook import OUT, TEASER, Runner, run_tab
from tools.workbook_day import END, Day, simulate
from tools.workbook_model import (
    VISUALIZATIONS,
    Item,
    RenderError,
    Result,
    Workbook,
    expand,
    read_workbook,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "workbook.md"
# One worker for the module: its simulated day (module fixture) is computed once, not once per worker.
pytestmark = pytest.mark.xdist_group("workbook_pictures")


@pytest.fixture(scope="module")
def workbook() -> Workbook:
    return read_workbook()


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return simulate(tmp_path_factory.mktemp("workbook-day"))


@pytest.fixture(scope="module")
def runner(day: Day, workbook: Workbook) -> Runner:
    return Runner(day, workbook)


@pytest.fixture(scope="module")
def results(runner: Runner, workbook: Workbook) -> dict[str, list[Result | Item]]:
    return {tab.value: run_tab(runner, tab) for tab in workbook.tabs}


def test_the_day_has_the_history_the_health_tab_shows(day: Day) -> None:
    statuses = Counter((r.stream, r.status) for run in day.runs for r in run.report.reports)
    streams = {stream for stream, _ in statuses}
    assert streams == {
        "keeper/events",
        "onepassword/auditevents",
        "onepassword/itemusages",
        "onepassword/signinattempts",
    }
    assert statuses["keeper/events", "error"] == 4, (
        "the Keeper token refused from 13:30 until the vault has it"
    )
    assert statuses["keeper/events", "behind"] == 2, "the held-back Keeper events take three runs"
    assert any(status == "idle" for _, status in statuses), "quiet night runs still send a heartbeat"
    errors = {r.error_kind for run in day.runs for r in run.report.reports if r.status == "error"}
    assert errors == {"auth"}
    assert len(day.runs) == 49 and day.runs[-1].started == END
    assert {r.operation for r in day.keyvault} >= {"SecretGet", "SecretSet"}
    assert all(day.table_path(t).exists() for t in day.runs[-1].lines)


def test_every_item_of_every_tab_returns_rows_it_can_draw(
    workbook: Workbook, results: dict[str, list[Result | Item]]
) -> None:
    queried = 0
    for tab in workbook.tabs:
        assert [e.item.name if isinstance(e, Result) else e.name for e in results[tab.value]] == [
            i.name for i in tab.items
        ]
        for entry in results[tab.value]:
            if not isinstance(entry, Result):
                continue
            queried += 1
            item = entry.item
            assert entry.rows, item.name
            assert item.visualization in VISUALIZATIONS
            if item.visualization in ("timechart", "barchart", "piechart"):
                shape = workbook_charts.shape_of(entry.rows, item.name)
                assert shape.metrics, item.name
                if item.visualization == "timechart":
                    assert shape.time, f"{item.name}: a time chart without a time column"
    assert queried >= 21


def test_the_time_range_limits_what_the_queries_see(runner: Runner, workbook: Workbook) -> None:
    item = Item(
        "probe",
        "query",
        {
            "query": "AuditSyncHealth | summarize First = min(TimeGenerated), Runs = dcount(RunId)",
            "timeContextFromParameter": "TimeRange",
        },
    )
    (row,) = runner.run(item).rows
    assert row["First"] >= (runner.now - timedelta(days=1)).replace(tzinfo=None)
    assert row["Runs"] == 48, (
        "the day's first run (24 h and 5 min before the workbook is opened) is out of range"
    )


def test_a_query_that_fails_or_finds_nothing_stops_the_renderer(runner: Runner) -> None:
    broken = Item(
        "broken", "query", {"query": "AuditSyncHealth | summarize by NoSuchColumn", "title": "Broken"}
    )
    with pytest.raises(RenderError, match="item 'broken' \\(Broken\\): the query failed"):
        runner.run(broken)
    empty = Item("empty", "query", {"query": 'AuditSyncHealth | where Status == "check"', "title": "Empty"})
    with pytest.raises(RenderError, match="item 'empty' \\(Empty\\) returned no rows"):
        runner.run(empty)
    no_time = Item("no-time", "query", {"query": "AuditSyncHealth | summarize Runs = count() by Stream"})
    figure = plt.figure()
    try:
        with pytest.raises(RenderError, match="item 'no-time': a time chart needs a datetime column"):
            workbook_charts.draw_timechart(figure.add_subplot(), runner.run(no_time).rows, "no-time")
    finally:
        plt.close(figure)


def test_parameters_expand_as_the_portal_expands_them(workbook: Workbook) -> None:
    now = END
    text = expand(
        "T | where TimeGenerated {TimeRange} | make-series n = count() on TimeGenerated from {TimeRange:start} "
        "to {TimeRange:end} step {TimeRange:grain} // {TimeRange:label}",
        workbook.parameters,
        now,
        "probe",
    )
    assert text == (
        "T | where TimeGenerated > ago(1d) | make-series n = count() on TimeGenerated from "
        "datetime(2026-11-01T17:00:00.000Z) to datetime(2026-11-02T17:00:00.000Z) step 30m // Last 24 hours"
    )
    assert expand('T | extend d = dynamic({"a": 1})', workbook.parameters, now, "probe").endswith('{"a": 1})')
    with pytest.raises(RenderError, match="no parameter"):
        expand("T | where x == '{Subscription}'", workbook.parameters, now, "probe")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_each_tab_is_drawn_into_a_png(
    workbook: Workbook, results: dict[str, list[Result | Item]], runner: Runner, tmp_path: Path
) -> None:
    for tab in workbook.tabs:
        path = tmp_path / f"{tab.value}.png"
        workbook_charts.draw_tab(workbook, tab, results[tab.value], runner.now, path)
        width, height = _png_size(path)
        assert width == int(workbook_charts.WIDTH * workbook_charts.DPI)
        assert height > width / 2, f"{tab.value}: every item needs room"


def test_tiles_are_drawn_from_their_tile_settings(workbook: Workbook, runner: Runner, tmp_path: Path) -> None:
    """The workbook may gain tiles (a token-expiry tile is planned): one tile per row, thresholds coloured."""
    item = Item(
        "tiles-probe",
        "query",
        {
            "query": "AuditSyncHealth | summarize arg_max(TimeGenerated, Status) by Stream",
            "title": "Streams",
            "visualization": "tiles",
            "timeContextFromParameter": "TimeRange",
            "tileSettings": {
                "titleContent": {"columnMatch": "Stream"},
                "leftContent": {
                    "columnMatch": "Status",
                    "formatter": 18,
                    "formatOptions": {
                        "thresholdsGrid": [
                            {"operator": "==", "thresholdValue": "ok", "representation": "success"},
                            {"operator": "Default", "representation": "failed"},
                        ]
                    },
                },
            },
        },
    )
    result = runner.run(item)
    tab = replace(workbook.tabs[0], items=(item,))
    path = tmp_path / "tiles.png"
    workbook_charts.draw_tab(workbook, tab, [result], runner.now, path)
    assert _png_size(path)[1] > 0
    assert workbook_charts.REPRESENTATIONS["success"] != workbook_charts.REPRESENTATIONS["failed"]


def test_the_docs_show_a_committed_picture_of_every_tab(workbook: Workbook) -> None:
    doc = DOC.read_text(encoding="utf-8")
    shown = set(re.findall(r"\(images/(workbook-[a-z-]+\.png)\)", doc))
    for tab in workbook.tabs:
        name = f"workbook-{tab.value}.png"
        assert (OUT / name).exists(), f"run ./dev pictures: no picture of the {tab.label} tab"
        assert name in shown, f"docs/workbook.md does not show {name}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"docs/images/workbook-{TEASER[0]}-top.png" in readme
    assert (OUT / f"workbook-{TEASER[0]}-top.png").exists()
