"""An event's canonical JSON: what both sources fingerprint an event by when it has no id of its own.

Sorted keys, no whitespace, UTF-8 as is, and ``str`` of anything JSON has no type for. The standard
library's encoder, not orjson: fingerprints are stored in checkpoints, so their bytes must never change
with a library's version (``auditsync.fastjson`` explains where orjson's output differs).
"""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(event: Any) -> bytes:
    """``event`` as canonical JSON, UTF-8 encoded."""
    return _ENCODER.encode(event).encode("utf-8")
