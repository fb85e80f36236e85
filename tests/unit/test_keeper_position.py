"""KeeperPosition without I/O: packing, and the multiset/window rules under tiny bounds.

The loop below reads an in-memory server the way ``KeeperStream`` does (open, pages, restart on a refused
token, complete), with bounds small enough that overlap shortening and window shrinking happen often.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditsync.errors import CheckpointError
from auditsync.sources.keeper_position import (
    STRETCH_EVENTS,
    TARGET_WINDOW_EVENTS,
    KeeperPosition,
    fingerprint,
    pack,
    packed_chars_at_most,
    unpack,
)


@given(
    st.dictionaries(
        st.tuples(st.integers(0, 2**42), st.integers(0, 2**32 - 1)).map(lambda t: (t[0] << 32) | t[1]),
        st.tuples(st.integers(0, 300), st.integers(0, 300)).map(list),
        max_size=200,
    )
)
def test_pack_round_trips(entries: dict[int, list[int]]) -> None:
    assert unpack(pack(entries)) == entries
    if entries:
        keys = sorted(entries)
        most = max(max(entry) for entry in entries.values())
        assert len(pack(entries)) <= packed_chars_at_most(len(keys), keys[0] >> 32, keys[-1] >> 32, most)


def test_identical_events_in_one_millisecond_are_counted_not_merged() -> None:
    state = KeeperPosition(watermark_ms=0, next_start_ms=0)
    state.open_window(10_000)
    key = fingerprint({"audit_event": "login", "timestamp": 5}, 5)
    assert [state.offer(key) for _ in range(3)] == [True, True, True]
    state.restart_pass()
    assert [state.offer(key) for _ in range(4)] == [False, False, False, True]


def test_a_remainder_that_keeps_the_window_within_its_stretch_joins_the_window_before_it() -> None:
    """A span sized for TARGET_WINDOW_EVENTS; the rest joins it while that makes at most STRETCH_EVENTS."""
    span = 48_500
    rest = span * (STRETCH_EVENTS - TARGET_WINDOW_EVENTS) // TARGET_WINDOW_EVENTS
    for target_end, expected_end in ((span + rest, span + rest), (span + rest + 1, span)):
        state = KeeperPosition(watermark_ms=0, next_start_ms=0, span_ms=span)
        window = state.open_window(target_end)
        assert window is not None and window.end_ms == expected_end


def test_a_damaged_position_is_a_checkpoint_error() -> None:
    good, _ = KeeperPosition(watermark_ms=1_000, next_start_ms=1_000).dump()
    assert KeeperPosition.load(good).watermark_ms == 1_000
    for broken in ({**good, "fingerprints": "%%%"}, {**good, "v": 1}, {**good, "watermark": 5}, {}):
        with pytest.raises(CheckpointError):
            KeeperPosition.load(broken)


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.integers(1, 50_000), max_size=60),
    copies=st.lists(st.integers(1, 3), max_size=60),
    page=st.integers(1, 5),
    max_carried=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    reject=st.floats(0, 0.3),
)
def test_no_loss_and_no_duplicate_under_tiny_bounds(
    times: list[int], copies: list[int], page: int, max_carried: int, seed: int, reject: float
) -> None:
    rng = random.Random(seed)
    server: list[tuple[int, dict[str, Any]]] = []
    for i, at in enumerate(times):
        event = {"audit_event": f"e{i % 4}", "timestamp": at}
        server += [(at, dict(event)) for _ in range(copies[i] if i < len(copies) else 1)]
    state = KeeperPosition(watermark_ms=0, next_start_ms=0, span_ms=rng.randint(1, 20_000))
    delivered: list[dict[str, Any]] = []
    # runs with refused tokens, each stopped after a bounded number of reads (like a deadline), then a
    # healthy run long after the last event
    for run_start, refusals in ((20_000, reject), (40_000, reject), (60_000, reject), (90_000, 0.0)):
        for _ in range(200):
            window = state.window or state.open_window(run_start)
            if window is None:
                break
            state.start_pass(run_start)
            hits = [e for t, e in server if window.start_ms <= t <= window.end_ms]
            rng.shuffle(hits)
            offset, complete = 0, False
            while not complete:
                if offset and rng.random() < refusals:  # the server refused the continuation token
                    state.restart_pass()
                    break
                for event in hits[offset : offset + page]:
                    if state.offer(fingerprint(event, event["timestamp"])):
                        delivered.append(event)
                offset += page
                complete = offset >= len(hits)
            if complete:
                state.complete_window(overlap_ms=5_000, lag_ms=0, max_carried=max_carried)
            state = KeeperPosition.load(state.dump()[0])  # every position survives a round trip
        else:
            assert refusals, "a healthy run must finish"
    key = repr
    assert Counter(map(key, delivered)) == Counter(key(e) for _, e in server)


@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=12),
    st.integers(0, 2),
    st.integers(0, 2),
    st.data(),
)
def test_a_page_accepted_in_part_re_delivers_exactly_the_rest(
    page: list[int], prior: int, seen_before: int, data: st.DataObject
) -> None:
    """Keys 0..3 with copies; the page's first n delivered copies were accepted, then the page is re-read."""
    state = KeeperPosition(watermark_ms=0, next_start_ms=0)
    for key in range(4):
        state.fingerprints[key] = [prior, seen_before]
    before = {k: list(v) for k, v in state.fingerprints.items()}
    delivered = [key for key in page if state.offer(key)]
    n = data.draw(st.integers(0, len(delivered)))
    resumed = KeeperPosition(
        watermark_ms=0, next_start_ms=0, fingerprints={k: list(v) for k, v in before.items()}
    )
    resumed.mark_accepted(delivered[:n])
    again = [key for key in page if resumed.offer(key)]
    assert Counter(delivered[:n]) + Counter(again) == Counter(delivered), "the rest, once; nothing lost"


