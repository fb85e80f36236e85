"""Azure Resource Manager's SecurityInsights provider for one or more workspaces, stateful, over TLS.

What the ``sentinel`` command and a deployment of the solution touch, in the REST API's paths, field
names and error bodies (api-version 2024-03-01):

    .../workspaces/{ws}/providers/Microsoft.SecurityInsights/{collection}[/{name}]

``contentPackages``, ``contentTemplates``, ``metadata``, ``dataConnectorDefinitions`` and
``onboardingStates`` are stored as PUT (a deployment of the templates is a PUT of each resource);
``contentTemplates`` lists honour ``$filter`` (``properties/<field> eq '<value>'``, joined by ``and``)
and return ``mainTemplate`` only with ``$expand=properties/mainTemplate``. ``alertRules`` are created,
read, listed (paged with ``nextLink``), replaced and deleted, with an ``etag`` that changes on every
write (a PUT carrying a stale one gets 409). Every request needs a bearer token the managed-identity
simulator issued for this endpoint's audience. ARM's answers for a missing subscription, resource group
or workspace, a workspace without Sentinel (400 "not onboarded"), a token refused (401) and an action
not granted (403 AuthorizationFailed) are reproduced; 429 and network faults come from ``SimServer``.
"""

from __future__ import annotations

import copy
import re
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from simulators.base import Request, Response, SimServer
from simulators.identity import ManagedIdentitySim

JSON = dict[str, Any]

API_VERSIONS = ("2024-03-01",)
COLLECTIONS = (
    "contentPackages",
    "contentTemplates",
    "metadata",
    "dataConnectorDefinitions",
    "onboardingStates",
    "alertRules",
)
_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.OperationalInsights"
    r"/workspaces/(?P<ws>[^/]+)/providers/Microsoft\.SecurityInsights/(?P<collection>[^/]+)(?:/(?P<name>[^/]+))?/?$",
    re.IGNORECASE,
)
_FILTER_TERM = re.compile(
    r"^\(?\s*properties/(?P<field>\w+)\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*\)?$", re.IGNORECASE
)
#: Properties a Scheduled alert rule must have (ScheduledAlertRuleProperties' required list, 2024-03-01).
_RULE_REQUIRED = (
    "displayName",
    "enabled",
    "severity",
    "query",
    "queryFrequency",
    "queryPeriod",
    "triggerOperator",
    "triggerThreshold",
    "suppressionDuration",
    "suppressionEnabled",
)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": {"code": code, "message": message}}, dict(headers or {}))


def _etag() -> str:
    return f'"{uuid.uuid4()}"'


@dataclass
class Workspace:
    subscription: str
    resource_group: str
    name: str
    onboarded: bool = True
    #: collection (lower case) -> name (lower case) -> stored resource.
    items: dict[str, dict[str, JSON]] = field(default_factory=dict)

    def collection(self, name: str) -> dict[str, JSON]:
        return self.items.setdefault(name.lower(), {})


