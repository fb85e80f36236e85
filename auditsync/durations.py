"""Durations as the settings write them: ``90s``, ``8m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``8m``, ``1h30m``, ``2d``. Raises ValueError on anything else (overflow included)."""
    match = DURATION.match(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(text)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(text) from None


def format_duration(value: timedelta) -> str:
    """The inverse of ``parse_duration`` for messages: ``9m``, ``1h30m``, ``20s``, ``0s``."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
