"""What watches the connector: the dead-app alert (fires with no health row at all, empty table included,
never resolves by ageing out), failed executions from Application Insights, the per-stream alerts, the token
expiry alerts (run on health rows in a KQL engine), and the Key Vault audit trail (diagnostic settings in
both templates, agreeing)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditsync.model import StreamReport
from auditsync.tables import HEALTH_TABLE, TABLES
from tests.content.armexpr import ArmContext
from tests.fixtures.infra import WORKSPACE_ID, arm_resources, bicep_body, bicep_resources
from tests.scenarios.model import Case
from tools import build_infra, kql, rule_scenarios

# One worker analyses the alert queries once (the module fixture), not one copy per worker.
pytestmark = pytest.mark.xdist_group("infra_monitoring")

SQR = "Microsoft.Insights/scheduledQueryRules"
DIAG = "Microsoft.Insights/diagnosticSettings"


def _rules(arm_template: dict[str, Any], **params: Any) -> dict[str, dict[str, Any]]:
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID, **params})
    return {
        ctx.evaluate(r["name"]): {**ctx.evaluate(r["properties"]), "_location": ctx.evaluate(r["location"])}
        for r in arm_resources(arm_template)
        if r["type"] == SQR
    }


def _query(rule: dict[str, Any]) -> str:
    (condition,) = rule["criteria"]["allOf"]
    query: str = condition["query"]
    return query


def test_every_alert_the_issue_names_exists(arm_template: dict[str, Any]) -> None:
    rules = _rules(arm_template)
    assert set(rules) == {
        "auditsync-no-health-rows",
        "auditsync-no-heartbeat",
        "auditsync-stream-error",
        "auditsync-stream-lag",
        "auditsync-token-expiring",
        "auditsync-token-expiring-urgent",
        "auditsync-failed-executions",
    }


def test_the_dead_app_alert_counts_rows_in_its_window_and_has_no_dimension(
    arm_template: dict[str, Any],
) -> None:
    rule = _rules(arm_template)["auditsync-no-health-rows"]
    (condition,) = rule["criteria"]["allOf"]
    assert rule["scopes"] == [WORKSPACE_ID]
    # No per-stream dimension: a stream that never wrote a row has no dimension value to alert on.
    assert "dimensions" not in condition
    assert (condition["timeAggregation"], condition["operator"], condition["threshold"]) == (
        "Count",
        "GreaterThan",
        0,
    )
    # The window is the query range: nothing older than 15 minutes can keep it quiet, and no 2-day
    # override lets a dead app's alert age out; it clears only when rows arrive (autoMitigate).
    assert "overrideQueryTimeRange" not in rule
    assert rule["windowSize"] == "PT15M" and "ago(15m)" in _query(rule)
    assert rule["autoMitigate"] is True and rule["severity"] == 1


def _summarize_without_by_then_zero_filter(query: str) -> bool:
    """count() in a summarize with no ``by`` yields exactly one row even over no input (Kusto semantics);
    a following ``where <col> == 0`` keeps that row only when nothing arrived."""
    stages = [s.strip() for s in query.split("|")]
    found = next((i for i, s in enumerate(stages) if s.startswith("summarize")), None)
    if found is None or " by " in f" {stages[found]} ":
        return False
    column = re.fullmatch(r"summarize (\w+) = count\(\)", stages[found])
    return bool(column) and stages[found + 1 :] == [f"where {column.group(1)} == 0"]  # type: ignore[union-attr]


#: The classic Application Insights ``requests`` columns the failed-executions query reads (log alerts
#: scoped to a component use this schema). Declared here from Microsoft's table reference.
APP_INSIGHTS_REQUESTS = {
    "name": "requests",
    "columns": [
        ("timestamp", "datetime"),
        ("success", "bool"),
        ("resultCode", "string"),
        ("operation_Name", "string"),
        ("cloud_RoleName", "string"),
        ("duration", "real"),
    ],
}


@pytest.fixture(scope="module")
def kusto(arm_template: dict[str, Any]) -> dict[str, kql.Checked]:
    """Every alert query analysed by Kusto.Language (one node process): workspace rules against the health
    table, the failed-executions rule against Application Insights, plus a deliberately broken one."""
    rules = _rules(arm_template)
    health = TABLES[HEALTH_TABLE]
    on_workspace = {n: _query(r) for n, r in rules.items() if r["scopes"] == [WORKSPACE_ID]}
    on_app_insights = {n: _query(r) for n, r in rules.items() if n not in on_workspace}
    broken = on_workspace["auditsync-no-health-rows"].replace("TimeGenerated", "TimeGenrated")
    results = kql.check(
        [
            kql.Scenario(
                name="workspace",
                tables=[{"name": health.name, "columns": kql.table_columns(health)}],
                queries=[*((n, q, []) for n, q in on_workspace.items()), ("broken", broken, [])],
            ),
            kql.Scenario(
                name="appInsights",
                tables=[APP_INSIGHTS_REQUESTS],
                queries=[(n, q, []) for n, q in on_app_insights.items()],
            ),
        ]
    )
    return {**results["workspace"].queries, **results["appInsights"].queries}


def test_every_alert_query_binds_in_kusto(kusto: dict[str, kql.Checked]) -> None:
    assert len(kusto) == 8
    assert kusto["broken"].errors, "Kusto.Language must reject a misspelt column (the check is real)"
    for name, checked in kusto.items():
        if name != "broken":
            assert not checked.errors, checked.describe_errors()


def test_the_dead_app_query_returns_a_row_on_an_empty_table(
    arm_template: dict[str, Any], kusto: dict[str, kql.Checked]
) -> None:
    rules = _rules(arm_template)
    dead = _query(rules["auditsync-no-health-rows"])
    assert kusto["auditsync-no-health-rows"].columns == [("HealthRows", "long")]
    assert _summarize_without_by_then_zero_filter(dead)
    # The per-stream rule groups by Stream: over an empty table it yields no row, which is why it alone
    # could never notice an app that never ran.
    assert not _summarize_without_by_then_zero_filter(_query(rules["auditsync-no-heartbeat"]))


def test_failed_executions_alert_reads_application_insights(
    arm_template: dict[str, Any], kusto: dict[str, kql.Checked]
) -> None:
    rule = _rules(arm_template)["auditsync-failed-executions"]
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID})
    assert rule["scopes"] == [ctx.evaluate(f"[{build_infra.AI_ID}]")]
    assert rule["_location"] == ctx.evaluate("[parameters('location')]")
    assert "success == false" in _query(rule)
    assert not kusto["auditsync-failed-executions"].errors


def test_email_reaches_every_alert(arm_template: dict[str, Any]) -> None:
    for name, rule in _rules(arm_template, alertEmail="soc@example.com").items():
        groups = rule["actions"]["actionGroups"]
        assert len(groups) == 1 and groups[0].endswith("/actionGroups/auditsync-health"), name


def test_bicep_alerts_equal_the_arm_alerts(bicep: dict[str, Any], arm_template: dict[str, Any]) -> None:
    arm = _rules(arm_template)
    lag_seconds = str(
        ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID}).evaluate(
            "[variables('lagThresholdSeconds')]"
        )
    )
    in_bicep = {}
    for _, _, resource in bicep_resources(bicep):
        if resource["type"] == SQR:
            body = bicep_body(resource)
            text = json.dumps(body["properties"]).replace("${lagThresholdSeconds}", lag_seconds)
            props = json.loads(text.replace("${tokenExpiryWarningDays}", "14"))
            in_bicep[body["name"].replace("${namePrefix}", "auditsync")] = props
    assert set(in_bicep) == set(arm)
    for name, props in in_bicep.items():
        for key in (
            "displayName",
            "description",
            "severity",
            "evaluationFrequency",
            "windowSize",
            "autoMitigate",
            "criteria",
        ):
            assert props[key] == arm[name][key], (name, key)
        assert props.get("overrideQueryTimeRange") == arm[name].get("overrideQueryTimeRange"), name


# --- token expiry ---

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


def _token_heartbeats(*expiries: datetime | None) -> Case:
    """Keeper heartbeats every five minutes over the last hour, the n-th third of them with ``expiries[n]``
    (one expiry: all of them; a second: the token was rotated two thirds into the hour)."""
    runs = []
    for n in range(12):
        expires = expiries[min(n * len(expiries) // 12, len(expiries) - 1)]
        report = StreamReport("keeper", "keeper/events", "idle", lag_seconds=0, token_expires_on=expires)
        runs.append((NOW - timedelta(minutes=58) + timedelta(minutes=5 * n), [report]))
    return Case("token expiry", heartbeats=runs)


@pytest.mark.parametrize(
    ("expiries", "warning", "urgent"),
    [
        ((NOW + 10 * DAY,), True, False),
        ((NOW + DAY,), True, True),
        ((NOW - DAY,), True, True),
        ((NOW + 60 * DAY,), False, False),
        ((None,), False, False),
        ((NOW + 2 * DAY, NOW + 300 * DAY), False, False),
    ],
    ids=["in-10-days", "tomorrow", "past", "in-60-days", "unknown", "rotated"],
)
def test_token_expiry_alerts_fire_at_their_thresholds_per_token(
    arm_template: dict[str, Any], expiries: tuple[datetime | None, ...], warning: bool, urgent: bool
) -> None:
    """Both alerts' queries, as the template deploys them (default parameter), run in a KQL engine on the
    health rows a run writes (one hour: their window): the first at 14 days, the second at 3, each once per
    tenant and source, and neither once the newest rows carry a rotated token's expiry."""
    rules = _rules(arm_template)
    ws = rule_scenarios.workspace(_token_heartbeats(*expiries), "logs_ingestion", NOW, [])
    fired = {}
    for name in ("auditsync-token-expiring", "auditsync-token-expiring-urgent"):
        assert rules[name]["windowSize"] == rules[name]["evaluationFrequency"] == "PT1H"
        rows = ws.query(_query(rules[name]), now=NOW)
        assert len(rows) <= 1 and all((r["Tenant"], r["Source"]) == ("", "keeper") for r in rows)
        fired[name] = bool(rows)
    assert fired == {"auditsync-token-expiring": warning, "auditsync-token-expiring-urgent": urgent}
    assert "<= 14 |" in _query(rules["auditsync-token-expiring"])
    assert (
        rules["auditsync-token-expiring-urgent"]["severity"] < rules["auditsync-token-expiring"]["severity"]
    )


