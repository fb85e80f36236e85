"""File checkpoint store specifics: file names, damaged files, and separate processes racing on saves.

The behaviour shared with the Table store is in tests/integration/test_checkpoint_store_contract.py.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditsync.checkpoints import claim, open_store
from auditsync.checkpoints.codec import stream_key
from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.config import Settings
from auditsync.errors import CheckpointError
from auditsync.model import Checkpoint
from tests.unit.checkpoint_racers import race_claims, race_saves

STREAM = "onepassword/auditevents"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_one_readable_json_file_per_stream(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp")
    saved = store.save(Checkpoint(STREAM, position={"cursor": "abc", "nested": {"k": [1, 2]}}, last_run=T0))
    store.save(replace(saved, total_events=3))
    store.save(Checkpoint("keeper/events"))

    names = sorted(p.name for p in (tmp_path / "cp").iterdir())
    # Nothing else is left behind: no temp files from the atomic writes.
    assert names == [".lock", "keeper~2Fevents.json", "onepassword~2Fauditevents.json"]
    record = json.loads((tmp_path / "cp" / "onepassword~2Fauditevents.json").read_text(encoding="utf-8"))
    assert record["stream"] == STREAM
    assert record["position"] == {"cursor": "abc", "nested": {"k": [1, 2]}}
    assert record["last_run"] == "2026-03-01T12:00:00+00:00"
    assert record["total_events"] == 3


def test_stream_keys_are_safe_names() -> None:
    assert stream_key("onepassword/auditevents") == "onepassword~2Fauditevents"
    assert stream_key("keeper/events") == "keeper~2Fevents"
    assert stream_key("a~2Fb") == "a~7E2Fb"  # the escape character is escaped: no collision with "a/b"
    assert stream_key("..") == "~2E~2E"


@given(st.text(min_size=1, max_size=16).filter(str.strip), st.text(min_size=1, max_size=16).filter(str.strip))
def test_stream_keys_never_collide_and_use_only_safe_characters(a: str, b: str) -> None:
    key = stream_key(a)
    assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~")
    assert not key.startswith(".")
    assert (stream_key(a) == stream_key(b)) == (a == b)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "is not valid JSON"),
        ('{"hello": "world"}', "is not an auditsync checkpoint"),
        ('{"format": 1, "etag": "x", "stream": "s", "last_run": "yesterday"}', "is damaged"),
        ('{"format": 1, "etag": "x", "stream": "s", "position": [1]}', "not a JSON object"),
    ],
)
def test_damaged_file_is_a_clear_error_and_is_left_alone(
    tmp_path: Path, content: str, complaint: str
) -> None:
    store = FileCheckpointStore(tmp_path)
    path = store.path(STREAM)
    path.write_text(content, encoding="utf-8")

    for action in (lambda: store.load(STREAM), store.list, lambda: store.save(Checkpoint(STREAM))):
        with pytest.raises(CheckpointError) as caught:
            action()
        assert complaint in str(caught.value)
        assert str(path) in str(caught.value)

    assert path.read_text(encoding="utf-8") == content


def test_unusable_directory_is_a_checkpoint_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where the directory should be", encoding="utf-8")
    store = FileCheckpointStore(not_a_dir / "checkpoints")

    with pytest.raises(CheckpointError) as caught:
        store.save(Checkpoint(STREAM))

    assert caught.value.kind == "checkpoint"
    assert "AUDITSYNC_DATA_DIR" in caught.value.hint
    with pytest.raises(CheckpointError, match="Not a directory"):
        store.load(STREAM)


def test_open_store_picks_the_file_store_under_the_data_dir(tmp_path: Path) -> None:
    def no_credential() -> Any:
        raise AssertionError("the file store needs no credential")

    store = open_store(
        Settings.from_env({"AUDITSYNC_DATA_DIR": str(tmp_path)}, require_tokens=False).store, no_credential
    )
    saved = store.save(Checkpoint(STREAM, position={"cursor": "x"}))

    assert isinstance(store, FileCheckpointStore)
    assert (tmp_path / "checkpoints" / "onepassword~2Fauditevents.json").is_file()
    assert FileCheckpointStore(tmp_path / "checkpoints").load(STREAM) == saved


# --- separate processes racing -----------------------------------------------------------------

ROUNDS = 25
PROCESSES = 4


def _run_race(target: Any, args_for: Any) -> dict[int, dict[str, str]]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES, timeout=60)
    results = ctx.Queue()
    owners = [f"process-{n}" for n in range(PROCESSES)]
    processes = [ctx.Process(target=target, args=(*args_for(owner), start, results)) for owner in owners]
    for process in processes:
        process.start()
    outcome: dict[int, dict[str, str]] = {}
    try:
        for _ in range(ROUNDS * PROCESSES):
            number, owner, what = results.get(timeout=60)
            outcome.setdefault(number, {})[owner] = what
    except queue.Empty:
        pytest.fail(f"the racing processes stopped answering; got {outcome}")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return outcome


def test_processes_racing_on_one_etag_have_exactly_one_winner(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    seen = [store.save(Checkpoint(f"race/{n}", position={"by": "nobody"})) for n in range(ROUNDS)]

    outcome = _run_race(race_saves, lambda owner: (str(tmp_path), owner, seen))

    for number in range(ROUNDS):
        results = outcome[number]
        winners = [owner for owner, what in results.items() if what == "won"]
        assert sorted(results.values()) == ["conflict"] * (PROCESSES - 1) + ["won"], results
        stored = store.load(f"race/{number}")
        assert stored.lease_owner == winners[0]
        assert stored.position == {"by": winners[0]}


def test_processes_claiming_one_stream_have_exactly_one_winner(tmp_path: Path) -> None:
    outcome = _run_race(race_claims, lambda owner: (str(tmp_path), owner, ROUNDS))

    store = FileCheckpointStore(tmp_path)
    for number in range(ROUNDS):
        results = outcome[number]
        winners = [owner for owner, what in results.items() if what == "won"]
        assert sorted(results.values()) == ["none"] * (PROCESSES - 1) + ["won"], results
        assert store.load(f"race/{number}").lease_owner == winners[0]


@pytest.mark.parametrize(("owner", "ttl"), [("", timedelta(minutes=5)), ("runner-a", timedelta(0))])
def test_claim_needs_an_owner_and_a_positive_ttl(tmp_path: Path, owner: str, ttl: timedelta) -> None:
    store = FileCheckpointStore(tmp_path)

    with pytest.raises(ValueError):
        claim(store, STREAM, owner, T0, ttl)

    assert store.list() == []
