"""What a failed call means for the operator: one place maps an Azure or HTTP failure to one of our
errors (its ErrorKind), a message naming the component that failed and a hint.

The components are the services a run depends on (COMPONENTS). Each says what its outage is for the
stream: the vendor APIs ``upstream``, Log Analytics and the work queue ``sink``, the storage tables
``checkpoint``, Key Vault and the managed identity ``credentials`` (the run could not get its
credentials; none was refused). Refusals (401/403) are ``auth`` everywhere, with the role to grant.

Vendor-specific answers (1Password's 401, Keeper's throttling 403, a refused continuation token) stay
in the sources; compare-and-swap outcomes (a stale ETag) stay in the checkpoint store: they are answers,
not failures. Messages never carry a URL's query, a body or a secret.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
)

from auditsync.errors import (
    AuditSyncError,
    AuthError,
    CheckpointError,
    ConfigError,
    CredentialsError,
    RetryableError,
    SinkError,
    ThrottledError,
)
from auditsync.redaction import Redactor


@dataclass(frozen=True)
class Component:
    """A service a run depends on, as failures name it."""

    name: str
    #: What an outage of it is for the stream (its ErrorKind).
    outage: type[AuditSyncError]
    #: The setting(s) that point at it: what to check when it cannot be reached.
    setting: str
    #: What happens after a failure, for the hint.
    then: str = "the next run retries"
    #: What to do when it refuses the caller (401/403).
    refused: str = ""
    #: A vendor's API: the source of events, not a part of Azure (throttling is ``throttled``).
    vendor: bool = False


VENDOR_API = Component(
    "vendor API",
    RetryableError,
    "the base URL setting (KEEPER_BASE_URL, ONEPASSWORD_BASE_URL)",
    "the next run resumes from the checkpoint",
    vendor=True,
)
KEEPER_API = Component(
    "Keeper Admin API",
    RetryableError,
    "KEEPER_BASE_URL",
    "the next run resumes from the checkpoint",
    vendor=True,
)
ONEPASSWORD_API = Component(
    "1Password Events API",
    RetryableError,
    "ONEPASSWORD_BASE_URL",
    "the next run resumes from the checkpoint",
    vendor=True,
)
LOGS_INGESTION = Component(
    "Logs Ingestion",
    SinkError,
    "LOGS_INGESTION_ENDPOINT",
    "the next run resends the page",
    "Grant the Function App's managed identity the 'Monitoring Metrics Publisher' role on the data "
    "collection rule; new role assignments can take up to 30 minutes to apply.",
)
DATA_COLLECTOR = Component(
    "Data Collector",
    SinkError,
    "WORKSPACE_ID / DATA_COLLECTOR_URL",
    "the next run sends the page again from the checkpoint",
)
CHECKPOINT_TABLE = Component(
    "checkpoint table",
    CheckpointError,
    "CHECKPOINT_TABLE_URL / CHECKPOINT_CONNECTION_STRING (and that the storage account's firewall lets the "
    "Function App in)",
    refused="Give the Function App's managed identity the 'Storage Table Data Contributor' role on the "
    "storage account (role assignments take a few minutes to apply) and check CHECKPOINT_TABLE_URL.",
)
TENANT_TABLE = Component(
    "tenant table",
    CheckpointError,
    "CHECKPOINT_TABLE_URL / CHECKPOINT_CONNECTION_STRING (the tenant table's account, and its firewall)",
    refused="Give the identity the 'Storage Table Data Contributor' role on the storage account (role "
    "assignments take a few minutes to apply) and check the tenant table's account URL.",
)
WORK_QUEUE = Component(
    "work queue",
    SinkError,
    "WORK_QUEUE_URL (or CHECKPOINT_TABLE_URL, whose account is used)",
    "the next tick dispatches again",
    "Give the Function App's identity 'Storage Queue Data Contributor' on the storage account and check "
    "WORK_QUEUE_URL (or CHECKPOINT_TABLE_URL, whose account is used).",
)
KEY_VAULT = Component(
    "Key Vault",
    CredentialsError,
    "KEY_VAULT_URL (and the vault's Networking rules: VNet, private endpoint, DNS)",
    refused="Grant the identity the 'Key Vault Secrets User' role on the vault (Access control (IAM)); "
    "new role assignments can take a few minutes to apply.",
)
IDENTITY = Component(
    "managed identity",
    CredentialsError,
    "the Function App's managed identity (IDENTITY_ENDPOINT), or locally 'az login'",
)
SECURITY_INSIGHTS = Component(
    "SecurityInsights API",
    RetryableError,
    "SENTINEL_ARM_ENDPOINT",
    "run the command again: what was done so far stays done",
    "Assign 'Microsoft Sentinel Contributor' on the workspace (or its resource group) to the identity the "
    "command runs as; new role assignments can take a few minutes to apply.",
)
COMPONENTS = (
    SECURITY_INSIGHTS,
    VENDOR_API,
    KEEPER_API,
    ONEPASSWORD_API,
    LOGS_INGESTION,
    DATA_COLLECTOR,
    CHECKPOINT_TABLE,
    TENANT_TABLE,
    WORK_QUEUE,
    KEY_VAULT,
    IDENTITY,
)


def redact_url(url: str) -> str:
    """Scheme, host, port and path: enough to tell which call failed, nothing that could be a secret."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


