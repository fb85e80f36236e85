"""Every analytics rule fires on a scenario of raw vendor events and stays quiet on a benign one, in a real
KQL engine (duckdb-kql), in a Logs Ingestion workspace and in a Data Collector one; every hunting query
returns what it hunts for; every parser runs on what the simulators produce. The docs table of outcomes
is the one a fresh run writes (tools/rule_scenarios.py)."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditsync.model import StreamReport
from simulators.keeper import sample_events
from simulators.onepassword_data import EVENT_TYPES, make_events
from tests.scenarios import REGISTRY
from tests.scenarios.model import Case, KeyVaultRecord
from tests.scenarios.vendors import COLLECTOR_PRINCIPAL
from tools import kql, rule_scenarios
from tools.kql_engine import Workspace, resolve_column_ifexists

RULES = rule_scenarios.rule_documents()
HUNTING = rule_scenarios.hunting_documents()
PARSERS = rule_scenarios.parser_functions()
NOW = datetime.now(UTC)


@functools.cache
def proof(name: str) -> rule_scenarios.Proof:
    """One rule's (or hunting query's) scenario, run once in the process whose tests ask for it: its tests
    share a load group, so under xdist each worker runs the scenarios of the rules it was handed."""
    return rule_scenarios.prove(REGISTRY[name](NOW), {**RULES, **HUNTING}[name], NOW, PARSERS)


def _by_rule(names: Iterable[str]) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.xdist_group(f"scenario:{n}")) for n in sorted(names)]


def test_every_rule_and_hunting_query_has_a_scenario() -> None:
    assert sorted(set(RULES) | set(HUNTING)) == sorted(REGISTRY)


@pytest.mark.parametrize("sink", rule_scenarios.SINKS)
@pytest.mark.parametrize("rule", _by_rule(RULES))
def test_rule_fires_with_every_entity(rule: str, sink: str) -> None:
    outcome = proof(rule).fires[sink]
    entities = rule_scenarios._entity_columns(RULES[rule])
    assert outcome.rows >= 1, f"{rule} did not fire on: {proof(rule).fires_story}"
    assert outcome.with_entities >= 1, f"{rule}: no row has all of {entities} filled: {outcome.sample}"


@pytest.mark.parametrize("sink", rule_scenarios.SINKS)
@pytest.mark.parametrize("rule", _by_rule(RULES))
def test_rule_stays_quiet_on_a_benign_case(rule: str, sink: str) -> None:
    outcome = proof(rule).quiet[sink]
    assert outcome.rows == 0, f"{rule} fired on the benign case {proof(rule).quiet_story!r}: {outcome.sample}"


@pytest.mark.parametrize("sink", rule_scenarios.SINKS)
@pytest.mark.parametrize("name", _by_rule(HUNTING))
def test_hunting_query_returns_what_it_hunts(name: str, sink: str) -> None:
    assert proof(name).fires[sink].rows >= 1, f"{name} found nothing in: {proof(name).fires_story}"


@pytest.mark.parametrize("name", _by_rule(REGISTRY))
def test_docs_row_is_what_the_run_writes(name: str) -> None:
    committed = rule_scenarios.committed_rows(rule_scenarios.DOC.read_text(encoding="utf-8"))
    assert committed.get(name) == rule_scenarios.row(proof(name)), (
        f"docs/sentinel.md is stale for {name}: run python tools/rule_scenarios.py"
    )


def test_docs_section_is_its_rows_and_lists_every_scenario() -> None:
    """With each row checked by its rule's test above, the committed section is what a run writes."""
    current = rule_scenarios.DOC.read_text(encoding="utf-8")
    rows = rule_scenarios.committed_rows(current)
    assert sorted(rows) == sorted(REGISTRY)
    assert current == rule_scenarios.with_section(current, rule_scenarios.section(rows)), (
        "docs/sentinel.md is stale: run python tools/rule_scenarios.py"
    )


def test_a_rule_sees_only_its_query_period() -> None:
    """The same events an hour older than a 15-minute rule's period: Sentinel would not show them to it."""
    scenario = REGISTRY["OnePasswordMfaDisabled"](NOW - timedelta(hours=1))
    outcome = rule_scenarios.prove(scenario, RULES["OnePasswordMfaDisabled"], NOW, PARSERS)
    assert {s: o.rows for s, o in outcome.fires.items()} == {s: 0 for s in rule_scenarios.SINKS}


@pytest.mark.parametrize(
    ("rule", "alias"),
    [
        ("KeeperSecretsManagerBlockedAddress", "KSMBlockedRanges"),
        ("OnePasswordAdminRoleGranted", "PG1PW"),
        ("OnePasswordPrivilegedVaultPermissionChanged", "PV1PW"),
    ],
)
def test_a_watchlist_rule_is_quiet_while_its_watchlist_is_empty(rule: str, alias: str) -> None:
    fires = REGISTRY[rule](NOW).fires
    assert alias in fires.watchlists
    empty = Case(fires.story, fires.onepassword, fires.keeper, fires.heartbeats, fires.keyvault, {})
    scenario = rule_scenarios.Scenario(rule, empty, None)
    outcome = rule_scenarios.prove(scenario, RULES[rule], NOW, PARSERS)
    assert {s: o.rows for s, o in outcome.fires.items()} == {s: 0 for s in rule_scenarios.SINKS}


