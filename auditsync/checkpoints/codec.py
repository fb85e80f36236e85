"""What every checkpoint store agrees on: safe keys for stream names, validation and the position's JSON.

Both stores go through here so a local run refuses exactly what Azure Table Storage would refuse,
instead of a checkpoint that works on a laptop and fails in the Function App.
"""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from auditsync.errors import CheckpointError
from auditsync.model import JSON, Checkpoint

#: Azure Table Storage caps a string property at 64 KiB (UTF-16), so a long position is stored in
#: several (``position_parts``); an entity holds at most 1 MiB and 252 properties, so 14 parts (896 KiB)
#: leave room for the rest of the record at its longest (Azurite does not enforce the 1 MiB: a test
#: counts the largest record's size as Azure does). Keeper's first window over a backlog needs them.
PROPERTY_BYTES = 64 * 1024
MAX_POSITION_PARTS = 14
MAX_POSITION_BYTES = MAX_POSITION_PARTS * PROPERTY_BYTES
#: Messages are for humans; a bounded one keeps the record far below the 1 MiB entity limit.
MAX_MESSAGE_CHARS = 2000
#: Table keys may be 1 KiB and file names 255 bytes; stream names are short, so this is generous.
MAX_KEY_CHARS = 200

CONFLICT_HINT = (
    "Another runner saved this stream's checkpoint in between; this run stops the stream and the next "
    "run resumes from the stored checkpoint."
)

#: Table Storage's Edm.DateTime starts at 1601-01-01 UTC.
MIN_YEAR = 1601
_KEY_SAFE = frozenset(string.ascii_letters + string.digits + "-_")

DATETIME_FIELDS = ("last_success", "newest_event_time", "last_run", "lease_until", "token_expires_on")


def stream_key(stream: str) -> str:
    """A key for ``stream`` usable as a Table RowKey and as a file name on any file system.

    Letters, digits, ``-`` and ``_`` stay; every other UTF-8 byte becomes ``~XX``. ``~`` itself is
    escaped, so the mapping is one-to-one: ``onepassword/auditevents`` -> ``onepassword~2Fauditevents``.
    The result never contains ``/ \\ # ?``, control characters or a leading dot.
    """
    if not stream or not stream.strip():
        raise CheckpointError("A checkpoint needs a stream name; got an empty one.")
    key = "".join(
        ch if ch in _KEY_SAFE else "".join(f"~{byte:02X}" for byte in ch.encode("utf-8")) for ch in stream
    )
    if len(key) > MAX_KEY_CHARS:
        raise CheckpointError(f"Stream name '{stream[:60]}...' is too long for a checkpoint key.")
    return key


def key_prefix(prefix: str) -> str:
    """What the keys of every stream starting with ``prefix`` start with (the mapping is per character)."""
    return stream_key(prefix) if prefix else ""


def prepare(checkpoint: Checkpoint) -> tuple[Checkpoint, str | None]:
    """Validate ``checkpoint`` before a save; return it normalised (UTC times, bounded message) and the
    position as compact JSON text (None when there is no position).

    Raises CheckpointError naming the field when something cannot be stored faithfully.
    """
    stream_key(checkpoint.stream)
    changes: dict[str, Any] = {}
    for name in DATETIME_FIELDS:
        value = getattr(checkpoint, name)
        if value is None:
            continue
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise CheckpointError(
                f"Checkpoint of {checkpoint.stream}: {name} must be a timezone-aware datetime, got {value!r}."
            )
        if value.astimezone(UTC).year < MIN_YEAR:
            raise CheckpointError(
                f"Checkpoint of {checkpoint.stream}: {name} {value.isoformat()} is before {MIN_YEAR}, "
                "which Table Storage cannot hold."
            )
        changes[name] = value.astimezone(UTC)
    if not isinstance(checkpoint.total_events, int) or checkpoint.total_events < 0:
        raise CheckpointError(
            f"Checkpoint of {checkpoint.stream}: total_events must be a non-negative integer, "
            f"got {checkpoint.total_events!r}."
        )
    for name in ("last_message", "last_hint"):
        text = getattr(checkpoint, name)
        if len(text) > MAX_MESSAGE_CHARS:
            changes[name] = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return replace(checkpoint, **changes), position_text(checkpoint.stream, checkpoint.position)


def position_text(stream: str, position: JSON | None) -> str | None:
    """The position as compact JSON, refusing what would not survive a round trip or would not fit."""
    if position is None:
        return None
    if not isinstance(position, dict):
        raise CheckpointError(
            f"Checkpoint of {stream}: the position must be a JSON object (dict), "
            f"got {type(position).__name__}."
        )
    try:
        text = json.dumps(
            position, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"Checkpoint of {stream}: the position is not JSON-serialisable ({exc})."
        ) from None
    parts = position_parts(text)
    if len(parts) > MAX_POSITION_PARTS:
        size = len(text.encode("utf-16-le"))
        raise CheckpointError(
            f"Checkpoint of {stream}: the position is {size} bytes as UTF-16, over the "
            f"{MAX_POSITION_BYTES}-byte limit ({MAX_POSITION_PARTS} Table Storage properties of "
            f"{PROPERTY_BYTES} bytes); nothing was saved.",
            hint="This is a bug in the source: its checkpoint state must stay bounded. Report it.",
        )
    return text


def position_parts(text: str) -> list[str]:
    """``text`` cut into pieces of at most ``PROPERTY_BYTES`` as UTF-16, never inside a surrogate pair.

    The table store keeps one piece per property; the file store cuts too, only to refuse exactly what
    the table store would (``position_text``).
    """
    if text.isascii():  # one UTF-16 code unit a character: cut by characters (the usual case, fast)
        step = PROPERTY_BYTES // 2
        return [text[i : i + step] for i in range(0, len(text), step)] or [""]
    data = text.encode("utf-16-le")
    parts = []
    begin = 0
    while begin < len(data):
        end = min(begin + PROPERTY_BYTES, len(data))
        if end < len(data) and 0xD8 <= data[end - 1] <= 0xDB:
            end -= 2  # the last code unit is a high surrogate: keep the pair together
        parts.append(data[begin:end].decode("utf-16-le"))
        begin = end
    return parts or [""]


def parse_position(stream: str, text: str | None, where: str) -> JSON | None:
    """The stored position text back as a dict; a damaged one is a clear error, never a silent restart."""
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(
            f"Checkpoint of {stream} in {where}: the stored position is not valid JSON ({exc.args[0]}).",
            hint="Restore the record from a backup or fix it by hand; deleting it restarts the stream "
            "from INITIAL_LOOKBACK and may duplicate events.",
        ) from None
    if not isinstance(value, dict):
        raise CheckpointError(f"Checkpoint of {stream} in {where}: the stored position is not a JSON object.")
    return value


def utc(value: datetime | None) -> datetime | None:
    """A stored datetime as a plain aware UTC ``datetime`` (not an SDK subclass)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return datetime.combine(value.date(), value.timetz())
