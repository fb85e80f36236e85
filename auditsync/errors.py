"""One small error tree.

Errors are classified once, where they happen (settings, http, sinks, stores); the runner only asks
``error.kind`` to decide what a failure means for a stream and which health row to write. Messages
must be safe to show anywhere: they never contain tokens, keys, bodies with secrets or full URLs with
query strings.
"""

from __future__ import annotations

from typing import TextIO


class AuditSyncError(Exception):
    """Base class. ``kind`` is the health row's ErrorKind; ``hint`` tells the operator what to do."""

    kind = "upstream"

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(AuditSyncError):
    """A setting is missing or wrong, or the token lacks a feature. Carries every problem found."""

    kind = "config"

    def __init__(self, message: str, *, hint: str = "", problems: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [message])


class AuthError(AuditSyncError):
    """Credentials were refused (revoked token, missing role, wrong workspace key)."""

    kind = "auth"


class TokenRefused(AuthError):
    """The vendor refused the API token itself (401): revoked, expired or mistyped. Told apart from the
    other refusals so that a token refused after its known expiry can say so (``auditsync.token_expiry``)."""


class RetryableError(AuditSyncError):
    """A transient failure that outlived our retries; the next run tries again."""

    kind = "upstream"


class ThrottledError(RetryableError):
    """The service asked us to slow down and the run's deadline left no room to wait."""

    kind = "throttled"


class CredentialsError(RetryableError):
    """Key Vault or the managed identity could not be reached or failed: the run got no credentials
    (none was refused; that is AuthError)."""

    kind = "credentials"


class UpstreamError(AuditSyncError):
    """The vendor API answered with something we cannot use (400, malformed body, looping cursor)."""

    kind = "upstream"


class SinkError(AuditSyncError):
    """Log Analytics (or the local sink) did not accept every row of a page."""

    kind = "sink"


class CheckpointConflict(AuditSyncError):
    """Somebody else saved the stream's checkpoint since we loaded it (stale ETag)."""

    kind = "checkpoint"


class CheckpointError(AuditSyncError):
    """The checkpoint store could not be read or written."""

    kind = "checkpoint"


def print_failure(error: AuditSyncError, out: TextIO, what: str = "") -> None:
    """A failed command's lines on the terminal: ``x`` (``what``) and the error, then what to do; redacted."""
    from auditsync.redaction import redact

    print(f"x {what}{redact(str(error))}", file=out)
    if error.hint:
        print(f"    what to do: {redact(error.hint)}", file=out)
