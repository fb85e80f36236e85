"""What in a setting's text is a secret, and whether a secret's text can travel in an HTTP header."""

from __future__ import annotations


def secret_value_problem(value: str) -> str:
    """Why a token or key (already stripped of surrounding whitespace) cannot be sent, or "".

    Never quotes the value. A line break or other control character inside would make requests refuse
    the header (and print it); whitespace inside means two values or a label were pasted together;
    anything outside printable ASCII cannot travel in an HTTP header.
    """
    if any(ch in "\x7f" or ord(ch) < 0x20 for ch in value):
        return "contains a line break or another control character inside the value"
    if any(ch.isspace() for ch in value):
        return "contains whitespace inside the value"
    if not value.isascii():
        return "contains characters outside printable ASCII"
    return ""


def connection_string_secrets(connection_string: str) -> tuple[str, ...]:
    """The parts of a storage connection string that must never be shown (account key, SAS token)."""
    secrets = []
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value.strip():
            secrets.append(value.strip())
    return tuple(secrets)
