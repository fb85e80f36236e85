"""Hooks run on every log record this process makes: the redaction and the tenant stamp.

One record factory wraps whatever factory was there (the Functions worker's, a test runner's) and runs
the hooks in the order they were added; adding a hook twice adds it once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

RecordHook = Callable[[logging.LogRecord], None]

_lock = threading.Lock()
_hooks: list[RecordHook] = []


def add_record_hook(hook: RecordHook) -> None:
    """Run ``hook`` on every record made from now on (idempotent)."""
    with _lock:
        if hook in _hooks:
            return
        if not _hooks:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                for each in tuple(_hooks):
                    each(record)
                return record

            logging.setLogRecordFactory(factory)
        _hooks.append(hook)
