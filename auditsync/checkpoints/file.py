"""Checkpoints as JSON files: the local default (``AUDITSYNC_DATA_DIR/checkpoints``).

Same contract as the Table store: every save is compare-and-swap on a version (the etag) that changes
on every save. Two processes cannot both win: the read-compare-write runs under an exclusive
``flock`` on a lock file in the directory, and the new record replaces the old one atomically
(temp file, fsync, ``os.replace``, fsync of the directory), so a crash leaves either the old or the
new checkpoint, never half of one. POSIX only (``fcntl``), like the Functions Python host.
"""

from __future__ import annotations

import fcntl
import glob
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from auditsync.checkpoints.codec import CONFLICT_HINT, DATETIME_FIELDS, key_prefix, prepare, stream_key, utc
from auditsync.errors import CheckpointConflict, CheckpointError
from auditsync.model import JSON, Checkpoint

log = logging.getLogger(__name__)

FORMAT = 1
LOCK_NAME = ".lock"


class FileCheckpointStore:
    """One JSON file per stream in ``directory`` (created on the first save)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileCheckpointStore({str(self.directory)!r})"

    def path(self, stream: str) -> Path:
        """The file holding ``stream``'s checkpoint, e.g. ``onepassword~2Fauditevents.json``."""
        return self.directory / f"{stream_key(stream)}.json"

    def load(self, stream: str) -> Checkpoint:
        record = self._read(self.path(stream))
        return Checkpoint(stream) if record is None else self._checkpoint(record, self.path(stream), stream)

    def save(self, checkpoint: Checkpoint) -> Checkpoint:
        prepared, position = prepare(checkpoint)
        path = self.path(checkpoint.stream)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._os_error(exc, "create the checkpoint directory", self.directory) from None
        with self._locked():
            current = self._read(path)
            if current is not None:
                self._checkpoint(current, path, checkpoint.stream)  # damaged: say so, never overwrite
            current_etag = None if current is None else current.get("etag")
            if checkpoint.etag != current_etag:
                raise CheckpointConflict(_conflict_message(checkpoint, current_etag), hint=CONFLICT_HINT)
            saved = replace(prepared, etag=uuid.uuid4().hex)
            self._write(path, _record(saved, position))
        log.debug("saved checkpoint of %s to %s", checkpoint.stream, path)
        return saved

    def save_all(self, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        """Every etag is compared under the lock before anything is written: a conflict saves nothing.
        Each file is replaced atomically; a crash between two of them leaves some saved, each whole."""
        prepared = [(checkpoint, *prepare(checkpoint)) for checkpoint in checkpoints]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._os_error(exc, "create the checkpoint directory", self.directory) from None
        saved = []
        with self._locked():
            for checkpoint, _, _ in prepared:
                path = self.path(checkpoint.stream)
                current = self._read(path)
                if current is not None:
                    self._checkpoint(current, path, checkpoint.stream)
                current_etag = None if current is None else current.get("etag")
                if checkpoint.etag != current_etag:
                    raise CheckpointConflict(_conflict_message(checkpoint, current_etag), hint=CONFLICT_HINT)
            for checkpoint, ready, position in prepared:
                stored = replace(ready, etag=uuid.uuid4().hex)
                self._write(self.path(checkpoint.stream), _record(stored, position))
                saved.append(stored)
        return saved

    def delete(self, checkpoint: Checkpoint) -> None:
        """Remove the record if its etag still matches (used by ``check``'s probe and finished backfills)."""
        path = self.path(checkpoint.stream)
        with self._locked():
            current = self._read(path)
            current_etag = None if current is None else current.get("etag")
            if checkpoint.etag != current_etag:
                raise CheckpointConflict(_conflict_message(checkpoint, current_etag), hint=CONFLICT_HINT)
            try:
                path.unlink()
            except OSError as exc:
                raise self._os_error(exc, "delete", path) from None

    def list(self, prefix: str = "") -> list[Checkpoint]:
        if not self.directory.is_dir():
            return []
        checkpoints = []
        for path in sorted(self.directory.glob(f"{glob.escape(key_prefix(prefix))}*.json")):
            record = self._read(path)
            if record is not None:
                checkpoints.append(self._checkpoint(record, path, None))
        return sorted(checkpoints, key=lambda c: c.stream)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes and threads: each call opens its own file description."""
        lock_path = self.directory / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._os_error(exc, "open the lock file", lock_path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error(exc, "read", path) from None
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise CheckpointError(
                f"Checkpoint file {path} is not valid JSON ({exc.args[0]}); nothing was changed.",
                hint="Restore the file or fix it by hand; deleting it restarts the stream from "
                "INITIAL_LOOKBACK and may duplicate events.",
            ) from None
        if (
            not isinstance(record, dict)
            or record.get("format") != FORMAT
            or not isinstance(record.get("etag"), str)
        ):
            raise CheckpointError(
                f"Checkpoint file {path} is not an auditsync checkpoint (format {FORMAT}); "
                "nothing was changed.",
                hint="Move the file out of the checkpoint directory.",
            )
        return record

    def _write(self, path: Path, record: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, ensure_ascii=False, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise self._os_error(exc, "write", path) from None

    def _checkpoint(self, record: dict[str, Any], path: Path, stream: str | None) -> Checkpoint:
        where = str(path)
        try:
            values: dict[str, Any] = {
                name: utc(datetime.fromisoformat(record[name])) if record.get(name) else None
                for name in DATETIME_FIELDS
            }
            return Checkpoint(
                stream=str(record["stream"]) if stream is None else stream,
                position=_position(record.get("position"), where),
                total_events=int(record.get("total_events", 0)),
                last_status=str(record.get("last_status", "")),
                last_error_kind=str(record.get("last_error_kind", "")),
                last_message=str(record.get("last_message", "")),
                last_hint=str(record.get("last_hint", "")),
                lease_owner=str(record.get("lease_owner", "")),
                etag=record["etag"],
                **values,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"Checkpoint file {where} is damaged ({type(exc).__name__}: {exc}); nothing was changed.",
                hint="Restore the file or fix it by hand.",
            ) from None

    @staticmethod
    def _os_error(exc: OSError, action: str, path: Path) -> CheckpointError:
        return CheckpointError(
            f"Could not {action} {path}: {exc.strerror or exc}.",
            hint="Check that AUDITSYNC_DATA_DIR points to a writable local directory.",
        )


def _record(checkpoint: Checkpoint, position: str | None) -> dict[str, Any]:
    """The file content; the position nested as JSON so a human can read it."""
    record: dict[str, Any] = {
        "format": FORMAT,
        "etag": checkpoint.etag,
        "stream": checkpoint.stream,
        "position": None if position is None else json.loads(position),
        "total_events": checkpoint.total_events,
        "last_status": checkpoint.last_status,
        "last_error_kind": checkpoint.last_error_kind,
        "last_message": checkpoint.last_message,
        "last_hint": checkpoint.last_hint,
        "lease_owner": checkpoint.lease_owner,
    }
    for name in DATETIME_FIELDS:
        value = getattr(checkpoint, name)
        record[name] = value.isoformat() if value is not None else None
    return record


def _position(value: Any, where: str) -> JSON | None:
    if value is None or isinstance(value, dict):
        return value
    raise CheckpointError(f"Checkpoint file {where}: the stored position is not a JSON object.")


def _conflict_message(checkpoint: Checkpoint, current_etag: str | None) -> str:
    if checkpoint.etag is None:
        return f"Checkpoint of {checkpoint.stream} already exists; it was created since it was loaded."
    if current_etag is None:
        return f"Checkpoint of {checkpoint.stream} no longer exists; it was removed since it was loaded."
    return f"Checkpoint of {checkpoint.stream} was saved by someone else since it was loaded (stale etag)."
