"""The Keeper source against the Keeper simulator over loopback: windows, dedupe, resume, errors."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import timedelta

import pytest

from auditsync.errors import AuthError, CheckpointError, ThrottledError, UpstreamError
from auditsync.model import Deadline
from auditsync.sources import keeper as keeper_source
from auditsync.tables import KEEPER_TABLE, TABLES
from auditsync.tables.rows import shape_rows
from simulators.base import Request
from simulators.clock import FakeClock
from simulators.keeper import KeeperSim, format_timestamp, sample_events
from tests.fixtures.canonical import canonical
from tests.fixtures.keeper import KEEPER_TOKEN, KeeperHarness, keeper_settings


def ms(clock: FakeClock, delta: timedelta) -> int:
    return int((clock.now() + delta).timestamp() * 1000)


def event(at_ms: int, name: str = "login", *, style: str = "iso", **extra: object) -> dict[str, object]:
    return {
        "audit_event": name,
        "remote_address": "203.0.113.7",
        "category": "login",
        "client_version": "w16.11.0",
        "username": "zoë@example.com",
        "enterprise_id": 1234,
        "timestamp": format_timestamp(at_ms, style),
        **extra,
    }


def assert_exactly_once(harness: KeeperHarness) -> None:
    assert Counter(map(canonical, harness.delivered)) == Counter(map(canonical, harness.sim.events))


def test_first_run_reads_initial_lookback_up_to_the_lag(keeper: KeeperHarness) -> None:
    clock = keeper.fake
    old = event(ms(clock, -timedelta(days=2)), "record_add")  # before INITIAL_LOOKBACK
    inside = event(ms(clock, -timedelta(hours=3)), "record_update")
    young = event(ms(clock, -timedelta(minutes=2)), "record_delete")  # younger than the 5 min lag
    keeper.sim.add([old, inside, young])

    keeper.run()
    assert keeper.delivered == [inside]
    assert keeper.position is not None and keeper.position["window"] is None
    assert keeper.position["watermark"] == format_timestamp(ms(clock, -timedelta(minutes=5)), "iso")

    clock.advance(timedelta(minutes=5))
    keeper.run()
    assert keeper.delivered == [inside, young]
    sent = [r for r in keeper.sim.requests if r.path == "/api/rest/public/events"]
    assert all(r.header("x-api-token") == f"Bearer {KEEPER_TOKEN}" for r in sent)
    assert all(r.arg("limit") == "1000" for r in sent)


def test_identical_events_in_the_same_millisecond_are_each_delivered_once(keeper: KeeperHarness) -> None:
    clock = keeper.fake
    at = ms(clock, -timedelta(minutes=10))
    twins = [event(at, "copy_password", record_uid="r1") for _ in range(3)]
    keeper.sim.add(twins)
    keeper.run()
    # later runs re-read the overlap, which holds the twins: still three, not six or one
    for _ in range(4):
        clock.advance(timedelta(minutes=5))
        keeper.run()
    assert len(keeper.delivered) == 3
    assert sum(p.counters.get("duplicates_dropped", 0) for p in keeper.pages) >= 3
    assert_exactly_once(keeper)


@pytest.mark.parametrize("order", ["asc", "desc", "none"])
@pytest.mark.parametrize("end_inclusive", [True, False])
def test_window_boundaries_under_any_order_and_end_inclusivity(
    keeper: KeeperHarness, order: str, end_inclusive: bool
) -> None:
    keeper.sim.order = order
    keeper.sim.end_inclusive = end_inclusive
    keeper.sim.page_cap = 2
    clock = keeper.fake
    runs = [clock.now() + timedelta(minutes=5 * i) for i in range(6)]
    events = []
    for run_at in runs:
        boundary = int((run_at - timedelta(minutes=5)).timestamp() * 1000)  # a window's exact end
        for at in (boundary - 1, boundary, boundary, boundary + 1):
            events.append(event(at, "open_record", record_uid=f"r{at % 7}"))
    keeper.sim.add(events)
    for run_at in runs:
        clock.set(run_at)
        keeper.run()
    clock.advance(timedelta(hours=1))
    keeper.drain()
    assert_exactly_once(keeper)


def test_late_event_behind_the_watermark_arrives_once_via_the_overlap(keeper: KeeperHarness) -> None:
    clock = keeper.fake
    keeper.sim.add([event(ms(clock, -timedelta(minutes=30)), "login")])
    keeper.run()
    late_at = ms(clock, -timedelta(minutes=9))  # behind the new watermark (now - 5 min), inside the overlap
    late = event(late_at, "login_failure")
    clock.advance(timedelta(minutes=5))
    keeper.sim.add([late])
    keeper.run()
    assert keeper.delivered[-1] == late
    clock.advance(timedelta(minutes=5))
    keeper.run()
    assert_exactly_once(keeper)


def test_all_timestamp_formats_and_an_unparseable_one_are_delivered(keeper: KeeperHarness) -> None:
    clock = keeper.fake
    at = ms(clock, -timedelta(minutes=20))
    at -= at % 1000
    styled = [
        event(at + i * 1000, f"e{style}", style=style)
        for i, style in enumerate(("iso", "iso_seconds", "offset", "epoch"))
    ]
    broken = event(at, "record_add", record_uid="x")
    broken["timestamp"] = "yesterday-ish"
    keeper.sim.add(styled)
    keeper.sim.add([broken], at_ms=at)
    pages = keeper.run()
    assert Counter(map(canonical, keeper.delivered)) == Counter(map(canonical, [*styled, broken]))
    assert sum(p.counters.get("unparsed_timestamps", 0) for p in pages) == 1
    newest = max(p.newest_event_time for p in pages if p.newest_event_time)
    assert int(newest.timestamp() * 1000) == at + 3000
    rows, counters = shape_rows(TABLES[KEEPER_TABLE], keeper.delivered, now=clock.now())
    kept = [r for r in rows if "timestamp" not in r]
    assert len(kept) == 1 and kept[0]["data"]["timestamp"] == "yesterday-ish"
    assert counters["uncoercible_timestamp"] == 1
    # it is not delivered again by the runs that re-read the overlap
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        keeper.run()
    assert len(keeper.delivered) == 5


def test_resume_with_expired_token_rereads_the_window_without_duplicates(keeper_clock: FakeClock) -> None:
    sim = KeeperSim(token=KEEPER_TOKEN, now=keeper_clock.now, page_cap=3, token_ttl=60, order="none")
    with sim:
        harness = KeeperHarness(
            sim, keeper_clock, keeper_settings(sim.url, initial_lookback=timedelta(hours=2))
        )
        harness.add_sample(20, oldest=timedelta(hours=2), seed=3, identical_rate=0.2)
        harness.run(max_pages=3)  # the deadline stopped us mid-window
        assert harness.position is not None and harness.position["window"]["token"]
        keeper_clock.advance(timedelta(minutes=10))  # the stored token expired meanwhile
        pages = harness.run()
        assert pages[0].counters == {"window_restarts": 1} and not pages[0].events
        assert_exactly_once(harness)
        assert sum(p.counters.get("duplicates_dropped", 0) for p in pages) >= 9


@pytest.mark.parametrize("status", [400, 404, 410])
def test_token_rejected_mid_run_restarts_the_window(keeper: KeeperHarness, status: int) -> None:
    keeper.sim.page_cap = 4
    keeper.add_sample(30, seed=5)
    keeper.sim.inject(
        status,
        {"message": "continuation token expired"},
        when=lambda r: r.arg("continuation_token") is not None,
    )
    keeper.run()
    assert_exactly_once(keeper)
    assert sum(p.counters.get("window_restarts", 0) for p in keeper.pages) == 1


def test_token_that_never_lasts_fails_the_run_with_a_clear_error(keeper: KeeperHarness) -> None:
    keeper.sim.page_cap = 2
    keeper.add_sample(10, seed=6)
    keeper.sim.inject(
        410, {"message": "gone"}, times=100, when=lambda r: r.arg("continuation_token") is not None
    )
    with pytest.raises(UpstreamError, match="refused the continuation token"):
        keeper.run()
    # nothing delivered was lost from the fingerprints: a later healthy run completes without duplicates
    keeper.sim.faults.clear()
    keeper.run()
    assert_exactly_once(keeper)


def test_crash_between_send_and_save_duplicates_at_most_that_page(keeper: KeeperHarness) -> None:
    keeper.sim.page_cap = 5
    keeper.settings = keeper_settings(keeper.sim.url, initial_lookback=timedelta(hours=3))
    keeper.add_sample(23, seed=7)
    crashed = keeper.run(crash_after=2)
    keeper.run()
    extra = Counter(map(canonical, keeper.delivered)) - Counter(map(canonical, keeper.sim.events))
    assert extra == Counter(map(canonical, crashed[1].events))
    assert len(crashed[1].events) == 5


def test_large_backlog_is_split_into_windows_with_progress_saved_between(keeper: KeeperHarness) -> None:
    keeper.add_sample(  # more than a first window may hold: read in windows of about five pages
        keeper_source.MAX_PASS_EVENTS + 8_000,
        oldest=timedelta(days=1),
        newest=timedelta(minutes=6),
        seed=11,
        identical_rate=0.02,
    )
    watermarks = []
    for _ in range(200):
        pages = keeper.run(max_pages=3)  # a deadline after three pages
        if not pages:
            break
        watermarks.append(keeper.position["watermark"] if keeper.position else None)
    assert_exactly_once(keeper)
    assert len(set(watermarks)) > 4  # the watermark moved between runs, not only at the very end
    assert keeper.position is not None
    assert all(not p.counters.get("oversized_window_pages") for p in keeper.pages)


def test_stops_between_pages_when_the_deadline_is_near(keeper: KeeperHarness) -> None:
    keeper.sim.page_cap = 2
    keeper.settings = keeper_settings(keeper.sim.url, initial_lookback=timedelta(hours=3))
    clock = keeper.fake
    keeper.add_sample(20, seed=8)
    # every request costs 2 s of the fake clock; the budget is 10 s and the margin 5 s

    def costs_two_seconds(request: Request) -> bool:
        clock.advance(timedelta(seconds=2))
        return False  # never inject the fault: the predicate is only a per-request hook

    keeper.sim.inject(599, times=10**6, when=costs_two_seconds)
    pages = keeper.run(budget=timedelta(seconds=10))
    assert 1 <= len(pages) <= 3
    assert keeper.position is not None and keeper.position["window"]["token"]
    keeper.run()
    assert_exactly_once(keeper)


def test_401_is_an_auth_error_with_the_regenerate_hint(keeper: KeeperHarness) -> None:
    keeper.sim.add([event(ms(keeper.fake, -timedelta(hours=1)))])
    with pytest.raises(AuthError) as caught:
        list(
            keeper.stream(token="revoked-token-123456").pages(
                None, Deadline.after(keeper.clock, timedelta(minutes=1))
            )
        )
    assert "public-api-key generate" in caught.value.hint and '--integrations "SIEM:1"' in caught.value.hint
    assert "revoked-token-123456" not in str(caught.value) + caught.value.hint
    assert "401" in str(caught.value)


def test_plain_403_is_auth_with_the_aram_hint_and_throttled_403_is_retried(keeper: KeeperHarness) -> None:
    keeper.sim.add([event(ms(keeper.fake, -timedelta(hours=1)))])
    keeper.sim.inject(403, {"error": "access_denied", "message": "Forbidden"})
    with pytest.raises(AuthError) as caught:
        keeper.run()
    assert "ARAM" in caught.value.hint and "SIEM" in caught.value.hint
    keeper.sim.inject(403, {"error": "throttled", "message": "Please wait 60 seconds"})
    keeper.run()
    assert len(keeper.delivered) == 1
    assert keeper.fake.sleeps  # it backed off (on the fake clock) before retrying


@pytest.mark.parametrize("fault", [(429, None), (403, {"error": "throttled"})])
def test_persistent_throttling_is_a_throttled_error(keeper: KeeperHarness, fault: tuple[int, object]) -> None:
    status, body = fault
    keeper.sim.inject(status, body, times=10, headers={"Retry-After": "1"})
    with pytest.raises(ThrottledError):
        keeper.run()
    assert keeper.position is None


def test_500_is_retried(keeper: KeeperHarness) -> None:
    keeper.sim.add([event(ms(keeper.fake, -timedelta(hours=1)))])
    keeper.sim.inject(500, {"message": "Internal Server Error"})
    keeper.run()
    assert len(keeper.delivered) == 1


def test_400_is_an_upstream_error_with_the_server_message(keeper: KeeperHarness) -> None:
    keeper.sim.inject(400, {"error": "bad_request", "message": "Missing start date"})
    with pytest.raises(UpstreamError, match="Missing start date"):
        keeper.run()


@pytest.mark.parametrize(
    "body",
    [
        b"<html>maintenance</html>",
        b'{"events": "nope"}',
        b'{"events": [1, 2]}',
        b'{"events": [], "has_more": true, "continuation_token": null}',
    ],
)
def test_malformed_bodies_are_upstream_errors(keeper: KeeperHarness, body: bytes) -> None:
    keeper.sim.inject(200, body)
    with pytest.raises(UpstreamError):
        keeper.run()
    assert keeper.position is None


def test_a_damaged_position_is_a_checkpoint_error_with_a_recovery_hint(keeper: KeeperHarness) -> None:
    keeper.position = {"v": 1, "watermark": "garbage"}
    with pytest.raises(CheckpointError) as caught:
        keeper.run()
    assert "INITIAL_LOOKBACK" in caught.value.hint


def test_probe_makes_one_authenticated_small_query(keeper: KeeperHarness) -> None:
    text = keeper_source.probe(keeper.context())
    assert "token accepted" in text
    (request,) = keeper.sim.requests
    assert request.arg("limit") == "1"
    with pytest.raises(AuthError):
        keeper_source.probe(keeper.context(token="wrong-token-abcdef"))


def test_stream_contract(keeper: KeeperHarness) -> None:
    assert keeper_source.stream_names(keeper.settings) == ["keeper/events"]
    (stream,) = keeper_source.open_streams(keeper.context())
    assert (stream.name, stream.source, stream.table) == ("keeper/events", "keeper", KEEPER_TABLE)


def test_unparseable_timestamp_in_the_overlap_is_delivered_once_across_rereads(keeper: KeeperHarness) -> None:
    clock = keeper.fake
    broken = event(ms(clock, -timedelta(minutes=8)), "record_add", record_uid="y")
    broken["timestamp"] = "not a time"
    keeper.sim.add([broken], at_ms=ms(clock, -timedelta(minutes=8)))
    keeper.run()
    for _ in range(5):  # the next windows re-read it (it is inside their overlap), then move past it
        clock.advance(timedelta(minutes=5))
        keeper.run()
    assert keeper.delivered == [broken]
    assert sum(p.counters.get("duplicates_dropped", 0) for p in keeper.pages) >= 2
    assert keeper.position is not None and keeper.position["fingerprints"] == ""


def test_a_burst_too_big_for_the_checkpoint_is_read_in_smaller_windows_without_duplicates(
    keeper: KeeperHarness,
) -> None:
    """9,000 events inside one second: read at that density, the look-back would hold far more than a pass
    may deliver (MAX_PASS_EVENTS), so the window shrinks, down to windows inside the burst."""
    keeper.settings = keeper_settings(keeper.sim.url, initial_lookback=timedelta(hours=3))
    clock = keeper.fake
    at = ms(clock, -timedelta(hours=2))
    burst = [event(at + i % 1000, "open_record", record_uid=f"r{i}") for i in range(9000)]
    keeper.sim.add(burst)
    for stop in (4, 3, 2):  # runs stopped inside the burst, as a deadline would
        keeper.run(max_pages=stop)
        assert keeper.position is not None and keeper.position["window"] is not None
    assert any(p.counters.get("window_shrunk") for p in keeper.pages)
    assert not any(p.counters.get("oversized_window_pages") for p in keeper.pages)
    keeper.drain()
    delivered = Counter(map(canonical, keeper.delivered))
    assert delivered == Counter(map(canonical, burst)), "nothing lost, nothing sent twice"


def test_an_overlap_with_more_events_than_the_bound_is_shortened_not_duplicated(
    keeper: KeeperHarness,
) -> None:
    clock = keeper.fake
    start = clock.now() - timedelta(minutes=20)
    keeper.sim.add(sample_events(3000, start, clock.now() - timedelta(minutes=5), seed=12, identical_rate=0))
    keeper.run()
    clock.advance(timedelta(minutes=5))
    pages = keeper.run()
    assert any(p.counters.get("overlap_shortened") for p in keeper.pages)
    assert pages and all(p.counters.get("oversized_window_pages") is None for p in keeper.pages)
    assert_exactly_once(keeper)


def test_a_backlog_is_not_reread_through_the_overlap(keeper: KeeperHarness) -> None:
    keeper.add_sample(10_000, oldest=timedelta(days=1), seed=4)
    keeper.run()
    read = sum(p.counters.get("events_read", 0) for p in keeper.pages)
    assert read < 10_000 * 1.02, read  # only same-millisecond edges are read twice
    assert_exactly_once(keeper)


def test_the_token_never_reaches_logs_errors_or_positions(
    keeper: KeeperHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keeper.sim.page_cap = 3
    keeper.add_sample(10)
    keeper.sim.inject(500, {"message": "Internal Server Error"})
    keeper.run()
    keeper.sim.inject(401, {"message": "Unauthorized"})
    keeper.fake.advance(timedelta(minutes=5))
    with pytest.raises(AuthError) as caught:
        keeper.run()
    seen = (
        caplog.text + str(caught.value) + caught.value.hint + json.dumps([p.position for p in keeper.pages])
    )
    assert KEEPER_TOKEN not in seen
    assert len(keeper.delivered) == 10
