"""The CheckpointStore contract, run against every store (file and Azure Table on Azurite).

What the runner relies on: a save round-trips every field; saves are compare-and-swap; a lease keeps
two runners off one stream and a runner that lost its lease cannot move the checkpoint any more.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from auditsync.checkpoints import claim, release
from auditsync.checkpoints.codec import MAX_MESSAGE_CHARS, MAX_POSITION_BYTES
from auditsync.errors import CheckpointConflict, CheckpointError
from auditsync.model import Checkpoint
from tests.fixtures.checkpoints import StoreFactory, run_threads

STREAM = "onepassword/auditevents"
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
TTL = timedelta(minutes=10)

POSITION = {
    "cursor": "aGVsbG8gd29ybGQ=",
    "watermark": "2026-03-01T11:59:59.999999Z",
    "window": {"start": "2026-03-01T11:00:00Z", "end": None, "token": "tok/+=?#&"},
    "fingerprints": ["a1b2", "c3d4", "ünïcødé ✓ 🔑"],
    "counts": {"pages": 3, "ratio": 0.25, "flag": True},
}


def full_checkpoint(stream: str = STREAM) -> Checkpoint:
    return Checkpoint(
        stream=stream,
        position=POSITION,
        last_success=T0,
        # Given in another zone: stored and returned as the same instant in UTC.
        newest_event_time=datetime(2026, 3, 1, 13, 58, 59, 654321, tzinfo=timezone(timedelta(hours=2))),
        total_events=3_000_000_000,  # beyond 32 bits
        last_status="behind",
        last_error_kind="throttled",
        last_message="HTTP 429 from events.1password.com; stopped at the deadline — résumé next run",
        last_hint="Nothing, usually: the next run resumes; if it persists, lengthen TIMER_SCHEDULE.",
        last_run=T0 + timedelta(minutes=1),
        lease_owner="host-a/1234",
        lease_until=T0 + TTL,
        token_expires_on=datetime(2026, 3, 11, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    )


def test_unknown_stream_loads_empty_and_list_is_empty(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.load(STREAM) == Checkpoint(STREAM)
    assert store.list() == []


def test_round_trip_keeps_every_field(store_factory: StoreFactory) -> None:
    saved = store_factory().save(full_checkpoint())

    loaded = store_factory().load(STREAM)

    assert saved.etag
    assert loaded == saved
    assert loaded.position == POSITION
    assert loaded.total_events == 3_000_000_000
    assert loaded.newest_event_time == datetime(2026, 3, 1, 11, 58, 59, 654321, tzinfo=UTC)
    assert loaded.token_expires_on == datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
    fields = (loaded.last_success, loaded.newest_event_time, loaded.last_run, loaded.lease_until)
    for value in (*fields, loaded.token_expires_on):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
        assert type(value) is datetime
    assert loaded.last_message == full_checkpoint().last_message
    assert loaded.last_hint == full_checkpoint().last_hint


def test_empty_fields_round_trip_as_empty(store_factory: StoreFactory) -> None:
    saved = store_factory().save(Checkpoint(STREAM))

    loaded = store_factory().load(STREAM)

    assert loaded == saved == Checkpoint(STREAM, etag=saved.etag)


def test_every_save_changes_the_etag_and_chains(store_factory: StoreFactory) -> None:
    store = store_factory()
    first = store.save(Checkpoint(STREAM, position={"n": 1}))
    second = store.save(replace(first, position={"n": 2}, total_events=5))
    third = store.save(replace(second, position={"n": 3}, total_events=9))

    assert len({first.etag, second.etag, third.etag}) == 3
    assert store_factory().load(STREAM) == third


def test_stale_etag_conflicts_and_keeps_the_winner(store_factory: StoreFactory) -> None:
    store_factory().save(Checkpoint(STREAM, position={"n": 0}))
    runner_a, runner_b = store_factory(), store_factory()
    seen_by_a, seen_by_b = runner_a.load(STREAM), runner_b.load(STREAM)
    winner = runner_a.save(replace(seen_by_a, position={"n": "a"}))

    with pytest.raises(CheckpointConflict) as caught:
        runner_b.save(replace(seen_by_b, position={"n": "b"}))

    assert caught.value.kind == "checkpoint"
    assert STREAM in str(caught.value)
    assert store_factory().load(STREAM) == winner


def test_create_when_it_exists_conflicts(store_factory: StoreFactory) -> None:
    first = store_factory().save(Checkpoint(STREAM, position={"who": "first"}))

    with pytest.raises(CheckpointConflict):
        store_factory().save(Checkpoint(STREAM, position={"who": "second"}))

    assert store_factory().load(STREAM) == first


def test_save_with_an_etag_for_a_missing_record_conflicts(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.save(Checkpoint("keeper/events"))  # the store exists, this stream does not
    phantom = replace(store.load("keeper/events"), stream=STREAM)

    with pytest.raises(CheckpointConflict):
        store.save(phantom)

    assert store.load(STREAM).etag is None


STREAMS = [
    "onepassword/auditevents",
    "onepassword/itemusages",
    "onepassword/signinattempts",
    "keeper/events",
    "odd~name/with#hash?and\\back/../slash",
    "Ünïcødé/流",
]


def test_list_returns_every_stream_by_name(store_factory: StoreFactory) -> None:
    store = store_factory()
    for number, stream in enumerate(STREAMS):
        store.save(Checkpoint(stream, position={"n": number}, total_events=number))

    listed = store_factory().list()

    assert sorted(c.stream for c in listed) == sorted(STREAMS)
    by_name = {c.stream: c for c in listed}
    for number, stream in enumerate(STREAMS):
        assert by_name[stream].position == {"n": number}
        assert store.load(stream) == by_name[stream]


def test_list_by_prefix_returns_exactly_the_streams_under_it(store_factory: StoreFactory) -> None:
    store = store_factory()
    names = [
        "tenants/acme/onepassword/auditevents",
        "tenants/acme/keeper/events",
        "tenants/acme-eu/keeper/events",  # shares "tenants/acme" but not "tenants/acme/"
        "tenants/acmf/keeper/events",  # the key just past the range of "tenants/acme/"
        "tenants/b/keeper/events",
        "keeper/events",
    ]
    for stream in names:
        store.save(Checkpoint(stream))

    assert [c.stream for c in store.list("tenants/acme/")] == [
        "tenants/acme/keeper/events",
        "tenants/acme/onepassword/auditevents",
    ]
    assert [c.stream for c in store.list("tenants/acme")] == [
        "tenants/acme-eu/keeper/events",
        "tenants/acme/keeper/events",
        "tenants/acme/onepassword/auditevents",
    ]
    assert store.list("tenants/nobody/") == []
    assert sorted(c.stream for c in store.list()) == sorted(names)


def test_save_all_saves_every_checkpoint_or_none(store_factory: StoreFactory) -> None:
    store = store_factory()
    first = store.save(Checkpoint(STREAMS[0], position={"n": 0}))
    saved = store.save_all([replace(first, position={"n": 1}), Checkpoint(STREAMS[1], position={"n": 1})])
    assert [c.position for c in saved] == [{"n": 1}, {"n": 1}]
    assert all(store.load(c.stream) == c for c in saved)

    # One stale etag (the first checkpoint as it was before the save above): nothing is saved.
    with pytest.raises(CheckpointConflict):
        store.save_all([replace(saved[1], position={"n": 2}), replace(first, position={"n": 2})])
    assert [store.load(c.stream).position for c in saved] == [{"n": 1}, {"n": 1}]


def test_delete_removes_a_record_only_with_its_current_etag(store_factory: StoreFactory) -> None:
    store = store_factory()
    created = store.save(Checkpoint(STREAM, position={"n": 0}))
    current = store.save(replace(created, position={"n": 1}))
    with pytest.raises(CheckpointConflict):
        store.delete(created)
    store.delete(current)
    assert store.load(STREAM) == Checkpoint(STREAM)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"last_run": datetime(2026, 3, 1, 12, 0)}, "last_run must be a timezone-aware datetime"),
        ({"last_success": datetime(1600, 12, 31, tzinfo=UTC)}, "before 1601"),
        ({"position": {"when": datetime(2026, 3, 1, tzinfo=UTC)}}, "not JSON-serialisable"),
        ({"position": {"x": float("nan")}}, "not JSON-serialisable"),
        ({"position": ["not", "a", "dict"]}, "must be a JSON object"),
        (
            {"position": {"fingerprints": "f" * (MAX_POSITION_BYTES // 2)}},
            f"over the {MAX_POSITION_BYTES}-byte limit",
        ),
        ({"total_events": -1}, "total_events must be a non-negative integer"),
        ({"stream": ""}, "empty"),
    ],
)
def test_bad_checkpoints_are_refused_and_nothing_changes(
    store_factory: StoreFactory, change: dict[str, object], complaint: str
) -> None:
    store = store_factory()
    before = store.save(Checkpoint(STREAM, position={"n": 1}))

    with pytest.raises(CheckpointError) as caught:
        store.save(replace(before, **change))  # type: ignore[arg-type]

    assert complaint in str(caught.value)
    assert store_factory().load(STREAM) == before


def test_position_just_under_the_limit_is_kept_whole(store_factory: StoreFactory) -> None:
    # 32,760 UTF-16 code units of JSON text: fits in one 64 KiB Table property.
    position = {"blob": "x" * (32_768 - 20)}
    saved = store_factory().save(Checkpoint(STREAM, position=position))

    assert store_factory().load(STREAM).position == position == saved.position


def test_a_position_of_several_table_properties_round_trips(store_factory: StoreFactory) -> None:
    """Up to 512 KiB as UTF-16 (8 Table properties), characters outside the BMP across the cuts."""
    store = store_factory()
    # 🔑 is a surrogate pair in UTF-16: with the odd prefix, pairs straddle every 64 KiB boundary.
    position = {"a": "x" * 9, "blob": "🔑" * 100_000, "tail": "ünïcødé"}
    saved = store.save(Checkpoint(STREAM, position=position))
    assert store_factory().load(STREAM).position == position == saved.position

    shorter = store.save(replace(saved, position={"n": 1}))  # a later, shorter position replaces it all
    assert store_factory().load(STREAM) == shorter and shorter.position == {"n": 1}


def test_overlong_message_is_cut_to_a_bound(store_factory: StoreFactory) -> None:
    saved = store_factory().save(Checkpoint(STREAM, last_message="e" * 10_000))

    loaded = store_factory().load(STREAM)

    assert loaded == saved
    assert len(loaded.last_message) == MAX_MESSAGE_CHARS
    assert loaded.last_message.startswith("eee") and loaded.last_message.endswith("…")


def test_one_store_serves_concurrent_streams(store_factory: StoreFactory) -> None:
    """The runner shares one store instance between the threads that collect different streams."""
    store = store_factory()
    streams = STREAMS[:4]

    def collect(stream: str) -> None:
        checkpoint = claim(store, stream, f"run/{stream}", T0, TTL)
        assert checkpoint is not None
        for page in range(1, 6):
            checkpoint = store.save(replace(checkpoint, position={"page": page}, total_events=page * 10))
        release(store, replace(checkpoint, last_status="ok", last_run=T0))

    assert run_threads(collect, streams) == []
    final = {c.stream: c for c in store_factory().list()}
    assert sorted(final) == sorted(streams)
    for stream in streams:
        assert final[stream].position == {"page": 5}
        assert final[stream].total_events == 50
        assert (final[stream].lease_owner, final[stream].last_status) == ("", "ok")


# --- the lease ---------------------------------------------------------------------------------


def test_claim_leases_a_new_stream_and_keeps_others_out(store_factory: StoreFactory) -> None:
    leased = claim(store_factory(), STREAM, "runner-a", T0, TTL)

    assert leased is not None
    assert (leased.lease_owner, leased.lease_until) == ("runner-a", T0 + TTL)
    assert store_factory().load(STREAM) == leased
    assert claim(store_factory(), STREAM, "runner-b", T0 + TTL - timedelta(seconds=1), TTL) is None
    assert store_factory().load(STREAM) == leased


def test_owner_renews_its_own_lease(store_factory: StoreFactory) -> None:
    claim(store_factory(), STREAM, "runner-a", T0, TTL)

    renewed = claim(store_factory(), STREAM, "runner-a", T0 + timedelta(minutes=5), TTL)

    assert renewed is not None
    assert renewed.lease_until == T0 + timedelta(minutes=5) + TTL


@pytest.mark.parametrize("existing", [False, True], ids=["new-stream", "existing-stream"])
def test_concurrent_claims_have_exactly_one_winner(store_factory: StoreFactory, existing: bool) -> None:
    if existing:
        store_factory().save(Checkpoint(STREAM, position={"cursor": "c1"}, total_events=7))
    runners = 6
    start = threading.Barrier(runners)
    results: dict[str, Checkpoint | None] = {}

    def run(owner: str) -> None:
        store = store_factory()
        start.wait()
        results[owner] = claim(store, STREAM, owner, T0, TTL)

    assert run_threads(run, [f"runner-{n}" for n in range(runners)]) == []
    winners = {owner: cp for owner, cp in results.items() if cp is not None}
    assert len(results) == runners
    assert len(winners) == 1
    (owner, leased), *_ = winners.items()
    stored = store_factory().load(STREAM)
    assert stored == leased
    assert stored.lease_owner == owner
    if existing:
        assert stored.position == {"cursor": "c1"} and stored.total_events == 7


def test_expired_lease_is_taken_over_and_the_old_owner_cannot_save(store_factory: StoreFactory) -> None:
    runner_a = claim(store_factory(), STREAM, "runner-a", T0, TTL)
    assert runner_a is not None

    later = T0 + TTL + timedelta(seconds=1)
    runner_b = claim(store_factory(), STREAM, "runner-b", later, TTL)
    assert runner_b is not None
    assert runner_b.lease_owner == "runner-b"
    progress_b = store_factory().save(replace(runner_b, position={"cursor": "from-b"}, total_events=10))

    # Runner A wakes up after a long stall and tries to save its page: it lost the lease.
    with pytest.raises(CheckpointConflict):
        store_factory().save(replace(runner_a, position={"cursor": "from-a"}, total_events=99))

    assert store_factory().load(STREAM) == progress_b


def test_runner_saves_progress_under_its_lease_then_releases(store_factory: StoreFactory) -> None:
    leased = claim(store_factory(), STREAM, "runner-a", T0, TTL)
    assert leased is not None
    page1 = store_factory().save(replace(leased, position={"cursor": "p1"}, total_events=100))
    page2 = store_factory().save(replace(page1, position={"cursor": "p2"}, total_events=200))
    assert page2.lease_owner == "runner-a"

    released = release(store_factory(), page2)

    assert (released.lease_owner, released.lease_until) == ("", None)
    stored = store_factory().load(STREAM)
    assert stored == released
    assert stored.position == {"cursor": "p2"} and stored.total_events == 200
    # Free again: another runner may claim at once, long before the old lease would have expired.
    assert claim(store_factory(), STREAM, "runner-b", T0 + timedelta(seconds=1), TTL) is not None


def test_release_after_losing_the_lease_conflicts(store_factory: StoreFactory) -> None:
    runner_a = claim(store_factory(), STREAM, "runner-a", T0, TTL)
    assert runner_a is not None
    runner_b = claim(store_factory(), STREAM, "runner-b", T0 + 2 * TTL, TTL)
    assert runner_b is not None

    with pytest.raises(CheckpointConflict):
        release(store_factory(), runner_a)

    assert store_factory().load(STREAM).lease_owner == "runner-b"
