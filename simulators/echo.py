"""Vendors that echo the caller's credential in their error bodies (a fault option of the 1Password and
Keeper simulators): the collector must never pass what they echo on to logs, health rows or checkpoints.

Modes: ``full`` (the token as received), ``prefix24`` (its first 24 characters), ``urlencoded`` (the
whole token percent-encoded) and ``json_escaped`` (JSON-escaped inside the message text, as a server
that embeds a JSON document in its message would).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from simulators.base import Response

ECHO_MODES = ("full", "prefix24", "urlencoded", "json_escaped")


def echoed(credential: str, mode: str) -> str:
    """The part of ``credential`` a server echoing in ``mode`` shows."""
    if mode == "full":
        return credential
    if mode == "prefix24":
        return credential[:24]
    if mode == "urlencoded":
        return quote(credential, safe="")
    if mode == "json_escaped":
        return json.dumps(credential)[1:-1]
    raise ValueError(f"echo mode {mode!r} is not one of {', '.join(ECHO_MODES)}")


def with_echo(response: Response, credential: str | None, mode: str | None) -> Response:
    """``response`` with the credential echoed in its ``message`` when it is an error and echo is on."""
    if mode is None or response.status < 400 or not credential or not isinstance(response.body, dict):
        return response
    body = dict(response.body)
    body["message"] = f"{body.get('message', 'error')} (credential: {echoed(credential, mode)})"
    return Response(response.status, body, dict(response.headers))
