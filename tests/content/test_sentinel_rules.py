"""Schema checks of every analytics rule and hunting query source file, with the columns a rule's
entity mappings and custom details name checked against what its query really returns."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.content.sentinel_schema import hunting_problems, rule_problems
from tests.fixtures.kql import SentinelKql
from tools import build_sentinel

# The session's Kusto.Language analysis (sentinel_kql) runs on one worker, not once per worker.
pytestmark = pytest.mark.xdist_group("sentinel_kql")

RULE_FILES = build_sentinel.rule_files()
HUNTING_FILES = sorted(build_sentinel.SENTINEL.glob("hunting/*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _projected(sentinel_kql: SentinelKql, doc: dict[str, Any]) -> set[str]:
    checked = sentinel_kql.query("workspace", f"rule/{doc['name']}")
    assert checked.columns is not None, f"{doc['name']} does not return a table"
    return {name for name, _ in checked.columns}


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_file_is_valid(sentinel_kql: SentinelKql, path: Path) -> None:
    doc = _load(path)
    assert rule_problems(doc, _projected(sentinel_kql, doc)) == []


@pytest.mark.parametrize("path", HUNTING_FILES, ids=lambda p: p.stem)
def test_hunting_file_is_valid(path: Path) -> None:
    assert hunting_problems(_load(path)) == []


def test_ids_and_names_are_unique() -> None:
    docs = [_load(p) for p in [*RULE_FILES, *HUNTING_FILES]]
    ids = [str(d["id"]).lower() for d in docs]
    names = [d["name"] for d in docs]
    assert len(set(ids)) == len(ids), "duplicate ids"
    assert len(set(names)) == len(names), "duplicate names"


def test_coverage_of_both_products_and_the_connector() -> None:
    by_folder: dict[str, int] = {}
    for path in RULE_FILES:
        by_folder[path.parent.name] = by_folder.get(path.parent.name, 0) + 1
    assert by_folder.get("keeper", 0) >= 12
    assert by_folder.get("onepassword", 0) >= 12
    assert by_folder.get("health", 0) >= 3
    assert len(HUNTING_FILES) >= 8


def test_schema_check_catches_broken_rules(sentinel_kql: SentinelKql) -> None:
    """The check is not vacuous: a rule with typical mistakes gets one problem per mistake."""
    good = _load(RULE_FILES[0])
    projected = _projected(sentinel_kql, good)
    assert rule_problems(good, projected) == []
    bad = copy.deepcopy(good)
    bad["id"] = "not-a-guid"
    bad["tactics"] = ["CredentialAccess", "Credential Access"]
    bad["relevantTechniques"] = ["T1110.1"]
    bad["queryFrequency"], bad["queryPeriod"] = "2h", "1h"
    bad["entityMappings"][0]["fieldMappings"][0]["columnName"] = "NoSuchColumn"
    bad["severity"] = "Critical"
    del bad["description"]
    problems = rule_problems(bad, projected)
    expected = [
        "missing description",
        "id 'not-a-guid' is not a lower-case GUID",
        "severity 'Critical' not in",
        "unknown tactic 'Credential Access'",
        "technique 'T1110.1' is not of the form",
        "queryFrequency 2h is longer than queryPeriod 1h",
        "maps column 'NoSuchColumn', not projected by the query",
    ]
    for text in expected:
        assert any(text in p for p in problems), f"{text!r} not reported in {problems}"
    assert len(problems) == len(expected)
