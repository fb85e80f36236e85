"""Legacy row shapes, truncation, post splitting and the retirement notice (no network)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from auditsync.errors import SinkError
from auditsync.sinks.data_collector import (
    MAX_POST_BYTES,
    batches,
    encode_records,
    fit_records,
    retirement_notice,
)
from auditsync.sinks.legacy_rows import FIELD_LIMIT_BYTES, TRUNCATION_MARKER, fit_field, legacy_columns
from auditsync.tables import HEALTH_TABLE, KEEPER_TABLE, ONEPASSWORD_TABLE, TABLES

DOC = Path(__file__).parents[2] / "docs" / "data-collector.md"


def test_keeper_legacy_columns_match_what_keeper_cl_content_reads() -> None:
    assert legacy_columns(TABLES[KEEPER_TABLE]) == [
        ("audit_event_s", "string"),
        ("remote_address_s", "string"),
        ("category_s", "string"),
        ("client_version_s", "string"),
        ("enterprise_id_d", "int"),
        ("username_s", "string"),
        ("timestamp_t", "datetime"),
    ]


def test_a_declared_suffix_is_not_doubled() -> None:
    names = [name for name, _ in legacy_columns(TABLES[ONEPASSWORD_TABLE])]
    assert "uuid_s" in names and "uuid_s_s" not in names
    assert "TimeGenerated_t" not in names


@pytest.mark.parametrize("table", [KEEPER_TABLE, ONEPASSWORD_TABLE, HEALTH_TABLE])
def test_the_docs_list_every_legacy_column(table: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, _ in legacy_columns(TABLES[table]):
        assert f"`{name}`" in text, f"{name} of {table} is missing from docs/data-collector.md"


def test_truncation_cuts_on_a_character_boundary_and_fits_the_limit() -> None:
    text, cut = fit_field("東" * 20_000)  # 60,000 bytes
    assert cut and text.endswith(TRUNCATION_MARKER)
    assert len(text.encode("utf-8")) <= FIELD_LIMIT_BYTES
    assert set(text[: -len(TRUNCATION_MARKER)]) == {"東"}
    assert fit_field("short") == ("short", False)


def test_posts_fill_up_to_the_exact_byte_limit() -> None:
    records = encode_records([{"a": "ü" * 10}] * 5)  # each 28 bytes
    size = 2 + 28 * 3 + 2  # three records: brackets + commas
    bodies = [body for body, _ in batches(records, size)]
    assert [len(json.loads(b)) for b in bodies] == [3, 2]
    assert [count for _, count in batches(records, size)] == [3, 2]
    assert len(bodies[0]) == size
    assert [len(json.loads(b)) for b, _ in batches(records, size - 1)] == [2, 2, 1]


def test_the_real_limit_splits_a_page_over_30mb() -> None:
    record = json.dumps({"blob": "x" * 30_000}).encode()
    bodies = [body for body, _ in batches([record] * 1_100, MAX_POST_BYTES)]
    assert len(bodies) == 2
    assert all(len(b) <= MAX_POST_BYTES < 30 * 1000 * 1000 for b in bodies)
    assert sum(len(json.loads(b)) for b in bodies) == 1_100


def test_a_record_larger_than_a_post_is_refused_by_batches_and_cut_by_fit_records() -> None:
    with pytest.raises(SinkError):
        list(batches([b'{"a":"' + b"x" * 100 + b'"}'], 50))
    # Many fields, each within the 32 KB field limit, together over the post limit: cut to fit.
    record = {f"field{i}": "é" * 16_000 for i in range(40)}
    encoded = encode_records([record, {"small": "ok"}])
    assert len(encoded[0]) > 1_000_000
    assert fit_records(encoded, [record, {"small": "ok"}], 1_000_000, 32_000) == 1
    assert len(encoded[0]) + 2 <= 1_000_000 and encoded[1] == b'{"small":"ok"}'
    cut = json.loads(encoded[0])
    assert sorted(cut) == sorted(record) and any(v.endswith(TRUNCATION_MARKER) for v in cut.values())


def test_the_retirement_notice_says_when_and_what_to_do() -> None:
    before = retirement_notice(date(2026, 1, 1))
    after = retirement_notice(date(2026, 11, 22))
    assert "is retired by Microsoft on 2026-09-14" in before
    assert "was retired by Microsoft on 2026-09-14" in after
    for text in (before, after):
        assert "SINK=logs_ingestion" in text and "docs/data-collector.md" in text
