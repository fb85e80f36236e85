"""Rule templates and rules as the SecurityInsights API returns them, and what to do with them.

Pure functions over the API's JSON: which installed templates are ours, the rule a template makes,
which templates already have a rule (a rule names its template in ``alertRuleTemplateName``) and which
rules were made from an older version of their template (``templateVersion``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

JSON = dict[str, Any]

#: Properties of a Scheduled rule (``ScheduledAlertRuleProperties`` of the api-version the command uses)
#: that a rule takes over from its template. The template carries more (``requiredDataConnectors``,
#: ``status``, ``version``) that a rule does not define.
RULE_PROPERTIES = (
    "displayName",
    "description",
    "severity",
    "query",
    "queryFrequency",
    "queryPeriod",
    "triggerOperator",
    "triggerThreshold",
    "suppressionDuration",
    "suppressionEnabled",
    "tactics",
    "techniques",
    "entityMappings",
    "customDetails",
    "alertDetailsOverride",
    "eventGroupingSettings",
    "incidentConfiguration",
)
#: What a rule needs when its template does not say (both are required properties of a rule).
RULE_DEFAULTS: JSON = {"suppressionDuration": "PT5H", "suppressionEnabled": False}


@dataclass(frozen=True)
class Solution:
    """What the command knows about the auditsync solution without asking a workspace (built with it)."""

    solution_id: str
    name: str
    connector_id: str
    #: Recommended rule template id (lower case) -> its display name.
    recommended: dict[str, str]

    @classmethod
    def load(cls) -> Solution:
        doc = json.loads(resources.files("auditsync.content").joinpath("solution.json").read_text("utf-8"))
        return cls(
            doc["solutionId"],
            doc["solutionName"],
            doc["connectorId"],
            {k.lower(): v for k, v in doc["recommended"].items()},
        )


@dataclass(frozen=True)
class RuleTemplate:
    """One analytics rule template of the solution, as installed in the workspace."""

    content_id: str
    version: str
    display_name: str
    kind: str
    properties: JSON
    package_id: str
    package_name: str
    package_version: str

    @classmethod
    def from_content_template(cls, resource: JSON) -> RuleTemplate | None:
        """The rule template inside a ``contentTemplates`` resource (its expanded ``mainTemplate``), or None."""
        props = resource.get("properties") or {}
        if str(props.get("contentKind", "")).lower() != "analyticsrule":
            return None
        inner = [
            r
            for r in (props.get("mainTemplate") or {}).get("resources", [])
            if str(r.get("type", "")).lower().endswith("/alertruletemplates")
        ]
        if len(inner) != 1:
            return None
        template = inner[0]
        rule_properties = template.get("properties") or {}
        return cls(
            content_id=str(props.get("contentId") or template.get("name", "")),
            version=str(props.get("version") or rule_properties.get("version", "")),
            display_name=str(props.get("displayName") or rule_properties.get("displayName", "")),
            kind=str(template.get("kind", "Scheduled")),
            properties=rule_properties,
            package_id=str(props.get("packageId", "")),
            package_name=str(props.get("packageName", "")),
            package_version=str(props.get("packageVersion", "")),
        )

    def rule(self) -> JSON:
        """The body of an active rule made from this template: enabled, linked to it and its version."""
        properties = {k: self.properties[k] for k in RULE_PROPERTIES if k in self.properties}
        for key, default in RULE_DEFAULTS.items():
            properties.setdefault(key, default)
        properties |= {
            "enabled": True,
            "alertRuleTemplateName": self.content_id,
            "templateVersion": self.version,
        }
        return {"kind": self.kind, "properties": properties}

    def metadata(self, rule_id: str) -> JSON:
        """The metadata linking a rule made from this template to the solution (as Content Hub links them)."""
        return {
            "properties": {
                "parentId": rule_id,
                "contentId": self.content_id,
                "kind": "AnalyticsRule",
                "version": self.version,
                "source": {"kind": "Solution", "name": self.package_name, "sourceId": self.package_id},
            }
        }


@dataclass(frozen=True)
class Rule:
    """An alert rule of the workspace, as far as the command cares."""

    name: str
    id: str
    display_name: str
    enabled: bool
    template_name: str
    template_version: str

    @classmethod
    def from_resource(cls, resource: JSON) -> Rule:
        props = resource.get("properties") or {}
        return cls(
            name=str(resource.get("name", "")),
            id=str(resource.get("id", "")),
            display_name=str(props.get("displayName", "")),
            enabled=bool(props.get("enabled", False)),
            template_name=str(props.get("alertRuleTemplateName") or ""),
            template_version=str(props.get("templateVersion") or ""),
        )


@dataclass(frozen=True)
class TemplateState:
    template: RuleTemplate
    recommended: bool
    rules: tuple[Rule, ...] = field(default=())

    @property
    def outdated(self) -> tuple[Rule, ...]:
        """Rules made from an older version of this template."""
        return tuple(r for r in self.rules if newer(self.template.version, r.template_version))


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """``1.10.0`` after ``1.9.2``: numeric parts compare as numbers, anything else as text."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+]", version.strip()) if p)


def newer(template_version: str, rule_version: str) -> bool:
    """True when the template is newer than the version a rule was made from (no version: unknown, older)."""
    if not template_version:
        return False
    if not rule_version:
        return True
    return version_key(template_version) > version_key(rule_version)


def ours(templates: list[RuleTemplate], solution: Solution) -> list[RuleTemplate]:
    """The templates of our solution, by display name."""
    mine = [t for t in templates if t.package_id.lower() == solution.solution_id.lower()]
    return sorted(mine, key=lambda t: t.display_name.lower())


def states(templates: list[RuleTemplate], rules: list[Rule], solution: Solution) -> list[TemplateState]:
    """Each template with the rules made from it."""
    by_template: dict[str, list[Rule]] = {}
    for rule in rules:
        by_template.setdefault(rule.template_name.lower(), []).append(rule)
    return [
        TemplateState(
            t,
            t.content_id.lower() in solution.recommended,
            tuple(sorted(by_template.get(t.content_id.lower(), []), key=lambda r: r.display_name)),
        )
        for t in templates
    ]


class UnknownRules(ValueError):
    """RULE arguments that name no template of the solution."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def select(
    templates: list[RuleTemplate],
    solution: Solution,
    *,
    recommended: bool,
    everything: bool,
    names: list[str],
) -> list[RuleTemplate]:
    """The templates ``enable`` was asked for: recommended ones, all, or by id or display name."""
    if everything:
        return list(templates)
    if recommended:
        return [t for t in templates if t.content_id.lower() in solution.recommended]
    by_key = {t.content_id.lower(): t for t in templates} | {t.display_name.lower(): t for t in templates}
    chosen: list[RuleTemplate] = []
    unknown = []
    for name in names:
        template = by_key.get(name.strip().lower())
        if template is None:
            unknown.append(name)
        elif template not in chosen:
            chosen.append(template)
    if unknown:
        raise UnknownRules(unknown)
    return chosen
