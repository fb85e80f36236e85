"""Rule and hunting query scenarios: one builder per rule (tests/scenarios/<product>.py), registered by the
rule's file stem. tools/rule_scenarios.py runs them; tests/content/test_rule_scenarios.py asserts on them."""

from __future__ import annotations

from tests.scenarios import health, hunting, keeper, keyvault, onepassword, token_expiry  # noqa: F401  (registers)
from tests.scenarios.model import REGISTRY

__all__ = ["REGISTRY"]
