"""Check the Sentinel solution's resources against Microsoft's own models: every property name through
azure-mgmt-securityinsight's models (generated from the REST spec, 2025-10-01-preview) and the required
properties and enums of the api-version the templates deploy (2024-03-01, transcribed under data/), the
connector card against that version's schema.

Hand-written because the SDK's (TypeSpec) models only (de)serialise: they keep unknown keys silently
instead of reporting them, and know nothing of the older api-version's required lists.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import jsonschema
from azure.mgmt.securityinsight import models as si
from azure.mgmt.securityinsight.models import _models as si_models

from tests.content.sentinel_schema import DATA

CONTENT_API = json.loads((DATA / "content_2024-03-01.json").read_text(encoding="utf-8"))
CONNECTOR_SCHEMA = json.loads(
    (DATA / "customizable_connector_2024-03-01.schema.json").read_text(encoding="utf-8")
)

#: What a rule made from a template starts with: not properties of AlertRuleTemplate, yet carried by
#: Microsoft's solution packages (and read by the rule wizard and ``sentinel enable``); each must be a
#: property of a Scheduled alert rule instead (checked against alertRules@2024-03-01).
RULE_CREATION_PROPERTIES = ("enabled", "suppressionDuration", "suppressionEnabled", "incidentConfiguration")

_NAMESPACE = {**vars(si_models), "_models": si}


def rest_fields(model: type) -> dict[str, Any]:
    """JSON name -> type hint of every field a TypeSpec model (and its bases) declares."""
    hints: dict[str, Any] = {}
    for klass in reversed(model.__mro__):
        if klass is object:
            continue
        try:
            resolved = typing.get_type_hints(klass, _NAMESPACE)
        except (NameError, TypeError):
            resolved = {}
        for attr, value in vars(klass).items():
            if type(value).__name__ == "_RestField":
                name = getattr(value, "_rest_name_input", None) or attr
                hints[name] = resolved.get(attr, Any)
    return hints


def required_fields(model: type) -> set[str]:
    """Fields whose annotation is not Optional (the models mark required ones that way)."""
    return {
        name
        for name, hint in rest_fields(model).items()
        if type(None) not in typing.get_args(hint) and hint is not Any
    }


def _models_in(hint: Any) -> list[Any]:
    """The model classes, ``list[...]`` and ``dict[...]`` a (possibly Optional/Union) hint allows."""
    if isinstance(hint, type) and hasattr(si_models, hint.__name__) and issubclass(hint, si_models._Model):
        return [hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(hint) for m in _models_in(arg)]
    if origin in (list, dict):
        return [hint]
    return []


def model_problems(value: Any, model: type, path: str) -> list[str]:
    """Property names in ``value`` that ``model`` (recursively) does not define."""
    if not isinstance(value, dict):
        return [f"{path}: expected an object for {model.__name__}"]
    fields = rest_fields(model)
    problems = []
    for key, item in value.items():
        if key not in fields:
            problems.append(f"{path}.{key}: not defined by {model.__name__}")
            continue
        problems += _check(item, fields[key], f"{path}.{key}")
    return problems


def _check(item: Any, hint: Any, path: str) -> list[str]:
    for allowed in _models_in(hint):
        origin = typing.get_origin(allowed)
        if origin is list and isinstance(item, list):
            (inner,) = typing.get_args(allowed) or (Any,)
            return [p for i, element in enumerate(item) for p in _check(element, inner, f"{path}[{i}]")]
        if origin is dict and isinstance(item, dict):
            inner = (typing.get_args(allowed) or (str, Any))[-1]
            return [p for k, element in item.items() for p in _check(element, inner, f"{path}.{k}")]
        if isinstance(allowed, type) and isinstance(item, dict):
            return model_problems(item, allowed, path)
    return []


def required_problems(properties: dict[str, Any], spec: str) -> list[str]:
    """Required properties of the deployed api-version (``spec`` a definition in content_2024-03-01.json)."""
    return [
        f"required property {k!r} of {spec}@{CONTENT_API['apiVersion']} missing"
        for k in CONTENT_API[spec]["required"]
        if properties.get(k) in (None, "")
    ]


def provenance_problems(properties: dict[str, Any]) -> list[str]:
    """``source`` and ``support`` as the deployed api-version requires them (enums included)."""
    problems = []
    source, support = properties.get("source") or {}, properties.get("support") or {}
    if source.get("kind") not in CONTENT_API["metadataSource"]["kind"]:
        problems.append(f"source.kind {source.get('kind')!r}")
    if support and support.get("tier") not in CONTENT_API["metadataSupport"]["tier"]:
        problems.append(f"support.tier {support.get('tier')!r}")
    return problems


def connector_problems(card: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(CONNECTOR_SCHEMA)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(card)'}: {error.message}"
        for error in sorted(validator.iter_errors(card), key=lambda e: list(map(str, e.absolute_path)))
    ]
