"""The per-stream share of a 1Password account's rate limit (auditsync.sources.pacing)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.fanout.worker import busy_streams, stream_settings
from auditsync.model import Checkpoint, Clock, Deadline
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


# -- the share adapts to which of the account's streams are busy -----------------------------------------------
ACCOUNT = [f"onepassword/{t}" for t in ("auditevents", "itemusages", "signinattempts")]


def _paced(
    tmp_path: Path, fake: FakeClock, siblings: dict[str, Checkpoint | None]
) -> tuple[Pacer, FileCheckpointStore]:
    store = FileCheckpointStore(tmp_path)
    for checkpoint in siblings.values():
        if checkpoint is not None:
            store.save(checkpoint)
    clock = Clock(now=fake.now, sleep=fake.sleep)
    count = busy_streams(store, "onepassword/auditevents", ACCOUNT, clock)
    return Pacer(clock, ONEPASSWORD_ACCOUNT_INTERVAL, count, fallback=len(ACCOUNT)), store


def _drain(pacer: Pacer, fake: FakeClock, requests: int) -> float:
    """Simulated seconds ``requests`` paced requests take."""
    began = fake.now()
    deadline = Deadline.after(Clock(now=fake.now, sleep=fake.sleep), timedelta(hours=1))
    for _ in range(requests):
        pacer.wait(deadline)
    return (fake.now() - began).total_seconds()


def test_one_backlog_drains_at_the_accounts_full_rate_while_the_other_streams_are_idle(
    tmp_path: Path,
) -> None:
    fake = FakeClock(datetime(2026, 12, 5, 12, tzinfo=UTC))
    idle = {
        s: Checkpoint(s, last_status="idle", last_run=fake.now() - timedelta(minutes=3)) for s in ACCOUNT[1:]
    }
    pacer, _ = _paced(tmp_path, fake, idle)
    seconds = _drain(pacer, fake, 501)
    # 500 intervals at the account's own pace: 60 s, i.e. 500 requests a minute, 30,000 an hour.
    assert seconds == pytest.approx(500 * ONEPASSWORD_ACCOUNT_INTERVAL)
    assert pacer.count == 1


@pytest.mark.parametrize(
    ("itemusages", "busy"),
    [
        ({"last_status": "ok", "lease_owner": "run-b", "lease_until_in": timedelta(minutes=4)}, 2),  # running
        ({"last_status": "behind"}, 2),  # its next item continues its backlog at once
        (
            {"last_status": "ok", "lease_owner": "run-b", "lease_until_in": -timedelta(minutes=1)},
            1,
        ),  # lease lapsed
        (None, 2),  # never ran: its first run has a look-back to fetch
    ],
)
def test_a_busy_sibling_takes_its_share(tmp_path: Path, itemusages: dict[str, Any] | None, busy: int) -> None:
    fake = FakeClock(datetime(2026, 12, 5, 12, tzinfo=UTC))
    siblings: dict[str, Checkpoint | None] = {
        "onepassword/signinattempts": Checkpoint(
            "onepassword/signinattempts", last_status="idle", last_run=fake.now() - timedelta(minutes=2)
        )
    }
    if itemusages is not None:
        fields = dict(itemusages)
        until = fields.pop("lease_until_in", None)
        siblings["onepassword/itemusages"] = Checkpoint(
            "onepassword/itemusages",
            last_run=fake.now() - timedelta(minutes=5),
            lease_until=None if until is None else fake.now() + until,
            **fields,
        )
    pacer, _ = _paced(tmp_path, fake, siblings)
    assert _drain(pacer, fake, 11) == pytest.approx(10 * ONEPASSWORD_ACCOUNT_INTERVAL * busy)


def test_a_sibling_that_starts_mid_run_halves_the_rate_within_a_minute(tmp_path: Path) -> None:
    fake = FakeClock(datetime(2026, 12, 5, 12, tzinfo=UTC))
    idle = {
        s: Checkpoint(s, last_status="idle", last_run=fake.now() - timedelta(minutes=3)) for s in ACCOUNT[1:]
    }
    pacer, store = _paced(tmp_path, fake, idle)
    _drain(pacer, fake, 10)
    assert pacer.count == 1
    started = store.load("onepassword/itemusages")
    store.save(replace(started, lease_owner="run-b", lease_until=fake.now() + timedelta(minutes=8)))
    # Both streams together: at most 1 + 1/2 of the budget until this stream asks again, then 1/2 + 1/2.
    seconds = _drain(pacer, fake, 600)
    assert pacer.count == 2
    assert seconds < 60 + 600 * 2 * ONEPASSWORD_ACCOUNT_INTERVAL
    assert _drain(pacer, fake, 100) == pytest.approx(100 * 2 * ONEPASSWORD_ACCOUNT_INTERVAL), "the next 100"


def test_an_unreadable_store_keeps_the_safe_share(tmp_path: Path) -> None:
    fake = FakeClock(datetime(2026, 12, 5, 12, tzinfo=UTC))
    clock = Clock(now=fake.now, sleep=fake.sleep)
    (tmp_path / "store").write_text("a file where the store's folder should be")
    count = busy_streams(FileCheckpointStore(tmp_path / "store"), "onepassword/auditevents", ACCOUNT, clock)
    pacer = Pacer(clock, ONEPASSWORD_ACCOUNT_INTERVAL, count, fallback=3)
    assert _drain(pacer, fake, 11) == pytest.approx(10 * 3 * ONEPASSWORD_ACCOUNT_INTERVAL)
