"""The local default sink: one JSON Lines file per table under AUDITSYNC_DATA_DIR/tables.

It lets a newcomer see exactly what would reach Log Analytics, and it is what local runs write when no
workspace is configured. A page is accepted once its lines are written and flushed to disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from auditsync.errors import SinkError
from auditsync.model import AcceptedCallback, Deadline, SendResult


class FileSink:
    """Appends rows to ``<directory>/<table>.jsonl``."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, table: str) -> Path:
        return self.directory / f"{table}.jsonl"

    def send(
        self,
        table: str,
        rows: list[dict[str, Any]],
        deadline: Deadline | None = None,
        on_accepted: AcceptedCallback | None = None,
    ) -> SendResult:
        """One write per page: there is no earlier part to report, so ``on_accepted`` is never called."""
        if not rows:
            return SendResult(0)
        data = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.path(table), "a", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise SinkError(
                f"could not write {self.path(table)}: {exc.strerror}",
                hint="Check AUDITSYNC_DATA_DIR points to a writable directory with free space.",
            ) from None
        return SendResult(len(rows))

    def probe(self) -> str:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create {self.directory}: {exc.strerror}") from None
        if not os.access(self.directory, os.W_OK):
            raise SinkError(f"{self.directory} is not writable", hint="Point AUDITSYNC_DATA_DIR elsewhere.")
        return f"file sink writes JSON Lines under {self.directory.resolve()}"
