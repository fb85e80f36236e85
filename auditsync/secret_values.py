"""What in a setting's text is a secret, and whether a secret's text can travel in an HTTP header."""

from __future__ import annotations


def secret_value_problem(value: str) -> tuple[str, str]:
    """Why a token or key (already stripped of surrounding whitespace) cannot be sent, and how to store it
    instead; ``("", "")`` when it can.

    Never quotes the value. A pasted ``Bearer `` prefix is named as such (it is what most people paste);
    a line break or other control character inside would make requests refuse the header (and print it);
    whitespace inside means two values or a label were pasted together; anything outside printable ASCII
    cannot travel in an HTTP header.
    """
    alone = "store the value alone, on one line"
    if value[:7].lower() == "bearer ":
        return (
            "starts with 'Bearer '",
            "store the token alone, without the 'Bearer ' that goes in front of it",
        )
    if any(ch in "\x7f" or ord(ch) < 0x20 for ch in value):
        return "contains a line break or another control character inside the value", alone
    if any(ch.isspace() for ch in value):
        return "contains whitespace inside the value", alone
    if not value.isascii():
        return "contains characters outside printable ASCII", "copy it again from where it was issued"
    return "", ""


def connection_string_secrets(connection_string: str) -> tuple[str, ...]:
    """The parts of a storage connection string that must never be shown (account key, SAS token)."""
    secrets = []
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value.strip():
            secrets.append(value.strip())
    return tuple(secrets)
