"""Vendor sources. Each module turns a checkpoint position into pages of raw events.

A source module exposes three functions, registered in ``SOURCES``:

- ``stream_names(settings) -> list[str]``: the streams it would run (known before any network call,
  so a failure to get a token still yields one health row per stream);
- ``open_streams(ctx) -> list[Stream]``: authenticate/introspect once, return one Stream per stream
  (a stream the token may not read raises ConfigError from ``pages``; the others still run);
- ``probe(ctx) -> str``: a cheap authenticated call for ``auditsync check``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from auditsync.config import Settings
from auditsync.http import HttpClient
from auditsync.model import Clock, Stream


@dataclass(frozen=True)
class SourceContext:
    """What a source needs for one run. The token is re-read every run (rotation without restart)."""

    settings: Settings
    token: str = field(repr=False)
    http: HttpClient
    clock: Clock
    run_start: datetime


class SourceModule(NamedTuple):
    stream_names: Callable[[Settings], list[str]]
    open_streams: Callable[[SourceContext], list[Stream]]
    probe: Callable[[SourceContext], str]


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
