"""Logging set-up shared by the Function and the CLI: secret redaction on every handler."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from auditsync.http import RedactingFilter, Redactor


@contextmanager
def redacting_logs(redactor: Redactor) -> Iterator[None]:
    """Attach a redacting filter to every root handler for the duration of a run.

    Handler filters (not logger filters) see records propagated from every module, including the
    Azure SDKs', so a secret that slipped into any log call leaves the process as ``***``.
    """
    handlers = list(logging.getLogger().handlers)
    filters = [RedactingFilter(redactor) for _ in handlers]
    for handler, filt in zip(handlers, filters, strict=True):
        handler.addFilter(filt)
    try:
        yield
    finally:
        for handler, filt in zip(handlers, filters, strict=True):
            handler.removeFilter(filt)
