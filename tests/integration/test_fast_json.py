"""orjson (``auditsync.fastjson``) changes nothing a user or a checkpoint can see: vendor pages decode to
the same events, shape to the same rows, give the same Keeper and 1Password fingerprints (stored in
checkpoints), and rows encode to the same bytes as with the standard library.

Pages are real answers of the simulators over loopback; each is decoded both ways from the same response.
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from auditsync.fastjson import COMPACT_JSON, compact_bytes, response_json
from auditsync.sinks.logs_ingestion import encode_rows
from auditsync.sources.keeper_position import fingerprint, to_ms
from auditsync.sources.onepassword import event_key
from auditsync.tables import KEEPER_TABLE, ONEPASSWORD_TABLE, TABLES
from auditsync.tables.rows import parse_time, shape_rows
from simulators.base import Request, Response, SimServer
from simulators.keeper import EVENTS_PATH, KeeperSim, sample_events
from simulators.onepassword import OnePasswordSim
from simulators.onepassword_data import EVENT_TYPES

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def both_ways(response: requests.Response) -> tuple[Any, Any]:
    return response_json(response), json.loads(response.content.decode(response.encoding or "utf-8"))


def keeper_keys(events: list[dict[str, Any]]) -> list[int]:
    """The fingerprints the Keeper source stores in its checkpoint, as it computes them."""
    keys = []
    for event in events:
        when = parse_time(event.get("timestamp"))
        keys.append(fingerprint(event, None if when is None else to_ms(when)))
    return keys


def assert_rows_encode_alike(rows: list[dict[str, Any]]) -> None:
    fast, _ = encode_rows(rows, 64_000)
    assert fast == [COMPACT_JSON.encode(row).encode("utf-8") for row in rows]


def test_keeper_pages_decode_shape_and_fingerprint_as_with_the_standard_library() -> None:
    with KeeperSim(token="t") as sim:
        events = sample_events(2_500, NOW - timedelta(hours=3), NOW - timedelta(hours=1), seed=5)
        events[0]["note"] = 'ünïcødé \u2028 \x1f "quoted" \\ / 𝄞'
        events[1]["big"] = 2**70  # past 64 bits: orjson would make it a float
        events[2]["ratio"] = 0.25
        sim.add(events)
        token, pages = None, 0
        while True:
            params: dict[str, Any] = {
                "start_date": (NOW - timedelta(days=1)).isoformat(),
                "end_date": NOW.isoformat(),
                "limit": 1_000,
            }
            if token:
                params["continuation_token"] = token
            response = requests.get(
                sim.url + EVENTS_PATH,
                headers={"x-api-token": "Bearer t"},
                params=params,
                timeout=10,
            )
            assert response.status_code == 200, response.text
            fast, standard = both_ways(response)
            assert fast == standard
            pages += 1
            assert keeper_keys(fast["events"]) == keeper_keys(standard["events"])
            rows, _ = shape_rows(TABLES[KEEPER_TABLE], fast["events"], now=NOW)
            assert rows == shape_rows(TABLES[KEEPER_TABLE], standard["events"], now=NOW)[0]
            assert_rows_encode_alike(rows)
            if not fast["has_more"]:
                break
            token = fast["continuation_token"]
    assert pages >= 3


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_1password_pages_decode_shape_and_fingerprint_as_with_the_standard_library(event_type: str) -> None:
    with OnePasswordSim() as sim:
        sim.generate(event_type, 1_500, start=NOW - timedelta(hours=2))
        headers = {"Authorization": f"Bearer {sim.issue_token()}"}
        body: dict[str, Any] = {"limit": 1_000, "start_time": (NOW - timedelta(days=1)).isoformat()}
        for _ in range(2):
            response = requests.post(f"{sim.url}/api/v2/{event_type}", json=body, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            fast, standard = both_ways(response)
            assert fast == standard
            assert [event_key(e) for e in fast["items"]] == [event_key(e) for e in standard["items"]]
            without_uuid = [{k: v for k, v in e.items() if k != "uuid"} for e in fast["items"]]
            assert [event_key(e) for e in without_uuid] == [
                event_key({k: v for k, v in e.items() if k != "uuid"}) for e in standard["items"]
            ]
            table = TABLES[ONEPASSWORD_TABLE]
            rows, _ = shape_rows(table, fast["items"], now=NOW, event_type=event_type)
            assert rows == shape_rows(table, standard["items"], now=NOW, event_type=event_type)[0]
            assert_rows_encode_alike(rows)
            body = {"cursor": fast["cursor"]}


def outcome(decode: Any, response: requests.Response) -> tuple[str, str]:
    """What decoding gives: the value (as repr, so 1e30 and 10**30 differ) or the error raised."""
    try:
        return "value", repr(decode(response))
    except ValueError as error:
        return type(error).__name__, str(error)


class Answers(SimServer):
    """Serves whatever body a test puts in ``body``, with ``content_type``."""

    body: bytes = b""
    content_type = "application/json"

    def handle(self, request: Request) -> Response:
        return Response(200, self.body, {"Content-Type": self.content_type})


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"id": 123456789012345678901234567890}', "application/json"),
        (b'{"v": NaN, "w": Infinity}', "application/json"),
        (b'{"s": "\\ud800"}', "application/json"),
        ('{"s": "caf\u00e9"}'.encode("latin-1"), "application/json; charset=latin-1"),
        (b'\xef\xbb\xbf{"bom": 1}', "application/json"),
    ],
)
def test_bodies_orjson_would_read_differently_decode_as_before(body: bytes, content_type: str) -> None:
    with Answers() as server:
        server.body, server.content_type = body, content_type
        response = requests.get(server.url, timeout=10)
        assert outcome(response_json, response) == outcome(requests.Response.json, response)


def test_a_body_that_is_not_json_fails_as_before() -> None:
    with Answers() as server:
        server.body = b"<html>gateway</html>"
        response = requests.get(server.url, timeout=10)
        with pytest.raises(ValueError):
            response_json(response)


def test_rows_orjson_cannot_encode_fall_back_to_the_standard_library() -> None:
    row = {"big": 2**70, "nested": {"k": [1.5, None, True, "ü"]}}
    assert compact_bytes(row) == COMPACT_JSON.encode(row).encode("utf-8")
    # The one spelling difference: the same number.
    assert json.loads(compact_bytes({"r": 1e-05})) == {"r": 1e-05}


def test_encoded_rows_hold_no_more_memory_than_their_bytes() -> None:
    """orjson returns its output in a buffer rounded up (8 KiB for a 1 KiB row with orjson 3.13) and never
    shrunk: a page's 1,000 encoded rows held 8 MB instead of 1 MB until ``compact_bytes`` copied them out."""
    rows = [
        {"TimeGenerated": "2026-11-29T12:00:00.000Z", "Message": "é" * 500, "Count": i} for i in range(1_000)
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        encoded, _ = encode_rows(rows, 64_000)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    size = sum(len(row) for row in encoded)
    assert size > 1_000_000
    assert held < 1.2 * size, f"{held:,} bytes held for {size:,} bytes of rows"
