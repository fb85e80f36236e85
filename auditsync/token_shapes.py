"""Refuse a token by its shape before it goes to the network.

A mistyped or truncated token (``abc``, a pasted ``Bearer ...`` header, the other vendor's token)
would otherwise be sent, refused or timed out after retries, and reported as a network or auth
problem. Checking the shape first turns that into one ``config`` error naming the setting to fix.
The checks are deliberately loose where the vendor documents nothing: they reject what cannot be a
token, never a token the vendor might issue.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from auditsync.errors import ConfigError

#: 1Password Events API bearer tokens are JWTs (ES256): three base64url parts, a JSON header with ``alg``.
_JWT_PART = re.compile(r"^[A-Za-z0-9_-]+$")
#: Keeper documents no format for its Admin REST API tokens; what it issues is one printable word.
#: Keeper documents no token format: refuse only what cannot be one (too short, not printable ASCII).
_KEEPER_TOKEN = re.compile(r"^[!-~]{16,1024}$")


def check_token_shape(source: str, token: str, setting: str) -> None:
    """Raise ConfigError (naming ``setting``) when ``token`` cannot be a ``source`` token.

    ``setting`` is where the value came from: ``ONEPASSWORD_TOKEN`` or the Key Vault secret's setting.
    The message never contains the token or any part of it.
    """
    problem = _onepassword_problem(token) if source == "onepassword" else _keeper_problem(token)
    if problem:
        raise ConfigError(f"{setting}: {problem}", hint=_HINTS[source].format(setting=setting))


_HINTS = {
    "onepassword": "Copy the bearer token of the Events Reporting integration again (1Password > "
    "Integrations > Events Reporting) into {setting}: the whole token, without 'Bearer ' or quotes.",
    "keeper": "Copy the token printed by Commander's 'public-api-key generate' again into {setting}: "
    "the whole token, without 'Bearer ' or quotes.",
}


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without verifying its signature ({} when ``token`` is not a JWT).

    Only for our own bearer token (its audience, its expiry): nothing here is trusted for access. Written
    here rather than with PyJWT: reading one base64url JSON part needs no verification machinery, and
    PyJWT would cost the cold start its ``cryptography`` import.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _common_problem(token: str) -> str:
    if not token.strip():
        return "the token is empty"
    if token.lower().startswith("bearer "):
        return "the value starts with 'Bearer ': store the token alone"
    if any(c.isspace() for c in token.strip()) or any(ord(c) < 32 for c in token):
        return "the token contains spaces or line breaks (copied with surrounding text?)"
    if token[:1] in "\"'" or token[-1:] in "\"'":
        return "the token is wrapped in quotes"
    return ""


def _onepassword_problem(token: str) -> str:
    problem = _common_problem(token)
    if problem:
        return problem
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(_JWT_PART.match(p) for p in parts):
        return (
            f"not a 1Password Events API token (expected a JWT: three base64url parts separated by dots, "
            f"got {len(token)} characters in {len(parts)} part(s))"
        )
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or "alg" not in header:
        return "not a 1Password Events API token (its first part is not a JWT header)"
    return ""


def _keeper_problem(token: str) -> str:
    problem = _common_problem(token)
    if problem:
        return problem
    text = token.strip()
    if text.count(".") == 2 and text.startswith("eyJ"):
        return "this looks like a 1Password token (a JWT), not a Keeper API token"
    if not _KEEPER_TOKEN.match(text):
        return (
            f"not a Keeper API token (expected one word of at least 16 printable ASCII characters, "
            f"got {len(text)} characters)"
        )
    return ""
