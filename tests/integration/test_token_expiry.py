"""A token's expiry, known from the Key Vault secret and the 1Password token's exp claim, reaches every place
an operator looks (health row, checkpoint, ``status``, ``status --json``, ``check``), for a token that expires
in 10 days, tomorrow, and one whose date has passed; a vendor refusing a token past its expiry says
"expired on <date>" with the command that makes a new one. All through the simulators: the Key Vault stand-in
(TLS, managed identity), the 1Password and Keeper stand-ins, the Logs Ingestion stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from auditsync.backfill import plan, run_backfill
from auditsync.config import Settings
from auditsync.errors import TokenRefused
from auditsync.tables.rows import parse_time
from auditsync.token_expiry import when
from simulators.keyvault import KeyVaultSim
from tests.fixtures.pipeline import health, still
from tests.fixtures.tokens import World

DAY = timedelta(days=1)
STREAMS = ("keeper/events", "onepassword/auditevents")


def _at(row: dict[str, Any]) -> datetime | None:
    return parse_time(row.get("TokenExpiresOn"))


def _status_lines(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:] if line.startswith(STREAMS)}


# -- the Key Vault stand-in serves a secret's attributes as Azure does ------------------------------------------
def test_the_vault_returns_the_secrets_dates_with_its_value_and_refuses_none_of_them(
    keyvault_sim: KeyVaultSim,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    client = SecretClient(keyvault_sim.url, DefaultAzureCredential(), verify_challenge_resource=False)
    keyvault_sim.set_secret("plain", "v1")
    keyvault_sim.set_secret("dated", "v2", expires=now + 10 * DAY, not_before=now - DAY)
    keyvault_sim.set_secret("expired", "v3", expires=now - DAY)
    keyvault_sim.set_secret("not-yet", "v4", not_before=now + DAY)

    plain = client.get_secret("plain").properties
    assert (plain.expires_on, plain.not_before, plain.enabled) == (None, None, True)
    assert plain.created_on is not None and plain.updated_on == plain.created_on
    dated = client.get_secret("dated").properties
    assert (dated.expires_on, dated.not_before) == (now + 10 * DAY, now - DAY)
    # Azure's get works outside the nbf/exp window (the dates are the client's to act on): so does the stand-in.
    assert client.get_secret("expired").value == "v3"
    assert client.get_secret("expired").properties.expires_on == now - DAY
    assert client.get_secret("not-yet").value == "v4"

    keyvault_sim.set_attributes(
        "plain", expires=now + 30 * DAY
    )  # az keyvault secret set-attributes --expires
    assert client.get_secret("plain").properties.expires_on == now + 30 * DAY


# -- the three expiry cases --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("left", "days_text", "days"),
    [(10 * DAY + timedelta(hours=3), "10 days left", 10), (DAY + timedelta(hours=3), "1 day left", 1)],
    ids=["in-10-days", "tomorrow"],
)
def test_an_expiry_ahead_is_on_every_health_row_in_status_and_in_check(
    token_world: World, left: timedelta, days_text: str, days: int
) -> None:
    now = token_world.clock.now()
    claim, keeper_secret = now + left, now + left + timedelta(hours=2)
    # 1Password: the token's exp claim is earlier than its secret's expiry, so the claim wins; Keeper's API
    # says nothing, so its secret's expiry is all there is.
    token_world.tokens(
        onepassword_exp=claim, keeper_exp=keeper_secret, onepassword=now + 90 * DAY, keeper=keeper_secret
    )
    token_world.events()

    report = token_world.run()
    assert [(r.stream, r.status) for r in report.reports] == [
        ("keeper/events", "ok"),
        ("onepassword/auditevents", "ok"),
    ]
    rows = health(token_world.logs)
    assert {s: _at(rows[s]) for s in STREAMS} == {
        "keeper/events": keeper_secret,
        "onepassword/auditevents": claim,
    }
    assert not token_world.logs.undeclared and not token_world.logs.type_errors, "the DCR declares the column"
    assert token_world.checkpoint("onepassword/auditevents").token_expires_on == claim
    assert token_world.checkpoint("keeper/events").token_expires_on == keeper_secret

    code, out = token_world.status()
    assert code == 0
    lines = _status_lines(out)
    assert f"{when(claim)} ({days_text})" in lines["onepassword/auditevents"], out
    assert f"{when(keeper_secret)} ({days_text})" in lines["keeper/events"], out
    assert lines["keeper/events"].endswith(" ok"), "the outcome stays the last column"
    code, out = token_world.status(as_json=True)
    streams = {s["stream"]: s for s in json.loads(out)["streams"]}
    assert parse_time(streams["onepassword/auditevents"]["tokenExpiresOn"]) == claim
    assert parse_time(streams["keeper/events"]["tokenExpiresOn"]) == keeper_secret
    assert {s["tokenDaysLeft"] for s in streams.values()} == {days}

    code, out = token_world.check()
    assert code == 0, "an expiry ahead warns, it fails nothing"
    assert f"expires {when(claim)} ({days_text}), per the token's exp claim" in out
    assert f"expires {when(keeper_secret)} ({days_text}), per the Key Vault secret's expiry" in out
    assert f"  ! onepassword token expiry: expires {when(claim)} ({days_text})" in out
    assert f"  ! keeper token expiry: expires {when(keeper_secret)} ({days_text})" in out
    assert "Integrations > Events Reporting" in out and "public-api-key generate" in out


def test_a_secret_that_expires_before_the_tokens_claim_wins(token_world: World) -> None:
    now = token_world.clock.now()
    token_world.tokens(onepassword_exp=now + 200 * DAY, keeper_exp=None, onepassword=now + 40 * DAY)
    token_world.events()
    token_world.run()
    rows = health(token_world.logs)
    assert _at(rows["onepassword/auditevents"]) == now + 40 * DAY
    assert "TokenExpiresOn" not in rows["keeper/events"], "unknown: the column stays empty"
    code, out = token_world.check()
    assert code == 0
    assert "per the Key Vault secret's expiry" in out and "! onepassword token expiry" not in out


def test_a_token_refused_past_its_expiry_says_expired_on_with_the_command_that_makes_a_new_one(
    token_world: World,
) -> None:
    """Tomorrow's token works today; two days on, both vendors refuse it (401) and the run says why."""
    now = token_world.clock.now()
    expires = now + DAY + timedelta(hours=3)
    token_world.tokens(onepassword_exp=expires, keeper_exp=expires, keeper=expires)
    token_world.events()
    assert not token_world.run().failed

    token_world.clock.advance(2 * DAY)
    report = token_world.run()
    by_stream = {r.stream: r for r in report.reports}
    assert {(r.status, r.error_kind) for r in report.reports} == {("error", "auth")}
    assert by_stream["onepassword/auditevents"].message.startswith(
        f"the 1Password API token expired on {when(expires)}: "
    )
    assert by_stream["keeper/events"].message.startswith(f"the Keeper API token expired on {when(expires)}: ")
    assert "-> 401" in by_stream["keeper/events"].message
    assert "Integrations > Events Reporting" in by_stream["onepassword/auditevents"].hint
    assert (
        'public-api-key generate --name auditsync --integrations "SIEM:1"' in by_stream["keeper/events"].hint
    )
    rows = health(token_world.logs)
    assert {s: (rows[s]["ErrorKind"], _at(rows[s])) for s in STREAMS} == {
        s: ("auth", expires) for s in STREAMS
    }
    assert all("expired on" in rows[s]["Message"] and rows[s]["Hint"] for s in STREAMS)

    code, out = token_world.status()
    lines = _status_lines(out)
    assert all(f"expired on {when(expires)}" in lines[s] for s in STREAMS), out
    assert out.count("what to do: ") == 2 and "public-api-key generate" in out
    code, out = token_world.check()
    assert code == 1
    assert f"  ! keeper token expiry: expired on {when(expires)}" in out
    assert f"  x keeper API (Keeper one-event query): the Keeper API token expired on {when(expires)}" in out
    assert (
        f"  x onepassword API (1Password introspect): the 1Password API token expired on {when(expires)}"
        in out
    )