# -- transport failures -------------------------------------------------------------------------------

#: What ``network_failure`` recognises in an exception chain, first match wins, and what to do about it
#: (``{setting}``: where the component's address is set; ``{then}``: what happens next). Refused comes
#: before timed out: urllib3's NewConnectionError is a ConnectTimeoutError.
_NETWORK_FAILURES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("NameResolutionError", "gaierror", "Name or service not known", "getaddrinfo failed"),
        "DNS lookup failed",
        "Check the host name in {setting} and {dns}; {then}.",
    ),
    (
        ("SSLError", "SSLCertVerificationError", "CERTIFICATE_VERIFY_FAILED", "SSLEOFError"),
        "TLS handshake failed",
        "Check that {setting} points at the service itself (not a proxy or captive portal) and that its "
        "certificate is trusted; {then}.",
    ),
    (
        ("ConnectionRefusedError", "Connection refused"),
        "connection refused",
        "Nothing listens at that address: check {setting} and its port; {then}.",
    ),
    (
        ("ReadTimeout", "ConnectTimeout", "TimeoutError", "timed out", "Timeout"),
        "timed out",
        "The service did not answer in time; {then}. If this repeats, check the network path to it "
        "({setting}).",
    ),
    (
        (
            "ConnectionResetError",
            "Connection reset",
            "RemoteDisconnected",
            "ChunkedEncodingError",
            "IncompleteRead",
            "ProtocolError",
            "Connection aborted",
            "BrokenPipeError",
        ),
        "connection reset",
        "The connection was dropped mid-request (a proxy, firewall or the service); {then}.",
    ),
)
_OTHER_NETWORK_HINT = "Check {setting} and the outbound network; {then}."


def network_failure(exc: BaseException) -> str:
    """What went wrong on the wire (``timed out``, ``DNS lookup failed``...) for any client's exception.

    Walks the exception chain (``__cause__``, ``__context__``, azure-core's ``inner_exception``) and
    matches class names and message fragments, never returning the exception text itself: it may hold
    URLs with query strings.
    """
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 12:
        seen.append(" ".join(t.__name__ for t in type(current).__mro__) + " " + str(current)[:500])
        inner = getattr(current, "inner_exception", None)
        nxt = inner if isinstance(inner, BaseException) and inner is not current else None
        current = nxt or current.__cause__ or current.__context__
    text = " | ".join(seen)
    for needles, reason, _hint in _NETWORK_FAILURES:
        if any(needle in text for needle in needles):
            return reason
    return f"network error ({type(exc).__name__})"


