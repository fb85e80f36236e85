"""``python -m auditsync sentinel enable|status``: turn the solution's rules on, and see where they stand.

    sentinel enable --recommended    an active rule for each recommended template that has none yet
    sentinel enable --all            ... for every template of the solution
    sentinel enable RULE ...         ... for the templates named (template id or display name)
    sentinel status [--json]         templates, the rules made from them, rules whose template is newer

``enable`` only ever creates: a template that already has a rule (whatever the SOC did to it since:
disabled, edited, tuned) is left alone, so running it again, or after a redeployment, changes nothing.

Settings (environment): SENTINEL_WORKSPACE_RESOURCE_ID, or SENTINEL_SUBSCRIPTION_ID +
SENTINEL_RESOURCE_GROUP + SENTINEL_WORKSPACE_NAME; SENTINEL_ARM_ENDPOINT for sovereign clouds.
Credentials: the Azure sign-in of the shell (``az login``), a service principal in the environment, or
a managed identity, needing 'Microsoft Sentinel Contributor' on the workspace (Reader for ``status``).
"""

from __future__ import annotations

import argparse
import functools
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from auditsync.content.api import SecurityInsights
from auditsync.content.settings import SentinelSettings
from auditsync.content.templates import (
    Rule,
    RuleTemplate,
    Solution,
    TemplateState,
    UnknownRules,
    ours,
    select,
    states,
)
from auditsync.errors import AuditSyncError, ConfigError, print_failure
from auditsync.secrets import CredentialFactory, default_credential

COMMAND = "sentinel"
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sentinel`` and its actions to the CLI's subparsers."""
    sentinel = sub.add_parser(
        COMMAND, help="the Sentinel solution's rules: turn them on, see where they stand"
    )
    actions = sentinel.add_subparsers(dest="sentinel_action", required=True)
    enable = actions.add_parser(
        "enable",
        help="create an active rule from each chosen template that has none yet (never changes a rule)",
    )
    enable.add_argument("--recommended", action="store_true", help="the recommended templates")
    enable.add_argument(
        "--all", dest="everything", action="store_true", help="every template of the solution"
    )
    enable.add_argument("rules", nargs="*", metavar="RULE", help="a template's id or display name")
    status = actions.add_parser(
        "status", help="templates, the rules made from them, rules with a newer template"
    )
    status.add_argument("--json", action="store_true", help="one JSON document, for scripts")


def run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    out: TextIO,
    *,
    credential_factory: CredentialFactory | None = None,
    api_options: Mapping[str, Any] | None = None,
) -> int:
    """Run ``sentinel <action>``; settings problems exit 2, a refused or failed call exits 1."""
    if args.sentinel_action == "enable":
        chosen = sum([bool(args.recommended), bool(args.everything), bool(args.rules)])
        if chosen != 1:
            print(
                "x say which rules: --recommended, --all, or rule template ids or names (one of them)",
                file=out,
            )
            return EXIT_CONFIG
    try:
        settings = SentinelSettings.from_env(env)
    except ConfigError as error:
        print("Settings are not valid:", file=out)
        for problem in error.problems:
            print(f"  x {problem}", file=out)
        return EXIT_CONFIG
    credential = functools.cache(credential_factory or default_credential)
    api = SecurityInsights(settings, credential(), **dict(api_options or {}))
    actions: dict[str, Callable[[], int]] = {
        "enable": lambda: _enable(args, api, settings, out),
        "status": lambda: _status(args, api, settings, out),
    }
    try:
        return actions[args.sentinel_action]()
    except AuditSyncError as error:
        print_failure(error, out)
        return EXIT_FAILED
    finally:
        api.close()


def _installed(api: SecurityInsights, settings: SentinelSettings, out: TextIO) -> list[RuleTemplate] | None:
    """The solution's rule templates in the workspace, or None (said why) when it is not installed."""
    solution = Solution.load()
    found = [t for t in map(RuleTemplate.from_content_template, api.rule_templates()) if t is not None]
    templates = ours(found, solution)
    if not templates:
        print(
            f"x the {solution.name} solution is not installed in workspace {settings.workspace_name}: "
            f"no rule template of package {solution.solution_id}",
            file=out,
        )
        print(
            "    what to do: deploy auditsync with deploySentinelContent=true (the Deploy to Azure wizard's "
            "Sentinel box), then run this again.",
            file=out,
        )
        return None
    return templates


