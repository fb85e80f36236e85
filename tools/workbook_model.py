"""The Sentinel workbook as the renderer sees it (tools/render_workbook.py): its tabs and their items,
its parameters, and how the portal expands a parameter in a query and gives an item its time range
(Azure Monitor documentation, "Workbook time parameters")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "sentinel" / "workbook" / "auditsync.workbook.json"

JSON = dict[str, Any]

_TYPES = {1: "text", 3: "query", 9: "parameters", 10: "metric", 11: "links", 12: "group"}
VISUALIZATIONS = ("table", "grid", "timechart", "barchart", "categoricalbar", "piechart", "tiles")


class RenderError(RuntimeError):
    """The workbook cannot be drawn truthfully: the message names the item and the reason."""


@dataclass(frozen=True)
class Item:
    """One item of a tab: markdown text or a query with its visualization."""

    name: str
    kind: str
    content: JSON
    width: int = 100

    @property
    def title(self) -> str:
        return str(self.content.get("title", ""))

    @property
    def query(self) -> str:
        return str(self.content.get("query", ""))

    @property
    def visualization(self) -> str:
        return str(self.content.get("visualization", "table"))


@dataclass(frozen=True)
class Tab:
    """A tab of the workbook: its link's label, the parameter value that shows it, and its items."""

    value: str
    label: str
    items: tuple[Item, ...]


@dataclass
class Workbook:
    """What is drawn around the tabs: the title, the parameters and their default values, the tabs."""

    title: str
    intro: str
    parameters: dict[str, JSON]
    tabs: list[Tab]
    tab_parameter: str = "Tab"
    links: list[tuple[str, str]] = field(default_factory=list)

    def tab(self, value: str) -> Tab:
        for tab in self.tabs:
            if tab.value == value:
                return tab
        raise RenderError(
            f"the workbook has no tab {value!r} (tabs: {', '.join(t.value for t in self.tabs)})"
        )


# -- reading the workbook -------------------------------------------------------------------------------
def _width(raw: JSON) -> int:
    try:
        return int(float(raw.get("customWidth", 100)))
    except (TypeError, ValueError):
        return 100


def _visible(raw: JSON, values: Mapping[str, str]) -> bool:
    conditions = raw.get("conditionalVisibilities") or (
        [raw["conditionalVisibility"]] if raw.get("conditionalVisibility") else []
    )
    for condition in conditions:
        value = values.get(str(condition.get("parameterName")), "")
        comparison = condition.get("comparison", "isEqualTo")
        expected = str(condition.get("value", ""))
        if comparison == "isEqualTo" and value != expected:
            return False
        if comparison == "isNotEqualTo" and value == expected:
            return False
    return True


def _items(raw_items: Iterable[JSON], values: Mapping[str, str]) -> list[Item]:
    items = []
    for raw in raw_items:
        kind = _TYPES.get(int(raw.get("type", 0)), f"type {raw.get('type')}")
        if not _visible(raw, values):
            continue
        if kind == "group":
            items += _items(raw["content"].get("items", []), values)
        elif kind in ("text", "query"):
            items.append(Item(str(raw.get("name", "")), kind, raw["content"], _width(raw)))
        elif kind in ("parameters", "links"):
            continue  # drawn as the header (parameters, tabs), not as items
        else:
            raise RenderError(f"item {raw.get('name')!r}: {kind} items are not drawn by this renderer")
    return items


def read_workbook(path: Path = WORKBOOK) -> Workbook:
    doc = json.loads(path.read_text(encoding="utf-8"))
    parameters: dict[str, JSON] = {}
    title, intro = "", ""
    links: list[tuple[str, str]] = []
    tab_parameter = "Tab"
    content: list[JSON] = []
    for raw in doc["items"]:
        kind = _TYPES.get(int(raw.get("type", 0)))
        if kind == "parameters":
            for parameter in raw["content"].get("parameters", []):
                parameters[str(parameter["name"])] = parameter
        elif kind == "links" and raw["content"].get("style") == "tabs" and not links:
            for link in raw["content"]["links"]:
                tab_parameter = str(link.get("cellValue", tab_parameter))
                links.append((str(link["subTarget"]), str(link["linkLabel"])))
        elif kind == "text" and not title and not links:
            heading, _, rest = str(raw["content"].get("json", "")).partition("\n")
            title, intro = heading.lstrip("# ").strip(), rest.strip()
        elif links:  # what follows the tab strip is the tabs' content
            content.append(raw)
    if not links:
        raise RenderError(f"{path.name} has no tab strip (a links item with style tabs)")
    tabs = [
        Tab(value, label, tuple(_items(content, {**_defaults(parameters), tab_parameter: value})))
        for value, label in links
    ]
    return Workbook(title, intro, parameters, tabs, tab_parameter, links)