def _network_hint(reason: str, component: Component) -> str:
    template = next((hint for _, known, hint in _NETWORK_FAILURES if known == reason), _OTHER_NETWORK_HINT)
    dns = (
        "the Function App's DNS (private endpoints need a private DNS zone)"
        if running_in_azure()
        else "that this machine's DNS resolves it (VPN, proxy, /etc/hosts)"
    )
    return template.format(setting=component.setting, then=component.then, dns=dns)


def transport_failure(
    component: Component, exc: BaseException, subject: str, action: str = ""
) -> AuditSyncError:
    """A call that got no usable answer: never sent, no answer, or an answer cut short.

    ``subject`` names the component and where it is (``Key Vault https://x.vault.azure.net``, ``GET
    https://host/path``); ``action`` what the run was doing, when the subject does not say.
    """
    reason = network_failure(exc)
    cut = isinstance(exc, HttpResponseError) and exc.status_code is None
    what = f"answer was cut short: {reason}" if cut else f"could not be reached: {reason}"
    return component.outage(
        f"{subject} {what}" + (f" ({action})" if action else ""), hint=_network_hint(reason, component)
    )


def gave_up(component: Component, description: str, *, throttled: bool) -> AuditSyncError:
    """An answer still retryable (5xx, 429, the caller's throttling) when the retries or the deadline ran out.

    ``description`` is the answer as ``http.describe`` gives it (``GET https://host/path -> 503: busy``).
    """
    if component.vendor and throttled:
        return ThrottledError(
            f"{description} (throttled; retries exhausted within the run's deadline)",
            hint="The vendor is rate limiting this account; the next run resumes from the checkpoint.",
        )
    if component.vendor:
        return RetryableError(
            f"{description} (retries exhausted within the run's deadline)",
            hint="The vendor service is failing; the next run resumes from the checkpoint.",
        )
    return component.outage(
        f"{component.name}: {description} (retries exhausted within the run's deadline)",
        hint=f"{component.name} did not accept the request in time; {component.then}.",
    )


# -- Azure SDK failures -------------------------------------------------------------------------------


def azure_failure(
    component: Component,
    exc: AzureError,
    subject: str,
    *,
    action: str = "",
    redactor: Redactor | None = None,
    refused: str = "",
    about: Mapping[str, str] | None = None,
) -> AuditSyncError:
    """Any Azure SDK failure of ``component`` as one of our errors.

    ``subject`` names the component and where it is; ``action`` what the run was doing (``loading the
    checkpoint of keeper/events``); ``redactor`` removes secrets the SDK's own text may quote (a
    connection string's key); ``refused`` replaces the component's hint for a 401/403 (an account key
    instead of a role); ``about`` names what the call was about, for the component's own statuses
    (Key Vault: ``secret`` and the ``setting`` naming it; Logs Ingestion: ``stream`` and ``rule``).
    """
    about = defaultdict(str, about or {})
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return credential_failure(exc, component.name, component)  # no token: the credential, not the service
    if status is None:
        return transport_failure(component, exc, subject, action)
    detail = _detail(exc, status, redactor)
    context = f"{action}; {detail}" if action else detail
    if status in (401, 403):
        if component is KEY_VAULT and "secret" in about:
            return _key_vault_refused(exc, subject, about["secret"], about.get("setting", ""))
        return AuthError(
            f"{subject} refused {action or 'the request'} ({detail})", hint=refused or component.refused
        )
    special = _SPECIAL_STATUSES.get((component.name, status))
    if special is not None:
        error, message, hint = special
        return error(f"{subject}{message.format_map(about)} ({detail})", hint=hint.format_map(about))
    return component.outage(
        f"{subject} failed ({context})",
        hint=f"A {component.name} failure; {component.then}. If it persists, check {component.setting}.",
    )


