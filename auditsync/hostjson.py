"""The app's host.json, as the Functions host reads it: a run must end inside its ``functionTimeout``."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

#: The app's host.json (next to the auditsync package, as deployed and in the repository).
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
#: The Consumption plan's timeout when host.json names none.
DEFAULT_FUNCTION_TIMEOUT = timedelta(minutes=5)


def host_function_timeout(path: Path = HOST_JSON) -> timedelta | None:
    """host.json's ``functionTimeout`` (``[d.]hh:mm:ss``); None when the file is absent or the timeout is
    unbounded (``-1``, Premium and Dedicated plans). Raises ValueError when the file or value is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    value = json.loads(text).get("functionTimeout")
    if value is None:
        return DEFAULT_FUNCTION_TIMEOUT
    if str(value).strip() == "-1":
        return None
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?", str(value).strip())
    if not match:
        raise ValueError(f"functionTimeout {value!r} is not a time span (hh:mm:ss)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
