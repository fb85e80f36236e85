"""Vendor sources. Each module turns a checkpoint position into pages of raw events.

A source module exposes three functions, registered in ``SOURCES``:

- ``stream_names(part) -> list[str]``: the streams it would run, from the source's part of the settings
  (known before any network call, so a failure to get a token still yields one health row per stream);
- ``open_streams(ctx) -> list[Stream]``: authenticate/introspect once, return one Stream per stream
  (a stream the token may not read raises ConfigError from ``pages``; the others still run);
- ``probe(ctx) -> str``: a cheap authenticated call for ``auditsync check``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from auditsync.config import Settings, SourceSettings
from auditsync.http import HttpClient
from auditsync.model import Clock, Deadline, Stream

P = TypeVar("P", bound=SourceSettings)


@dataclass(frozen=True)
class SourceContext(Generic[P]):
    """What a source needs for one run: its part of the settings, its token (re-read every run, so a
    rotated token is used without a restart), the HTTP client, the clock and the run's deadline."""

    settings: P
    token: str = field(repr=False)
    http: HttpClient
    clock: Clock
    run_start: datetime
    deadline: Deadline


class SourceModule(NamedTuple):
    stream_names: Callable[[Any], list[str]]
    open_streams: Callable[[Any], list[Stream]]
    probe: Callable[[Any], str]


def source_module(name: str) -> SourceModule:
    """The module for a source name of ``Settings.sources`` (imported lazily: one broken source never
    prevents the other from loading)."""
    if name == "onepassword":
        from auditsync.sources import onepassword as module
    elif name == "keeper":
        from auditsync.sources import keeper as module  # type: ignore[no-redef,attr-defined,unused-ignore]
    else:  # pragma: no cover - Settings validates names
        raise KeyError(name)
    return SourceModule(module.stream_names, module.open_streams, module.probe)


def enabled_streams(settings: Settings) -> list[tuple[str, str]]:
    """Every enabled ``(source, stream name)``, in the order of SOURCES."""
    return [
        (source, name)
        for source in settings.sources
        for name in source_module(source).stream_names(settings.source(source))
    ]
