"""Every KQL text of the Sentinel content parses and binds with no error in Kusto.Language, against the
tables our sinks create (with and without the legacy Data Collector tables) and the parsers declared
with the schema their bodies produce."""

from __future__ import annotations

import re

import pytest

from auditsync.tables import TABLES
from tests.fixtures.kql import CANARIES, SCENARIOS, SentinelKql, committed_content, transform_name
from tools import build_sentinel, kql

# The session's Kusto.Language analysis (sentinel_kql) runs on one worker, not once per worker.
pytestmark = pytest.mark.xdist_group("sentinel_kql")

CONTENT = committed_content()
PARSERS = [p["name"] for p in CONTENT["parsers"]]
QUERIES = [name for name, _ in build_sentinel.all_queries(CONTENT)]
ALL_TABLE_NAMES = {t.name for t in TABLES.values()} | {kql.legacy_table_name(t) for t in TABLES.values()}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("parser", PARSERS)
def test_parser_binds_without_errors(sentinel_kql: SentinelKql, scenario: str, parser: str) -> None:
    checked = sentinel_kql.parser(scenario, parser)
    assert not checked.errors, f"{scenario}:\n{checked.describe_errors()}"
    assert checked.columns, f"{parser} does not return a table"


@pytest.mark.parametrize("parser", PARSERS)
def test_parser_returns_the_same_typed_schema_whichever_tables_exist(
    sentinel_kql: SentinelKql, parser: str
) -> None:
    schemas = {s: sentinel_kql.parser(s, parser).columns for s in SCENARIOS}
    reference = schemas["workspace"]
    assert reference is not None
    untyped = [c for c in reference if c[1] == "unknown"]
    assert not untyped, f"{parser} leaves columns untyped: {untyped}"
    for scenario, columns in schemas.items():
        assert columns == reference, f"{parser} returns another schema in {scenario}"


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", QUERIES)
def test_content_query_binds_without_errors(sentinel_kql: SentinelKql, scenario: str, name: str) -> None:
    checked = sentinel_kql.query(scenario, name)
    assert not checked.errors, f"{scenario}:\n{checked.describe_errors()}"


@pytest.mark.parametrize("name", QUERIES)
def test_content_reads_through_the_parsers_only(name: str) -> None:
    text = dict(build_sentinel.all_queries(CONTENT))[name]
    tables = sorted(t for t in ALL_TABLE_NAMES if re.search(rf"\b{re.escape(t)}\b", text))
    assert not tables, f"{name} reads {tables} directly instead of through a parser"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_dcr_transform_outputs_exactly_the_table_columns(sentinel_kql: SentinelKql, table: str) -> None:
    checked = sentinel_kql.query("workspace", transform_name(table))
    assert not checked.errors, checked.describe_errors()
    assert checked.columns is not None
    assert dict(checked.columns) == dict(kql.table_columns(TABLES[table]))


@pytest.mark.parametrize("name", sorted(CANARIES))
def test_checker_reports_errors_for_wrong_queries(sentinel_kql: SentinelKql, name: str) -> None:
    checked = sentinel_kql.query("workspace", name)
    assert checked.errors, f"Kusto.Language accepted {checked.query!r}: the KQL checks would pass anything"


def test_misspelled_column_is_reported_by_name(sentinel_kql: SentinelKql) -> None:
    checked = sentinel_kql.query("workspace", "canary/misspelled-parser-column")
    assert [(d.code, checked.query[d.start : d.start + d.length]) for d in checked.errors] == [
        ("KS142", "Usernme")
    ]


def test_missing_legacy_tables_are_only_warnings(sentinel_kql: SentinelKql) -> None:
    """``union isfuzzy=true``: an absent legacy table is a warning in the editor, no error at run time."""
    checked = sentinel_kql.parser("no_legacy_tables", "KeeperEvents")
    assert [d.code for d in checked.diagnostics] == ["KS205"]
    assert "Keeper_CL" in checked.diagnostics[0].message