def test_a_token_whose_date_has_passed_fails_the_first_run_with_expired_on(token_world: World) -> None:
    now = token_world.clock.now()
    past = now - 3 * DAY
    token_world.tokens(onepassword_exp=past, keeper_exp=past, keeper=past)
    token_world.events()
    report = token_world.run()
    assert [r.message.split(": ")[0] for r in report.reports] == [
        f"the Keeper API token expired on {when(past)}",
        f"the 1Password API token expired on {when(past)}",
    ]
    status = json.loads(token_world.status(as_json=True)[1])["streams"]
    assert {s["stream"]: s["tokenDaysLeft"] for s in status} == {s: -3 for s in STREAMS}


def test_a_token_refused_before_its_expiry_is_not_called_expired(token_world: World) -> None:
    """Revoked (or mistyped) with its expiry still ahead: the vendor's refusal, not a wrong 'expired'."""
    now = token_world.clock.now()
    token_world.tokens(onepassword_exp=now + 10 * DAY, keeper_exp=None, keeper=now + 10 * DAY)
    token_world.events()
    token_world.run()
    token_world.onepassword.revoke(token_world.token["onepassword"])
    token_world.keeper.revoke(token_world.token["keeper"])
    token_world.clock.advance(timedelta(minutes=10))  # Keeper asks again once its window has moved
    report = token_world.run()
    assert {(r.status, r.error_kind) for r in report.reports} == {("error", "auth")}
    assert not any("expired on" in r.message for r in report.reports)
    assert all("was refused" in r.hint for r in report.reports)


