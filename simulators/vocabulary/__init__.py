"""The vendors' own names, as data: what the simulators, the rule scenarios and the rules' literals may use.

``onepassword.json`` is transcribed from the 1Password Events API reference (its ``source`` says which
lists), ``keeper.json`` from Keeper Commander's ``keepercommander/constants.py`` (commit named in it).
tests/content/test_vocabulary.py fails on any name outside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class OnePasswordVocabulary:
    audit_actions: frozenset[str]
    audit_object_types: frozenset[str]
    actor_types: frozenset[str]
    item_usage_actions: frozenset[str]
    signin_categories: frozenset[str]
    signin_types: frozenset[str]
    group_roles: frozenset[str]


@dataclass(frozen=True)
class KeeperVocabulary:
    audit_events: frozenset[str]
    enforcements: frozenset[str]


def _load(name: str) -> dict[str, object]:
    doc = json.loads((HERE / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _names(doc: dict[str, object], key: str) -> frozenset[str]:
    value = doc[key]
    assert isinstance(value, list | dict)
    return frozenset(str(v) for v in value)


def load_onepassword() -> OnePasswordVocabulary:
    doc = _load("onepassword.json")
    return OnePasswordVocabulary(
        audit_actions=_names(doc, "auditActions"),
        audit_object_types=_names(doc, "auditObjectTypes"),
        actor_types=_names(doc, "actorTypes"),
        item_usage_actions=_names(doc, "itemUsageActions"),
        signin_categories=_names(doc, "signinCategories"),
        signin_types=_names(doc, "signinTypes"),
        group_roles=_names(doc, "groupRoles"),
    )


def load_keeper() -> KeeperVocabulary:
    doc = _load("keeper.json")
    return KeeperVocabulary(audit_events=_names(doc, "auditEvents"), enforcements=_names(doc, "enforcements"))


ONEPASSWORD = load_onepassword()
KEEPER = load_keeper()
