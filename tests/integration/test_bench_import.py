"""Smoke test of the cold-import benchmark: fresh interpreters import function_app and the SDKs, with the
locked runtime packages the Function App has."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.import_bench import RUNTIME_SDKS, SDK_MODULES, main, requirement_names, runtime_site
from bench.measure import ROOT

# The benchmarks' smoke tests one after another on one worker: each drives a benchmark at full CPU.
pytestmark = pytest.mark.xdist_group("bench")


def test_cold_import_is_measured_in_pairs_against_the_sdks_alone() -> None:
    result = main(["--repeat", "1"])
    assert result["app_ms"] > 0 and result["sdk_ms"] > 0 and result["packages"] == "lock"
    assert result["ratio"]["low"] == result["ratio"]["median"] == result["ratio"]["high"] > 0
    assert result["indexing"]["app_ms"] > 0 and result["indexing"]["ratio"]["median"] > 0
    assert "azure.monitor.ingestion" in SDK_MODULES and result["repeat"] == 1


def test_every_runtime_requirement_has_its_module_in_the_sdk_side() -> None:
    assert requirement_names() == set(RUNTIME_SDKS)


def test_the_benchmark_interpreter_sees_the_locked_packages_not_the_venv() -> None:
    # aiohttp is in the venv (checkov needs it) but not in the Function App: the storage SDKs import it
    # whenever it is there, so a benchmark that saw it would time a module production never loads.
    code = (
        "import importlib.util, sys; sys.path[:0] = [sys.argv[1]]; print(importlib.util.find_spec('aiohttp'))"
    )
    site = runtime_site()
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "None"
    assert (site / "azure" / "storage" / "queue").is_dir()
