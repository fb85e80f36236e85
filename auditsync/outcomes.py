"""Record a run's outcome on the checkpoints of streams that never got to run.

A stream that runs records its own outcome when it releases its lease (runner ``_close``). A failure
before that point (the 1Password token refused at introspect, Key Vault unreachable, the sink not
configurable) fails every stream of the source at once; without this, ``status`` would go on
showing the previous run's ``ok``. The outcome is written under the same lease as a normal run, so a
stream another runner is working on is left alone, and the position is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from auditsync.checkpoints import claim, release
from auditsync.errors import AuditSyncError
from auditsync.model import CheckpointStore, StreamReport

log = logging.getLogger(__name__)

#: A lease just long enough for one load and two saves.
_LEASE = timedelta(minutes=2)


def record_failed_streams(
    store: CheckpointStore, reports: Iterable[StreamReport], *, owner: str, now: datetime
) -> None:
    """Write ``last_status``/``last_error_kind``/``last_message``/``last_run`` of each report; never raises."""
    for report in reports:
        try:
            checkpoint = claim(store, report.stream, owner, now, _LEASE)
            if checkpoint is None:
                continue  # another runner is working on the stream and will record its own outcome
            release(
                store,
                replace(
                    checkpoint,
                    last_status=report.status,
                    last_error_kind=report.error_kind,
                    last_message=report.message,
                    last_hint=report.hint,
                    last_run=now,
                ),
            )
        except AuditSyncError as error:
            log.error(
                "%s: could not record the outcome on its checkpoint: %s",
                report.stream,
                error,
                extra={"stream": report.stream},
            )
