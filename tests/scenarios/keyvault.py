"""Token vault rule scenarios: Key Vault audit records (category AuditEvent) of auditsync's vault, written
by Azure into AZKVAuditLogs or AzureDiagnostics (tools/rule_scenarios.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.scenarios.model import Case, KeyVaultRecord, scenario
from tests.scenarios.vendors import COLLECTOR_PRINCIPAL

M = timedelta(minutes=1)
MALLORY = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
COLLECTOR_APP = "3c2b1a09-8f7e-4d6c-b5a4-93827160f5e4"
FUNCTION_IP = "20.50.2.10"


def _collector_reads(now: datetime) -> list[KeyVaultRecord]:
    return [
        KeyVaultRecord(
            now - t, "SecretGet", COLLECTOR_PRINCIPAL, COLLECTOR_APP, "", FUNCTION_IP, "keeper-api-token"
        )
        for t in (12 * M, 7 * M, 2 * M)
    ]


@scenario("TokenSecretReadByOtherIdentity")
def read_by_other_identity(now: datetime) -> tuple[Case, Case]:
    fires = Case(
        "a user reads the Keeper token secret in the portal",
        keyvault=[
            *_collector_reads(now),
            KeyVaultRecord(
                now - 6 * M,
                "SecretGet",
                MALLORY,
                "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
                "mallory@contoso.example",
                "203.0.113.80",
                "keeper-api-token",
                client_info="Mozilla/5.0 (Azure portal)",
            ),
        ],
    )
    quiet = Case("the collector reads its tokens every five minutes", keyvault=_collector_reads(now))
    return fires, quiet


@scenario("TokenVaultRepeatedDeniedReads")
def repeated_denied(now: datetime) -> tuple[Case, Case]:
    fires = Case(
        "an identity without access tries to read the tokens 6 times (403)",
        keyvault=[
            KeyVaultRecord(
                now - t,
                "SecretGet",
                MALLORY,
                "",
                "mallory@contoso.example",
                "203.0.113.80",
                "onepassword-api-token",
                status=403,
                result="Forbidden",
            )
            for t in (40 * M, 35 * M, 30 * M, 25 * M, 20 * M, 15 * M)
        ],
    )
    quiet = Case(
        "the collector's requests each start with an unauthenticated 401 challenge, then succeed",
        keyvault=[
            *[
                KeyVaultRecord(
                    now - t - M,
                    "SecretGet",
                    caller_ip=FUNCTION_IP,
                    secret="keeper-api-token",
                    status=401,
                    result="Unauthorized",
                )
                for t in (40 * M, 30 * M, 20 * M, 10 * M, 5 * M, 2 * M)
            ],
            *_collector_reads(now),
        ],
    )
    return fires, quiet


@scenario("TokenSecretChangedOrVersionsListed")
def changed_or_listed(now: datetime) -> tuple[Case, Case]:
    fires = Case(
        "a user sets a new version of the 1Password token",
        keyvault=[
            KeyVaultRecord(
                now - 20 * M,
                "SecretSet",
                MALLORY,
                "",
                "mallory@contoso.example",
                "203.0.113.80",
                "onepassword-api-token",
            )
        ],
    )
    quiet = Case("the collector reads its tokens", keyvault=_collector_reads(now))
    return fires, quiet
