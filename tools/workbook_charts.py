"""Draw one workbook tab, its items' rows already queried (tools/render_workbook.py), as a PNG that looks
like the tab does in the Azure portal: the title, the time range pill and the tab strip, then the items
in the workbook's order and widths (``customWidth``), each with its title and its visualization.

How each visualization is drawn, after Azure Monitor's workbook documentation (chart and tile
visualizations): ``timechart`` a line per series (the string columns name a series, each numeric
column is a metric, the datetime column is the x axis); ``barchart`` the same as columns, stacked when
the x axis is time; ``piechart`` a ring, one slice per row, the total in the middle; ``table``/``grid``
the rows as a grid (the first rows, with the count of the rest); ``tiles`` one tile per row from the
item's ``tileSettings``. Times are UTC.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import matplotlib_fontja  # noqa: F401  (registers IPAexGothic, see rcParams below)
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle
from PIL import Image

from tools.workbook_model import LABELS, Item, RenderError, Result, Tab, Workbook, duration_of

JSON = dict[str, Any]

WIDTH = 14.0  # inches, at DPI: about what a workbook shows on a laptop screen
DPI = 110
MARGIN = 0.35
GUTTER = 0.3
TEXT = "#323130"
MUTED = "#605e5c"
LINE = "#edebe9"
ACCENT = "#0078d4"
PANEL = "#faf9f8"
#: Series colours in the order the portal's charts use them (Fluent UI data-visualisation palette).
PALETTE = (
    "#0078d4",
    "#e3008c",
    "#00b294",
    "#ff8c00",
    "#8764b8",
    "#d13438",
    "#498205",
    "#00bcf2",
    "#b4009e",
    "#986f0b",
    "#4f6bed",
    "#038387",
)
#: Tile threshold representations (``formatter`` 18) and the colour the portal gives them.
REPRESENTATIONS = {
    "success": "#107c10",
    "green": "#107c10",
    "warning": "#d83b01",
    "orange": "#d83b01",
    "critical": "#a4262c",
    "failed": "#a4262c",
    "error": "#a4262c",
    "red": "#a4262c",
    "unknown": MUTED,
    "info": ACCENT,
    "blue": ACCENT,
}
TABLE_ROWS = 8
SIZE_SCALE = {0: 1.0, 1: 0.75, 2: 1.5, 3: 1.0, 4: 0.6}

# CJK names in the vendors' sample data (山田太郎): IPAexGothic, pinned with matplotlib-fontja, fills in what
# DejaVu Sans lacks. Importing the package (above) makes it the default font; the family here puts DejaVu
# first.
# IPAexGothic has no bold face: bold CJK text is drawn regular, which is all the warning would say.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

plt.rcParams.update(
    {
        "font.family": ["DejaVu Sans", "IPAexGothic"],
        "font.size": 9,
        "axes.edgecolor": "#c8c6c4",
        "axes.labelcolor": MUTED,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
        "svg.fonttype": "none",
    }
)


# -- values ---------------------------------------------------------------------------------------------
def text_of(value: Any) -> str:
    """A cell as the grid shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return " ".join(str(value).split())


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"


def _chars(width_in: float, size: float) -> int:
    """How many characters of ``size`` points fit in ``width_in`` inches (DejaVu Sans, on average)."""
    return max(4, int(width_in * 72 / (size * 0.6)))


@dataclass(frozen=True)
class Shape:
    """Which columns of a result are the x axis (time or category), the series names and the metrics."""

    x: str
    series: tuple[str, ...]
    metrics: tuple[str, ...]
    time: bool


def shape_of(rows: Sequence[JSON], name: str) -> Shape:
    columns = list(rows[0])
    times = [c for c in columns if any(isinstance(r[c], datetime) for r in rows)]
    metrics = [c for c in columns if c not in times and all(_numeric(r[c]) or r[c] is None for r in rows)]
    others = [c for c in columns if c not in times and c not in metrics]
    if not metrics:
        raise RenderError(f"item {name!r}: no numeric column to chart (columns {columns})")
    if times:
        return Shape(times[0], tuple(others), tuple(metrics), True)
    if others:
        return Shape(others[0], tuple(others[1:]), tuple(metrics), False)
    raise RenderError(f"item {name!r}: no time or category column to chart (columns {columns})")


