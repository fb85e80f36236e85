"""Where the ``sentinel`` command works: the workspace and the Azure Resource Manager endpoint.

Read from the environment like every other setting and validated the same way: every problem at once,
each naming the setting and what to do. These are not Function App settings (the Function never runs
this command), so they live here rather than in ``auditsync.config``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from auditsync.config.parser import Parser, echo

#: Setting -> (default, meaning), for the docs and the error messages.
SENTINEL_SETTINGS: dict[str, tuple[str, str]] = {
    "SENTINEL_WORKSPACE_RESOURCE_ID": ("", "resource id of the Sentinel workspace"),
    "SENTINEL_SUBSCRIPTION_ID": ("", "the workspace's subscription (instead of the resource id)"),
    "SENTINEL_RESOURCE_GROUP": ("", "the workspace's resource group (instead of the resource id)"),
    "SENTINEL_WORKSPACE_NAME": ("", "the workspace's name (instead of the resource id)"),
    "SENTINEL_ARM_ENDPOINT": ("https://management.azure.com", "Azure Resource Manager (sovereign clouds)"),
}

#: Resource Manager of Azure's public and sovereign clouds (loopback stand-ins are accepted too).
ARM_HOSTS = (
    "management.azure.com",
    "management.usgovcloudapi.net",
    "management.chinacloudapi.cn",
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: Azure's rules for resource group and workspace names.
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")
_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9]$")
_WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/Microsoft\.OperationalInsights/workspaces/(?P<workspace>[^/]+)/?$",
    re.IGNORECASE,
)
_ID_EXAMPLE = (
    "/subscriptions/<subscription id>/resourceGroups/<group>/providers/"
    "Microsoft.OperationalInsights/workspaces/<name>"
)


@dataclass(frozen=True)
class SentinelSettings:
    subscription_id: str
    resource_group: str
    workspace_name: str
    arm_endpoint: str

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.OperationalInsights/workspaces/{self.workspace_name}"
        )

    @property
    def scope(self) -> str:
        """The token scope: Resource Manager's audience is its own origin in every Azure cloud."""
        parts = urlsplit(self.arm_endpoint)
        return f"{parts.scheme}://{parts.netloc}/.default"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SentinelSettings:
        """Validated settings, or a ConfigError listing every problem (the app's settings parser, with
        this command's catalog)."""
        parse = Parser(env, catalog=SENTINEL_SETTINGS)
        parts = {name: parse.raw(name) for name in _PART}
        resource_id = parse.raw("SENTINEL_WORKSPACE_RESOURCE_ID")
        if resource_id:
            match = _WORKSPACE_ID.match(resource_id)
            if match is None:
                parse.problems.append(
                    f"SENTINEL_WORKSPACE_RESOURCE_ID: '{echo(resource_id, 100)}' is not a Log Analytics "
                    f"workspace resource id; copy it from the workspace's Properties (Resource ID): {_ID_EXAMPLE}."
                )
            else:
                from_id = {
                    "SENTINEL_SUBSCRIPTION_ID": match["subscription"],
                    "SENTINEL_RESOURCE_GROUP": match["group"],
                    "SENTINEL_WORKSPACE_NAME": match["workspace"],
                }
                for name, given in parts.items():
                    if given and given.lower() != from_id[name].lower():
                        parse.problems.append(
                            f"{name}: '{echo(given, 100)}' disagrees with SENTINEL_WORKSPACE_RESOURCE_ID "
                            f"('{echo(from_id[name], 100)}'); set the resource id or the three parts, not both."
                        )
                parts = from_id
        else:
            for name, given in parts.items():
                if not given:
                    parse.problems.append(
                        f"{name}: missing; set it to the workspace's {_PART[name]}, or set "
                        f"SENTINEL_WORKSPACE_RESOURCE_ID to the workspace's resource id ({_ID_EXAMPLE})."
                    )
        subscription = parts["SENTINEL_SUBSCRIPTION_ID"]
        group = parts["SENTINEL_RESOURCE_GROUP"]
        workspace = parts["SENTINEL_WORKSPACE_NAME"]
        source = "SENTINEL_WORKSPACE_RESOURCE_ID" if resource_id else "SENTINEL_SUBSCRIPTION_ID"
        if subscription and not _GUID.match(subscription):
            parse.problems.append(
                f"{source}: subscription '{echo(subscription, 100)}' is not a subscription id (a GUID, as in "
                "`az account show --query id`)."
            )
        source = "SENTINEL_WORKSPACE_RESOURCE_ID" if resource_id else "SENTINEL_RESOURCE_GROUP"
        if group and (not _RESOURCE_GROUP.match(group) or group.endswith(".")):
            parse.problems.append(
                f"{source}: '{echo(group, 100)}' is not a resource group name (1-90 letters, digits, '-', '_', "
                "'.', '(' or ')', not ending in '.')."
            )
        source = "SENTINEL_WORKSPACE_RESOURCE_ID" if resource_id else "SENTINEL_WORKSPACE_NAME"
        if workspace and not _WORKSPACE.match(workspace):
            parse.problems.append(
                f"{source}: '{echo(workspace, 100)}' is not a workspace name (4-63 letters, digits or '-', "
                "starting and ending with a letter or digit)."
            )
        # Refused outside Resource Manager's hosts: the command sends it an Azure access token.
        endpoint = parse.url(
            "SENTINEL_ARM_ENDPOINT",
            hosts=ARM_HOSTS,
            allow_custom=False,
            custom_setting=False,
            origin_only=True,
        )
        parse.fail_if_problems()
        return cls(subscription, group, workspace, endpoint)


_PART = {
    "SENTINEL_SUBSCRIPTION_ID": "subscription id",
    "SENTINEL_RESOURCE_GROUP": "resource group",
    "SENTINEL_WORKSPACE_NAME": "name",
}
