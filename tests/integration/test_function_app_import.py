"""Indexing loads only what it needs: the Functions worker imports ``function_app`` to list the functions,
and the collection code and its SDKs are left for the first invocation (docs/benchmarks.md, "Cold import")."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.measure import ROOT, child_env

#: Loaded by the first run, never by indexing.
FIRST_RUN_ONLY = (
    "auditsync.runner",
    "auditsync.fanout.deployment",
    "auditsync.sinks.logs_ingestion",
    "auditsync.sources.onepassword",
    "auditsync.secrets",
    "azure.identity",
    "azure.monitor.ingestion",
    "azure.data.tables",
    "azure.storage.queue",
    "azure.keyvault.secrets",
    "requests",
)


def test_importing_function_app_lists_the_functions_without_the_collection_code() -> None:
    code = (
        "import json, sys, function_app\n"
        "names = sorted(f.get_function_name() for f in function_app.app.get_functions())\n"
        f"print(json.dumps({{'functions': names, 'loaded': [m for m in {list(FIRST_RUN_ONLY)!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env({}), capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["functions"] == ["collect", "poisoned", "work"]
    assert seen["loaded"] == []


def test_the_cli_leaves_the_queue_sdk_to_the_fan_out_commands() -> None:
    """``python -m auditsync run`` (and every process the tests start) does not pay for the queue SDK, nor
    for aiohttp, which azure-storage-queue imports wherever it is installed."""
    code = "import json, sys, auditsync.cli\nprint(json.dumps('azure.storage.queue' in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env({}), capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
