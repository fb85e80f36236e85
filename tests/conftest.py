"""Loads every fixture module under tests/fixtures/ as a pytest plugin, so each part of the suite
(simulators, Azurite, Keeper, ...) owns its fixtures in its own file."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)
