"""The queue message: which stream of which tenant to work, and when it was asked for."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from auditsync.errors import ConfigError

_STREAM = re.compile(r"^(keeper|onepassword)/[a-z]+$")


@dataclass(frozen=True)
class WorkItem:
    """One (tenant, stream) to collect. ``dispatched`` lets a worker drop items a later tick superseded."""

    tenant: str
    stream: str
    dispatched: datetime
    run_id: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "tenant": self.tenant,
                "stream": self.stream,
                "dispatched": self.dispatched.astimezone(UTC).isoformat(),
                "run_id": self.run_id,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> WorkItem:
        """Parse a message; anything else is a ConfigError (the message is not ours or was edited)."""
        try:
            data = json.loads(text)
            item = cls(
                str(data["tenant"]),
                str(data["stream"]),
                datetime.fromisoformat(str(data["dispatched"])).astimezone(UTC),
                str(data["run_id"]),
            )
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                "queue message is not an auditsync work item",
                hint="Only the dispatcher should write to the work queue; delete the message.",
            ) from None
        if not _STREAM.match(item.stream):
            raise ConfigError(
                f"queue message names an unknown stream {item.stream[:60]!r}",
                hint="Only the dispatcher should write to the work queue; delete the message.",
            )
        return item