class SecurityInsightsSim(SimServer):
    """``add_workspace`` registers a workspace; ``deny`` withholds an action; ``rules`` shows the state."""

    def __init__(
        self, ssl_context: ssl.SSLContext, *, identity: ManagedIdentitySim, page_size: int = 50
    ) -> None:
        super().__init__(ssl_context=ssl_context)
        self.identity = identity
        self.page_size = page_size
        self.workspaces: dict[tuple[str, str, str], Workspace] = {}
        #: Actions (``Microsoft.SecurityInsights/alertRules/write``, ...) the caller is not granted.
        self.denied: set[str] = set()
        #: The object id ARM names in an AuthorizationFailed message.
        self.caller_object_id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"

    # -- set-up and inspection -------------------------------------------------------------------------
    def add_workspace(
        self, subscription: str, resource_group: str, name: str, *, sentinel: bool = True
    ) -> Workspace:
        workspace = Workspace(subscription, resource_group, name, onboarded=sentinel)
        with self.lock:
            self.workspaces[(subscription.lower(), resource_group.lower(), name.lower())] = workspace
        return workspace

    def deny(self, *actions: str) -> None:
        """Answer 403 AuthorizationFailed to requests needing any of ``actions`` (``*/write`` for all writes)."""
        with self.lock:
            self.denied.update(actions)

    def stored(self, workspace: Workspace, collection: str) -> list[JSON]:
        with self.lock:
            return [copy.deepcopy(r) for r in workspace.collection(collection).values()]

    # -- dispatch --------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        auth = request.header("authorization") or ""
        if not auth.lower().startswith("bearer "):
            return _error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {
                    "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", error="invalid_token"'
                },
            )
        if not self.identity.valid(auth[7:].strip(), self.url):
            return _error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                {
                    "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", error="invalid_token"'
                },
            )
        api_version = request.arg("api-version")
        if not api_version:
            return _error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        match = _PATH.match(request.path)
        if match is None:
            return _error(
                404, "NotFound", f"No HTTP resource was found that matches the request URI '{request.path}'."
            )
        collection = match["collection"]
        if api_version not in API_VERSIONS or collection.lower() not in {c.lower() for c in COLLECTIONS}:
            return _error(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'westeurope' and API version '{api_version}' "
                f"for type '{collection}'.",
            )
        with self.lock:
            return self._serve(request, match)

    def _serve(self, request: Request, match: re.Match[str]) -> Response:
        sub, rg, ws = match["sub"], match["rg"], match["ws"]
        if not any(w.subscription.lower() == sub.lower() for w in self.workspaces.values()):
            return _error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if not any(
            (w.subscription.lower(), w.resource_group.lower()) == (sub.lower(), rg.lower())
            for w in self.workspaces.values()
        ):
            return _error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        workspace = self.workspaces.get((sub.lower(), rg.lower(), ws.lower()))
        if workspace is None:
            return _error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.OperationalInsights/workspaces/{ws}' under resource group '{rg}' was not "
                "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        collection = next(c for c in COLLECTIONS if c.lower() == match["collection"].lower())
        name = match["name"]
        action = f"Microsoft.SecurityInsights/{collection}/" + (
            "read" if request.method == "GET" else "write"
        )
        if request.method == "DELETE":
            action = f"Microsoft.SecurityInsights/{collection}/delete"
        if action in self.denied or (request.method != "GET" and "*/write" in self.denied):
            scope = request.path.rsplit("/", 1)[0] if name else request.path
            return _error(
                403,
                "AuthorizationFailed",
                f"The client '{self.caller_object_id}' with object id '{self.caller_object_id}' does not have "
                f"authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access "
                "was recently granted, please refresh your credentials.",
            )
        onboarding = collection == "onboardingStates" and request.method == "PUT"
        if not workspace.onboarded and not onboarding:
            inner = (
                '{"error":{"code":"BadRequest","message":"Workspace \''
                + workspace.name
                + "' is not onboarded to "
                "Microsoft Sentinel. Please onboard through the portal "
                "(https://learn.microsoft.com/en-us/azure/sentinel/quickstart-onboard) or use the OnboardingStates "
                'ARM api to onboard to Sentinel."}}'
            )
            return _error(400, "BadRequest", inner)
        if name is None:
            if request.method != "GET":
                return _error(
                    405,
                    "MethodNotAllowed",
                    f"The requested resource does not support http method '{request.method}'.",
                )
            return self._list(request, workspace, collection)
        if request.method == "GET":
            return self._get(request, workspace, collection, name)
        if request.method == "PUT":
            return self._put(request, workspace, collection, name)
        if request.method == "DELETE":
            removed = workspace.collection(collection).pop(name.lower(), None)
            return Response(200 if removed else 204)
        return _error(
            405,
            "MethodNotAllowed",
            f"The requested resource does not support http method '{request.method}'.",
        )

    # -- collections -----------------------------------------------------------------------------------
    def _resource_id(self, workspace: Workspace, collection: str, name: str) -> str:
        return (
            f"/subscriptions/{workspace.subscription}/resourceGroups/{workspace.resource_group}/providers/"
            f"Microsoft.OperationalInsights/workspaces/{workspace.name}/providers/Microsoft.SecurityInsights/"
            f"{collection}/{name}"
        )

    def _shown(self, request: Request, collection: str, resource: JSON) -> JSON:
        """A stored resource as the API answers it (``mainTemplate`` only when expanded)."""
        shown = copy.deepcopy(resource)
        expand = (request.arg("$expand") or "").lower()
        if collection == "contentTemplates" and "properties/maintemplate" not in expand:
            shown.get("properties", {}).pop("mainTemplate", None)
        return shown

    def _get(self, request: Request, workspace: Workspace, collection: str, name: str) -> Response:
        resource = workspace.collection(collection).get(name.lower())
        if resource is None:
            kind = {
                "alertRules": "Alert rule",
                "contentTemplates": "Template",
                "contentPackages": "Package",
            }.get(collection, "Resource")
            return _error(404, "NotFound", f"{kind} with resource name '{name}' was not found.")
        return Response(200, self._shown(request, collection, resource))

    def _list(self, request: Request, workspace: Workspace, collection: str) -> Response:
        items = sorted(workspace.collection(collection).values(), key=lambda r: str(r["name"]).lower())
        raw_filter = request.arg("$filter")
        if raw_filter:
            terms = []
            for part in re.split(r"\s+and\s+", raw_filter.strip(), flags=re.IGNORECASE):
                term = _FILTER_TERM.match(part.strip())
                if term is None:
                    return _error(400, "BadRequest", f"Invalid $filter: '{raw_filter}'.")
                terms.append((term["field"], term["value"].replace("''", "'")))
            items = [
                r
                for r in items
                if all(str(r.get("properties", {}).get(f, "")).lower() == v.lower() for f, v in terms)
            ]
        start = int(request.arg("$skipToken") or 0)
        page = items[start : start + self.page_size]
        body: JSON = {"value": [self._shown(request, collection, r) for r in page]}
        if start + self.page_size < len(items):
            query = {k: v[0] for k, v in request.query.items() if k != "$skipToken"}
            query["$skipToken"] = str(start + self.page_size)
            body["nextLink"] = f"{self.url}{request.path}?{urlencode(query)}"
        return Response(200, body)

    def _put(self, request: Request, workspace: Workspace, collection: str, name: str) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _error(
                400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        if not isinstance(body, dict):
            return _error(
                400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        store = workspace.collection(collection)
        current = store.get(name.lower())
        problem = self._invalid(collection, body)
        if problem:
            return _error(400, "BadRequest", problem)
        if (
            collection == "alertRules"
            and current is not None
            and body.get("etag") not in (None, current["etag"])
        ):
            return _error(
                409, "Conflict", f"Newer version of the alert rule '{name}' exists. Refresh and try again."
            )
        if collection == "onboardingStates":
            workspace.onboarded = True
        resource: JSON = {
            "id": self._resource_id(workspace, collection, name),
            "name": name,
            "type": f"Microsoft.SecurityInsights/{collection}",
            "etag": _etag(),
            **{k: copy.deepcopy(v) for k, v in body.items() if k in ("kind", "properties")},
        }
        if collection == "alertRules":
            resource["properties"]["lastModifiedUtc"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        store[name.lower()] = resource
        return Response(201 if current is None else 200, self._shown(request, collection, resource))

    def _invalid(self, collection: str, body: JSON) -> str:
        """Why the service would refuse this body ("" when it would take it)."""
        props = body.get("properties")
        if collection != "onboardingStates" and not isinstance(props, dict):
            return "The 'properties' of the resource are required."
        if collection == "alertRules":
            if body.get("kind") != "Scheduled":
                return f"Alert rule kind '{body.get('kind')}' is not supported here; expected 'Scheduled'."
            assert isinstance(props, dict)
            missing = [p for p in _RULE_REQUIRED if props.get(p) in (None, "")]
            if missing:
                return f"The following required properties are missing: {', '.join(missing)}."
        if collection == "metadata":
            assert isinstance(props, dict)
            missing = [p for p in ("parentId", "kind") if not props.get(p)]
            if missing:
                return f"The following required properties are missing: {', '.join(missing)}."
        if collection == "dataConnectorDefinitions" and body.get("kind") != "Customizable":
            return f"Data connector definition kind '{body.get('kind')}' is not supported."
        if collection in ("contentTemplates", "contentPackages"):
            assert isinstance(props, dict)
            required = {
                "contentTemplates": (
                    "contentId",
                    "version",
                    "displayName",
                    "contentKind",
                    "source",
                    "packageId",
                    "packageVersion",
                    "contentProductId",
                ),
                "contentPackages": ("contentId", "contentProductId", "contentKind", "version", "displayName"),
            }[collection]
            missing = [p for p in required if props.get(p) in (None, "")]
            if missing:
                return f"The following required properties are missing: {', '.join(missing)}."
        return ""