def series_of(rows: Sequence[JSON], shape: Shape) -> dict[str, list[tuple[Any, float]]]:
    """Series label -> [(x, y)] in row order; a label per series value and, for several metrics, per metric."""
    out: dict[str, list[tuple[Any, float]]] = {}
    for row in rows:
        name = " ".join(text_of(row[c]) or "(empty)" for c in shape.series)
        for metric in shape.metrics:
            label = f"{name} · {metric}" if name and len(shape.metrics) > 1 else name or metric
            value = row[metric]
            if value is not None:
                out.setdefault(label, []).append((row[shape.x], float(value)))
    return out


# -- the parts of an item -------------------------------------------------------------------------------
def _clean(ax: Axes) -> None:
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color=LINE, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(length=0, labelsize=8)


def _legend(ax: Axes, labels: Sequence[str]) -> None:
    """The legend under the chart, as many entries a line as fit the chart's width."""
    if len(labels) > 1:
        width_in = ax.get_position().width * ax.get_figure().get_figwidth()  # type: ignore[union-attr]
        entry = max(len(label) for label in labels) * 8 * 0.6 / 72 + 0.5
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.13),
            ncol=max(1, min(len(labels), int(width_in // entry))),
            frameon=False,
            fontsize=8,
            handlelength=1.2,
            columnspacing=1.4,
        )


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))


def draw_timechart(ax: Axes, rows: Sequence[JSON], name: str) -> None:
    shape = shape_of(rows, name)
    if not shape.time:
        raise RenderError(f"item {name!r}: a time chart needs a datetime column")
    series = series_of(rows, shape)
    for number, (label, points) in enumerate(sorted(series.items())):
        points.sort(key=lambda p: p[0])
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        color = PALETTE[number % len(PALETTE)]
        ax.plot(xs, ys, color=color, linewidth=1.6, label=label, marker="o" if len(xs) < 3 else None, ms=3)
    ax.set_ylim(bottom=0)
    _clean(ax)
    _time_axis(ax)
    _legend(ax, sorted(series))


def draw_barchart(ax: Axes, rows: Sequence[JSON], name: str) -> None:
    shape = shape_of(rows, name)
    series = series_of(rows, shape)
    labels = sorted(series) if shape.series else list(series)  # metrics in the query's column order
    if shape.time:  # columns per time bin, the series stacked
        bins = sorted({x for points in series.values() for x, _ in points})
        step = min((b - a for a, b in itertools.pairwise(bins)), default=timedelta(hours=1))
        width = step.total_seconds() / 86400 * 0.8  # matplotlib's date unit is the day
        bottom = {b: 0.0 for b in bins}
        for number, label in enumerate(labels):
            values = dict(series[label])
            heights = [values.get(b, 0.0) for b in bins]
            ax.bar(
                bins,
                heights,
                width=width,
                bottom=[bottom[b] for b in bins],
                color=PALETTE[number % len(PALETTE)],
                label=label,
            )
            for b, h in zip(bins, heights, strict=True):
                bottom[b] += h
        _clean(ax)
        _time_axis(ax)
        _legend(ax, labels)
        return
    categories: list[str] = []
    for row in rows:
        category = text_of(row[shape.x]) or "(empty)"
        if category not in categories:
            categories.append(category)
    group = 0.8
    width = group / max(1, len(labels))
    for number, label in enumerate(labels):
        values = {text_of(x) or "(empty)": y for x, y in series[label]}
        xs = [i - group / 2 + width * (number + 0.5) for i in range(len(categories))]
        heights = [values.get(c, 0.0) for c in categories]
        ax.bar(xs, heights, width=width * 0.92, color=PALETTE[number % len(PALETTE)], label=label)
    ax.set_xticks(range(len(categories)))
    rotate = 35 if sum(len(c) for c in categories) > 70 else 0
    ax.set_xticklabels(
        [_clip(c, 24) for c in categories], rotation=rotate, ha="right" if rotate else "center", fontsize=8
    )
    ax.set_xlim(-0.6, len(categories) - 0.4)
    _clean(ax)
    if len(labels) > 1:
        ax.legend(loc="upper right", frameon=False, fontsize=8, handlelength=1.2)


