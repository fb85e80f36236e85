"""Rotation end to end: a new version of a token's Key Vault secret is used by the next run of the same
process (no restart, no new settings), its expiry replaces the old one everywhere, and revoking the old
token at the vendor afterwards fails nothing. In one deployment, and per tenant through the dispatcher and
the queue worker (Azurite's queue), where one tenant's rotation leaves the others' tokens alone."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from auditsync.cli import main
from auditsync.config import Settings
from auditsync.tables import KEEPER_TABLE
from auditsync.tables.rows import parse_time
from auditsync.tenants import FileTenantRegistry, Tenant
from auditsync.token_expiry import when
from simulators.base import SimServer
from simulators.clock import FakeClock
from simulators.identity import ManagedIdentitySim
from simulators.keeper import KeeperSim, sample_events
from simulators.keyvault import KeyVaultSim
from simulators.logs_ingestion import LogsIngestionSim
from simulators.onepassword import OnePasswordSim
from tests.fixtures.pipeline import event_rows, health, uuid_counts
from tests.fixtures.tokens import World

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def tokens_seen(keeper: KeeperSim, onepassword: OnePasswordSim, since: tuple[int, int]) -> set[str]:
    """The bearer tokens both vendors received after ``since`` (their request counts then)."""
    seen = {r.header("x-api-token") or "" for r in keeper.requests[since[0] :]}
    seen |= {r.header("authorization") or "" for r in onepassword.requests[since[1] :]}
    return {value.removeprefix("Bearer ") for value in seen}


def marks(keeper: KeeperSim, onepassword: OnePasswordSim) -> tuple[int, int]:
    return len(keeper.requests), len(onepassword.requests)


def test_the_next_run_uses_a_new_secret_version_and_revoking_the_old_token_fails_nothing(
    token_world: World,
) -> None:
    world = token_world
    now = world.clock.now()
    old_expiry, new_expiry = now + 10 * DAY, now + 375 * DAY
    world.tokens(onepassword_exp=old_expiry, keeper_exp=old_expiry, keeper=old_expiry)
    old = dict(world.token)
    settings = Settings.from_env(world.env())  # one process, configured once, never restarted
    keeper_events = world.events()
    assert not world.run(settings).failed
    assert {parse_time(r["TokenExpiresOn"]) for r in health(world.logs).values()} == {old_expiry}

    # Rotation: a new token at each vendor (the old one still valid: the overlap), stored as a new version
    # of the same secret with its own expiry.
    world.clock.advance(HOUR)
    world.tokens(onepassword_exp=new_expiry, keeper_exp=new_expiry, keeper=new_expiry)
    new = dict(world.token)
    keeper_events += world.events()
    before = marks(world.keeper, world.onepassword)
    report = world.run(settings)
    assert [(r.status, r.events) for r in report.reports] == [("ok", 10), ("ok", 10)]
    assert tokens_seen(world.keeper, world.onepassword, before) == set(new.values())
    assert {parse_time(r["TokenExpiresOn"]) for r in health(world.logs).values()} == {new_expiry}
    assert world.checkpoint("keeper/events").token_expires_on == new_expiry

    # The old tokens revoked at the vendors afterwards: nothing notices.
    world.onepassword.revoke(old["onepassword"])
    world.keeper.revoke(old["keeper"])
    world.clock.advance(HOUR)
    keeper_events += world.events()
    before = marks(world.keeper, world.onepassword)
    report = world.run(settings)
    assert [(r.status, r.events, r.error_kind) for r in report.reports] == [("ok", 10, ""), ("ok", 10, "")]
    assert tokens_seen(world.keeper, world.onepassword, before) == set(new.values())
    # Every event exactly once across the rotation.
    assert uuid_counts(event_rows(world.logs)) == Counter(
        e["uuid"] for e in world.onepassword.events("auditevents")
    )
    assert len(world.logs.rows(KEEPER_TABLE)) == len(keeper_events) == 30
    _, status = world.status()
    assert status.count(f"{when(new_expiry)} (374 days left)") == 2, status


@dataclass
class Account:
    """One tenant's vendors and DCR; its tokens are the Key Vault secrets ``<name>-keeper`` and ``<name>-op``."""

    name: str
    keeper: KeeperSim
    onepassword: OnePasswordSim
    dcr: LogsIngestionSim

    def rotate(self, vault: KeyVaultSim, expires: datetime) -> dict[str, str]:
        """New tokens at both vendors, stored as new secret versions expiring at ``expires``."""
        tokens = {
            "keeper": self.keeper.issue_token(expires_at=expires),
            "op": self.onepassword.issue_token(expires_at=expires),
        }
        for kind, token in tokens.items():
            vault.set_secret(f"{self.name}-{kind}", token, expires=expires)
        return tokens

    def tenant(self) -> Tenant:
        return Tenant(
            self.name,
            {
                "SOURCES": "keeper,onepassword",
                "KEEPER_BASE_URL": self.keeper.url,
                "KEEPER_TOKEN_SECRET": f"{self.name}-keeper",
                "ONEPASSWORD_BASE_URL": self.onepassword.url,
                "ONEPASSWORD_EVENT_TYPES": "auditevents",
                "ONEPASSWORD_TOKEN_SECRET": f"{self.name}-op",
                "LOGS_INGESTION_ENDPOINT": self.dcr.url,
                "LOGS_INGESTION_RULE_ID": self.dcr.dcr_id,
            },
        )


