"""Azure Storage rules that both the settings and the storage clients check, written once."""

from __future__ import annotations

import re

#: What Table Storage accepts as a table name: 3-63 letters and digits, starting with a letter.
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


def connection_string_secrets(connection_string: str) -> tuple[str, ...]:
    """The parts of a storage connection string that must never be shown (account key, SAS token)."""
    secrets = []
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value.strip():
            secrets.append(value.strip())
    return tuple(secrets)
