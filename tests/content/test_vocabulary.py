"""Only the vendors' own names: every action, object type, category, sign-in type, Keeper event and
enforcement that a simulator sends, a scenario uses or a query compares a column to is in the vendor's
list (simulators/vocabulary, sources named there), and 1Password's details are filled only where
1Password fills them."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditsync import heartbeat
from simulators.keeper import sample_events
from simulators.onepassword_data import EVENT_TYPES, make_events
from simulators.vocabulary import KEEPER, ONEPASSWORD
from tests.scenarios import REGISTRY
from tests.scenarios.model import Case
from tools import build_sentinel

JSON = dict[str, Any]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

#: Health rows of ours in the 1Password table carry categories of our own (auditsync/heartbeat.py).
HEALTH_CATEGORIES = {"success"} | {c for c, _ in heartbeat._ONEPASSWORD_HEALTH.values()}

#: The names a query may compare each column to (case-insensitive for Keeper's enforcements).
VOCABULARY: dict[str, frozenset[str]] = {
    "Action": ONEPASSWORD.audit_actions | ONEPASSWORD.item_usage_actions,
    "ObjectType": ONEPASSWORD.audit_object_types,
    "Category": ONEPASSWORD.signin_categories | HEALTH_CATEGORIES,
    "SigninType": ONEPASSWORD.signin_types,
    "AuditEvent": KEEPER.audit_events,
    "Operation": ONEPASSWORD.audit_actions | KEEPER.audit_events,
    "Enforcement": KEEPER.enforcements,
    "LogSource": frozenset({"auditevents", "itemusages", "signinattempts", "healthevents"}),
}
FIELDS = "|".join(VOCABULARY)
_STRING = re.compile(r'"([^"]*)"')
_COMPARE = re.compile(rf"\b({FIELDS})\s*(==|!=|=~|!~)\s*\"([^\"]*)\"")
_IN = re.compile(rf"\b({FIELDS})\s*(!?in~?|has_any)\s*\(([^()]*)\)")
_STARTS = re.compile(rf"\b({FIELDS})\s+startswith\s+\"([^\"]*)\"")
_LET_LIST = re.compile(r"let\s+(\w+)\s*=\s*dynamic\(\[([^\]]*)\]\)", re.S)


def literals(text: str) -> list[tuple[str, str, str]]:
    """``(column, operator, literal)`` for every comparison of a vocabulary column to a string literal,
    including ``in (list)`` and ``in (name)`` of a ``let name = dynamic([...])``."""
    lists = {m.group(1): _STRING.findall(m.group(2)) for m in _LET_LIST.finditer(text)}
    found = [(m.group(1), m.group(2), m.group(3)) for m in _COMPARE.finditer(text)]
    for m in _IN.finditer(text):
        inside = m.group(3).strip()
        values = lists.get(inside, []) if re.fullmatch(r"\w+", inside) else _STRING.findall(inside)
        found += [(m.group(1), m.group(2), v) for v in values]
    found += [(m.group(1), "startswith", m.group(2)) for m in _STARTS.finditer(text)]
    return found


#: The columns each product's parsers name after its vendor's fields, and how a query reads each product.
PRODUCT_COLUMNS = {
    "onepassword": {"Action", "ObjectType", "Category", "SigninType", "LogSource", "Operation"},
    "keeper": {"AuditEvent", "Enforcement", "Operation"},
}
PRODUCT_READS = {
    "onepassword": re.compile(r"\bOnePasswordEvents\b|ASim\w*OnePassword|OnePasswordEvent(s|Logs)_CL"),
    "keeper": re.compile(r"\bKeeperEvents\b|ASim\w*Keeper|Keeper(SecurityEventNewLogs)?_CL"),
}


def unknown_names(text: str) -> list[str]:
    """Literals compared to a vendor column that the vendor never sends (only for the products ``text`` reads)."""
    columns = {
        c for product, read in PRODUCT_READS.items() if read.search(text) for c in PRODUCT_COLUMNS[product]
    }
    problems = []
    for column, operator, value in literals(text):
        if column not in columns:
            continue
        names = VOCABULARY[column]
        if column == "Enforcement":
            names = frozenset(n.lower() for n in names)
            value = value.lower()
        known = any(n.startswith(value) for n in names) if operator == "startswith" else value in names
        if not known:
            problems.append(f"{column} {operator} {value!r}")
    return problems


def _queries() -> list[tuple[str, str]]:
    content = build_sentinel.build_content()
    return [
        *((f"parser/{p['name']}", p["query"]) for p in content["parsers"]),
        *build_sentinel.all_queries(content),
    ]


QUERIES = _queries()


@pytest.mark.parametrize(("name", "text"), QUERIES, ids=[n for n, _ in QUERIES])
def test_queries_compare_only_to_vendor_names(name: str, text: str) -> None:
    assert unknown_names(text) == [], name


def test_the_literal_check_sees_the_comparisons() -> None:
    """Not vacuous: it finds hundreds of names in the content, and reports invented ones."""
    assert sum(len(literals(t)) for _, t in QUERIES) > 200
    invented = 'let evs = dynamic(["login", "lgoin"]); OnePasswordEvents | union KeeperEvents | where Action in ("reactive", "reactivate") or ObjectType == "dvault"'
    invented += ' or AuditEvent in (evs) or AuditEvent startswith "app_clinet" or Enforcement =~ "RESTRICT_IP_ADDRESSES"'
    assert sorted(unknown_names(invented)) == [
        "Action in 'reactivate'",
        "AuditEvent in 'lgoin'",
        "AuditEvent startswith 'app_clinet'",
        "ObjectType == 'dvault'",
    ]


# -- events -------------------------------------------------------------------------------------------------
def onepassword_problems(event_type: str, event: JSON) -> list[str]:
    """What in one 1Password record 1Password would never send."""
    problems = []
    if event_type == "auditevents":
        if event["action"] not in ONEPASSWORD.audit_actions:
            problems.append(f"action {event['action']!r}")
        if event["object_type"] not in ONEPASSWORD.audit_object_types:
            problems.append(f"object_type {event['object_type']!r}")
        if event.get("actor_type", "user") not in ONEPASSWORD.actor_types:
            problems.append(f"actor_type {event['actor_type']!r}")
        if ("object_details" in event) != (event["object_type"] == "user"):
            problems.append(f"object_details on a {event['object_type']} object")
        if "object_details" in event and event["object_details"]["uuid"] != event["object_uuid"]:
            problems.append("object_details of another object")
        if "aux_details" in event and event["aux_details"].get("uuid") != event.get("aux_uuid"):
            problems.append("aux_details of another user than aux_uuid")
        membership = event["object_type"] == "gm" and event["action"] in ("join", "role")
        if membership and (
            event.get("aux_info") not in ONEPASSWORD.group_roles or "aux_details" not in event
        ):
            problems.append("a group membership without the member (aux_details) and role letter (aux_info)")
        if event["object_type"] == "invite" and "@" not in str(event.get("aux_info", "")):
            problems.append("an invite without the invited address in aux_info")
    elif event_type == "itemusages":
        if event["action"] not in ONEPASSWORD.item_usage_actions:
            problems.append(f"item usage action {event['action']!r}")
    elif event_type == "signinattempts":
        if event["category"] not in ONEPASSWORD.signin_categories:
            problems.append(f"category {event['category']!r}")
        if event["type"] not in ONEPASSWORD.signin_types:
            problems.append(f"type {event['type']!r}")
    return problems


def keeper_problems(event: JSON) -> list[str]:
    problems = []
    if event["audit_event"] not in KEEPER.audit_events:
        problems.append(f"audit_event {event['audit_event']!r}")
    enforcement = event.get("enforcement")
    if enforcement is not None and str(enforcement).lower() not in KEEPER.enforcements:
        problems.append(f"enforcement {enforcement!r}")
    return problems


def case_problems(case: Case) -> Iterable[str]:
    for event_type, events in case.onepassword.items():
        for event in events:
            yield from onepassword_problems(event_type, event)
    for event in case.keeper:
        yield from keeper_problems(event)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_onepassword_simulator_speaks_1password(event_type: str) -> None:
    events = make_events(event_type, 3000, NOW, timedelta(seconds=1), random.Random(5))
    problems = sorted({p for e in events for p in onepassword_problems(event_type, e)})
    assert problems == []


def test_onepassword_simulator_covers_the_kinds_the_rules_read() -> None:
    events = make_events("auditevents", 3000, NOW, timedelta(seconds=1), random.Random(5))
    kinds = {(e["action"], e["object_type"]) for e in events}
    assert {
        ("create", "invite"),
        ("join", "gm"),
        ("role", "gm"),
        ("grant", "uva"),
        ("reactive", "user"),
    } <= kinds
    assert any("aux_details" not in e and "aux_uuid" in e for e in events)  # a group is an aux too


def test_keeper_simulator_speaks_keeper() -> None:
    events = sample_events(3000, NOW - timedelta(days=1), NOW, seed=5)
    assert sorted({p for e in events for p in keeper_problems(e)}) == []


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scenarios_speak_the_vendors_language(name: str) -> None:
    scenario = REGISTRY[name](NOW)
    cases = [scenario.fires] + ([scenario.quiet] if scenario.quiet else [])
    assert sorted({p for case in cases for p in case_problems(case)}) == []


def test_event_checks_report_what_1password_never_sends() -> None:
    bad = {
        "action": "reactivate",
        "object_type": "gva",
        "object_uuid": "V",
        "object_details": {"uuid": "V", "name": "Vault", "email": ""},
        "aux_uuid": "G",
        "aux_details": {"uuid": "U"},
    }
    assert onepassword_problems("auditevents", bad) == [
        "action 'reactivate'",
        "object_details on a gva object",
        "aux_details of another user than aux_uuid",
    ]
    assert keeper_problems({"audit_event": "login_fail", "enforcement": "RESTRICT_IP_ADDRESSES"}) == [
        "audit_event 'login_fail'"
    ]