# --- Key Vault audit logs ---


def test_key_vault_audit_logs_go_to_the_workspace_by_default(arm_template: dict[str, Any]) -> None:
    (diag,) = [r for r in arm_resources(arm_template) if r["type"] == DIAG]
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID})
    assert (
        ctx.evaluate(diag["scope"])
        == f"Microsoft.KeyVault/vaults/{ctx.evaluate('[variables(' + repr('keyVaultName') + ')]')}"
    )
    props = ctx.evaluate(diag["properties"])
    assert props == {
        "workspaceId": WORKSPACE_ID,
        "logAnalyticsDestinationType": "Dedicated",
        "logs": [{"categoryGroup": "audit", "enabled": True}],
    }
    assert ctx.evaluate(diag["condition"]) is True
    off = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID, "enableKeyVaultAuditLogs": False})
    assert off.evaluate(diag["condition"]) is False
    assert arm_template["parameters"]["enableKeyVaultAuditLogs"]["defaultValue"] is True


def test_key_vault_diagnostic_settings_agree(bicep: dict[str, Any], arm_template: dict[str, Any]) -> None:
    (arm,) = [r for r in arm_resources(arm_template) if r["type"] == DIAG]
    found = [(f, r) for f, _, r in bicep_resources(bicep) if r["type"] == DIAG]
    assert len(found) == 1
    file, resource = found[0]
    assert file == "modules/keyVault.bicep"
    body = bicep_body(resource)
    assert resource["api_version"] == arm["apiVersion"]
    assert body["name"] == arm["name"]
    assert body["scope"] == "vault"
    assert body["properties"] == {**arm["properties"], "workspaceId": "workspaceResourceId"}
    assert resource["config"]["condition"] == "enableAuditLogs"
    main = bicep["main.bicep"]
    assert main["modules"]["keyVault"]["config"]["params"]["enableAuditLogs"] == "enableKeyVaultAuditLogs"
    assert main["parameters"]["enableKeyVaultAuditLogs"]["default"] is True


@pytest.mark.parametrize("sink", ["logs_ingestion", "data_collector"])
def test_audit_logs_do_not_depend_on_the_sink(arm_template: dict[str, Any], sink: str) -> None:
    (diag,) = [r for r in arm_resources(arm_template) if r["type"] == DIAG]
    ctx = ArmContext(arm_template, {"workspaceResourceId": WORKSPACE_ID, "sinkMode": sink})
    assert ctx.evaluate(diag["condition"]) is True