@pytest.fixture
def accounts(
    fake_clock: FakeClock, identity_sim: ManagedIdentitySim, keyvault_sim: KeyVaultSim
) -> Iterator[dict[str, Account]]:
    started: list[SimServer] = []
    found = {}
    for n, name in enumerate(("acme", "globex")):
        keeper = KeeperSim(token=f"kpr-{name}-unused-primary", now=fake_clock.now, seed=n).start()
        onepassword = OnePasswordSim(now=fake_clock.now, seed=n).start()
        dcr = LogsIngestionSim(identity=identity_sim).start()
        started += [keeper, onepassword, dcr]
        found[name] = Account(name, keeper, onepassword, dcr)
    yield found
    for sim in started:
        sim.stop()


def test_per_tenant_rotation_through_the_queue_worker(
    accounts: dict[str, Account],
    fake_clock: FakeClock,
    keyvault_sim: KeyVaultSim,
    logs_ingestion_sim: LogsIngestionSim,
    azurite_queue_connection_string: str,
    work_queue_name: str,
    tmp_path: Path,
) -> None:
    env = {
        "KEY_VAULT_URL": keyvault_sim.url,
        "SINK": "logs_ingestion",
        "LOGS_INGESTION_ENDPOINT": logs_ingestion_sim.url,
        "LOGS_INGESTION_RULE_ID": logs_ingestion_sim.dcr_id,
        "CHECKPOINT_STORE": "file",
        "AUDITSYNC_DATA_DIR": str(tmp_path / "data"),
        "TENANT_REGISTRY": "file",
        "WORK_QUEUE": work_queue_name,
        "WORK_QUEUE_CONNECTION_STRING": azurite_queue_connection_string,
        "RUN_TIME_BUDGET": "1m",
    }
    registry = FileTenantRegistry(tmp_path / "data" / "tenants.json")
    now = fake_clock.now()
    first, rotated = now + 20 * DAY, now + 200 * DAY
    tokens = {name: account.rotate(keyvault_sim, first) for name, account in accounts.items()}
    for account in accounts.values():
        registry.put(account.tenant())
        start = now - timedelta(hours=2)
        account.keeper.add(sample_events(15, start, now - HOUR, seed=len(account.name), identical_rate=0))

    def tick(number: int) -> dict[str, tuple[int, int]]:
        """A timer tick and the queue worker draining it; returns the vendors' request counts before it."""
        before = {name: marks(a.keeper, a.onepassword) for name, a in accounts.items()}
        for account in accounts.values():
            account.onepassword.generate("auditevents", 5)
        out = io.StringIO()
        assert main(["dispatch"], env=env, out=out) == 0, out.getvalue()
        assert main(["work", "--idle-polls", "2", "--poll-interval", "0.05"], env=env, out=out) == 0, (
            out.getvalue()
        )
        assert "worked 4 item(s)" in out.getvalue(), (number, out.getvalue())
        return before

    tick(1)
    for name, account in accounts.items():
        rows = account.dcr.rows("AuditSyncHealth_CL")
        assert sorted((r["Stream"], r["Status"]) for r in rows) == [
            ("keeper/events", "ok"),
            ("onepassword/auditevents", "ok"),
        ], name
        assert {parse_time(r["TokenExpiresOn"]) for r in account.dcr.rows("AuditSyncHealth_CL")} == {first}

    # acme rotates both tokens; globex does nothing.
    acme, globex = accounts["acme"], accounts["globex"]
    old_acme = tokens["acme"]
    new_acme = acme.rotate(keyvault_sim, rotated)
    before = tick(2)
    assert tokens_seen(acme.keeper, acme.onepassword, before["acme"]) == set(new_acme.values())
    assert tokens_seen(globex.keeper, globex.onepassword, before["globex"]) == set(tokens["globex"].values())

    # The old acme tokens revoked: the next tick fails nothing, in either tenant.
    acme.keeper.revoke(old_acme["keeper"])
    acme.onepassword.revoke(old_acme["op"])
    tick(3)
    for name, account in accounts.items():
        rows = account.dcr.rows("AuditSyncHealth_CL")
        assert len(rows) == 6 and all(r["Status"] in ("ok", "idle") for r in rows), (name, rows)
        assert {r["Tenant"] for r in rows} == {name}
        by_tick = [parse_time(r["TokenExpiresOn"]) for r in rows]
        want = [first] * 2 + [rotated] * 4 if name == "acme" else [first] * 6
        assert by_tick == want, name
        # 1Password: every event of the three ticks exactly once, into this tenant's DCR only.
        assert uuid_counts(event_rows(account.dcr)) == Counter(
            e["uuid"] for e in account.onepassword.events("auditevents")
        )
    assert logs_ingestion_sim.rows("AuditSyncHealth_CL") == [], "no poisoned item: nothing failed"

    out = io.StringIO()
    assert main(["status"], env=env, out=out) == 0
    lines = [line for line in out.getvalue().splitlines() if line.startswith(("acme ", "globex "))]
    assert len(lines) == 4
    for line in lines:
        expiry = rotated if line.startswith("acme ") else first
        assert f" {when(expiry)} (" in line and line.split()[-1] in ("ok", "idle"), line
