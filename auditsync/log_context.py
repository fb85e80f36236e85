"""Which tenant's work a log line belongs to, on every line of that work, whichever thread writes it.

A queue worker collects one (tenant, stream) at a time, but its lines come from many places: the
runner, the sources, the sink, the SDKs' own loggers, and the threads the run starts. Passing the
tenant to each of them would touch every log call; instead the worker marks the work with
``tenant_work`` (a context variable) and a log record factory stamps each record made inside it: the
message starts with ``[tenant NAME]`` (what the Functions host forwards to Application Insights is the
message alone) and the record carries a ``tenant`` attribute (for handlers that export attributes, such
as an OpenTelemetry exporter; the runner's per-stream lines carry ``stream`` already).

Threads do not inherit context variables: the run's threads are started by ``ContextThreadPool``,
which runs each task in the context of the code that submitted it.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from auditsync.log_records import add_record_hook

P = ParamSpec("P")
T = TypeVar("T")


_current: contextvars.ContextVar[str] = contextvars.ContextVar("auditsync_tenant", default="")


@contextmanager
def tenant_work(tenant: str) -> Iterator[None]:
    """Every log record made inside (in this thread and in the threads it starts through
    ``ContextThreadPool``) names ``tenant``."""
    install_tenant_stamp()
    token = _current.set(tenant)
    try:
        yield
    finally:
        _current.reset(token)


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (its tenant, among others)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()

        def in_context() -> T:
            return context.run(fn, *args, **kwargs)

        return super().submit(in_context)


def install_tenant_stamp() -> None:
    """Stamp records made inside ``tenant_work`` from now on (idempotent).

    The attribute is set only inside tenant work, so ``extra={"tenant": ...}`` stays usable outside it
    (the dispatcher names the tenant it could not dispatch that way); inside, the stamp says it (and
    logging refuses an ``extra`` that would overwrite it).
    """
    add_record_hook(_stamp)


def _stamp(record: logging.LogRecord) -> None:
    tenant = _current.get()
    if tenant:
        record.msg = f"[tenant {tenant}] {record.msg}"
        record.tenant = tenant
