"""The per-stream share of a 1Password account's rate limit (auditsync.sources.pacing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditsync.fanout.worker import stream_settings
from auditsync.model import Clock, Deadline
from auditsync.sources import SourceContext
from auditsync.sources.onepassword import account_pacer
from auditsync.sources.pacing import ONEPASSWORD_ACCOUNT_INTERVAL, Pacer
from auditsync.tenants import Tenant
from simulators.clock import FakeClock

ENV = {"KEY_VAULT_URL": "https://vault.vault.azure.net"}


def test_the_account_interval_keeps_both_documented_windows() -> None:
    assert 3600 / ONEPASSWORD_ACCOUNT_INTERVAL <= 30_000
    assert 60 / ONEPASSWORD_ACCOUNT_INTERVAL <= 600


def test_a_pacer_spaces_requests_on_the_injected_clock_and_never_sleeps_past_the_deadline() -> None:
    fake = FakeClock(datetime(2026, 11, 29, tzinfo=UTC))
    clock = Clock(now=fake.now, sleep=fake.sleep)
    pacer = Pacer(clock, 0.36)
    deadline = Deadline.after(clock, timedelta(seconds=1))
    for _ in range(5):
        pacer.wait(deadline)
    # The first request goes at once; the 4th and 5th would start after the deadline: cut to it.
    assert fake.sleeps == pytest.approx([0.36, 0.36, 0.28, 0.0])


@pytest.mark.parametrize(
    ("types", "interval"), [("auditevents,itemusages,signinattempts", 0.36), ("itemusages", 0.12)]
)
def test_a_worker_stream_holds_one_nth_of_its_tenants_account_budget(types: str, interval: float) -> None:
    tenant = Tenant("acme", {"SOURCES": "onepassword", "ONEPASSWORD_EVENT_TYPES": types})
    settings = stream_settings(tenant, ENV, "onepassword/itemusages")
    assert settings.onepassword.event_types == ("itemusages",)
    now = datetime.now(UTC)
    deadline = Deadline.after(Clock(), timedelta(minutes=1))
    context = SourceContext(settings.onepassword, "token", None, Clock(), now, deadline)  # type: ignore[arg-type]
    pacer = account_pacer(context)
    assert pacer is not None and pacer.interval == pytest.approx(interval)
    # N streams at 1/N each: together exactly the account's budget, whichever instances run them.
    streams = len(types.split(","))
    assert streams * (1 / pacer.interval) == pytest.approx(1 / ONEPASSWORD_ACCOUNT_INTERVAL)


def test_a_single_tenant_run_is_not_paced() -> None:
    from auditsync.config import Settings

    settings = Settings.from_env({**ENV, "SOURCES": "onepassword"})
    deadline = Deadline.after(Clock(), timedelta(minutes=1))
    context = SourceContext(settings.onepassword, "t", None, Clock(), datetime.now(UTC), deadline)  # type: ignore[arg-type]
    assert account_pacer(context) is None
