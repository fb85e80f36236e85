"""Parity with the vendors' own Sentinel content: every official 1Password and Keeper rule has an
equivalent of ours (the table in docs/sentinel.md, kept in step with the files), the watchlists those
rules need are shipped, and every column and dynamic path the official content reads exists in our tables
with the same type, so their rules, parser and workbooks work unchanged on a workspace we fill."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from auditsync.tables import TABLES
from tests.content import sentinel_schema as schema
from tools import build_sentinel
from tools.kql import DynamicPath

OFFICIAL = json.loads((schema.DATA / "official_content.json").read_text(encoding="utf-8"))
DOC = (build_sentinel.ROOT / "docs" / "sentinel.md").read_text(encoding="utf-8")
WATCHLISTS = build_sentinel.SENTINEL / "watchlists"


def _rule(ref: str) -> dict[str, Any]:
    path = build_sentinel.SENTINEL / "analytics" / f"{ref}.yaml"
    assert path.exists(), f"{ref} named as an equivalent but {path} does not exist"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _parity_table() -> dict[str, list[str]]:
    """Rows of the table under '## Parity with the official solutions': official name -> our rule names."""
    section = DOC.split("## Parity with the official solutions", 1)[1].split("\n#", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            len(cells) < 2
            or not line.startswith("|")
            or set(cells[0]) <= {"-", " "}
            or cells[0] == "official rule"
        ):
            continue
        rows[cells[0]] = [n.strip() for n in cells[1].split("<br>") if n.strip()]
    return rows


def test_every_official_rule_has_an_equivalent() -> None:
    rules = OFFICIAL["rules"]
    assert len([r for r in rules if r["solution"] == "1Password"]) == 18
    assert len([r for r in rules if r["solution"] == "Keeper Security"]) == 2
    for rule in rules:
        assert rule["ours"], rule["name"]
        for ref in rule["ours"]:
            _rule(ref)


def test_docs_parity_table_matches_the_rule_files() -> None:
    table = _parity_table()
    assert set(table) == {r["name"] for r in OFFICIAL["rules"]}, "docs/sentinel.md parity table rows"
    for rule in OFFICIAL["rules"]:
        ours = [_rule(ref)["name"] for ref in rule["ours"]]
        assert table[rule["name"]] == ours, f"docs row for {rule['name']!r}"


# -- watchlists -------------------------------------------------------------------------------------------


def _watchlist_calls() -> dict[str, list[str]]:
    calls: dict[str, list[str]] = {}
    for path in build_sentinel.rule_files():
        for alias in re.findall(r'_GetWatchlist\("([^"]+)"\)', path.read_text(encoding="utf-8")):
            calls.setdefault(alias, []).append(path.stem)
    return calls


def test_watchlists_the_rules_need_are_shipped() -> None:
    calls = _watchlist_calls()
    assert set(calls) == {"PV1PW", "PG1PW", "KSMBlockedRanges"}
    shipped = {p.stem for p in WATCHLISTS.glob("*.yaml")}
    assert shipped == set(calls)
    for alias in calls:
        doc = yaml.safe_load((WATCHLISTS / f"{alias}.yaml").read_text(encoding="utf-8"))
        assert doc["alias"] == alias
        assert doc["searchKey"] in [c["name"] for c in doc["columns"]]
        for key in ("displayName", "description", "howToFill", "whenEmpty"):
            assert str(doc.get(key, "")).strip(), f"{alias}: {key}"
        assert alias in DOC and doc["searchKey"] in DOC, f"docs/sentinel.md does not describe {alias}"


@pytest.mark.parametrize("alias", sorted(_watchlist_calls()))
def test_rules_read_a_watchlist_by_its_search_key_so_empty_means_no_match(alias: str) -> None:
    """``x in (watchlist)`` (or an inner join with it) against an empty list matches nothing and ``!in``
    everything: the rule runs, returns a clear result, and never fails on a watchlist nobody filled.
    tests/content/test_rule_scenarios.py runs the rules with their watchlists empty."""
    for stem in _watchlist_calls()[alias]:
        text = next(p for p in build_sentinel.rule_files() if p.stem == stem).read_text(encoding="utf-8")
        assert re.search(rf'_GetWatchlist\("{alias}"\) \| project \w+ = tostring\(SearchKey\)', text), stem
        assert re.search(r"\b(in|!in) \(\w+\)|join kind=inner \w+ on", text), stem


# -- what the official content reads ------------------------------------------------------------------------


def _reads() -> list[tuple[str, str, str]]:
    return [
        (table, column, kind)
        for table, reads in OFFICIAL["reads"].items()
        for column, kind in reads["columns"].items()
    ]


@pytest.mark.parametrize(("table", "column", "kind"), _reads(), ids=lambda v: str(v))
def test_official_content_columns_exist_with_the_same_type(table: str, column: str, kind: str) -> None:
    if column in OFFICIAL["standardColumns"]:
        assert OFFICIAL["standardColumns"][column] == kind  # every Log Analytics table has it
        return
    ours = dict(TABLES[table].table_columns)
    assert column in ours, f"{table} lacks {column}, which official content reads"
    assert ours[column] == kind, f"{table}.{column} is {ours[column]}, official content reads {kind}"


def _paths(table: str, key: str) -> list[str]:
    return list(OFFICIAL["reads"][table][key])


def _dynamic_path(text: str) -> DynamicPath:
    root, *rest = text.split(".")
    return DynamicPath(root, "column", tuple(rest), 0)


@pytest.mark.parametrize("table", sorted(OFFICIAL["reads"]))
def test_official_content_paths_are_fields_the_vendor_sends(table: str) -> None:
    reads = _paths(table, "paths")
    assert schema.path_problems([_dynamic_path(p) for p in reads]) == []
    for text in reads:
        column = text.split(".")[0]
        assert dict(TABLES[table].table_columns).get(column) == "dynamic", text


def test_official_paths_the_vendor_never_sends_are_reported() -> None:
    """The bugs the path check exists for: 1Password's official rules read session.ip_address, their
    workbook location.state; the check reports both, also behind a join's renamed column."""
    never = _paths("OnePasswordEventLogs_CL", "pathsTheVendorNeverSends")
    assert never == ["session.ip_address", "location.state"]
    problems = schema.path_problems(
        [_dynamic_path(p) for p in never] + [_dynamic_path("session1.ip_address")]
    )
    assert len(problems) == 3
