"""A lease that keeps two runners off one stream, built only on the store's compare-and-swap.

The lease lives in the checkpoint itself (``lease_owner``, ``lease_until``), so it works for every
store and needs no second service: claiming is a CAS save that writes our name, and every later save
by the runner carries the etag of that claim. A runner that lost its lease (it expired and someone
else claimed the stream) therefore fails its next save with CheckpointConflict instead of moving a
checkpoint that is no longer its own.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from auditsync.errors import CheckpointConflict
from auditsync.model import Checkpoint, CheckpointStore

log = logging.getLogger(__name__)


def held_by_other(checkpoint: Checkpoint, owner: str, now: datetime) -> bool:
    """True when someone other than ``owner`` holds a lease on the checkpoint that has not expired."""
    return bool(
        checkpoint.lease_owner
        and checkpoint.lease_owner != owner
        and checkpoint.lease_until is not None
        and checkpoint.lease_until > now
    )


def claim(
    store: CheckpointStore,
    stream: str,
    owner: str,
    now: datetime,
    ttl: timedelta,
    current: Checkpoint | None = None,
) -> Checkpoint | None:
    """Lease ``stream`` to ``owner`` until ``now + ttl``.

    Returns the checkpoint now leased by ``owner`` (save progress from it), or None when another owner
    holds an unexpired lease or a concurrent claim won the compare-and-swap. ``owner`` renews its own
    lease by claiming again. Store failures other than a lost CAS propagate.

    ``current`` is the stream's checkpoint when the caller already read it (the runner lists every
    checkpoint in one request instead of one load per stream); the claim's compare-and-swap carries its
    etag, so a checkpoint changed since then loses the claim exactly as a concurrent claim would.
    """
    if not owner:
        raise ValueError("a lease needs an owner name")
    if ttl <= timedelta(0):
        raise ValueError("a lease needs a positive ttl")
    if current is None:
        current = store.load(stream)
    if held_by_other(current, owner, now):
        log.info(
            "stream %s is leased by %s until %s; leaving it alone",
            stream,
            current.lease_owner,
            current.lease_until.isoformat() if current.lease_until else "",
        )
        return None
    if current.lease_owner and current.lease_owner != owner:
        log.info("taking over stream %s from %s, whose lease expired", stream, current.lease_owner)
    try:
        return store.save(replace(current, lease_owner=owner, lease_until=now + ttl))
    except CheckpointConflict:
        log.info("another runner claimed stream %s at the same moment; leaving it alone", stream)
        return None


def release(store: CheckpointStore, checkpoint: Checkpoint) -> Checkpoint:
    """Clear the lease of ``checkpoint`` (compare-and-swap); CheckpointConflict if it was lost meanwhile."""
    return store.save(replace(checkpoint, lease_owner="", lease_until=None))