def test_a_keeper_token_nobody_dated_is_pointed_out_by_check_until_its_secret_has_an_expiry(
    token_world: World,
) -> None:
    token_world.tokens(onepassword_exp=None, keeper_exp=None)
    token_world.events()
    token_world.run()
    assert all("TokenExpiresOn" not in row for row in health(token_world.logs).values())
    code, out = token_world.check()
    assert code == 0
    assert "readable, shaped like a 1Password token; expiry unknown" in out
    assert "! onepassword token expiry" not in out, "a 1Password token without exp was issued not to expire"
    assert (
        "  ! keeper token expiry: unknown: the Key Vault secret 'keeper-api-token' has no expiry date, and "
        "Keeper's API does not say when a token expires"
    ) in out
    assert "az keyvault secret set-attributes --vault-name <vault> --name keeper-api-token --expires" in out

    # Given directly, a Keeper token carries no date at all.
    code, out = token_world.check(token_world.env(KEEPER_TOKEN=token_world.token["keeper"]))
    assert "  ! keeper token expiry: unknown: KEEPER_TOKEN is given directly, without an expiry date" in out
    assert (
        "az keyvault secret set --vault-name <vault> --name keeper-api-token --file <token file> --expires"
        in out
    )

    # What check says to do: the secret gets the token's expiry; the next run shows it everywhere.
    expires = token_world.clock.now() + 300 * DAY
    token_world.vault.set_attributes("keeper-api-token", expires=expires)
    token_world.run()
    assert _at(health(token_world.logs)["keeper/events"]) == expires
    assert "! keeper token expiry" not in token_world.check()[1]


def test_status_keeps_the_last_known_expiry_when_a_run_cannot_read_the_token(token_world: World) -> None:
    now = token_world.clock.now()
    expires = now + 20 * DAY
    token_world.tokens(onepassword_exp=expires, keeper_exp=None, keeper=expires)
    token_world.events()
    token_world.run()
    token_world.vault.deny()  # the vault refuses the app: no token, so no expiry this run
    report = token_world.run()
    assert {(r.status, r.error_kind) for r in report.reports} == {("error", "auth")}
    assert all("TokenExpiresOn" not in row for row in health(token_world.logs).values()), "unknown this run"
    _, out = token_world.status()
    lines = _status_lines(out)
    assert all(f"{when(expires)} (20 days left)" in lines[s] and "error (auth)" in lines[s] for s in STREAMS)


def test_a_backfill_with_a_token_past_its_expiry_says_expired_on(token_world: World) -> None:
    """The backfill's own first request is refused (401): the same 'expired on' as a run, before any lease."""
    now = token_world.clock.now()
    past = now - 2 * DAY
    token_world.tokens(onepassword_exp=past, keeper_exp=past, keeper=past)
    token_world.events()
    settings = Settings.from_env(token_world.env())
    renew = {"Keeper": "public-api-key generate", "1Password": "Integrations > Events Reporting"}
    for stream, name in (("keeper/events", "Keeper"), ("onepassword/auditevents", "1Password")):
        backfill = plan(settings, stream, now - 2 * timedelta(hours=1), None, now)
        with pytest.raises(TokenRefused) as refused:
            run_backfill(settings, backfill, clock=still(token_world.clock))
        assert refused.value.message.startswith(f"the {name} API token expired on {when(past)}: ")
        assert renew[name] in refused.value.hint
