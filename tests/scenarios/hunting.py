"""Hunting query scenarios: activity each query exists to surface, which it must return."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.scenarios.model import Case, scenario
from tests.scenarios.vendors import ADA, BOB, CLI, STAFF, Keeper, OnePassword, every, op_id

M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
VAULT = op_id("vault-marketing")
ITEMS = [op_id(f"item-{i}") for i in range(10)]


@scenario("hunting/CrossProductAuthenticationChanges")
def authentication_changes(now: datetime) -> tuple[Case, None]:
    op, k = OnePassword(now), Keeper(now)
    return Case(
        "Bob turns off Keeper two-factor and changes his master password; Ada disables SSO in 1Password",
        onepassword={"auditevents": [op.audit(3 * D, ADA, "disblsso", "sso")]},
        keeper=[
            k.event(2 * D, "set_two_factor_off", "bob@contoso.example", channel="totp"),
            k.event(2 * D - H, "change_master_password", "bob@contoso.example"),
        ],
    ), None


@scenario("hunting/CrossProductFailedSigninAddresses")
def failed_signin_addresses(now: datetime) -> tuple[Case, None]:
    op, k = OnePassword(now), Keeper(now)
    return Case(
        "one address fails against Keeper and against 1Password",
        onepassword={
            "signinattempts": [
                op.signin(2 * H, BOB, "credentials_failed", "password_secret_bad", ip="192.0.2.77")
            ]
        },
        keeper=[k.event(3 * H, "login_failure", "bob@contoso.example", ip="192.0.2.77", category="login")],
    ), None


@scenario("hunting/KeeperFailedSigninsByAddress")
def keeper_failed_signins(now: datetime) -> tuple[Case, None]:
    k = Keeper(now)
    return Case(
        "4 failed logins for Bob from one address, then a successful one",
        keeper=[
            *[
                k.event(
                    t,
                    "login_failure",
                    "bob@contoso.example",
                    ip="203.0.113.66",
                    category="login",
                    result_code="auth_failed",
                )
                for t in every(4, 5 * H, 10 * M)
            ],
            k.event(4 * H, "login", "bob@contoso.example", ip="203.0.113.66", category="login"),
        ],
    ), None


@scenario("hunting/KeeperNewRecipientDomains")
def keeper_new_recipient_domains(now: datetime) -> tuple[Case, None]:
    k = Keeper(now)
    return Case(
        "records shared with the same domain for weeks, today with a new one",
        keeper=[
            *[
                k.event(
                    d * D,
                    "share",
                    "bob@contoso.example",
                    category="sharing",
                    record_uid=f"Rc{d:02d}xxxxxxxxxxxxxxxxxx",
                    to_username="alice@contoso.example",
                )
                for d in range(2, 20)
            ],
            k.event(
                2 * H,
                "share",
                "bob@contoso.example",
                category="sharing",
                record_uid="RcNewxxxxxxxxxxxxxxxxx",
                to_username="pat@fabrikam.example",
            ),
        ],
    ), None


@scenario("hunting/KeeperOffHoursRecordAccess")
def keeper_off_hours(now: datetime) -> tuple[Case, None]:
    k = Keeper(now)
    usual = [
        k.event(
            d * D, "open_record", "bob@contoso.example", category="usage", record_uid="RcUsualxxxxxxxxxxxxxxx"
        )
        for d in range(2, 20)
    ]
    return Case(
        "Bob opens records at the same hour for weeks, today 7 hours off that",
        keeper=[
            *usual,
            k.event(
                7 * H,
                "open_record",
                "bob@contoso.example",
                category="usage",
                record_uid="RcOddxxxxxxxxxxxxxxxxx",
            ),
        ],
    ), None


@scenario("hunting/KeeperRareClientVersions")
def keeper_rare_clients(now: datetime) -> tuple[Case, None]:
    k = Keeper(now)
    return Case(
        "Bob uses the web vault daily for 10 days and Commander once",
        keeper=[
            *[k.event(d * D, "login", "bob@contoso.example", category="login") for d in range(1, 11)],
            k.event(
                3 * H,
                "login_console",
                "bob@contoso.example",
                category="login",
                client_version="Commander 17.1.5",
            ),
        ],
    ), None


@scenario("hunting/OnePasswordAdminActionsByActor")
def onepassword_admin_actions(now: datetime) -> tuple[Case, None]:
    op = OnePassword(now)
    return Case(
        "Ada suspends a user and updates the firewall",
        onepassword={
            "auditevents": [
                op.audit(2 * D, ADA, "suspend", "user", object_user=STAFF[0]),
                op.audit(1 * D, ADA, "updatfw", "account", object_uuid=op.account_uuid),
            ]
        },
    ), None


@scenario("hunting/OnePasswordNewAppOrDevice")
def onepassword_new_app(now: datetime) -> tuple[Case, None]:
    op = OnePassword(now)
    return Case(
        "Bob fills items from the Mac app for weeks, today from the CLI",
        onepassword={
            "itemusages": [
                *[op.item_usage(d * D, BOB, "fill", vault=VAULT, item=ITEMS[0]) for d in range(2, 20)],
                op.item_usage(3 * H, BOB, "server-fetch", vault=VAULT, item=ITEMS[1], client=CLI),
            ]
        },
    ), None


@scenario("hunting/OnePasswordSigninGeography")
def onepassword_geography(now: datetime) -> tuple[Case, None]:
    op = OnePassword(now)
    return Case(
        "Bob signs in from Switzerland and fails from Brazil",
        onepassword={
            "signinattempts": [
                op.signin(5 * D, BOB, "success", "credentials_ok"),
                op.signin(2 * D, BOB, "credentials_failed", "password_secret_bad", ip="192.0.2.5"),
            ]
        },
    ), None
