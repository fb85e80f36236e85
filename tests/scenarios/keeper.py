"""Keeper rule scenarios: raw Admin REST API events (names from Keeper's ARAM list) that must raise each
rule, and a benign stretch of the same kinds of events that must not."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.scenarios.model import Case, scenario
from tests.scenarios.vendors import Keeper, every

S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)

ADMIN = "admin@contoso.example"
ALICE = "alice@contoso.example"
BOB = "bob@contoso.example"
STAFF = [f"staff{i}@contoso.example" for i in range(1, 11)]
OFFICE = "198.51.100.20"
RECORDS = [f"Rk{i:03d}aQ7xZpL2mN8vB4cD1eFg"[:22] for i in range(80)]
FOLDER = "Sf9hJ3kL5mN7pQ1rS3tU5v"
APP = "Ap2bC4dE6fG8hJ0kL2mN4p"
ADMIN_ROLE = 8_934_567_123_456
SALES_ROLE = 8_934_567_123_999


def _logins(k: Keeper, user: str, ip: str, days: int) -> list[dict[str, object]]:
    return [k.event(d * D + 3 * H, "login", user, ip=ip, category="login") for d in range(1, days)]


@scenario("KeeperAdminPrivilegeGranted")
def admin_privilege_granted(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "the admin adds a managed node to a role, and Alice receives its administrative key",
        keeper=[
            k.event(9 * M, "role_managed_node_added", ADMIN, role_id=ADMIN_ROLE, node="Root"),
            k.event(8 * M, "added_admin_key", ADMIN, role_id=ADMIN_ROLE, to_username=ALICE),
        ],
    )
    quiet = Case(
        "the admin adds Bob to the Sales role and the role to a team",
        keeper=[
            k.event(9 * M, "added_to_role", ADMIN, role_id=SALES_ROLE, to_username=BOB),
            k.event(8 * M, "role_team_add", ADMIN, role_id=SALES_ROLE, team_uid="Tm1aB2cD3eF4gH5iJ6kL7m"),
        ],
    )
    return fires, quiet


@scenario("KeeperAuditLoggingDisabled")
def audit_logging_disabled(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case("the admin pauses the audit log sync", keeper=[k.event(6 * M, "audit_sync_paused", ADMIN)])
    quiet = Case(
        "the admin creates an alert and sets up a sync",
        keeper=[k.event(7 * M, "audit_alert_created", ADMIN), k.event(6 * M, "audit_sync_setup", ADMIN)],
    )
    return fires, quiet


@scenario("KeeperBreachWatchHighRisk")
def breachwatch_high_risk(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "BreachWatch flags 3 of Alice's records",
        keeper=[k.event(20 * M, "bw_record_high_risk", ALICE, record_uid=r) for r in RECORDS[:3]],
    )
    quiet = Case(
        "Alice resolves one flagged record and ignores another",
        keeper=[
            k.event(20 * M, "bw_record_resolved", ALICE, record_uid=RECORDS[0]),
            k.event(19 * M, "bw_record_ignored", ALICE, record_uid=RECORDS[1]),
        ],
    )
    return fires, quiet


@scenario("KeeperBruteForceAgainstUser")
def brute_force(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "11 failed logins for Bob in 22 minutes",
        keeper=[
            k.event(t, "login_failure", BOB, ip="203.0.113.66", category="login", result_code="auth_failed")
            for t in every(11, 30 * M, 2 * M)
        ],
    )
    quiet = Case(
        "Bob fails 3 times, then logs in",
        keeper=[
            *[
                k.event(t, "login_failure", BOB, category="login", result_code="auth_failed")
                for t in every(3, 30 * M, M)
            ],
            k.event(26 * M, "login", BOB, category="login"),
        ],
    )
    return fires, quiet


@scenario("KeeperMassRecordAccess")
def mass_record_access(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Bob opens or copies 55 different records in 45 minutes",
        keeper=[
            k.event(t, ("open_record", "copy_password")[n % 2], BOB, category="usage", record_uid=RECORDS[n])
            for n, t in enumerate(every(55, 50 * M, 50 * S))
        ],
    )
    quiet = Case(
        "Bob opens the same 6 records 45 times",
        keeper=[
            k.event(t, "open_record", BOB, category="usage", record_uid=RECORDS[n % 6])
            for n, t in enumerate(every(45, 50 * M, M))
        ],
    )
    return fires, quiet


@scenario("KeeperMasterPasswordChanged")
def master_password_changed(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Alice changes her master password", keeper=[k.event(6 * M, "change_master_password", ALICE)]
    )
    quiet = Case(
        "Alice logs in and changes her security question",
        keeper=[
            k.event(7 * M, "login", ALICE, category="login"),
            k.event(6 * M, "change_security_question", ALICE),
        ],
    )
    return fires, quiet


@scenario("KeeperMasterPasswordChangedFromNewAddress")
def master_password_from_new_address(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Alice logs in from the office for 12 days; today her master password is changed from an unseen address",
        keeper=[
            *_logins(k, ALICE, OFFICE, 13),
            k.event(20 * M, "change_master_password", ALICE, ip="192.0.2.99"),
        ],
    )
    quiet = Case(
        "Alice logs in from the office for 12 days and changes her master password from there",
        keeper=[*_logins(k, ALICE, OFFICE, 13), k.event(20 * M, "change_master_password", ALICE, ip=OFFICE)],
    )
    return fires, quiet


@scenario("KeeperPasswordSpray")
def password_spray(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "one address fails to log in as 6 users in 18 minutes",
        keeper=[
            k.event(t, "login_failure", u, ip="192.0.2.77", category="login", result_code="auth_failed")
            for t, u in zip(every(6, 25 * M, 3 * M), STAFF, strict=False)
        ],
    )
    quiet = Case(
        "4 users behind the office address fail once each",
        keeper=[
            k.event(t, "login_failure", u, ip=OFFICE, category="login", result_code="auth_failed")
            for t, u in zip(every(4, 25 * M, 3 * M), STAFF, strict=False)
        ],
    )
    return fires, quiet


@scenario("KeeperPublicApiTokenChanged")
def public_api_token_changed(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "the admin creates an Admin REST API token",
        keeper=[k.event(6 * M, "create_public_api_token_in_days", ADMIN, name="SIEM export")],
    )
    quiet = Case(
        "the admin creates a role", keeper=[k.event(6 * M, "role_created", ADMIN, role_id=SALES_ROLE)]
    )
    return fires, quiet


@scenario("KeeperRoleEnforcementChanged")
def role_enforcement_changed(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "the admin turns off required two-factor authentication for a role",
        keeper=[
            k.event(
                6 * M,
                "role_enforcement_changed",
                ADMIN,
                category="policy",
                role_id=SALES_ROLE,
                enforcement="require_two_factor",
                value="false",
            )
        ],
    )
    quiet = Case(
        "the admin creates a role and adds Bob to it",
        keeper=[
            k.event(7 * M, "role_created", ADMIN, role_id=SALES_ROLE),
            k.event(6 * M, "added_to_role", ADMIN, role_id=SALES_ROLE, to_username=BOB),
        ],
    )
    return fires, quiet


@scenario("KeeperSecretsManagerApplicationChanged")
def secrets_manager_application_changed(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "the admin adds a client device to a Secrets Manager application",
        keeper=[k.event(30 * M, "app_client_added", ADMIN, app_uid=APP, device_name="ci-runner-07")],
    )
    quiet = Case(
        "the application's client device reads secrets as usual",
        keeper=[
            k.event(
                t,
                "app_client_access",
                "ci-runner-07",
                ip="203.0.113.40",
                app_uid=APP,
                device_name="ci-runner-07",
            )
            for t in every(5, 50 * M, 10 * M)
        ],
    )
    return fires, quiet


BLOCKED_RANGES = [
    {"Range": "192.0.2.0/24", "Reason": "former hosting provider"},
    {"Range": "2001:db8:bad::/48", "Reason": "test"},
]


@scenario("KeeperSecretsManagerBlockedAddress")
def secrets_manager_blocked_address(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "a client device reads secrets from 192.0.2.14, inside a range listed in KSMBlockedRanges",
        keeper=[
            k.event(
                6 * M,
                "app_client_access",
                "ci-runner-07",
                ip="192.0.2.14",
                app_uid=APP,
                device_name="ci-runner-07",
            )
        ],
        watchlists={"KSMBlockedRanges": BLOCKED_RANGES},
    )
    quiet = Case(
        "client devices read secrets from addresses outside the listed ranges (IPv4 and IPv6)",
        keeper=[
            k.event(
                7 * M,
                "app_client_access",
                "ci-runner-07",
                ip="203.0.113.40",
                app_uid=APP,
                device_name="ci-runner-07",
            ),
            k.event(
                6 * M,
                "app_client_access",
                "ci-runner-08",
                ip="2001:db8:600d::8",
                app_uid=APP,
                device_name="ci-runner-08",
            ),
        ],
        watchlists={"KSMBlockedRanges": BLOCKED_RANGES},
    )
    return fires, quiet


@scenario("KeeperSelfAddedToSharedFolder")
def self_added_to_shared_folder(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Bob adds himself to a shared folder",
        keeper=[
            k.event(
                6 * M, "folder_add_user", BOB, category="sharing", shared_folder_uid=FOLDER, to_username=BOB
            )
        ],
    )
    quiet = Case(
        "Alice adds Bob to the shared folder",
        keeper=[
            k.event(
                6 * M, "folder_add_user", ALICE, category="sharing", shared_folder_uid=FOLDER, to_username=BOB
            )
        ],
    )
    return fires, quiet


@scenario("KeeperShareToExternalUser")
def share_to_external_user(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Bob shares a record with an address at another domain",
        keeper=[
            k.event(
                6 * M,
                "share",
                BOB,
                category="sharing",
                record_uid=RECORDS[0],
                to_username="pat@fabrikam.example",
            )
        ],
    )
    quiet = Case(
        "Bob shares a record and a folder with colleagues",
        keeper=[
            k.event(7 * M, "share", BOB, category="sharing", record_uid=RECORDS[0], to_username=ALICE),
            k.event(
                6 * M, "folder_add_user", BOB, category="sharing", shared_folder_uid=FOLDER, to_username=ALICE
            ),
        ],
    )
    return fires, quiet


@scenario("KeeperSigninFromNewCountry")
def signin_from_new_country(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Alice logs in from Switzerland for 12 days, then from Brazil",
        keeper=[
            *_logins(k, ALICE, OFFICE, 13),
            k.event(30 * M, "login", ALICE, ip="192.0.2.31", category="login"),
        ],
    )
    quiet = Case(
        "Alice logs in from Switzerland for 12 days and today from another Swiss address",
        keeper=[
            *_logins(k, ALICE, OFFICE, 13),
            k.event(30 * M, "login", ALICE, ip="198.51.100.77", category="login"),
        ],
    )
    return fires, quiet


@scenario("KeeperSsoOrIpRestrictionChanged")
def sso_or_ip_restriction_changed(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "the admin changes a role's allowed IP ranges for the tip zone",
        keeper=[
            k.event(
                6 * M,
                "role_enforcement_changed",
                ADMIN,
                category="policy",
                role_id=ADMIN_ROLE,
                enforcement="tip_zone_restrict_allowed_ip_ranges",
                value="0.0.0.0/0",
            )
        ],
    )
    quiet = Case(
        "the admin changes a role's master password length and logout timer",
        keeper=[
            k.event(
                7 * M,
                "role_enforcement_changed",
                ADMIN,
                category="policy",
                role_id=SALES_ROLE,
                enforcement="master_password_minimum_length",
                value="16",
            ),
            k.event(
                6 * M,
                "role_enforcement_changed",
                ADMIN,
                category="policy",
                role_id=SALES_ROLE,
                enforcement="logout_timer_web",
                value="60",
            ),
        ],
    )
    return fires, quiet


@scenario("KeeperSuccessAfterFailures")
def success_after_failures(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "6 failed logins for Bob from one address, then a successful one",
        keeper=[
            *[
                k.event(
                    t, "login_failure", BOB, ip="203.0.113.66", category="login", result_code="auth_failed"
                )
                for t in every(6, 30 * M, 2 * M)
            ],
            k.event(15 * M, "login", BOB, ip="203.0.113.66", category="login"),
        ],
    )
    quiet = Case(
        "Bob fails twice, then logs in",
        keeper=[
            *[
                k.event(t, "login_failure", BOB, category="login", result_code="auth_failed")
                for t in every(2, 30 * M, M)
            ],
            k.event(28 * M, "login", BOB, category="login"),
        ],
    )
    return fires, quiet


@scenario("KeeperTwoFactorChanged")
def two_factor_changed(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Bob turns on two-factor authentication",
        keeper=[k.event(6 * M, "set_two_factor_on", BOB, channel="totp")],
    )
    quiet = Case(
        "Bob logs in with his second factor", keeper=[k.event(6 * M, "login", BOB, category="login")]
    )
    return fires, quiet


@scenario("KeeperTwoFactorDisabled")
def two_factor_disabled(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Bob turns off two-factor authentication",
        keeper=[k.event(6 * M, "set_two_factor_off", BOB, channel="totp")],
    )
    quiet = Case(
        "Bob turns on two-factor authentication",
        keeper=[k.event(6 * M, "set_two_factor_on", BOB, channel="totp")],
    )
    return fires, quiet


@scenario("KeeperVaultExport")
def vault_export(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "Bob exports his vault's records", keeper=[k.event(6 * M, "exported_records", BOB, category="usage")]
    )
    quiet = Case("Bob imports records", keeper=[k.event(6 * M, "imported_records", BOB, category="usage")])
    return fires, quiet


@scenario("KeeperVaultTransferred")
def vault_transferred(now: datetime) -> tuple[Case, Case]:
    k = Keeper(now)
    fires = Case(
        "the admin transfers a leaver's vault to Alice",
        keeper=[k.event(6 * M, "vault_transferred", ADMIN, from_username=STAFF[0], to_username=ALICE)],
    )
    quiet = Case(
        "Alice accepts the account transfer policy", keeper=[k.event(6 * M, "accept_transfer", ALICE)]
    )
    return fires, quiet
