"""The few SecurityInsights REST calls the ``sentinel`` command makes, through azure-core.

azure-mgmt-securityinsight does not fit: its stable release (1.0.0, api-version 2021-10-01) has no
content templates, and its 2.x line is a beta built for a preview api-version. The REST API through
azure-core (already a runtime dependency) gives bearer tokens, and the project's one retry policy
(auditsync.retry, row RESOURCE_MANAGER) the retries and timeouts, with no new package; the Function App
never runs this code, so it adds nothing to it.

Every failure leaves as one of our errors with a next step: the role to grant on 401/403, what to
check on 404, how to enable Sentinel when the workspace has none. Never a token, never a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

from azure.core import PipelineClient
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, HeadersPolicy, UserAgentPolicy
from azure.core.rest import HttpRequest, HttpResponse

from auditsync import __version__
from auditsync.content.settings import SentinelSettings
from auditsync.errors import (
    AuditSyncError,
    AuthError,
    ConfigError,
    RetryableError,
    ThrottledError,
    UpstreamError,
)
from auditsync.failures import SECURITY_INSIGHTS, ExplainedCredential, credential_hint, transport_failure
from auditsync.model import Clock
from auditsync.retry import RESOURCE_MANAGER, DeadlineRetryPolicy, RetryRule

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: Newest stable api-version that models everything used here (tools/build_sentinel.py says why).
API_VERSION = "2024-03-01"
#: The role that lets the command create rules (``Microsoft Sentinel Reader`` is enough for ``status``).
CONTRIBUTOR = "Microsoft Sentinel Contributor"


class SentinelNotEnabled(ConfigError):
    """The workspace exists but Microsoft Sentinel was never enabled on it."""


class SecurityInsights:
    """One workspace's SecurityInsights provider: rule templates, alert rules, metadata."""

    def __init__(
        self,
        settings: SentinelSettings,
        credential: Any,
        *,
        rule: RetryRule = RESOURCE_MANAGER,
        retry_total: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        # A plain-http endpoint is a loopback stand-in (the settings refuse any other): let the token go there.
        self._https = {"enforce_https": False} if settings.arm_endpoint.startswith("http://") else {}
        explained = ExplainedCredential(credential, "the SecurityInsights API", SECURITY_INSIGHTS)
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            base_url=settings.arm_endpoint,
            policies=[
                HeadersPolicy({"Accept": "application/json"}),
                UserAgentPolicy(f"auditsync/{__version__}"),
                DeadlineRetryPolicy(rule, retry_total=retry_total, clock=clock),
                BearerTokenCredentialPolicy(explained, settings.scope),
            ],
        )
        self._provider = f"{settings.workspace_id}/providers/Microsoft.SecurityInsights"

    def close(self) -> None:
        self._client.close()

    # -- calls -----------------------------------------------------------------------------------------
    def rule_templates(self) -> list[JSON]:
        """Every installed content template of kind AnalyticsRule, with its ARM template."""
        return self._list(
            "contentTemplates",
            {"$filter": "(properties/contentKind eq 'AnalyticsRule')", "$expand": "properties/mainTemplate"},
            "read the rule templates",
        )

    def alert_rules(self) -> list[JSON]:
        return self._list("alertRules", {}, "read the alert rules")

    def create_rule(self, name: str, body: JSON) -> JSON:
        return self._put(
            f"alertRules/{name}", body, "create an alert rule", "Microsoft.SecurityInsights/alertRules/write"
        )

    def link_to_solution(self, name: str, body: JSON) -> JSON:
        return self._put(
            f"metadata/{name}",
            body,
            "link the rule to the solution",
            "Microsoft.SecurityInsights/metadata/write",
        )

    # -- plumbing --------------------------------------------------------------------------------------
    def _list(self, collection: str, params: dict[str, str], doing: str) -> list[JSON]:
        url: str | None = f"{self._provider}/{collection}"
        query: dict[str, str] | None = {"api-version": API_VERSION, **params}
        items: list[JSON] = []
        while url:
            body = self._send(
                HttpRequest("GET", url, params=query), doing, f"Microsoft.SecurityInsights/{collection}/read"
            )
            items += list(body.get("value") or [])
            url, query = body.get("nextLink") or None, None
            if url and not self._same_origin(url):
                raise UpstreamError(
                    f"the SecurityInsights API sent a next page on another host ({urlsplit(url).hostname}) while "
                    f"trying to {doing}",
                    hint="Check SENTINEL_ARM_ENDPOINT: it must be Azure Resource Manager itself, not a proxy.",
                )
        return items

    def _put(self, path: str, body: JSON, doing: str, action: str) -> JSON:
        request = HttpRequest(
            "PUT", f"{self._provider}/{path}", params={"api-version": API_VERSION}, json=body
        )
        return self._send(request, doing, action)

    def _same_origin(self, url: str) -> bool:
        mine, theirs = urlsplit(self.settings.arm_endpoint), urlsplit(url)
        return (mine.scheme, mine.netloc.lower()) == (theirs.scheme, theirs.netloc.lower())

    def _send(self, request: HttpRequest, doing: str, action: str) -> JSON:
        request.url = self._client.format_url(request.url)
        try:
            response = self._client.send_request(request, **self._https)
        except AuditSyncError:
            raise  # the credential's own, already explained
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise transport_failure(
                SECURITY_INSIGHTS, exc, f"the SecurityInsights API at {self.settings.arm_endpoint}"
            ) from None
        if response.status_code in (200, 201):
            try:
                parsed = response.json()
            except (ValueError, json.JSONDecodeError):
                raise UpstreamError(
                    f"the SecurityInsights API answered {doing} with a body that is not JSON"
                ) from None
            return parsed if isinstance(parsed, dict) else {}
        raise self._failure(response, doing, action)

    def _failure(self, response: HttpResponse, doing: str, action: str) -> AuditSyncError:
        """Our error for a refused call: what went wrong, in the service's words, and what to do."""
        status = response.status_code
        code, message = _error_of(response)
        said = f"{status} {code}".strip()
        workspace = (
            f"workspace {self.settings.workspace_name} (resource group {self.settings.resource_group})"
        )
        if status == 401:
            return AuthError(
                f"the SecurityInsights API did not accept the caller's token trying to {doing} ({said})",
                hint=credential_hint(CONTRIBUTOR, "workspace"),
            )
        if status == 403:
            return AuthError(
                f"the caller may not {doing} in {workspace} ({said}: {action} denied)",
                hint=f"Assign '{CONTRIBUTOR}' on the workspace (or its resource group) to the identity this "
                "command runs as ('Microsoft Sentinel Reader' is enough for `sentinel status`); new role "
                "assignments can take a few minutes to apply.",
            )
        if status == 400 and "not onboarded to microsoft sentinel" in message.lower():
            return SentinelNotEnabled(
                f"Microsoft Sentinel is not enabled on {workspace} ({said})",
                hint="Enable it (Microsoft Sentinel > Create, or redeploy with onboardSentinel=true and "
                "deploySentinelContent=true), then deploy the solution before turning rules on.",
            )
        if status == 404:
            what = {
                "SubscriptionNotFound": "the subscription",
                "ResourceGroupNotFound": "the resource group",
            }.get(code, "the workspace")
            return ConfigError(
                f"{what} was not found trying to {doing} in {workspace} ({said})",
                hint="Check SENTINEL_WORKSPACE_RESOURCE_ID (or SENTINEL_SUBSCRIPTION_ID, SENTINEL_RESOURCE_GROUP "
                "and SENTINEL_WORKSPACE_NAME) against the workspace's Properties, and that you are signed in "
                "to its tenant (`az account show`).",
            )
        if status == 429:
            return ThrottledError(
                f"the SecurityInsights API kept throttling requests to {doing} ({said})",
                hint="Wait a minute and run the command again: what was done so far stays done.",
            )
        if status >= 500:
            return RetryableError(
                f"the SecurityInsights API failed to {doing} ({said})",
                hint="Usually transient: run the command again; what was done so far stays done.",
            )
        return UpstreamError(
            f"the SecurityInsights API refused to {doing} ({said}: {message[:300]})",
            hint="This is likely a bug in auditsync or its content: report it with this line.",
        )


def _error_of(response: HttpResponse) -> tuple[str, str]:
    """``(code, message)`` of an ARM error body (``{"error": {"code", "message"}}``), empty when absent."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), " ".join(str(error.get("message") or "").split())
