"""Which expiry a token has (the earlier of its secret's and its own claim's), how it is written, and that
only a vendor's refusal of the token itself, once that date has passed, is called "expired on"."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from auditsync.errors import AuthError, TokenRefused, UpstreamError
from auditsync.token_expiry import (
    claimed_expiry,
    days_left,
    describe,
    refused_after_expiry,
    token_expiry,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def jwt(claims: dict[str, object]) -> str:
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_the_earlier_of_secret_and_claim_wins_and_says_where_it_came_from() -> None:
    token = jwt({"exp": int((NOW + 10 * DAY).timestamp())})
    assert token_expiry("onepassword", token, NOW + 30 * DAY).expires_on == NOW + 10 * DAY
    assert token_expiry("onepassword", token, NOW + 30 * DAY).origin == "the token's exp claim"
    earlier = token_expiry("onepassword", token, NOW + 5 * DAY)
    assert (earlier.expires_on, earlier.origin) == (NOW + 5 * DAY, "the Key Vault secret's expiry")
    assert token_expiry("onepassword", token, None).expires_on == NOW + 10 * DAY
    assert token_expiry("onepassword", jwt({}), None).expires_on is None


def test_a_keeper_token_has_only_its_secrets_date() -> None:
    # Even a Keeper token that happened to look like a JWT: Keeper documents no claims.
    token = jwt({"exp": int((NOW + DAY).timestamp())})
    assert token_expiry("keeper", token, None).expires_on is None
    assert token_expiry("keeper", "kpr-plain-token-0123456789", NOW + 7 * DAY).expires_on == NOW + 7 * DAY


@pytest.mark.parametrize("exp", ["1796000000", True, None, 10**20, [1]])
def test_an_exp_claim_that_is_not_a_time_is_ignored(exp: object) -> None:
    assert claimed_expiry(jwt({"exp": exp})) is None


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b", "a.!!!.c", "eyJhbGciOiJFUzI1NiJ9.WzFd.c2ln"])
def test_what_is_not_a_jwt_has_no_claim(token: str) -> None:
    assert claimed_expiry(token) is None


def test_days_left_and_the_way_a_date_is_written() -> None:
    assert days_left(NOW + 10 * DAY + timedelta(hours=3), NOW) == 10
    assert days_left(NOW - timedelta(hours=1), NOW) == -1
    assert describe(NOW + 10 * DAY, NOW) == "2026-12-09 12:00 UTC (10 days left)"
    assert describe(NOW + DAY + timedelta(minutes=1), NOW) == "2026-11-30 12:01 UTC (1 day left)"
    assert describe(NOW + timedelta(hours=5), NOW) == "2026-11-29 17:00 UTC (less than a day left)"
    assert describe(NOW - 2 * DAY, NOW) == "expired on 2026-11-27 12:00 UTC"
    assert describe(None, NOW) == "unknown"


def test_only_the_vendors_refusal_past_the_date_is_called_expired() -> None:
    refused = TokenRefused("GET https://keepersecurity.com/api/rest/public/events -> 401", hint="generic")
    expired = refused_after_expiry(refused, "keeper", NOW - DAY, NOW)
    assert isinstance(expired, TokenRefused) and expired.kind == "auth"
    assert str(expired) == (
        "the Keeper API token expired on 2026-11-28 12:00 UTC: "
        "GET https://keepersecurity.com/api/rest/public/events -> 401"
    )
    assert "public-api-key generate" in expired.hint
    # A few minutes early: the vendor's clock runs ahead of ours.
    assert refused_after_expiry(refused, "keeper", NOW + timedelta(minutes=3), NOW) is not refused
    # Not yet expired, or no date: the vendor's refusal as it was (revoked, mistyped).
    assert refused_after_expiry(refused, "keeper", NOW + DAY, NOW) is refused
    assert refused_after_expiry(refused, "keeper", None, NOW) is refused
    # Another refusal (a role missing on the DCR, Key Vault denied) or another failure: never "expired".
    for other in (AuthError("403 from the DCR"), UpstreamError("500")):
        assert refused_after_expiry(other, "onepassword", NOW - DAY, NOW) is other
