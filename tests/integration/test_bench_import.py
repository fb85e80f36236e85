"""Smoke test of the cold-import benchmark: fresh interpreters import function_app and the SDKs."""

from __future__ import annotations

from bench.import_bench import SDK_MODULES, main


def test_cold_import_is_measured_in_pairs_against_the_sdks_alone() -> None:
    result = main(["--repeat", "1"])
    assert result["app_ms"] > 0 and result["sdk_ms"] > 0
    assert result["ratio"]["low"] == result["ratio"]["median"] == result["ratio"]["high"] > 0
    assert "azure.monitor.ingestion" in SDK_MODULES and result["repeat"] == 1