# -- the parsers on what the simulators produce --------------------------------------------------------------
def _simulated(now: datetime) -> Case:
    rng = random.Random(18)
    start = now - timedelta(hours=3)
    onepassword = {t: make_events(t, 60, start, timedelta(minutes=2), rng) for t in EVENT_TYPES}
    keeper = sample_events(60, start, now - timedelta(minutes=5), seed=18, timestamp_style="iso")
    reports = [
        StreamReport("keeper", "keeper/events", "ok", events=60, pages=1, duration_ms=900, lag_seconds=30),
        StreamReport("onepassword", "onepassword/auditevents", "error", error_kind="auth", message="401"),
    ]
    vault = [
        KeyVaultRecord(
            now - timedelta(minutes=9), "SecretGet", COLLECTOR_PRINCIPAL, secret="keeper-api-token"
        )
    ]
    return Case("simulated", onepassword, keeper, [(now - timedelta(minutes=4), reports)], vault)


#: The tests on the simulated workspaces run on one worker, which builds them once.
on_simulated_data = pytest.mark.xdist_group("scenario:simulated")


@pytest.fixture(scope="module")
def simulated_workspaces() -> dict[str, Workspace]:
    case = _simulated(NOW)
    return {sink: rule_scenarios.workspace(case, sink, NOW, PARSERS) for sink in rule_scenarios.SINKS}


#: A column every row of the parser has filled, whichever sink wrote it.
PARSER_FILLED = {
    "KeeperEvents": ["AuditEvent", "Username", "SrcIpAddr", "EventTime"],
    "OnePasswordEvents": ["LogSource", "EventId", "EventTime"],
    "AuditSyncHealth": ["Source", "Stream", "Status", "RunId"],
    "AuditSyncKeyVaultAudit": ["OperationName", "SecretName", "Caller"],
    "ASimAuthenticationKeeper": ["EventResult", "TargetUsername", "SrcIpAddr"],
    "ASimAuthenticationOnePassword": ["EventResult", "TargetUsername", "SrcIpAddr"],
    "ASimAuditEventKeeper": ["Operation", "ActorUsername", "EventType"],
    "ASimAuditEventOnePassword": ["Operation", "ActorUsername", "EventType", "Object"],
}


@on_simulated_data
@pytest.mark.parametrize("sink", rule_scenarios.SINKS)
@pytest.mark.parametrize("parser", sorted(PARSER_FILLED))
def test_parser_runs_on_simulated_data(
    simulated_workspaces: dict[str, Workspace], parser: str, sink: str
) -> None:
    rows = simulated_workspaces[sink].query(parser)
    assert rows, f"{parser} returned nothing in the {sink} workspace"
    for column in PARSER_FILLED[parser]:
        empty = [r for r in rows if r.get(column) in (None, "")]
        assert not empty, f"{parser}.{column} empty in {len(empty)} of {len(rows)} rows ({sink}): {empty[0]}"


def test_every_parser_is_run() -> None:
    assert sorted(PARSER_FILLED) == sorted(name for name, _ in rule_scenarios.parser_functions())


@on_simulated_data
def test_onepassword_parser_reads_details_only_where_1password_fills_them(
    simulated_workspaces: dict[str, Workspace],
) -> None:
    rows = simulated_workspaces["logs_ingestion"].query(
        'OnePasswordEvents | where LogSource == "auditevents" | project ObjectType, ObjectEmail, AuxUuid, AuxEmail'
    )
    assert all((r["ObjectEmail"] != "") == (r["ObjectType"] == "user") for r in rows)
    assert all(r["AuxEmail"] == "" or r["AuxUuid"] != "" for r in rows)


# -- the stand-ins ------------------------------------------------------------------------------------------
def test_column_ifexists_takes_the_column_of_the_table_it_reads() -> None:
    text = (
        'union isfuzzy=true (A_CL | project X = column_ifexists("x_s", "")), '
        '(B_CL | project X = column_ifexists("x_s", tostring(int(null))))'
    )
    resolved = resolve_column_ifexists(text, {"A_CL": ["x_s"]}, ["A_CL", "B_CL"])
    assert (
        resolved == "union isfuzzy=true (A_CL | project X = x_s), (B_CL | project X = (tostring(int(null))))"
    )


def test_missing_legacy_columns_take_the_parsers_defaults() -> None:
    """A Data Collector table that never received a field has no column for it: the parser still runs."""
    ws = Workspace()
    keeper = rule_scenarios.TABLES[rule_scenarios.KEEPER_TABLE]
    ws.declare(keeper.name, kql.table_columns(keeper))
    ws.declare(
        "Keeper_CL", [("TimeGenerated", "datetime"), ("audit_event_s", "string"), ("username_s", "string")]
    )
    ws.insert(
        "Keeper_CL", [{"TimeGenerated": NOW, "audit_event_s": "login", "username_s": "a@contoso.example"}]
    )
    ws.register(rule_scenarios.parser_functions(), known_tables=rule_scenarios.known_tables())
    rows: list[dict[str, Any]] = ws.query("KeeperEvents | project AuditEvent, Username, SrcIpAddr, RecordUid")
    assert rows == [
        {"AuditEvent": "login", "Username": "a@contoso.example", "SrcIpAddr": "", "RecordUid": ""}
    ]
