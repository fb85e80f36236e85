"""``leading_cursor``: the only answers whose next request may be sent before they are read whole."""

from __future__ import annotations

import pytest

from auditsync.sources.onepassword import leading_cursor


@pytest.mark.parametrize(
    ("head", "cursor"),
    [
        (b'{"cursor": "aGVsbG8", "has_more": true, "items": [', "aGVsbG8"),
        (b'{"cursor":"aGVsbG8","has_more":true,"items":[', "aGVsbG8"),
        (b'\n  {\n  "cursor" : "a-b_c=", \n "has_more" :true , "items"', "a-b_c="),
    ],
)
def test_a_cursor_first_answer_with_more_to_come_names_its_next_request(head: bytes, cursor: str) -> None:
    assert leading_cursor(head) == cursor


@pytest.mark.parametrize(
    "head",
    [
        b'{"cursor": "aGVsbG8", "has_more": false, "items": [',  # the last page: nothing to ask for
        b'{"items": [], "cursor": "aGVsbG8", "has_more": true}',  # another key order: read it whole
        b'{"has_more": true, "cursor": "aGVsbG8", "items": []}',
        b'{"cursor": "aGV\\/sbG8", "has_more": true, "items": [',  # an escape: only the parser decodes it
        b'{"cursor": "aGVsbG8", "has_more": truely',  # not the literal true
        b'{"cursor": "aGVsbG8", "has_mo',  # cut before has_more
        b'{"cursor": "", "has_more": true, "items": [',
        b'[{"cursor": "aGVsbG8", "has_more": true}]',
        b"",
    ],
)
def test_anything_else_waits_for_the_whole_answer(head: bytes) -> None:
    assert leading_cursor(head) is None
