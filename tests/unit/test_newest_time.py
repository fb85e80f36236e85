"""``newest_time``: one parse for a page of timestamps written alike, the same answer as parsing each."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditsync.tables.rows import newest_time, parse_time


def slow(values: list[Any]) -> datetime | None:
    times = [t for t in map(parse_time, values) if t is not None]
    return max(times) if times else None


def stamps(rng: random.Random, n: int, style: str) -> list[Any]:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    out: list[Any] = []
    for _ in range(n):
        t = base + timedelta(seconds=rng.uniform(-86_400 * 400, 86_400 * 400))
        if style == "z-seconds":
            out.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        elif style == "z-micro":
            out.append(t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        elif style == "offset":
            out.append(t.astimezone(datetime.now().astimezone().tzinfo).isoformat())
        elif style == "mixed":
            out.append(
                rng.choice([t.isoformat(), t.strftime("%Y-%m-%dT%H:%M:%SZ"), int(t.timestamp() * 1000)])
            )
        elif style == "mixed-precision":
            out.append(t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")[: rng.choice([20, 23, 26])] + "Z")
    return out


@pytest.mark.parametrize("style", ["z-seconds", "z-micro", "offset", "mixed", "mixed-precision"])
@pytest.mark.parametrize("seed", range(5))
def test_the_newest_of_a_page_is_what_parsing_every_timestamp_gives(style: str, seed: int) -> None:
    values = stamps(random.Random(seed), 1_000, style)
    assert newest_time(values) == slow(values)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [None, "", "not a time"],
        ["2026-13-01T00:00:00Z", "2026-01-01T00:00:00Z"],  # the greatest text is no date: the next one counts
        ["9999-99-99T99:99:99Z", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"],
        ["2026-01-01T00:00:00Z", None],
        ["2026-01-01T10:00:00+09:00", "2026-01-01T02:00:00Z"],  # text order is not time order here
    ],
)
def test_odd_pages_are_read_one_by_one(values: list[Any]) -> None:
    assert newest_time(values) == slow(values)
