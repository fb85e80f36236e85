"""Redaction: whole secrets, fragments of 12+ characters, URL-encoded and JSON-escaped forms, and whole
log records (message, arguments, traceback, stack) whichever logger and handler they pass through."""

from __future__ import annotations

import io
import json
import logging
import secrets
from urllib.parse import quote

import pytest
import requests

from auditsync.redaction import FRAGMENT, install_log_redaction, redact, register
from tests.fixtures.secret_scan import assert_no_secrets, find_leaks, records_text


def a_token() -> str:
    """A fresh secret with characters that every encoding changes: / + = " \\ ."""
    return f'kpr/{secrets.token_urlsafe(18)}+"q\\{secrets.token_hex(6)}=='


def test_whole_fragments_and_encoded_forms_are_masked() -> None:
    token = a_token()
    register(token)
    texts = [
        f"invalid token {token}",
        f"invalid token starting {token[:24]}",
        f"token ends with {token[-FRAGMENT:]}",
        f"url {quote(token, safe='')} and lower {quote(token, safe='').lower()}",
        "json " + json.dumps({"message": f"bad {token}"}),
        "escaped " + json.dumps(token)[1:-1].replace("/", "\\/"),
    ]
    for text in texts:
        clean = redact(text)
        assert "***" in clean
        assert not find_leaks(clean, [token]), text.split(" ")[0]


def test_ordinary_text_and_short_pieces_are_left_alone() -> None:
    token = a_token()
    register(token)
    text = f"GET https://keepersecurity.com/api/rest/public/events -> 401: {token[: FRAGMENT - 1]}"
    assert redact(text) == text  # 11 characters of a secret are not a fragment


def test_a_secret_is_registered_once_and_for_the_whole_process() -> None:
    token = a_token()
    register(token, token)
    assert redact(token) == "***"
    assert redact("x" + token[3:40] + "y") == "x***y"


def test_token_shapes_are_masked_even_when_unknown() -> None:
    assert redact("Authorization: Bearer abcdefgh12345678") == "Authorization: ***"
    assert "eyJ" not in redact("jwt eyJhbGciOi.eyJzdWIiOiIx.c2ln")


@pytest.fixture
def redacting() -> None:
    install_log_redaction()


def test_traceback_of_a_real_invalid_header_is_masked_on_every_handler(
    redacting: None, caplog: pytest.LogCaptureFixture
) -> None:
    """requests refuses a header with a newline and quotes the whole value: the issue's leak."""
    token = a_token()
    register(token)
    # A logger that does not propagate, with its own handler: a logger filter on "auditsync" or a
    # filter on the root handlers would never see this record; the record factory does.
    stream = io.StringIO()
    own = logging.getLogger("some.library.without.propagation")
    own.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    own.addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG):
            try:
                requests.Request(
                    "GET", "http://127.0.0.1:9/", headers={"x-api-token": f"Bearer {token}\n"}
                ).prepare()
            except requests.exceptions.InvalidHeader:
                own.exception("request failed for %s", token)
                logging.getLogger("auditsync.runner").exception("unexpected failure", stack_info=True)
            else:  # pragma: no cover - requests changed its header check
                pytest.fail("requests accepted a header with a newline")
    finally:
        own.removeHandler(handler)
    assert "InvalidHeader" in stream.getvalue() and "Traceback" in stream.getvalue()
    assert "InvalidHeader" in caplog.text and "Stack (most recent call last)" in caplog.text
    assert_no_secrets(
        {"own handler": stream.getvalue(), "caplog": caplog.text, "records": records_text(caplog.records)},
        [token],
    )


def test_arguments_that_cannot_be_formatted_are_not_printed_raw(
    redacting: None, caplog: pytest.LogCaptureFixture
) -> None:
    token = a_token()
    register(token)
    with caplog.at_level(logging.INFO):
        logging.getLogger("auditsync.test").info("two placeholders %s %s", token)
    assert "unformattable log message" in caplog.text
    assert_no_secrets({"records": records_text(caplog.records)}, [token])
