"""1Password rule scenarios: for each rule, raw Events API records that must raise it and a benign stretch
of the same kinds of records that must not. Times are before ``now``; the collector delivers them within
minutes (tools/rule_scenarios.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.scenarios.model import Case, scenario
from tests.scenarios.vendors import ADA, BOB, CHIDI, SCIM, STAFF, ZOE, OnePassword, OpUser, every, op_id

S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)

OWNERS = op_id("group-owners")
ADMINISTRATORS = op_id("group-administrators")
FINANCE_ADMINS = op_id("group-finance-admins")
DESIGN = op_id("group-design")
PRIVILEGED_GROUPS = [
    {"GroupUuid": OWNERS, "GroupName": "Owners"},
    {"GroupUuid": ADMINISTRATORS, "GroupName": "Administrators"},
    {"GroupUuid": FINANCE_ADMINS, "GroupName": "Finance admins"},
]
BREAK_GLASS = op_id("vault-break-glass")
MARKETING = op_id("vault-marketing")
PRIVILEGED_VAULTS = [{"VaultUuid": BREAK_GLASS, "VaultName": "Break glass"}]
ITEMS = [op_id(f"item-{i}") for i in range(80)]


def audit(events: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    return {"auditevents": events}


@scenario("OnePasswordAdminRoleGranted")
def admin_role_granted(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada adds Bob to Administrators (listed in PG1PW) as a member",
        audit([op.audit(8 * M, ADA, "join", "gm", object_uuid=ADMINISTRATORS, aux_user=BOB, aux_info="R")]),
        watchlists={"PG1PW": PRIVILEGED_GROUPS},
    )
    quiet = Case(
        "Ada adds Bob to Design and to Finance admins (not built-in admin groups), Bob leaves Administrators",
        audit(
            [
                op.audit(9 * M, ADA, "join", "gm", object_uuid=DESIGN, aux_user=BOB, aux_info="R"),
                op.audit(8 * M, ADA, "join", "gm", object_uuid=FINANCE_ADMINS, aux_user=BOB, aux_info="A"),
                op.audit(7 * M, ADA, "leave", "gm", object_uuid=ADMINISTRATORS, aux_user=BOB),
            ]
        ),
        watchlists={"PG1PW": PRIVILEGED_GROUPS},
    )
    return fires, quiet


@scenario("OnePasswordAddedToPrivilegedGroup")
def added_to_privileged_group(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada makes Bob a manager of Finance admins (listed in PG1PW)",
        audit([op.audit(6 * M, ADA, "role", "gm", object_uuid=FINANCE_ADMINS, aux_user=BOB, aux_info="A")]),
        watchlists={"PG1PW": PRIVILEGED_GROUPS},
    )
    quiet = Case(
        "Ada adds Bob to Design (not listed), Chidi joins Finance admins himself, Ada adds Zoë to Owners",
        audit(
            [
                op.audit(9 * M, ADA, "join", "gm", object_uuid=DESIGN, aux_user=BOB, aux_info="R"),
                op.audit(
                    8 * M, CHIDI, "join", "gm", object_uuid=FINANCE_ADMINS, aux_user=CHIDI, aux_info="R"
                ),
                op.audit(7 * M, ADA, "join", "gm", object_uuid=OWNERS, aux_user=ZOE, aux_info="R"),
            ]
        ),
        watchlists={"PG1PW": PRIVILEGED_GROUPS},
    )
    return fires, quiet


@scenario("OnePasswordBruteForceAgainstUser")
def brute_force(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "12 wrong passwords for Bob from one address in 25 minutes",
        {
            "signinattempts": [
                op.signin(t, BOB, "credentials_failed", "password_secret_bad", ip="203.0.113.66")
                for t in every(12, 30 * M, 2 * M)
            ]
        },
    )
    quiet = Case(
        "Bob mistypes his password 3 times, then signs in; 5 others fail once each",
        {
            "signinattempts": [
                *[
                    op.signin(t, BOB, "credentials_failed", "password_secret_bad")
                    for t in every(3, 40 * M, M)
                ],
                op.signin(36 * M, BOB, "success", "credentials_ok"),
                *[op.signin(30 * M, u, "credentials_failed", "password_secret_bad") for u in STAFF[:5]],
            ]
        },
    )
    return fires, quiet


@scenario("OnePasswordExport")
def export(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Chidi exports 30 items of the Marketing vault as 1PUX",
        {"itemusages": [op.item_usage(10 * M, CHIDI, "export", vault=MARKETING, item=i) for i in ITEMS[:30]]},
    )
    quiet = Case(
        "a working day of fills, reveals and copies, no export",
        {
            "itemusages": [
                op.item_usage(
                    12 * M - n * 20 * S,
                    STAFF[n % 5],
                    ("fill", "reveal", "secure-copy")[n % 3],
                    vault=MARKETING,
                    item=ITEMS[n],
                )
                for n in range(20)
            ]
        },
    )
    return fires, quiet


@scenario("OnePasswordExportAfterAccountCreation")
def export_after_creation(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Zoë's account is activated 3 days ago; today she exports the Marketing vault",
        audit(
            [
                op.audit(3 * D, ADA, "activate", "user", object_user=ZOE),
                op.audit(20 * M, ZOE, "export", "vault", object_uuid=MARKETING, ip="192.0.2.44"),
            ]
        ),
    )
    quiet = Case(
        "Zoë's account is activated 3 days ago and she only fills items; Bob (activated 20 days ago) exports",
        {
            "auditevents": [op.audit(3 * D, ADA, "activate", "user", object_user=ZOE)],
            "itemusages": [
                op.item_usage(t, ZOE, "fill", vault=MARKETING, item=ITEMS[1]) for t in every(5, 50 * M, 5 * M)
            ]
            + [op.item_usage(25 * M, BOB, "export", vault=MARKETING, item=ITEMS[2])],
        },
    )
    return fires, quiet


@scenario("OnePasswordExportBeforeSuspension")
def export_before_suspension(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Chidi exports items 5 days ago; today Ada suspends Chidi",
        {
            "itemusages": [op.item_usage(5 * D, CHIDI, "export", vault=MARKETING, item=i) for i in ITEMS[:4]],
            "auditevents": [op.audit(30 * M, ADA, "suspend", "user", object_user=CHIDI)],
        },
    )
    quiet = Case(
        "Chidi exports items 5 days ago; today Ada suspends Zoë, who never exported",
        {
            "itemusages": [op.item_usage(5 * D, CHIDI, "export", vault=MARKETING, item=i) for i in ITEMS[:4]],
            "auditevents": [op.audit(30 * M, ADA, "suspend", "user", object_user=ZOE)],
        },
    )
    return fires, quiet


@scenario("OnePasswordExternalSharing")
def external_sharing(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Bob invites an address at another domain (aux_info holds the invited address)",
        audit([op.audit(20 * M, BOB, "create", "invite", aux_info="pat@fabrikam.example")]),
    )
    quiet = Case(
        "Bob invites a colleague at the company's own domain",
        audit([op.audit(20 * M, BOB, "create", "invite", aux_info="new.hire@contoso.example")]),
    )
    return fires, quiet


@scenario("OnePasswordFirewallChanged")
def firewall_changed(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada updates the sign-in firewall rules",
        audit([op.audit(7 * M, ADA, "updatfw", "account", object_uuid=op.account_uuid)]),
    )
    quiet = Case(
        "Ada renames a service account token and updates an item",
        audit([op.audit(7 * M, ADA, "trename", "satoken"), op.audit(6 * M, ADA, "update", "item")]),
    )
    return fires, quiet


@scenario("OnePasswordManualAccountCreation")
def manual_account_creation(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada invites a new user by hand",
        audit([op.audit(5 * M, ADA, "create", "invite", aux_info="new.hire@contoso.example")]),
    )
    quiet = Case(
        "the SCIM bridge's service account invites two new users",
        audit(
            [
                op.audit(6 * M, SCIM, "create", "invite", aux_info="a.new@contoso.example"),
                op.audit(5 * M, SCIM, "create", "invite", aux_info="b.new@contoso.example"),
            ]
        ),
    )
    return fires, quiet


@scenario("OnePasswordMassItemReveal")
def mass_item_reveal(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Bob reveals or copies 60 different items in 40 minutes",
        {
            "itemusages": [
                op.item_usage(
                    t, BOB, ("reveal", "secure-copy")[n % 2], vault=MARKETING, item=ITEMS[n], ip="203.0.113.9"
                )
                for n, t in enumerate(every(60, 45 * M, 40 * S))
            ]
        },
    )
    quiet = Case(
        "Bob reveals the same 5 items 40 times; 10 colleagues reveal a few each",
        {
            "itemusages": [
                op.item_usage(t, BOB, "reveal", vault=MARKETING, item=ITEMS[n % 5])
                for n, t in enumerate(every(40, 45 * M, M))
            ]
            + [op.item_usage(30 * M, u, "secure-copy", vault=MARKETING, item=ITEMS[9]) for u in STAFF[:10]]
        },
    )
    return fires, quiet


@scenario("OnePasswordMassUserSuspension")
def mass_user_suspension(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Zoë suspends 6 users within 20 minutes",
        audit(
            [
                op.audit(t, ZOE, "suspend", "user", object_user=u)
                for t, u in zip(every(6, 30 * M, 4 * M), STAFF, strict=False)
            ]
        ),
    )
    quiet = Case(
        "Ada suspends 2 leavers and reactivates 1",
        audit(
            [
                op.audit(30 * M, ADA, "suspend", "user", object_user=STAFF[0]),
                op.audit(25 * M, ADA, "suspend", "user", object_user=STAFF[1]),
                op.audit(20 * M, ADA, "reactive", "user", object_user=STAFF[1]),
            ]
        ),
    )
    return fires, quiet


@scenario("OnePasswordMfaChanged")
def mfa_changed(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Bob turns on two-factor authentication for his account",
        audit([op.audit(20 * M, BOB, "enblmfa", "user", object_user=BOB)]),
    )
    quiet = Case(
        "Bob updates an item and renames a vault",
        audit([op.audit(20 * M, BOB, "update", "item"), op.audit(19 * M, BOB, "update", "vault")]),
    )
    return fires, quiet


@scenario("OnePasswordMfaDisabled")
def mfa_disabled(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada turns off a two-factor type for every account",
        audit([op.audit(6 * M, ADA, "disblmfa", "account", object_uuid=op.account_uuid)]),
    )
    quiet = Case(
        "Bob turns on two-factor authentication and updates it",
        audit(
            [
                op.audit(8 * M, BOB, "enblmfa", "user", object_user=BOB),
                op.audit(6 * M, BOB, "updatmfa", "user", object_user=BOB),
            ]
        ),
    )
    return fires, quiet


@scenario("OnePasswordPasswordSpray")
def password_spray(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "one address fails to sign in as 7 different users in 20 minutes",
        {
            "signinattempts": [
                op.signin(t, u, "credentials_failed", "password_secret_bad", ip="192.0.2.77")
                for t, u in zip(every(7, 25 * M, 3 * M), STAFF, strict=False)
            ]
        },
    )
    quiet = Case(
        "4 users behind the office address mistype their password once each",
        {
            "signinattempts": [
                op.signin(t, u, "credentials_failed", "password_secret_bad", ip="198.51.100.10")
                for t, u in zip(every(4, 25 * M, 3 * M), STAFF, strict=False)
            ]
        },
    )
    return fires, quiet


@scenario("OnePasswordPrivilegedVaultPermissionChanged")
def privileged_vault_permission(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada grants Bob access to the Break glass vault (listed in PV1PW)",
        audit([op.audit(7 * M, ADA, "grant", "uva", object_uuid=BREAK_GLASS, aux_user=BOB, aux_info="1016")]),
        watchlists={"PV1PW": PRIVILEGED_VAULTS},
    )
    quiet = Case(
        "Ada grants Bob access to Marketing (not listed)",
        audit([op.audit(7 * M, ADA, "grant", "uva", object_uuid=MARKETING, aux_user=BOB, aux_info="1016")]),
        watchlists={"PV1PW": PRIVILEGED_VAULTS},
    )
    return fires, quiet


@scenario("OnePasswordSecretExtractionAfterVaultAccessChange")
def secret_extraction(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Chidi grants himself access to Break glass, then reveals 3 of its items",
        {
            "auditevents": [
                op.audit(
                    40 * M, CHIDI, "grant", "uva", object_uuid=BREAK_GLASS, aux_user=CHIDI, aux_info="2097150"
                )
            ],
            "itemusages": [
                op.item_usage(t, CHIDI, "reveal", vault=BREAK_GLASS, item=ITEMS[n])
                for n, t in enumerate(every(3, 30 * M, M))
            ],
        },
    )
    quiet = Case(
        "Ada grants Chidi access to Break glass and Chidi reveals its items; Chidi grants himself Marketing, uses nothing there",
        {
            "auditevents": [
                op.audit(
                    40 * M, ADA, "grant", "uva", object_uuid=BREAK_GLASS, aux_user=CHIDI, aux_info="1016"
                ),
                op.audit(
                    35 * M, CHIDI, "grant", "uva", object_uuid=MARKETING, aux_user=CHIDI, aux_info="1016"
                ),
            ],
            "itemusages": [
                op.item_usage(t, CHIDI, "reveal", vault=BREAK_GLASS, item=ITEMS[n])
                for n, t in enumerate(every(3, 30 * M, M))
            ],
        },
    )
    return fires, quiet


@scenario("OnePasswordSelfGrantedVaultAccess")
def self_granted_vault_access(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Chidi grants himself access to Break glass",
        audit(
            [
                op.audit(
                    6 * M, CHIDI, "grant", "uva", object_uuid=BREAK_GLASS, aux_user=CHIDI, aux_info="2097150"
                )
            ]
        ),
    )
    quiet = Case(
        "Ada grants Chidi access; Chidi grants the Design group access",
        audit(
            [
                op.audit(
                    7 * M, ADA, "grant", "uva", object_uuid=BREAK_GLASS, aux_user=CHIDI, aux_info="1016"
                ),
                op.audit(6 * M, CHIDI, "grant", "gva", object_uuid=MARKETING, aux_uuid=DESIGN, aux_info="32"),
            ]
        ),
    )
    return fires, quiet


@scenario("OnePasswordSelfGroupJoin")
def self_group_join(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Bob adds himself to Design",
        audit([op.audit(5 * M, BOB, "join", "gm", object_uuid=DESIGN, aux_user=BOB, aux_info="R")]),
    )
    quiet = Case(
        "Ada adds Bob to Design; Bob leaves it himself",
        audit(
            [
                op.audit(8 * M, ADA, "join", "gm", object_uuid=DESIGN, aux_user=BOB, aux_info="R"),
                op.audit(5 * M, BOB, "leave", "gm", object_uuid=DESIGN, aux_user=BOB),
            ]
        ),
    )
    return fires, quiet


@scenario("OnePasswordServiceAccountChanged")
def service_account_changed(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    sa = op_id("service-account-ci")
    fires = Case(
        "Ada creates a service account and a token for it",
        audit(
            [
                op.audit(30 * M, ADA, "create", "sa", object_uuid=sa),
                op.audit(29 * M, ADA, "create", "satoken", aux_uuid=sa),
            ]
        ),
    )
    quiet = Case(
        "Ada creates a vault and a group",
        audit([op.audit(30 * M, ADA, "create", "vault"), op.audit(29 * M, ADA, "create", "group")]),
    )
    return fires, quiet


def _history(op: OnePassword, user: OpUser, ip: str, days: int) -> list[dict[str, object]]:
    return [op.signin(d * D + 2 * H, user, "success", "credentials_ok", ip=ip) for d in range(1, days)]


@scenario("OnePasswordSigninFromNewAddress")
def signin_from_new_address(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Bob signs in daily from the office for 12 days, then from an address never seen",
        {
            "signinattempts": [
                *_history(op, BOB, "198.51.100.10", 13),
                op.signin(20 * M, BOB, "success", "credentials_ok", ip="198.51.100.200"),
            ]
        },
    )
    quiet = Case(
        "Bob signs in daily from the office for 12 days, and today again from the office",
        {
            "signinattempts": [
                *_history(op, BOB, "198.51.100.10", 13),
                op.signin(20 * M, BOB, "success", "credentials_ok", ip="198.51.100.10"),
            ]
        },
    )
    return fires, quiet


@scenario("OnePasswordSigninFromNewCountry")
def signin_from_new_country(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada signs in from Switzerland for 12 days, then from Brazil",
        {
            "signinattempts": [
                *_history(op, ADA, "198.51.100.11", 13),
                op.signin(25 * M, ADA, "success", "credentials_ok", ip="192.0.2.31"),
            ]
        },
    )
    quiet = Case(
        "Ada signs in from Switzerland for 12 days, and today from another Swiss address",
        {
            "signinattempts": [
                *_history(op, ADA, "198.51.100.11", 13),
                op.signin(25 * M, ADA, "success", "credentials_ok", ip="198.51.100.12"),
            ]
        },
    )
    return fires, quiet


@scenario("OnePasswordSsoChanged")
def sso_changed(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada changes the SSO identity provider's settings", audit([op.audit(6 * M, ADA, "chngpsso", "sso")])
    )
    quiet = Case(
        "Ada turns on two-factor authentication for herself",
        audit([op.audit(6 * M, ADA, "enblmfa", "user", object_user=ADA)]),
    )
    return fires, quiet


@scenario("OnePasswordSuccessAfterFirewallBlock")
def success_after_firewall_block(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "the firewall blocks Bob from Brazil; 10 minutes later he signs in from Germany",
        {
            "signinattempts": [
                op.signin(30 * M, BOB, "firewall_failed", "country_blocked", ip="192.0.2.50"),
                op.signin(20 * M, BOB, "success", "credentials_ok", ip="203.0.113.50"),
            ]
        },
    )
    quiet = Case(
        "Bob signs in from the office; the firewall blocks Chidi, who does not sign in",
        {
            "signinattempts": [
                op.signin(30 * M, BOB, "success", "credentials_ok"),
                op.signin(20 * M, CHIDI, "firewall_failed", "country_blocked", ip="192.0.2.50"),
            ]
        },
    )
    return fires, quiet


@scenario("OnePasswordVaultPermissionChanged")
def vault_permission_changed(now: datetime) -> tuple[Case, Case]:
    op = OnePassword(now)
    fires = Case(
        "Ada changes Bob's permissions in Marketing (PV1PW lists only Break glass)",
        audit([op.audit(6 * M, ADA, "update", "uva", object_uuid=MARKETING, aux_user=BOB, aux_info="128")]),
        watchlists={"PV1PW": PRIVILEGED_VAULTS},
    )
    quiet = Case(
        "Ada changes Bob's permissions in Break glass (privileged); Bob changes his own in Marketing",
        audit(
            [
                op.audit(7 * M, ADA, "update", "uva", object_uuid=BREAK_GLASS, aux_user=BOB, aux_info="128"),
                op.audit(6 * M, BOB, "update", "uva", object_uuid=MARKETING, aux_user=BOB, aux_info="32"),
            ]
        ),
        watchlists={"PV1PW": PRIVILEGED_VAULTS},
    )
    return fires, quiet
