"""A tenant's log lines reach Application Insights with ``tenant`` and ``stream`` as customDimensions:
the real queue functions, the real OpenTelemetry log exporter authenticated by the managed-identity
stand-in, and the ingestion stand-in (local auth off) that keeps what it accepted."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import function_app
from auditsync import app_insights
from auditsync.fanout.queue import open_queue
from auditsync.fanout.work_item import WorkItem
from auditsync.fanout.worker import WorkFailed
from auditsync.log_context import tenant_work
from auditsync.redaction import MASK
from simulators.app_insights import AppInsightsSim
from simulators.identity import ManagedIdentitySim
from simulators.tls import LoopbackTLS
from tests.integration.test_function_app import indexed_function, timer
from tests.integration.test_function_app_tenants import queue_message, tenants  # noqa: F401 (fixture)

#: What the Functions host maps to severityLevel (Verbose 0 .. Critical 4).
SEVERITY = {logging.INFO: 1, logging.WARNING: 2, logging.ERROR: 3}


@pytest.fixture
def app_insights_sim(
    identity_sim: ManagedIdentitySim, trusted_tls: LoopbackTLS, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppInsightsSim]:
    with AppInsightsSim(identity_sim, ssl_context=trusted_tls.server_context) as sim:
        monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", sim.connection_string)
        monkeypatch.setenv("TENANT_LOG_EXPORT", "true")
        yield sim
        app_insights.stop()


def dispatched(work_queue_name: str, connection_string: str) -> dict[str, str]:
    indexed_function("collect").get_user_function()(timer())
    queue = open_queue(work_queue_name, connection_string=connection_string)
    return {WorkItem.from_json(m.content).tenant: m.content for m in queue.receive_messages(max_messages=32)}


def test_a_tenants_lines_arrive_with_tenant_and_stream_dimensions(
    tenants: Any,  # noqa: F811
    app_insights_sim: AppInsightsSim,
    azurite_queue_connection_string: str,
    work_queue_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    accounts, dcrs = tenants
    accounts["acme"].generate("auditevents", 40, step=timedelta(seconds=30))
    dcrs["globex"].deny()
    caplog.set_level(logging.INFO)
    messages = dispatched(work_queue_name, azurite_queue_connection_string)

    indexed_function("work").get_user_function()(queue_message(messages["acme"]))
    with pytest.raises(WorkFailed):
        indexed_function("work").get_user_function()(queue_message(messages["globex"]))

    traces = app_insights_sim.traces()
    sent = [r for r in caplog.records if r.name.startswith("auditsync") and hasattr(r, "tenant")]
    assert sorted(t["message"] for t in traces) == sorted(r.getMessage() for r in sent), (
        "every tenant line of the auditsync loggers, exactly once; the tick's lines stay with the host"
    )
    for trace in traces:
        tenant = trace["properties"]["tenant"]
        assert trace["message"].startswith(f"[tenant {tenant}] ")
    by_message = {t["message"]: t for t in traces}
    for record in sent:
        trace = by_message[record.getMessage()]
        assert trace["severityLevel"] == SEVERITY[record.levelno]
        assert trace["properties"]["tenant"] == record.tenant
        assert trace["properties"].get("stream") == getattr(record, "stream", None)
    streams = {(t["properties"]["tenant"], t["properties"].get("stream")) for t in traces}
    assert {("acme", "onepassword/auditevents"), ("globex", "onepassword/auditevents")} <= streams
    failed = [t for t in traces if t["properties"]["tenant"] == "globex" and t["severityLevel"] >= 2]
    assert failed, "the failing tenant's warnings and errors are there, named"


def test_a_secret_in_a_tenant_line_is_redacted_before_it_is_exported(
    app_insights_sim: AppInsightsSim, identity_sim: ManagedIdentitySim
) -> None:
    from auditsync.secrets import default_credential

    token = "ops_eyJhbGciOiJFUzI1NiIsImtpZCI6InNpbSJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlc2lnbmF0dXJl"
    with app_insights.exported(True, os.environ, default_credential), tenant_work("acme"):
        logging.getLogger("auditsync.test").warning("the vendor answered with %s in its body", token)
    (trace,) = app_insights_sim.traces()
    assert trace["properties"]["tenant"] == "acme" and MASK in trace["message"]
    assert token[:12] not in json.dumps(app_insights_sim.envelopes())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("fault", ["dead", "refusing", "malformed"])
def test_an_unreachable_or_refusing_ingestion_costs_a_bounded_flush_and_no_traceback(
    fault: str,
    tenants: Any,  # noqa: F811
    app_insights_sim: AppInsightsSim,
    azurite_queue_connection_string: str,
    work_queue_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    accounts, dcrs = tenants
    accounts["acme"].generate("auditevents", 10)
    if fault == "dead":
        monkeypatch.setenv(
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            app_insights_sim.connection_string.replace(str(app_insights_sim.port), str(closed_port())),
        )
    elif fault == "malformed":  # the exporter refuses to start: the collection runs without it
        monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=not-a-guid\n")
    else:
        app_insights_sim.deny()
    caplog.set_level(logging.INFO)
    messages = dispatched(work_queue_name, azurite_queue_connection_string)

    started = time.monotonic()
    indexed_function("work").get_user_function()(queue_message(messages["acme"]))
    elapsed = time.monotonic() - started

    (row,) = dcrs["acme"].rows("AuditSyncHealth_CL")
    assert row["Status"] == "ok" and row["EventsIngested"] == 10, "collection is unaffected"
    assert app_insights_sim.traces() == []
    assert elapsed < app_insights.FLUSH_SECONDS + 10
    assert not any(r.exc_info or r.exc_text for r in caplog.records)
    assert "Traceback" not in capsys.readouterr().err
    source = "auditsync.app_insights" if fault == "malformed" else "azure.monitor.opentelemetry"
    complaints = [r for r in caplog.records if r.name.startswith(source)]
    assert complaints and all(r.levelno >= logging.WARNING for r in complaints)
    if fault == "refusing":
        assert app_insights_sim.attempts >= 1
    function_app._credential.cache_clear()
