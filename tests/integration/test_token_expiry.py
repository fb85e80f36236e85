"""A token's expiry, known from the Key Vault secret and the 1Password token's exp claim, reaches every place
an operator looks (health row, checkpoint, ``status``, ``status --json``, ``check``), for a token that expires
in 10 days, tomorrow, and one whose date has passed; a vendor refusing a token past its expiry says
"expired on <date>" with the command that makes a new one. All through the simulators: the Key Vault stand-in
(TLS, managed identity), the 1Password and Keeper stand-ins, the Logs Ingestion stand-in."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from auditsync.checkpoints.file import FileCheckpointStore
from auditsync.cli import cmd_check, cmd_status
from auditsync.config import Settings
from auditsync.runner import CycleReport, run_cycle
from auditsync.tables.rows import parse_time
from auditsync.token_expiry import when
from simulators.clock import FakeClock
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import health, logs_ingestion_sink_env, pipeline_env, still

DAY = timedelta(days=1)
STREAMS = ("keeper/events", "onepassword/auditevents")


@dataclass
class World:
    """Keeper and 1Password accounts whose tokens are Key Vault secrets, a DCR, file checkpoints; one clock."""

    clock: FakeClock
    vault: KeyVaultSim
    onepassword: OnePasswordSim
    keeper: KeeperSim
    logs: LogsIngestionSim
    data_dir: Path
    #: The tokens stored last, by source.
    token: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        vendors = {
            "KEY_VAULT_URL": self.vault.url,
            "KEEPER_BASE_URL": self.keeper.url,
            "ONEPASSWORD_BASE_URL": self.onepassword.url,
            "ONEPASSWORD_EVENT_TYPES": "auditevents",
        }
        return pipeline_env(
            self.data_dir, "keeper,onepassword", vendors, logs_ingestion_sink_env(self.logs), **overrides
        )

    def tokens(
        self, *, onepassword_exp: datetime | None, keeper_exp: datetime | None, **secret_exp: Any
    ) -> None:
        """New tokens at both vendors, stored as new secret versions (``secret_exp``: each secret's expiry)."""
        self.token = {
            "onepassword": self.onepassword.issue_token(expires_at=onepassword_exp),
            "keeper": self.keeper.issue_token(expires_at=keeper_exp),
        }
        for source, token in self.token.items():
            self.vault.set_secret(f"{source}-api-token", token, expires=secret_exp.get(source))

    def events(self) -> None:
        now = self.clock.now()
        self.onepassword.generate("auditevents", 10)
        self.keeper.add(sample_events(10, now - timedelta(hours=3), now - timedelta(hours=1)))

    def run(self, env: dict[str, str] | None = None) -> CycleReport:
        return run_cycle(Settings.from_env(env or self.env()), clock=still(self.clock))

    def checkpoint(self, stream: str) -> Any:
        return FileCheckpointStore(self.data_dir / "checkpoints").load(stream)

    def status(self, *, as_json: bool = False) -> tuple[int, str]:
        """``auditsync status`` on this world's clock, with no token at hand (status needs none)."""
        env = {k: v for k, v in self.env().items() if k != "KEY_VAULT_URL"}
        out = io.StringIO()
        settings = Settings.from_env(env, require_tokens=False)
        return cmd_status(settings, out, as_json=as_json, clock=still(self.clock)), out.getvalue()

    def check(self, env: dict[str, str] | None = None) -> tuple[int, str]:
        out = io.StringIO()
        code = cmd_check(Settings.from_env(env or self.env()), out, clock=still(self.clock))
        return code, out.getvalue()


@pytest.fixture
def world(
    fake_clock: FakeClock,
    keyvault_sim: KeyVaultSim,
    onepassword_sim: OnePasswordSim,
    logs_ingestion_sim: LogsIngestionSim,
    tmp_path: Path,
) -> Iterator[World]:
    with KeeperSim(token="kpr-unused-primary-token", now=fake_clock.now) as keeper:
        yield World(fake_clock, keyvault_sim, onepassword_sim, keeper, logs_ingestion_sim, tmp_path / "data")


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
    world: World, left: timedelta, days_text: str, days: int
) -> None:
    now = world.clock.now()
    claim, keeper_secret = now + left, now + left + timedelta(hours=2)
    # 1Password: the token's exp claim is earlier than its secret's expiry, so the claim wins; Keeper's API
    # says nothing, so its secret's expiry is all there is.
    world.tokens(
        onepassword_exp=claim, keeper_exp=keeper_secret, onepassword=now + 90 * DAY, keeper=keeper_secret
    )
    world.events()

    report = world.run()
    assert [(r.stream, r.status) for r in report.reports] == [
        ("keeper/events", "ok"),
        ("onepassword/auditevents", "ok"),
    ]
    rows = health(world.logs)
    assert {s: _at(rows[s]) for s in STREAMS} == {
        "keeper/events": keeper_secret,
        "onepassword/auditevents": claim,
    }
    assert world.checkpoint("onepassword/auditevents").token_expires_on == claim
    assert world.checkpoint("keeper/events").token_expires_on == keeper_secret

    code, out = world.status()
    assert code == 0
    lines = _status_lines(out)
    assert f"{when(claim)} ({days_text})" in lines["onepassword/auditevents"], out
    assert f"{when(keeper_secret)} ({days_text})" in lines["keeper/events"], out
    assert lines["keeper/events"].endswith(" ok"), "the outcome stays the last column"
    code, out = world.status(as_json=True)
    streams = {s["stream"]: s for s in json.loads(out)["streams"]}
    assert parse_time(streams["onepassword/auditevents"]["tokenExpiresOn"]) == claim
    assert parse_time(streams["keeper/events"]["tokenExpiresOn"]) == keeper_secret
    assert {s["tokenDaysLeft"] for s in streams.values()} == {days}

    code, out = world.check()
    assert code == 0, "an expiry ahead warns, it fails nothing"
    assert f"expires {when(claim)} ({days_text}), per the token's exp claim" in out
    assert f"expires {when(keeper_secret)} ({days_text}), per the Key Vault secret's expiry" in out
    assert f"  ! onepassword token expiry: expires {when(claim)} ({days_text})" in out
    assert f"  ! keeper token expiry: expires {when(keeper_secret)} ({days_text})" in out
    assert "Integrations > Events Reporting" in out and "public-api-key generate" in out


