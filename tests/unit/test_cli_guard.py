"""The last-resort guard's line: classified, one line, redacted, with what to do."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from auditsync.cli import crash_line
from auditsync.errors import AuthError, ConfigError
from auditsync.redaction import register
from tests.fixtures.secret_scan import assert_no_secrets


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (
            lambda s: ConfigError(f"KEEPER_TOKEN: bad {s}", hint="Store it again."),
            "config error: KEEPER_TOKEN: bad *** (Store",
        ),
        (lambda s: AuthError(f"refused for {s}\nsecond line"), "auth error: refused for *** second line"),
        (
            lambda s: OSError(28, f"No space left on device: {s}"),
            "local OSError: [Errno 28] No space left on device: ***",
        ),
        (
            lambda s: RuntimeError(f"boom\n{s}\n"),
            "unexpected RuntimeError: boom ***; this is a bug in auditsync",
        ),
    ],
)
def test_crash_line_is_one_classified_redacted_line(make: Callable[[str], BaseException], says: str) -> None:
    secret = "tok/" + secrets.token_urlsafe(24)
    register(secret)
    line = crash_line("run", make(secret))
    assert line.startswith("auditsync run failed: ") and "\n" not in line
    assert says in line, line
    assert_no_secrets({"line": line}, [secret])
