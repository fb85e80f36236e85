"""How the Keeper source drains a backlog, seen from the simulator: which requests it makes, in what
order, and how full they are (issue 13: a drain waits for its requests, so their count is its speed).

No timings: the order of requests is observed with the simulator's request hook (``inject(..., when=)``,
which sees every request as it arrives), and every test still checks that each event arrived once.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from auditsync.checkpoints.table import TableCheckpointStore
from auditsync.model import Checkpoint, Deadline
from auditsync.sources.keeper import MAX_PASS_EVENTS, PAGE_LIMIT
from auditsync.sources.keeper_position import TARGET_WINDOW_EVENTS
from simulators.base import Request
from simulators.keeper import EVENTS_PATH, event_time_ms
from tests.fixtures.canonical import canonical
from tests.fixtures.keeper import KeeperHarness, keeper_settings


def events_requests(harness: KeeperHarness) -> list[Request]:
    return [r for r in harness.sim.requests if r.path == EVENTS_PATH]


def window(request: Request) -> tuple[str | None, str | None]:
    return request.arg("start_date"), request.arg("end_date")


def assert_exactly_once(harness: KeeperHarness) -> None:
    assert Counter(map(canonical, harness.delivered)) == Counter(map(canonical, harness.sim.events))


def observe(harness: KeeperHarness, seen: threading.Event, start_date: str) -> None:
    """Set ``seen`` when a pass's first request (no token) for a window starting at ``start_date`` arrives."""

    def hook(request: Request) -> bool:
        if request.arg("start_date") == start_date and not request.arg("continuation_token"):
            seen.set()
        return False  # observe only: never answer in the simulator's place

    harness.sim.inject(500, times=1, when=hook)


def test_a_backlog_is_read_in_full_requests(keeper: KeeperHarness) -> None:
    """20,000 events over 22.5 hours, the first hour of the look-back empty (the benchmark's backlog): the
    first window spans the look-back and holds them all, so they take exactly their 20 requests (before
    the first window held 16,000 events: 22 in sequence; before that 23, an empty first hour probed)."""
    assert MAX_PASS_EVENTS >= 20_000
    keeper.add_sample(20_000, oldest=timedelta(hours=23), newest=timedelta(minutes=30), seed=42)
    keeper.run()
    assert_exactly_once(keeper)
    assert len(keeper.delivered) == 20_000
    requests = events_requests(keeper)
    assert len(requests) == 20
    assert len({window(r) for r in requests}) == 1
    assert not any(p.counters.get("window_shrunk") for p in keeper.pages)


