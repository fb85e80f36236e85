"""Worker functions for the multi-process race tests, in their own module so that each spawned
process imports only this and the file store (not pytest plugins or hypothesis): a faster start."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.checkpoints.lease import claim
from auditsync.errors import CheckpointConflict
from auditsync.model import Checkpoint

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def race_saves(directory: str, owner: str, seen: list[Checkpoint], start: Any, results: Any) -> None:
    """One process: in every round, save its own version of the same loaded checkpoint at once."""
    store = FileCheckpointStore(directory)
    for number, checkpoint in enumerate(seen):
        start.wait()
        try:
            store.save(replace(checkpoint, lease_owner=owner, position={"by": owner}))
            results.put((number, owner, "won"))
        except CheckpointConflict:
            results.put((number, owner, "conflict"))
        except BaseException as exc:
            results.put((number, owner, f"error: {exc!r}"))


def race_claims(directory: str, owner: str, rounds: int, start: Any, results: Any) -> None:
    """One process: in every round, claim a fresh stream at the same moment as the others."""
    store = FileCheckpointStore(directory)
    for number in range(rounds):
        start.wait()
        try:
            leased = claim(store, f"race/{number}", owner, T0, timedelta(minutes=5))
            results.put((number, owner, "won" if leased is not None else "none"))
        except BaseException as exc:
            results.put((number, owner, f"error: {exc!r}"))