def test_fits_with_answers_what_offering_the_page_would_make_of_the_position() -> None:
    """``fits_with`` (checked before a page is handed over) agrees with ``dump`` after the page is offered,
    and changes nothing: around the bound (every page from 30,000 fingerprints on, every tenth before),
    with copies of known fingerprints in the page."""
    rng = random.Random(5)
    state = KeeperPosition(watermark_ms=0, next_start_ms=0)
    state.open_window(10**12)
    at = 0
    for number in itertools.count():
        page = []
        for _ in range(1000):
            at += rng.randint(0, 5000)
            page.append((at << 32) | rng.getrandbits(32))
        page += rng.sample(sorted(state.fingerprints), min(50, len(state.fingerprints)))  # copies
        if len(state.fingerprints) < 30_000 and number % 10:
            for key in page:
                state.offer(key)
            continue
        before = {key: list(entry) for key, entry in state.fingerprints.items()}
        fits = state.fits_with(page)
        assert state.fingerprints == before
        for key in page:
            state.offer(key)
        assert fits == state.dump()[1]
        if not fits:
            break
    assert len(state.fingerprints) > 35_000, "the bound: about 38,000 fingerprints"


@pytest.mark.parametrize("spread_ms", [0, 1, 1_000, 86_400_000, 2**40])
def test_the_packed_size_bound_is_never_below_the_packed_size(spread_ms: int) -> None:
    """``fits_with`` trusts ``packed_chars_at_most`` without packing, so it must hold for any times and
    counts: equal deltas (its worst case), clustered ones, repeated copies."""
    rng = random.Random(spread_ms)
    for entries in (1, 2, 7, 1000, 20_000):
        start = rng.randrange(2**41)
        times = sorted(start + rng.randrange(spread_ms + 1) for _ in range(entries))
        if entries > 2 and spread_ms:
            times = [start + spread_ms * i // (entries - 1) for i in range(entries)]  # equal deltas
        copies = rng.choice([1, 3, 200, 40_000])
        state = {(t << 32) | rng.getrandbits(32): [rng.randint(0, copies), copies] for t in times}
        keys = sorted(state)
        bound = packed_chars_at_most(len(state), keys[0] >> 32, keys[-1] >> 32, copies)
        assert len(pack(state)) <= bound
        assert bound <= 1.3 * len(pack(state)) + 8, "close enough to spare most packs"