#: Statuses that mean something particular from one component: (error, message, hint).
_SPECIAL_STATUSES: dict[tuple[str, int], tuple[type[AuditSyncError], str, str]] = {
    (KEY_VAULT.name, 404): (
        ConfigError,
        ": the secret '{secret}' does not exist",
        "Create the secret '{secret}' in the vault, or set {setting} to the name you used.",
    ),
    (LOGS_INGESTION.name, 404): (
        SinkError,
        " does not know stream {stream} of DCR {rule}",
        "Check LOGS_INGESTION_RULE_ID (the DCR immutableId) and that the DCR declares {stream}; redeploy "
        "the template if the DCR is older than this version.",
    ),
    (LOGS_INGESTION.name, 413): (
        SinkError,
        " refused a request for stream {stream} of DCR {rule} as too large",
        "An event is larger than 1 MiB even after field truncation; report it to the maintainers.",
    ),
    (LOGS_INGESTION.name, 429): (
        SinkError,
        " kept throttling stream {stream} of DCR {rule} after retries",
        "The DCR is over 12,000 requests or 2 GB per minute; the next run resends the page.",
    ),
}


def _detail(exc: AzureError, status: int, redactor: Redactor | None) -> str:
    """``HTTP 403 AuthorizationFailure: <the SDK's first line>``: status, service code, reason."""
    code = service_code(exc)
    detail = f"HTTP {status} {code}".rstrip()
    # azure-core writes an error body as "(Code) message": the code is said already, "None" says nothing.
    reason = re.sub(r"^\(\w+\)\s*", "", sdk_reason(exc, redactor))
    if reason not in ("", "None", code) and not reason.startswith("Operation returned an invalid status"):
        detail = f"{detail}: {reason}"
    return detail


def service_code(exc: AzureError) -> str:
    """The service's error code (``AuthorizationFailure``, ``SecretNotFound``...): decoded by the SDK,
    or the storage services' ``x-ms-error-code`` header."""
    code = getattr(exc, "error_code", None)
    if code is None:
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = response.headers.get("x-ms-error-code") if response is not None else None
    return str(getattr(code, "value", code) or "")