def _defaults(parameters: Mapping[str, JSON]) -> dict[str, str]:
    values = {}
    for name, parameter in parameters.items():
        value = parameter.get("value")
        if isinstance(value, str):
            values[name] = value
    return values


# -- parameters and time ranges -------------------------------------------------------------------------
LABELS = {
    3_600_000: "Last hour",
    14_400_000: "Last 4 hours",
    43_200_000: "Last 12 hours",
    86_400_000: "Last 24 hours",
    172_800_000: "Last 48 hours",
    259_200_000: "Last 3 days",
    604_800_000: "Last 7 days",
    2_592_000_000: "Last 30 days",
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}")


def duration_of(parameter: JSON) -> timedelta:
    value = parameter.get("value") or {}
    if "durationMs" not in value:
        raise RenderError(f"time parameter {parameter.get('name')!r} has no default duration")
    return timedelta(milliseconds=int(value["durationMs"]))


def _kql_timespan(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def grain(span: timedelta) -> timedelta:
    """The bin ``{TimeRange:grain}`` gives for ``span``: about fifty points (the portal's documented
    example: 24 hours, 30 minutes)."""
    for minutes in (1, 5, 10, 15, 30, 60, 120, 360, 720, 1440):
        if span / timedelta(minutes=minutes) <= 50:
            return timedelta(minutes=minutes)
    return timedelta(days=1)


def expand(query: str, parameters: Mapping[str, JSON], now: datetime, item: str) -> str:
    """``{Name}`` and ``{Name:option}`` replaced as the workbook replaces them in a KQL query."""

    def value(match: re.Match[str]) -> str:
        name, option = match.group(1), (match.group(2) or "").lower()
        parameter = parameters.get(name)
        if parameter is None:
            raise RenderError(
                f"item {item!r}: the query uses {{{name}}}, which is no parameter of the workbook"
            )
        if int(parameter.get("type", 0)) == 4:  # time range picker
            span = duration_of(parameter)
            start = now - span
            moments = {
                "start": f"datetime({start:%Y-%m-%dT%H:%M:%S.000Z})",
                "end": f"datetime({now:%Y-%m-%dT%H:%M:%S.000Z})",
                "grain": _kql_timespan(grain(span)),
                "": f"> ago({_kql_timespan(span)})",
                "value": f"> ago({_kql_timespan(span)})",
                "query": f"> ago({_kql_timespan(span)})",
                "label": LABELS.get(int(span.total_seconds() * 1000), f"Last {_kql_timespan(span)}"),
            }
            if option not in moments:
                raise RenderError(f"item {item!r}: {{{name}:{option}}} is not a time range option")
            return moments[option]
        raw = parameter.get("value")
        if isinstance(raw, list):
            return ", ".join(f'"{v}"' for v in raw)
        if raw is None:
            raise RenderError(f"item {item!r}: parameter {name} has no default value to draw with")
        return str(raw)

    return _PLACEHOLDER.sub(value, query)


def time_range(item: Item, parameters: Mapping[str, JSON]) -> timedelta | None:
    """The time range the workbook gives the item's query (None: the query is not limited)."""
    source = item.content.get("timeContextFromParameter")
    if source:
        if source not in parameters:
            raise RenderError(f"item {item.name!r}: its time range comes from {source}, no parameter")
        return duration_of(parameters[source])
    context = item.content.get("timeContext") or {}
    if "durationMs" in context:
        return timedelta(milliseconds=int(context["durationMs"]))
    return None


@dataclass(frozen=True)
class Result:
    """An item's rows, as the engine returned them."""

    item: Item
    rows: list[JSON]
    span: timedelta | None
