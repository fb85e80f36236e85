"""orjson where it is exactly what the standard library would give, the standard library everywhere else.

Decoding vendor pages and encoding rows were a third of a drain's CPU (docs/benchmarks.md); orjson does
both several times faster. It is used only where its answer cannot differ from the one we had:

- ``response_json``: orjson parses a UTF-8 body to the same values as ``json``, except integers past
  64 bits (orjson makes them floats, silently) and what it refuses (``NaN``, lone surrogates, a BOM).
  A body with a run of 20 digits, a non-UTF-8 charset, or one orjson refuses goes to
  ``response.json()`` as before, so values, and the fingerprints computed from them, are unchanged,
  and a body that is not JSON fails as it did.
- ``compact_bytes``: a row as compact UTF-8 JSON. orjson writes the same bytes as
  ``json.dumps(ensure_ascii=False, separators=(",", ":"))`` except the spelling of some floats in
  exponent form (``1e-05`` becomes ``0.00001``; the same number) and ``NaN`` (``null``, which Log
  Analytics accepts where it refused ``NaN``). What orjson cannot encode (integers past 64 bits,
  keys that are not strings) is encoded by the standard library as before. Fingerprints stored in
  checkpoints keep their own standard-library encoder (``auditsync.sources.canonical``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import requests

#: ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` without building an encoder per call.
COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: 20 digits in a row: possibly an integer orjson would turn into a float (false alarms only cost speed).
#: Found by mapping every digit to ``9`` and searching for twenty of them: a C-speed ``translate`` and
#: substring search, about ten times faster than the regular expression ``\d{20}`` over a 300 KB page.
_EVERY_DIGIT_AS_NINE = bytes.maketrans(b"012345678", b"999999999")
_LONG_NUMBER = b"9" * 20
_UTF8 = frozenset({"utf-8", "utf8"})


def response_json(response: requests.Response) -> Any:
    """The response body as ``response.json()`` would decode it (and raising as it would)."""
    data = response.content
    utf8 = response.encoding is None or response.encoding.lower() in _UTF8
    if utf8 and _LONG_NUMBER not in data.translate(_EVERY_DIGIT_AS_NINE):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # NaN, a lone surrogate, a BOM or not JSON at all: the standard path decides
    return response.json()


def compact_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (see the module docstring for the one spelling difference).

    The bytes are copied out of orjson's buffer: orjson returns a ``bytes`` whose allocation is far
    larger than its content (8 KiB for a 1 KiB row with orjson 3.13; ``sys.getsizeof`` does not show
    it), so the 1,000 encoded rows of a page held 7.8 MB instead of 1.1 MB (docs/benchmarks.md,
    "Memory"). The
    copy costs less than it saves: 1,000 rows encoded and kept take 1.1 ms with it, 3.5 ms without
    (the untrimmed buffers are fresh memory every time).
    """
    try:
        return bytes(memoryview(orjson.dumps(value)))
    except TypeError:  # orjson.JSONEncodeError: a big integer or a non-string key
        return COMPACT_JSON.encode(value).encode("utf-8")