def draw_piechart(ax: Axes, rows: Sequence[JSON], name: str) -> None:
    shape = shape_of(rows, name)
    metric = shape.metrics[0]
    labels = [text_of(r[shape.x]) or "(empty)" for r in rows]
    values = [float(r[metric] or 0) for r in rows]
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(rows))]
    ax.pie(
        values,
        colors=colors,
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.32, "edgecolor": "white"},
    )
    total = float(sum(values))
    ax.text(
        0,
        0.08,
        text_of(int(total) if total.is_integer() else total),
        ha="center",
        va="center",
        fontsize=15,
        color=TEXT,
        weight="bold",
    )
    ax.text(0, -0.16, metric, ha="center", va="center", fontsize=8.5, color=MUTED)
    ax.set_aspect("equal")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colors]
    entries = [
        f"{label}   {text_of(int(v) if v.is_integer() else v)}"
        for label, v in zip(labels, values, strict=True)
    ]
    ax.legend(handles, entries, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=8)


def draw_table(
    ax: Axes, rows: Sequence[JSON], width_in: float, content: JSON, limit: int = TABLE_ROWS
) -> None:
    settings = content.get("gridSettings") or {}
    hidden = {
        f["columnMatch"]
        for f in settings.get("formatters", [])
        if f.get("formatter") == 5 and "columnMatch" in f
    }
    labels = {s["columnId"]: s.get("label", s["columnId"]) for s in settings.get("labelSettings", [])}
    columns = [c for c in rows[0] if c not in hidden]
    shown = list(rows[:limit])
    cells = [[text_of(r[c]) for c in columns] for r in shown]
    numeric = [all(_numeric(r[c]) or r[c] is None for r in shown) for c in columns]
    headers = [labels.get(c, c) for c in columns]
    wants = [min(120, max([len(h)] + [len(row[i]) for row in cells])) + 2 for i, h in enumerate(headers)]
    available = _chars(width_in, 8.0)
    if sum(wants) > available:  # shrink the widest columns first, as a grid truncates with an ellipsis
        while sum(wants) > available and max(wants) > 8:
            widest = wants.index(max(wants))
            wants[widest] -= 1
    scale = 1.0 / sum(wants)
    ax.set_xlim(0, 1)
    ax.set_ylim(len(shown) + 1.2, -0.2)
    ax.axis("off")
    x = 0.0
    for i, header in enumerate(headers):
        w = wants[i] * scale
        align, at = ("right", x + w - 0.006) if numeric[i] else ("left", x + 0.004)
        ax.text(
            at,
            0.35,
            _clip(header, wants[i] - 1),
            ha=align,
            va="center",
            fontsize=8,
            color=TEXT,
            weight="bold",
        )
        for r, row in enumerate(cells):
            ax.text(at, r + 1.35, _clip(row[i], wants[i] - 1), ha=align, va="center", fontsize=8, color=TEXT)
        x += w
    ax.axhline(0.85, color="#8a8886", linewidth=0.9)
    for r in range(len(cells)):
        ax.axhline(r + 1.85, color=LINE, linewidth=0.7)
    if len(rows) > len(shown):
        ax.text(
            0.004,
            len(shown) + 1.05,
            f"{len(shown)} of {len(rows)} rows shown (the grid scrolls)",
            ha="left",
            va="top",
            fontsize=7.5,
            color=MUTED,
            style="italic",
        )


