"""A small evaluator of ARM template expressions, so tests can see the values a deployment would set.

No ARM engine runs offline. This one knows the functions infra/azuredeploy.json uses (an unknown
function is an error, never a silent guess) and answers ``reference()``/``listKeys()`` with realistic
stand-ins for the runtime properties of each resource type.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import isodate

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "rg-auditsync"
TENANT = "00000000-0000-0000-0000-0000000000aa"
WORKSPACE_CUSTOMER_ID = "4d2c7f3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f"
WORKSPACE_KEY = "c2hhcmVkLWtleS1ub3QtYS1yZWFsLW9uZQ=="
REGION = "westeurope"

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[().,\[\]]))"
)


def is_expression(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("[")
        and value.endswith("]")
        and not value.startswith("[[")
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot tokenize ARM expression at {pos}: {text!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _resource_type(resource_id: str) -> tuple[str, str]:
    """Type and last name of a resource id like /subscriptions/../providers/A.B/c/name."""
    provider = resource_id.split("/providers/")[-1].split("/")
    return "/".join([provider[0], *provider[1::2]]), provider[-1]


def _runtime(resource_id: str) -> dict[str, Any]:
    kind, name = _resource_type(resource_id)
    stand_ins: dict[str, dict[str, Any]] = {
        "Microsoft.KeyVault/vaults": {"vaultUri": f"https://{name}.vault.azure.net/"},
        "Microsoft.Insights/dataCollectionRules": {
            "immutableId": "dcr-" + hashlib.md5(name.encode()).hexdigest(),
            "endpoints": {"logsIngestion": f"https://{name}-x1y2.{REGION}-1.ingest.monitor.azure.com"},
        },
        "Microsoft.Storage/storageAccounts": {
            "primaryEndpoints": {
                "blob": f"https://{name}.blob.core.windows.net/",
                "table": f"https://{name}.table.core.windows.net/",
            }
        },
        "Microsoft.Insights/components": {
            "ConnectionString": "InstrumentationKey=11111111-2222-3333-4444-555555555555;"
            f"IngestionEndpoint=https://{REGION}-5.in.applicationinsights.azure.com/"
        },
        "Microsoft.OperationalInsights/workspaces": {"customerId": WORKSPACE_CUSTOMER_ID},
        "Microsoft.Web/sites": {"defaultHostName": f"{name}.azurewebsites.net"},
    }
    if kind not in stand_ins:
        raise KeyError(f"no runtime stand-in for reference() of {kind}")
    return stand_ins[kind]


def _arm_time(value: str | datetime) -> datetime:
    """A time as ARM's date functions take it: utcNow()'s yyyyMMddTHHmmssZ or ISO 8601."""
    if isinstance(value, datetime):
        return value
    for form in ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, form).replace(tzinfo=UTC)
        except ValueError:
            continue
    return datetime.fromisoformat(value)


@dataclass
class ArmContext:
    """Parameter values and variables of one template; evaluates its expressions."""

    template: Mapping[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {
            "parameters": lambda n: self.parameters[n],
            "variables": lambda n: self.evaluate(self.template["variables"][n]),
            "if": lambda c, a, b: a if c else b,
            "equals": lambda a, b: a == b,
            "not": lambda a: not a,
            "and": lambda *a: all(a),
            "or": lambda *a: any(a),
            "empty": lambda a: not a,
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: str(a[int(m.group(1))]), f),
            "concat": lambda *a: "".join(map(str, a)),
            "split": lambda s, d: s.split(d),
            "last": lambda a: a[-1],
            "take": lambda a, n: a[:n],
            "toLower": lambda s: s.lower(),
            "replace": lambda s, a, b: s.replace(a, b),
            "mul": lambda a, b: a * b,
            "length": len,
            "createArray": lambda *a: list(a),
            "string": lambda a: a if isinstance(a, str) else json.dumps(a, separators=(",", ":")),
            "true": lambda: True,
            "false": lambda: False,
            "uniqueString": lambda *a: hashlib.sha256("|".join(a).encode()).hexdigest()[:13],
            "guid": lambda *a: str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(a))),
            "resourceGroup": lambda: {
                "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}",
                "name": RESOURCE_GROUP,
                "location": REGION,
            },
            "subscription": lambda: {"subscriptionId": SUBSCRIPTION, "tenantId": TENANT},
            "resourceId": self._resource_id,
            "subscriptionResourceId": lambda t, *n: (
                f"/subscriptions/{SUBSCRIPTION}/providers/{t}/{'/'.join(n)}"
            ),
            "extensionResourceId": lambda scope, t, *n: f"{scope}/providers/{t}/{'/'.join(n)}",
            "reference": self._reference,
            "listKeys": lambda rid, api: {"primarySharedKey": WORKSPACE_KEY},
            "createObject": lambda *kv: dict(zip(kv[::2], kv[1::2], strict=True)),
            # ARM's date functions: utcNow() as yyyyMMddTHHmmssZ, dateTimeAdd with an ISO 8601 duration,
            # dateTimeToEpoch in whole seconds.
            "utcNow": lambda: datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "dateTimeAdd": lambda base, duration: _arm_time(base) + isodate.parse_duration(duration),
            "dateTimeToEpoch": lambda when: int(_arm_time(when).timestamp()),
        }
        values: dict[str, Any] = {}
        for name, spec in self.template.get("parameters", {}).items():
            if name in self.parameters:
                values[name] = self.parameters[name]
            elif "defaultValue" in spec:
                values[name] = self.evaluate(spec["defaultValue"])
            else:
                raise KeyError(f"parameter {name} has no default and no value")
        self.parameters = values

    def _resource_id(self, *args: str) -> str:
        index = next(i for i, a in enumerate(args) if "/" in a and "." in a.split("/")[0])
        scope = [SUBSCRIPTION, RESOURCE_GROUP]
        scope[2 - index :] = args[:index]
        sub, group = scope
        kind = args[index].split("/")
        names = args[index + 1 :]
        path = kind[0] + "".join(f"/{t}/{n}" for t, n in zip(kind[1:], names, strict=True))
        return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{path}"

    def _reference(self, resource_id: str, api_version: str = "", full: str = "") -> dict[str, Any]:
        properties = _runtime(resource_id)
        if full.lower() == "full":
            return {
                "location": REGION,
                "properties": properties,
                "identity": {"principalId": str(uuid.uuid4())},
            }
        return properties

    def evaluate(self, value: Any) -> Any:
        """Evaluate an expression string, or every expression inside a list or object."""
        if isinstance(value, dict):
            return {k: self.evaluate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        if not is_expression(value):
            return value[1:] if isinstance(value, str) and value.startswith("[[") else value
        tokens = _tokens(value[1:-1])
        result, pos = self._expr(tokens, 0)
        if pos != len(tokens):
            raise ValueError(f"trailing tokens in {value!r}")
        return result

    def _expr(self, tokens: list[tuple[str, str]], pos: int, live: bool = True) -> tuple[Any, int]:
        """The value of the expression at ``pos`` (None when not ``live``: parsed, not evaluated, as ARM
        evaluates only the branch of ``if`` its condition picks) and the position after it."""
        kind, text = tokens[pos]
        if kind == "str":
            value: Any = text[1:-1].replace("''", "'")
            pos += 1
        elif kind == "num":
            value, pos = int(text), pos + 1
        elif kind == "name":
            if text not in self._functions:
                raise KeyError(f"ARM function {text}() is not known to this evaluator")
            pos += 1
            assert tokens[pos][1] == "("
            pos += 1
            args = []
            while tokens[pos][1] != ")":
                arg_live = live
                if text == "if" and len(args) in (1, 2):
                    arg_live = live and bool(args[0]) == (len(args) == 1)
                arg, pos = self._expr(tokens, pos, arg_live)
                args.append(arg)
                if tokens[pos][1] == ",":
                    pos += 1
            pos += 1
            value = self._functions[text](*args) if live else None
        else:
            raise ValueError(f"unexpected {text!r}")
        while pos < len(tokens) and tokens[pos][1] in (".", "["):
            if tokens[pos][1] == ".":
                value = value[tokens[pos + 1][1]] if live else None
                pos += 2
            else:
                index, pos = self._expr(tokens, pos + 1, live)
                assert tokens[pos][1] == "]"
                value = value[index] if live else None
                pos += 1
        return value, pos
