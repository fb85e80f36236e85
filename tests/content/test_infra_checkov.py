"""checkov scans the Bicep and the ARM template: nothing fails, nothing is left unparsed, and every skipped
check is listed in infra/.checkov.yaml with its reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.infra import INFRA, ROOT

# One worker runs checkov once (the module fixture), not one copy per worker.
pytestmark = pytest.mark.xdist_group("checkov")

CONFIG = INFRA / ".checkov.yaml"


@pytest.fixture(scope="module")
def checkov_reports() -> dict[str, dict[str, Any]]:
    """One checkov run (10-30 s) for the whole module, by framework."""
    checkov = Path(sys.executable).with_name("checkov")
    result = subprocess.run(
        [
            str(checkov),
            "-d",
            str(INFRA),
            "--framework",
            "bicep",
            "arm",
            "--skip-download",
            "--config-file",
            str(CONFIG),
            "-o",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {r["check_type"]: r for r in reports}


def test_both_frameworks_scanned_and_parsed(checkov_reports: dict[str, dict[str, Any]]) -> None:
    assert set(checkov_reports) == {"bicep", "arm"}
    for framework, report in checkov_reports.items():
        summary = report["summary"]
        # A Bicep file checkov cannot parse counts as passed; only parsing_errors shows it.
        assert summary["parsing_errors"] == 0, framework
        assert summary["resource_count"] > 20, framework
        assert summary["passed"] > 5, framework
        # The scan ran with the release pinned in requirements-dev.txt (kept at the current release).
        pinned = re.search(r"^checkov==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)
        assert pinned and summary["checkov_version"] == pinned.group(1), framework


def test_no_failed_checks(checkov_reports: dict[str, dict[str, Any]]) -> None:
    failed = [
        f"{framework}: {c['check_id']} {c['check_name']} ({c['file_path']} {c['resource']})"
        for framework, report in checkov_reports.items()
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)


def test_every_skip_is_in_one_place_with_a_reason() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    skipped = config["skip-check"]
    assert set(config) == {"skip-check"}
    lines = {
        m.group(1): m.group(2) for m in re.finditer(r"^\s*-\s*(CKV\w+)\s*#\s*(.*)$", CONFIG.read_text(), re.M)
    }
    assert set(lines) == set(skipped)
    for check, reason in lines.items():
        assert len(reason.split()) >= 8, f"{check} needs a real reason"
    inline = [p for p in INFRA.rglob("*") if p.is_file() and "checkov:skip" in p.read_text(errors="ignore")]
    assert not inline, f"inline checkov skips outside {CONFIG.name}: {inline}"