def test_a_backlog_over_what_a_window_holds_gives_up_one_request(keeper: KeeperHarness) -> None:
    """More than the first window may hold: it is given up after its first page (the request sent ahead
    for its second page is dropped) and the others are sized from that page's density; the last takes
    the rest."""
    total = MAX_PASS_EVENTS + 4_000
    keeper.add_sample(total, oldest=timedelta(hours=23), newest=timedelta(minutes=30), seed=42)
    keeper.run()
    assert_exactly_once(keeper)
    first, ahead, *rest = events_requests(keeper)
    assert first.arg("continuation_token") is None and window(ahead) == window(first)
    assert all(window(r) != window(first) for r in rest), "the first window, given up once"
    pages = -(-total // PAGE_LIMIT)
    assert len(rest) <= pages + pages // 5 // 5 + 2, "about one part-full page for five windows"
    assert sum(1 for p in keeper.pages if p.counters.get("window_shrunk")) == 1


def test_the_next_windows_first_request_goes_out_before_a_windows_last_page_is_handed_over(
    keeper: KeeperHarness,
) -> None:
    keeper.settings = keeper_settings(keeper.sim.url, initial_lookback=timedelta(hours=3))
    # More than one window holds (MAX_PASS_EVENTS): the backlog is read in several.
    keeper.add_sample(MAX_PASS_EVENTS + 4_000, oldest=timedelta(hours=3), newest=timedelta(hours=1), seed=5)
    deadline = Deadline.after(keeper.clock, timedelta(minutes=8))
    passes_begun: list[str | None] = []

    def hook(request: Request) -> bool:
        if request.path == EVENTS_PATH and not request.arg("continuation_token"):
            passes_begun.append(request.arg("start_date"))
        return False  # observe only: never answer in the simulator's place

    keeper.sim.inject(500, times=1, when=hook)
    seams = 0
    for page in keeper.stream().pages(None, deadline):
        keeper.delivered.extend(page.events)
        if page.events and page.position["window"] is None and page.has_more:
            # The window's last page: the generator is not advanced while we wait, so the next window's
            # first request can only come from the source's own fetch thread, sent before this page.
            following = page.position["next_start"]
            for _ in range(300):
                if following in passes_begun:
                    break
                threading.Event().wait(0.1)
            assert following in passes_begun, "the next window's first request was not sent ahead"
            seams += 1
    assert seams >= 1
    assert_exactly_once(keeper)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_request_sent_ahead_for_a_pass_given_up_is_dropped(keeper: KeeperHarness, order: str) -> None:
    """A window far too big is given up after its first page (a server paging in time order, either
    way); the request for its second page had already gone out (sent as soon as the first page
    answered, before that page was examined), and its answer is dropped: nothing is delivered twice,
    and the smaller window holds about one window."""
    keeper.sim.order = order
    keeper.settings = keeper_settings(keeper.sim.url, initial_lookback=timedelta(hours=4))
    burst = keeper.add_sample(
        MAX_PASS_EVENTS + 4_000, oldest=timedelta(hours=4), newest=timedelta(hours=3, minutes=30), seed=6
    )
    keeper.run()
    assert_exactly_once(keeper)
    assert len(keeper.delivered) == len(burst)

    first, ahead, smaller, *_ = events_requests(keeper)
    assert first.arg("continuation_token") is None
    assert ahead.arg("continuation_token") and ahead.arg("end_date") == first.arg("end_date")
    assert smaller.arg("continuation_token") is None and smaller.arg("start_date") == first.arg("start_date")
    assert str(smaller.arg("end_date")) < str(first.arg("end_date"))
    shrunk = [p for p in keeper.pages if p.counters.get("window_shrunk")]
    assert len(shrunk) == 1
    # The smaller window was sized from the first page's density: about TARGET_WINDOW_EVENTS events.
    end_ms = event_time_ms(smaller.arg("end_date"))
    assert end_ms is not None
    inside = sum(1 for e in burst if (event_time_ms(e["timestamp"]) or 0) <= end_ms)
    assert 0.9 * TARGET_WINDOW_EVENTS <= inside <= MAX_PASS_EVENTS


def test_positions_of_several_table_properties_resume_exactly(
    keeper: KeeperHarness, azurite_connection_string: str, azurite_table_name: str
) -> None:
    """Five-page windows carry about 5,000 fingerprints mid-window: positions of more than one Table
    property (64 KiB as UTF-16), saved to Azurite and resumed from, run after run."""
    store = TableCheckpointStore.from_connection_string(azurite_connection_string, azurite_table_name)
    keeper.add_sample(12_000, oldest=timedelta(hours=3), newest=timedelta(hours=1), seed=8)
    checkpoint = store.save(Checkpoint("keeper/events"))
    largest = 0
    for _ in range(30):
        pages = keeper.run(max_pages=4)  # stopped mid-window, as a deadline would
        if keeper.position is not None:
            checkpoint = store.save(
                Checkpoint("keeper/events", position=keeper.position, etag=checkpoint.etag)
            )
            largest = max(largest, len(checkpoint.position["fingerprints"]))  # type: ignore[index]
            keeper.position = store.load("keeper/events").position
        if not pages:
            break
    assert largest > 32_768, "a position that needs more than one Table property"
    assert_exactly_once(keeper)


def test_a_window_far_too_big_on_a_server_in_no_order_shrinks_at_the_page_cap(keeper: KeeperHarness) -> None:
    """Pages in no order say nothing about the window's size: the pass is read to MAX_PASS_EVENTS (its full pages), then
    the window shrinks to the time of the TARGET-th earliest event read, as often as needed."""
    keeper.sim.order = "none"
    keeper.settings = keeper_settings(keeper.sim.url, initial_lookback=timedelta(hours=4))
    # Spread over the whole window: what a pass reads in no order then says nothing of the window's size.
    keeper.add_sample(
        MAX_PASS_EVENTS + 4_000, oldest=timedelta(hours=4), newest=timedelta(minutes=10), seed=7
    )
    keeper.run()
    assert_exactly_once(keeper)
    first_pass = [r for r in events_requests(keeper) if window(r) == window(events_requests(keeper)[0])]
    assert len(first_pass) == MAX_PASS_EVENTS // PAGE_LIMIT, "read to the page cap, nothing further ahead"
    assert any(p.counters.get("window_shrunk") for p in keeper.pages)
    assert not any(p.counters.get("oversized_window_pages") for p in keeper.pages)


def test_a_server_with_smaller_pages_than_asked_for_reads_each_window_once(keeper: KeeperHarness) -> None:
    """Keeper documents limit=1000 as the maximum but a schema default of 100: a server that answers 100
    events a page fills a pass with more, smaller pages. The pass bound counts events, not pages, so
    no window is given up for its page count and read again (counting pages, every window of five
    thousand events was halved and re-read, and this backlog took several times the requests)."""
    keeper.sim.page_cap = 100
    keeper.add_sample(20_000, oldest=timedelta(hours=23), newest=timedelta(minutes=30), seed=42)
    keeper.run()
    assert_exactly_once(keeper)
    assert len(keeper.delivered) == 20_000
    # One window, the look-back, read once: 200 pages, far more than a pass's pages if they were counted.
    assert not any(p.counters.get("window_shrunk") for p in keeper.pages)
    assert len(events_requests(keeper)) == 20_000 // 100


def test_a_window_given_up_after_some_of_it_was_delivered_resumes_exactly(keeper: KeeperHarness) -> None:
    """Pages in no order: a pass delivers page after page until it has read MAX_PASS_EVENTS, then its
    window shrinks and what was delivered of it counts as delivered. A run stopped right after, one
    stopped in the smaller window and one crash (page 2 of a run reached the sink, its position was never
    saved) deliver every event once, plus exactly the crashed page's events."""
    keeper.sim.order = "none"
    keeper.settings = keeper_settings(keeper.sim.url, initial_lookback=timedelta(hours=4))
    events = keeper.add_sample(
        MAX_PASS_EVENTS + 4_000, oldest=timedelta(hours=4), newest=timedelta(minutes=10), seed=9
    )
    passes = MAX_PASS_EVENTS // PAGE_LIMIT
    first = keeper.run(max_pages=passes + 1)  # the first pass, then its window shrinks
    shrunk = [number for number, page in enumerate(first) if page.counters.get("window_shrunk")]
    assert shrunk and shrunk[0] >= passes - 1, "given up once the pass had read about MAX_PASS_EVENTS"
    assert all(page.events for page in first[: shrunk[0]]), "its pages were delivered as they were read"
    keeper.run(max_pages=1)  # the smaller window: delivered copies are dropped, the rest goes out
    crashed = keeper.run(crash_after=2)[1].events
    keeper.drain()
    assert Counter(map(canonical, keeper.delivered)) == Counter(map(canonical, events)) + Counter(
        map(canonical, crashed)
    )


def test_a_window_too_big_for_a_pass_is_given_up_after_its_first_page(keeper: KeeperHarness) -> None:
    """60,000 events over 22.5 hours (the issue's backlog): the first window spans the look-back and holds
    them all, more than a pass may. Its first page (in time order, starting an hour into the window)
    shows it, so it is given up at once instead of being read to the pass's cap and thrown away: 64
    requests with the one sent ahead for it and dropped (issue 13's code, a four-hour window of about
    10,700 events read to the cap: 71)."""
    keeper.add_sample(60_000, oldest=timedelta(hours=23), newest=timedelta(minutes=30), seed=42)
    keeper.run()
    assert_exactly_once(keeper)
    assert len(keeper.delivered) == 60_000
    requests = events_requests(keeper)
    assert sum(1 for p in keeper.pages if p.counters.get("window_shrunk")) == 1
    by_window = Counter((r.arg("start_date"), r.arg("end_date")) for r in requests)
    assert min(by_window.values()) <= 2, "the window given up was read no further than its first page"
    assert len(requests) <= 65