def test_a_secret_that_expires_before_the_tokens_claim_wins(world: World) -> None:
    now = world.clock.now()
    world.tokens(onepassword_exp=now + 200 * DAY, keeper_exp=None, onepassword=now + 40 * DAY)
    world.events()
    world.run()
    rows = health(world.logs)
    assert _at(rows["onepassword/auditevents"]) == now + 40 * DAY
    assert "TokenExpiresOn" not in rows["keeper/events"], "unknown: the column stays empty"
    code, out = world.check()
    assert code == 0
    assert "per the Key Vault secret's expiry" in out and "! onepassword token expiry" not in out


def test_a_token_refused_past_its_expiry_says_expired_on_with_the_command_that_makes_a_new_one(
    world: World,
) -> None:
    """Tomorrow's token works today; two days on, both vendors refuse it (401) and the run says why."""
    now = world.clock.now()
    expires = now + DAY + timedelta(hours=3)
    world.tokens(onepassword_exp=expires, keeper_exp=expires, keeper=expires)
    world.events()
    assert not world.run().failed

    world.clock.advance(2 * DAY)
    report = world.run()
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
    rows = health(world.logs)
    assert {s: (rows[s]["ErrorKind"], _at(rows[s])) for s in STREAMS} == {
        s: ("auth", expires) for s in STREAMS
    }
    assert all("expired on" in rows[s]["Message"] and rows[s]["Hint"] for s in STREAMS)

    code, out = world.status()
    lines = _status_lines(out)
    assert all(f"expired on {when(expires)}" in lines[s] for s in STREAMS), out
    assert out.count("what to do: ") == 2 and "public-api-key generate" in out
    code, out = world.check()
    assert code == 1
    assert f"  ! keeper token expiry: expired on {when(expires)}" in out
    assert f"  x keeper API (Keeper one-event query): the Keeper API token expired on {when(expires)}" in out
    assert (
        f"  x onepassword API (1Password introspect): the 1Password API token expired on {when(expires)}"
        in out
    )


def test_a_token_whose_date_has_passed_fails_the_first_run_with_expired_on(world: World) -> None:
    now = world.clock.now()
    past = now - 3 * DAY
    world.tokens(onepassword_exp=past, keeper_exp=past, keeper=past)
    world.events()
    report = world.run()
    assert [r.message.split(": ")[0] for r in report.reports] == [
        f"the Keeper API token expired on {when(past)}",
        f"the 1Password API token expired on {when(past)}",
    ]
    status = json.loads(world.status(as_json=True)[1])["streams"]
    assert {s["stream"]: s["tokenDaysLeft"] for s in status} == {s: -3 for s in STREAMS}


def test_a_token_refused_before_its_expiry_is_not_called_expired(world: World) -> None:
    """Revoked (or mistyped) with its expiry still ahead: the vendor's refusal, not a wrong 'expired'."""
    now = world.clock.now()
    world.tokens(onepassword_exp=now + 10 * DAY, keeper_exp=None, keeper=now + 10 * DAY)
    world.events()
    world.run()
    world.onepassword.revoke(world.token["onepassword"])
    world.keeper.revoke(world.token["keeper"])
    world.clock.advance(timedelta(minutes=10))  # Keeper asks again once its window has moved
    report = world.run()
    assert {(r.status, r.error_kind) for r in report.reports} == {("error", "auth")}
    assert not any("expired on" in r.message for r in report.reports)
    assert all("was refused" in r.hint for r in report.reports)


def test_a_keeper_token_nobody_dated_is_pointed_out_by_check_until_its_secret_has_an_expiry(
    world: World,
) -> None:
    world.tokens(onepassword_exp=None, keeper_exp=None)
    world.events()
    world.run()
    assert all("TokenExpiresOn" not in row for row in health(world.logs).values())
    code, out = world.check()
    assert code == 0
    assert "readable, shaped like a 1Password token; expiry unknown" in out
    assert "! onepassword token expiry" not in out, "a 1Password token without exp was issued not to expire"
    assert (
        "  ! keeper token expiry: unknown: the Key Vault secret 'keeper-api-token' has no expiry date, and "
        "Keeper's API does not say when a token expires"
    ) in out
    assert "az keyvault secret set-attributes --vault-name <vault> --name keeper-api-token --expires" in out

    # Given directly, a Keeper token carries no date at all.
    code, out = world.check(world.env(KEEPER_TOKEN=world.token["keeper"]))
    assert "  ! keeper token expiry: unknown: KEEPER_TOKEN is given directly, without an expiry date" in out
    assert (
        "az keyvault secret set --vault-name <vault> --name keeper-api-token --file <token file> --expires"
        in out
    )

    # What check says to do: the secret gets the token's expiry; the next run shows it everywhere.
    expires = world.clock.now() + 300 * DAY
    world.vault.set_attributes("keeper-api-token", expires=expires)
    world.run()
    assert _at(health(world.logs)["keeper/events"]) == expires
    assert "! keeper token expiry" not in world.check()[1]