def draw_tiles(ax: Axes, rows: Sequence[JSON], width_in: float, content: JSON) -> None:
    settings = content.get("tileSettings") or {}

    def part(key: str, row: JSON) -> tuple[str, str]:
        spec = settings.get(key) or {}
        column = spec.get("columnMatch")
        if not column or column not in row:
            return "", TEXT
        value = row[column]
        color = TEXT
        options = spec.get("formatOptions") or {}
        for threshold in options.get("thresholdsGrid", []):
            if _matches(threshold, value):
                color = REPRESENTATIONS.get(str(threshold.get("representation", "")).lower(), TEXT)
                if threshold.get("text"):
                    return str(threshold["text"]).replace("{0}", text_of(value)), color
                break
        return text_of(value), color

    tile_w, tile_h, gap = 2.1, 1.05, 0.15
    per_row = max(1, int((width_in + gap) // (tile_w + gap)))
    ax.set_xlim(0, width_in)
    lines = (len(rows) + per_row - 1) // per_row
    ax.set_ylim(lines * (tile_h + gap), 0)
    ax.axis("off")
    for n, row in enumerate(rows):
        x = (n % per_row) * (tile_w + gap)
        y = (n // per_row) * (tile_h + gap)
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                tile_w,
                tile_h,
                boxstyle="round,pad=0,rounding_size=0.04",
                facecolor="white",
                edgecolor="#c8c6c4",
                linewidth=0.8,
            )
        )
        title, _ = part("titleContent", row)
        subtitle, _ = part("subtitleContent", row)
        left, left_color = part("leftContent", row)
        right, right_color = part("rightContent", row)
        secondary, secondary_color = part("secondaryContent", row)
        ax.text(x + 0.1, y + 0.2, _clip(title, 26), fontsize=8.5, color=TEXT, weight="bold", va="center")
        if subtitle:
            ax.text(x + 0.1, y + 0.38, _clip(subtitle, 30), fontsize=7.5, color=MUTED, va="center")
        ax.text(x + 0.1, y + 0.66, _clip(left, 12), fontsize=16, color=left_color, weight="bold", va="center")
        if right:
            ax.text(
                x + tile_w - 0.1,
                y + 0.66,
                _clip(right, 14),
                fontsize=9,
                color=right_color,
                ha="right",
                va="center",
            )
        if secondary:
            ax.text(x + 0.1, y + 0.92, _clip(secondary, 30), fontsize=7.5, color=secondary_color, va="center")


def _matches(threshold: JSON, value: Any) -> bool:
    operator = threshold.get("operator", "Default")
    expected = threshold.get("thresholdValue")
    if operator == "Default":
        return True
    if expected is None:
        return False
    try:
        if _numeric(value):
            number, limit = float(value), float(expected)
            return {
                "==": number == limit,
                "!=": number != limit,
                ">": number > limit,
                ">=": number >= limit,
                "<": number < limit,
                "<=": number <= limit,
            }.get(operator, False)
    except (TypeError, ValueError):
        pass
    text = text_of(value)
    return {
        "==": text == str(expected),
        "!=": text != str(expected),
        "contains": str(expected) in text,
        "startsWith": text.startswith(str(expected)),
    }.get(operator, False)


# -- the tab ----------------------------------------------------------------------------------------------
def _markdown_lines(text: str, width_in: float) -> list[tuple[str, float, str]]:
    """(line, font size, weight) of a text item: headings bold, emphasis and code marks dropped."""
    out: list[tuple[str, float, str]] = []
    for raw in text.replace("**", "").replace("`", "").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            size = {1: 15.0, 2: 13.0, 3: 11.5}.get(level, 10.0)
            out.append((line.lstrip("# "), size, "bold"))
            continue
        for part in textwrap.wrap(line, _chars(width_in, 9.0)):
            out.append((part, 9.0, "normal"))
    return out


def _title_lines(item: Item, width_in: float) -> list[str]:
    """An item's title in at most two lines (the portal wraps a long title too)."""
    lines = textwrap.wrap(item.title, _chars(width_in, 11.0))
    if len(lines) > 2:
        lines = [lines[0], _clip(" ".join(lines[1:]), _chars(width_in, 11.0))]
    return lines


def _title_height(item: Item, width_in: float) -> float:
    return 0.12 + 0.24 * len(_title_lines(item, width_in)) if item.title else 0.1


def _body_height(entry: Result, width_in: float) -> float:
    """Inches the visualization itself takes."""
    item, rows = entry.item, entry.rows
    scale = SIZE_SCALE.get(int(item.content.get("size", 0) or 0), 1.0)
    kind = item.visualization
    if kind in ("table", "grid"):
        shown = min(len(rows), TABLE_ROWS)
        return 0.27 * (shown + 1) + (0.3 if len(rows) > shown else 0.08)
    if kind == "tiles":
        per_row = max(1, int((width_in + 0.15) // 2.25))
        return 1.2 * ((len(rows) + per_row - 1) // per_row)
    if kind == "piechart":
        return 2.4 * scale
    return 2.5 * scale + 0.65


def _height(entry: Result | Item, width_in: float) -> float:
    """Inches an item takes, its title included."""
    if not isinstance(entry, Result):
        lines = _markdown_lines(str(entry.content.get("json", "")), width_in)
        return sum(size for _, size, _ in lines) / 72 * 1.6 + 0.1
    return _title_height(entry.item, width_in) + _body_height(entry, width_in)


def _layout(entries: Sequence[Result | Item]) -> list[list[Result | Item]]:
    """Rows of items as the workbook flows them: side by side while their widths add up to 100 or less."""
    lines: list[list[Result | Item]] = []
    used = 100
    for entry in entries:
        width = _item_of(entry).width
        if used + width > 100:
            lines.append([])
            used = 0
        lines[-1].append(entry)
        used += width
    return lines


def _item_of(entry: Result | Item) -> Item:
    return entry.item if isinstance(entry, Result) else entry


def _draw_item(
    fig: Figure, entry: Result | Item, box: tuple[float, float, float], size: tuple[float, float]
) -> None:
    """Draw ``entry`` at ``box`` (left, top and width in inches from the figure's top left)."""
    left, top, width = box
    fig_w, fig_h = size

    def axes(x: float, y: float, w: float, h: float) -> Axes:
        return fig.add_axes((x / fig_w, 1 - (y + h) / fig_h, w / fig_w, h / fig_h))

    if not isinstance(entry, Result):
        y = top
        for line, font, weight in _markdown_lines(str(entry.content.get("json", "")), width):
            y += font / 72 * 1.6
            fig.text(left / fig_w, 1 - y / fig_h, line, fontsize=font, weight=weight, color=TEXT)
        return
    item, rows = entry.item, entry.rows
    title_h = _title_height(item, width)
    for number, line in enumerate(_title_lines(item, width)):
        y = top + 0.2 + 0.24 * number
        fig.text(left / fig_w, 1 - y / fig_h, line, fontsize=11, weight="bold", color=TEXT, va="center")
    body_top = top + title_h
    body_h = _body_height(entry, width)  # from the top: a shorter item leaves its row's rest empty
    kind = item.visualization
    if kind in ("table", "grid"):
        draw_table(axes(left, body_top, width, body_h), rows, width, item.content)
    elif kind == "tiles":
        draw_tiles(axes(left, body_top, width, body_h), rows, width, item.content)
    elif kind == "piechart":
        draw_piechart(axes(left, body_top, min(width * 0.45, body_h + 0.3), body_h), rows, item.name)
    else:
        plot_h = body_h - 0.65
        ax = axes(left + 0.45, body_top + 0.05, width - 0.55, plot_h)
        if kind == "timechart":
            draw_timechart(ax, rows, item.name)
        elif kind in ("barchart", "categoricalbar"):
            draw_barchart(ax, rows, item.name)
        else:
            raise RenderError(f"item {item.name!r}: visualization {kind!r} is not drawn")


def draw_tab(
    workbook: Workbook, tab: Tab, entries: Sequence[Result | Item], now: datetime, path: Path
) -> None:
    """Write ``path``: the workbook's header with ``tab`` selected, then ``entries`` laid out."""
    inner = WIDTH - 2 * MARGIN
    intro = textwrap.wrap(" ".join(workbook.intro.replace("`", "").split()), _chars(inner, 9.0))
    header = 0.62 + 0.19 * len(intro) + 1.25
    lines = _layout(entries)
    heights = []
    for line in lines:
        widths = [inner * _item_of(e).width / 100 - (GUTTER if len(line) > 1 else 0) for e in line]
        heights.append(max(_height(e, w) for e, w in zip(line, widths, strict=True)))
    footer = 0.55
    fig_h = header + sum(heights) + GUTTER * len(lines) + footer
    fig = plt.figure(figsize=(WIDTH, fig_h), dpi=DPI, facecolor="white")
    size = (WIDTH, fig_h)

    def at(x: float, y: float) -> tuple[float, float]:
        return x / WIDTH, 1 - y / fig_h

    fig.text(*at(MARGIN, 0.42), workbook.title, fontsize=16, weight="bold", color=TEXT, va="center")
    fig.text(
        *at(WIDTH - MARGIN, 0.42),
        " SIMULATED DATA ",
        fontsize=8.5,
        weight="bold",
        color="#8a3707",
        ha="right",
        va="center",
        bbox={"boxstyle": "round,pad=0.35", "facecolor": "#fed9cc", "edgecolor": "#f7b9a0"},
    )
    y = 0.62
    for sentence in intro:
        y += 0.19
        fig.text(*at(MARGIN, y), sentence, fontsize=9, color=MUTED, va="bottom")
    y += 0.38
    labels = []
    for name, parameter in workbook.parameters.items():
        if int(parameter.get("type", 0)) == 4:
            span = duration_of(parameter)
            value = LABELS.get(int(span.total_seconds() * 1000), str(span))
        else:
            value = text_of(parameter.get("value"))
        labels.append(f"{parameter.get('label', name)}: {value}")
    fig.text(
        *at(MARGIN + 0.05, y),
        "   ".join(labels),
        fontsize=9,
        color=TEXT,
        va="center",
        bbox={"boxstyle": "round,pad=0.4,rounding_size=0.8", "facecolor": "#f3f2f1", "edgecolor": "#c8c6c4"},
    )
    y += 0.48
    x = MARGIN
    for value, label in workbook.links:
        selected = value == tab.value
        fig.text(
            *at(x, y),
            label,
            fontsize=10.5,
            color=ACCENT if selected else MUTED,
            weight="bold" if selected else "normal",
            va="center",
        )
        width = len(label) * 10.5 * 0.62 / 72
        if selected:
            fig.add_artist(
                Rectangle(
                    at(x, y + 0.2), width / WIDTH, 0.035 / fig_h, color=ACCENT, transform=fig.transFigure
                )
            )
        x += width + 0.45
    fig.add_artist(
        Rectangle(
            at(MARGIN, y + 0.24), inner / WIDTH, 0.01 / fig_h, color="#c8c6c4", transform=fig.transFigure
        )
    )
    top = header
    for line, height in zip(lines, heights, strict=True):
        left = MARGIN
        for entry in line:
            share = inner * _item_of(entry).width / 100
            width = share - (GUTTER if len(line) > 1 else 0)
            _draw_item(fig, entry, (left, top, width), size)
            left += share + (GUTTER / (len(line) - 1) if len(line) > 1 else 0)
        top += height + GUTTER
    fig.text(
        *at(MARGIN, fig_h - 0.3),
        f"Rendered by tools/render_workbook.py from a simulated day (the bundled simulators and the real "
        f"collector), not from a real tenant. Every chart is the workbook's own query, run in duckdb-kql; "
        f"workbook opened {now:%Y-%m-%d %H:%M} UTC; times in UTC.",
        fontsize=7.5,
        color=MUTED,
        style="italic",
        va="center",
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    plt.close(fig)
    # A palette of 128 colours keeps every line and letter as drawn, at a third of the bytes.
    picture = Image.open(buffer).convert("RGB")
    picture.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )
