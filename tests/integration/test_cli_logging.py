"""What an operator sees on stderr: at default verbosity no Azure SDK header dumps (they are one block per
request), with ``-v`` everything; and host.json never samples away the warnings and errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditsync.config import Settings
from auditsync.runner import run_cycle
from auditsync.telemetry import quiet_sdk_loggers
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import onepassword_env

ROOT = Path(__file__).resolve().parents[2]
HTTP_POLICY = "azure.core.pipeline.policies.http_logging_policy"


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditsync", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_sdk_header_dump_at_default_verbosity(
    onepassword_sim: OnePasswordSim, logs_ingestion_sim: LogsIngestionSim, tmp_path: Path
) -> None:
    onepassword_sim.generate("auditevents", 5)
    env = onepassword_env(
        onepassword_sim,
        logs_ingestion_sim,
        tmp_path,
        onepassword_sim.issue_token(),
        ONEPASSWORD_EVENT_TYPES="auditevents",
    )
    quiet = cli(["run"], env)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "onepassword/auditevents" in quiet.stdout
    assert "Request URL" not in quiet.stderr and "Response headers" not in quiet.stderr, quiet.stderr

    verbose = cli(["-v", "run"], env)
    assert verbose.returncode == 0
    assert "Request URL" in verbose.stderr  # the same run asked to be verbose does show them


def test_host_json_never_samples_traces_or_exceptions() -> None:
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    excluded = set(sampling["excludedTypes"].split(";"))
    assert {"Trace", "Exception"} <= excluded


def test_function_host_logs_one_line_per_stream_and_no_sdk_headers(
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Functions worker forwards INFO to Application Insights: what reaches it from one run."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import function_app, logging; print(logging.getLogger('{HTTP_POLICY}').level)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == str(logging.WARNING), "function_app must quiet the SDK loggers at import"
    caplog.set_level(logging.INFO)
    quiet_sdk_loggers()  # as function_app does when the worker loads it
    onepassword_sim.generate("auditevents", 5)
    settings = Settings.from_env(
        {
            "SOURCES": "onepassword",
            "ONEPASSWORD_BASE_URL": onepassword_sim.url,
            "ONEPASSWORD_TOKEN": onepassword_sim.issue_token(),
            "AUDITSYNC_DATA_DIR": str(tmp_path),
            "SINK": "logs_ingestion",
            "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
            "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        }
    )
    assert not run_cycle(settings).failed

    assert not [r for r in caplog.records if r.name.startswith("azure.core.pipeline.policies")]
    outcomes = [r for r in caplog.records if r.name == "auditsync.runner" and hasattr(r, "status")]
    assert sorted((r.stream, r.status) for r in outcomes) == [  # type: ignore[attr-defined]
        ("onepassword/auditevents", "ok"),
        ("onepassword/itemusages", "idle"),
        ("onepassword/signinattempts", "idle"),
    ]

    caplog.clear()
    quiet_sdk_loggers(verbose=True)  # the control: with the SDK loggers open, the dumps are there
    try:
        run_cycle(settings)
        assert [r for r in caplog.records if r.name.startswith("azure.core.pipeline.policies")]
    finally:
        quiet_sdk_loggers()
