"""Field-size limits applied before sending, so the service never truncates or rejects silently.

Log Analytics truncates field values over 64 KB (Logs Ingestion) or 32 KB (Data Collector) without
telling anyone, and a single record over 1 MiB is refused with 413, which would block a stream
forever. We truncate first, with a visible marker, and count it for the health row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from auditsync.fastjson import COMPACT_JSON, compact_bytes

TRUNCATION_MARKER = "…[truncated by auditsync]"
__all__ = ["COMPACT_JSON", "fit_row", "row_bytes", "truncate_fields", "truncate_text"]


def _encoded(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def truncate_text(text: str, max_bytes: int) -> str:
    """Cut ``text`` so that it plus the marker fits in ``max_bytes`` UTF-8 bytes, on a character boundary."""
    room = max_bytes - len(TRUNCATION_MARKER.encode("utf-8"))
    return text.encode("utf-8")[: max(0, room)].decode("utf-8", errors="ignore") + TRUNCATION_MARKER


def _row_fits(row: Mapping[str, Any], max_bytes: int) -> bool:
    """True when the whole row, as compact JSON, is within ``max_bytes``: then every field is.

    A field's size as ``_encoded`` measures it is never more than its share of the row's JSON (a
    string's JSON form only adds quotes and escapes), so one C-speed dump per row spares the
    per-field dumps for the common case. Anything unusual (a value JSON cannot encode) answers False
    and takes the field-by-field path, which behaves as before.
    """
    try:
        return len(compact_bytes(row)) <= max_bytes
    except (TypeError, ValueError, UnicodeError):
        return False


def truncate_fields(rows: list[dict[str, Any]], max_field_bytes: int) -> tuple[list[dict[str, Any]], int]:
    """Return rows whose every field fits ``max_field_bytes`` and the number of fields cut.

    A string is cut and marked. A nested object (dynamic column) that is too big becomes its JSON text,
    cut and marked: the reader sees a string where an object was, and the marker says why.
    """
    truncated = 0
    out = []
    for row in rows:
        if _row_fits(row, max_field_bytes):
            out.append(row)
            continue
        fixed: dict[str, Any] | None = None
        for name, value in row.items():
            if value is None or isinstance(value, bool | int | float):
                continue
            encoded = _encoded(value)
            if len(encoded) <= max_field_bytes:
                continue
            if fixed is None:
                fixed = dict(row)
            text = value if isinstance(value, str) else encoded.decode("utf-8")
            fixed[name] = truncate_text(text, max_field_bytes)
            truncated += 1
        out.append(fixed if fixed is not None else row)
    return out, truncated


def row_bytes(row: Mapping[str, Any]) -> int:
    """Size of a row as the SDKs serialise it (compact JSON, UTF-8)."""
    return len(json.dumps(row, separators=(",", ":")).encode("utf-8"))


#: A field is never cut below this many bytes while fitting a row: the start of every value stays readable.
MIN_FIELD_BYTES = 1024


def _size(row: Mapping[str, Any]) -> int:
    """The row's size as the Logs Ingestion sink encodes it (``compact_bytes``)."""
    return len(compact_bytes(row))


def fit_row(
    row: dict[str, Any], max_row_bytes: int, max_field_bytes: int
) -> tuple[dict[str, Any], int, bool]:
    """``row`` cut so that it fits one request: a row that cannot fit would be refused forever (413).

    First every field is cut to ``max_field_bytes`` (``truncate_fields``). If the row is still over
    ``max_row_bytes`` (many large fields), the largest field is cut further, one at a time, with the same
    marker, but never below ``MIN_FIELD_BYTES``. As a last resort (so many fields that even that is too
    much), the largest fields are emptied (None), whole, until the row fits. Returns the row, the number
    of fields cut or emptied, and whether the row needed more than the per-field cut.
    """
    (fixed,), cut = truncate_fields([row], max_field_bytes)
    size = _size(fixed)
    if size <= max_row_bytes:
        return fixed, cut, False
    first = fixed
    fixed = dict(fixed)
    touched = {name for name, value in first.items() if value is not row.get(name)}
    while size > max_row_bytes:
        sizes = {
            name: len(_encoded(value))
            for name, value in fixed.items()
            if value is not None and not isinstance(value, bool | int | float)
        }
        name = max(sizes, key=lambda n: sizes[n], default=None)
        if name is None or sizes[name] <= MIN_FIELD_BYTES:
            break
        value = fixed[name]
        text = value if isinstance(value, str) else _encoded(value).decode("utf-8")
        # JSON escapes make the encoded field a little bigger than its text: aim a bit lower.
        target = max(MIN_FIELD_BYTES, sizes[name] - (size - max_row_bytes) - 64)
        fixed[name] = truncate_text(text, target)
        touched.add(name)
        size = _size(fixed)
    while size > max_row_bytes:
        sizes = {name: len(_encoded(value)) for name, value in fixed.items() if value is not None}
        if not sizes:
            break
        name = max(sizes, key=lambda n: sizes[n])
        fixed[name] = None
        touched.add(name)
        size = _size(fixed)
    return fixed, len(touched), True
