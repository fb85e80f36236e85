"""When an API token expires, and what to say when a vendor refuses a token past that date.

The expiry is read where it is known, without a request of its own: the Key Vault secret's ``expires``
attribute (the SDK returns it with the value) and, for 1Password, the token's own ``exp`` claim (a token
issued to expire carries it). Where both are known the earlier wins. Keeper's API does not say when a
token expires: the secret's expiry, set by whoever stores the token, is all there is (docs/tokens.md).

A vendor refusing the token (``TokenRefused``) after that date is said in one way, here: "expired on
<date>", with the command that makes a new token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auditsync.errors import AuditSyncError, TokenRefused
from auditsync.token_shapes import unverified_claims

#: ``check`` warns about a token that expires within this many days (the alerts' default too).
WARN_DAYS = 14
#: The vendor's clock and ours may differ a little: a refusal this soon before the expiry is the expiry.
CLOCK_SKEW = timedelta(minutes=5)

_NAMES = {"keeper": "Keeper", "onepassword": "1Password"}

#: What makes a new token, per source: the hint of a token refused after its expiry (and of check).
RENEW_HINTS = {
    "keeper": "A Keeper root admin creates a new token with Commander: public-api-key generate --name "
    'auditsync --integrations "SIEM:1" --expires 1y; store it as a new version of the Key Vault secret '
    "(KEEPER_TOKEN_SECRET) with the token's expiry: az keyvault secret set --vault-name <vault> --name "
    "<secret> --file <token file> --expires <when it expires, e.g. 2027-01-31T00:00:00Z>. The next run "
    "uses it; revoke the old token afterwards.",
    "onepassword": "In 1Password, open Integrations > Events Reporting and issue a new token for the "
    "integration; store it as a new version of the Key Vault secret (ONEPASSWORD_TOKEN_SECRET) or in "
    "ONEPASSWORD_TOKEN. The next run uses it; revoke the old token afterwards.",
}


@dataclass(frozen=True)
class TokenExpiry:
    """When a token expires (None: nobody said) and who said so, for messages."""

    expires_on: datetime | None = None
    #: ``the Key Vault secret's expiry`` or ``the token's exp claim``; "" when unknown.
    origin: str = ""


def claimed_expiry(token: str) -> datetime | None:
    """The token's own ``exp`` claim (a JWT's, read without verification), or None."""
    exp = unverified_claims(token).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def token_expiry(source: str, token: str, secret_expires_on: datetime | None) -> TokenExpiry:
    """The earlier of the secret's expiry and (1Password) the token's ``exp`` claim."""
    known = []
    if secret_expires_on is not None:
        known.append((secret_expires_on.astimezone(UTC), "the Key Vault secret's expiry"))
    claimed = claimed_expiry(token) if source == "onepassword" else None
    if claimed is not None:
        known.append((claimed, "the token's exp claim"))
    if not known:
        return TokenExpiry()
    expires_on, origin = min(known, key=lambda item: item[0])
    return TokenExpiry(expires_on, origin)


def days_left(expires_on: datetime, now: datetime) -> int:
    """Whole days from ``now`` to ``expires_on``; negative once it has passed."""
    return (expires_on - now) // timedelta(days=1)


def when(expires_on: datetime) -> str:
    """The expiry as every message writes it: ``2026-12-09 14:00 UTC``."""
    return expires_on.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def describe(expires_on: datetime | None, now: datetime) -> str:
    """``2026-12-09 14:00 UTC (10 days left)``, ``expired on ...``, or ``unknown``."""
    if expires_on is None:
        return "unknown"
    if expires_on <= now:
        return f"expired on {when(expires_on)}"
    days = days_left(expires_on, now)
    left = "less than a day" if days == 0 else "1 day" if days == 1 else f"{days} days"
    return f"{when(expires_on)} ({left} left)"


def refused_after_expiry(
    error: AuditSyncError, source: str, expires_on: datetime | None, now: datetime
) -> AuditSyncError:
    """``error``, unless it is the vendor refusing the token once its known expiry has passed: then the
    same refusal saying "expired on <date>", with the command that makes a new token."""
    if not isinstance(error, TokenRefused) or expires_on is None or expires_on > now + CLOCK_SKEW:
        return error
    return TokenRefused(
        f"the {_NAMES.get(source, source)} API token expired on {when(expires_on)}: {error.message}",
        hint=RENEW_HINTS.get(source, error.hint),
    )