def sdk_reason(exc: BaseException, redactor: Redactor | None = None) -> str:
    """The SDK's own reason, first line only, cut short, URLs reduced and known secrets removed."""
    lines = str(getattr(exc, "message", None) or exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    line = re.sub(r"https?://\S+", lambda m: redact_url(m.group(0)), line)
    # urllib3 names the path it failed on: 'Max retries exceeded with url: /path?sig=...'
    line = re.sub(r"(url: [^\s?]*)\?\S*", r"\1", line)
    return (redactor or Redactor())(line)[:300]


def _inner_code(exc: AzureError) -> str:
    error = getattr(exc, "error", None)
    inner = getattr(error, "innererror", None) or {}
    return str(inner.get("code", "") if isinstance(inner, dict) else getattr(inner, "code", "") or "")


def _key_vault_refused(exc: AzureError, vault: str, secret: str, setting: str) -> AuditSyncError:
    """Key Vault answers every refusal with 401/403 and tells them apart only in ``innererror.code``:
    role, access policy, firewall, disabled secret."""
    inner = _inner_code(exc)
    reason = inner or service_code(exc) or str(getattr(exc, "status_code", ""))
    if inner == "SecretDisabled":
        return ConfigError(
            f"{vault}: secret '{secret}' is disabled ({reason})",
            hint=f"Enable the secret's current version in the vault (Secrets > {secret} > version > Enabled), "
            f"or store a new enabled version; {setting} names the secret.",
        )
    if inner == "ForbiddenByFirewall":
        return AuthError(
            f"{vault} refused the caller's network reading '{secret}' ({reason})",
            hint="The vault's firewall does not allow this caller: add the Function App's outbound addresses or "
            "its VNet to the vault's Networking rules (or a private endpoint); locally, add your IP address.",
        )
    if inner == "AccessDenied" or "does not have secrets get permission" in str(getattr(exc, "message", "")):
        return AuthError(
            f"{vault} denied reading secret '{secret}' ({reason}: no access policy)",
            hint="The vault uses access policies: add one granting this identity 'Get' on secrets, or switch "
            "the vault to Azure RBAC and assign 'Key Vault Secrets User'.",
        )
    if getattr(exc, "status_code", None) == 401:
        return AuthError(
            f"{vault} did not accept the caller's token reading '{secret}' ({reason})",
            hint=credential_hint("Key Vault Secrets User", "vault"),
        )
    return AuthError(f"{vault} denied reading secret '{secret}' ({reason})", hint=KEY_VAULT.refused)


# -- credentials ---------------------------------------------------------------------------------------

#: Set by App Service / Azure Functions on every instance (never by ``func start`` on a workstation).
_AZURE_HOST_VARIABLES = ("WEBSITE_INSTANCE_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")
#: The role each component's refusal asks for, for the "no credential at all" hint.
_ROLES = {
    LOGS_INGESTION.name: ("Monitoring Metrics Publisher", "data collection rule"),
    CHECKPOINT_TABLE.name: ("Storage Table Data Contributor", "storage account"),
    TENANT_TABLE.name: ("Storage Table Data Contributor", "storage account"),
    WORK_QUEUE.name: ("Storage Queue Data Contributor", "storage account"),
    KEY_VAULT.name: ("Key Vault Secrets User", "vault"),
    SECURITY_INSIGHTS.name: ("Microsoft Sentinel Contributor", "workspace"),
}


def running_in_azure(env: Mapping[str, str] | None = None) -> bool:
    """True on an App Service / Functions instance (a managed identity endpoint is there)."""
    env = os.environ if env is None else env
    return any(env.get(name) for name in _AZURE_HOST_VARIABLES)


def credential_hint(role: str, scope: str, env: Mapping[str, str] | None = None) -> str:
    """How to get a working credential where this process runs, and the role it then needs."""
    if running_in_azure(env):
        return (
            "Turn on the Function App's system-assigned managed identity (Identity blade; for a user-assigned "
            f"identity set AZURE_CLIENT_ID to its client id) and give it '{role}' on the {scope}."
        )
    return (
        "Sign in with 'az login' (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a "
        f"service principal); that identity needs '{role}' on the {scope}."
    )


_UNANSWERED = re.compile(
    r"timed out|timeout|connection (?:reset|refused|aborted)|failed to establish|unreachable|max retries",
    re.IGNORECASE,
)


def credential_failure(
    exc: BaseException, service: str, component: Component | None = None
) -> AuditSyncError:
    """No token could be obtained for ``service``: the identity endpoint did not answer (``credentials``:
    nothing is wrong with the configuration), or there is no credential at all (``auth``: one line, not
    azure-identity's thirteen, with how to get one and the role ``component`` needs)."""
    text = str(exc)
    tried = re.findall(r"^\s*(\w+Credential):", text, flags=re.MULTILINE)
    where = "in Azure (managed identity)" if running_in_azure() else "on this machine"
    detail = f"tried {', '.join(dict.fromkeys(tried))}" if tried else type(exc).__name__
    if _UNANSWERED.search(text):
        return CredentialsError(
            f"no Entra token for {service}: the token endpoint {where} did not answer ({detail})",
            hint="Usually transient: the next run retries. If it persists, restart the Function App (its "
            "managed identity endpoint) or, locally, check the network and 'az login'.",
        )
    role, scope = _ROLES.get(component.name if component else "", ("the role it needs", "service"))
    return AuthError(
        f"no Azure credential {where} for {service} ({detail})", hint=credential_hint(role, scope)
    )


class ExplainedCredential:
    """A TokenCredential whose "no token at all" failure is already our one-line error.

    azure-data-tables 12.x cannot report a credential failure: its error decoder reads the headers of a
    response that does not exist and raises AttributeError instead. Raising our error from inside
    ``get_token`` (it is not an AzureError, so the SDK and the retry policy pass it through) keeps the
    message and the hint intact whatever the SDK does with its own errors.
    """

    def __init__(self, inner: Any, service: str, component: Component) -> None:
        self.inner = inner
        self.service = service
        self.component = component

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            token: AccessToken = self.inner.get_token(*scopes, **kwargs)
        except ClientAuthenticationError as exc:
            raise credential_failure(exc, self.service, self.component) from None
        return token