def _enable(args: argparse.Namespace, api: SecurityInsights, settings: SentinelSettings, out: TextIO) -> int:
    solution = Solution.load()
    templates = _installed(api, settings, out)
    if templates is None:
        return EXIT_FAILED
    try:
        wanted = select(
            templates, solution, recommended=args.recommended, everything=args.everything, names=args.rules
        )
    except UnknownRules as unknown:
        print(f"x no rule template of the solution is named {', '.join(map(repr, unknown.names))}", file=out)
        print(
            "    what to do: `python -m auditsync sentinel status` lists the templates, ids and names.",
            file=out,
        )
        return EXIT_CONFIG
    if args.recommended:
        missing = sorted(set(solution.recommended) - {t.content_id.lower() for t in templates})
        for content_id in missing:
            print(
                f"  ! recommended {solution.recommended[content_id]!r} is not installed in this workspace "
                "(an older solution version): deploy the solution again to get it",
                file=out,
            )
    rules = [Rule.from_resource(r) for r in api.alert_rules()]
    existing = {r.template_name.lower(): r for r in rules if r.template_name}
    version = templates[0].package_version
    print(
        f"{solution.name} {version} in workspace {settings.workspace_name}: {len(templates)} rule templates",
        file=out,
    )
    created = 0
    for template in wanted:
        rule = existing.get(template.content_id.lower())
        if rule is not None:
            state = "enabled" if rule.enabled else "disabled"
            print(f"  = {template.display_name}: has a rule already ({state}), left as it is", file=out)
            continue
        name = str(uuid.uuid4())
        made = api.create_rule(name, template.rule())
        api.link_to_solution(f"analyticsrule-{name}", template.metadata(str(made.get("id") or name)))
        created += 1
        print(
            f"  + {template.display_name}: rule {name} created (template version {template.version})",
            file=out,
        )
    print(f"{created} rule(s) created, {len(wanted) - created} left as they are.", file=out)
    return EXIT_OK


def _status(args: argparse.Namespace, api: SecurityInsights, settings: SentinelSettings, out: TextIO) -> int:
    solution = Solution.load()
    templates = _installed(api, settings, out)
    if templates is None:
        return EXIT_FAILED
    rules = [Rule.from_resource(r) for r in api.alert_rules()]
    table = states(templates, rules, solution)
    if args.json:
        print(json.dumps(_as_json(table, settings), indent=2), file=out)
        return EXIT_OK
    version = templates[0].package_version
    active = sum(len(s.rules) for s in table)
    print(
        f"{solution.name} {version} in workspace {settings.workspace_name}: {len(table)} rule templates, "
        f"{active} rule(s) made from them",
        file=out,
    )
    print("  R = recommended; rules: enabled/disabled (made from template version)", file=out)
    for state in table:
        mark = "R" if state.recommended else " "
        rules_text = ", ".join(
            f"{'enabled' if r.enabled else 'disabled'} ({r.template_version or '?'})" for r in state.rules
        )
        print(
            f"  {mark} {state.template.version:<8} {state.template.display_name}  "
            f"[{state.template.content_id}]  {rules_text or 'no rule'}",
            file=out,
        )
    outdated = [(s, r) for s in table for r in s.outdated]
    if outdated:
        print(
            "Rules whose template has a newer version (review the template and update the rule yourself):",
            file=out,
        )
        for state, rule in outdated:
            print(
                f"  ^ {rule.display_name} (rule {rule.name}): made from {rule.template_version or 'an unknown version'}"
                f", template is {state.template.version}",
                file=out,
            )
    else:
        print("Every rule was made from the current version of its template.", file=out)
    return EXIT_OK


def _as_json(table: list[TemplateState], settings: SentinelSettings) -> dict[str, Any]:
    return {
        "workspace": settings.workspace_id,
        "templates": [
            {
                "id": s.template.content_id,
                "displayName": s.template.display_name,
                "version": s.template.version,
                "recommended": s.recommended,
                "rules": [
                    {"name": r.name, "enabled": r.enabled, "templateVersion": r.template_version}
                    for r in s.rules
                ],
            }
            for s in table
        ],
        "outdated": [
            {
                "rule": r.name,
                "displayName": r.display_name,
                "ruleTemplateVersion": r.template_version,
                "template": s.template.content_id,
                "templateVersion": s.template.version,
            }
            for s in table
            for r in s.outdated
        ],
    }
