"""Smoke test of the tenant-cost benchmark: the checkpoint table filled for two tenant counts, sampled
work items run through the real worker behind a counting proxy. A work item reads its own stream's
checkpoint, so its Table Storage requests do not depend on how many tenants share the table."""

from __future__ import annotations

import pytest

from bench.tenant_cost import measure

# The benchmarks' smoke tests one after another on one worker: each drives a benchmark at full CPU.
pytestmark = pytest.mark.xdist_group("bench")


def test_a_work_item_costs_the_same_table_requests_at_25_times_the_tenants() -> None:
    # 255 tenants are 1,020 checkpoints: more than one page (1,000 entities) of any query over them all.
    small, large = measure((10, 255), sample=2)
    assert (small["dispatched"], large["dispatched"]) == (10 * 4, 255 * 4)
    assert small["items_worked"] == large["items_worked"] == 4
    # One point read, a claim, a release and the pages' saves: a handful, never a listing of the table.
    assert 4 <= small["table_requests_per_item"] <= 9
    assert large["table_requests_per_item"] == small["table_requests_per_item"]
    for result in (small, large):
        kinds = result["request_kinds"]
        # The stream's checkpoint is read once (the superseded check's read serves the claim too).
        assert {k["point read"] for counted in kinds.values() for k in counted} == {1}, kinds
        # Keeper queries nothing; a 1Password item one range of its own tenant's 1Password rows (its
        # busy siblings, for its share of the account's rate).
        assert {k.get("query", 0) for k in kinds["keeper/events"]} == {0}, kinds
        assert {k.get("query", 0) for k in kinds["onepassword/auditevents"]} == {1}, kinds
