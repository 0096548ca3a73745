"""Small builders for structural OpenAPI v3 schemas (apiextensions.k8s.io/v1 CRDs).

A structural schema needs a `type` on every node and no free-form objects, so the API server can
prune, default and validate; writing them by hand as nested dicts hides the shape under
punctuation. These helpers keep each CRD module a readable list of fields, and put the rules the
manifest validators (nodemesh/manifests/validate_*.py) enforce in the same places Kubernetes does:
`enum`, `pattern`, `minimum`/`maximum`, `required`, and `x-kubernetes-validations` (CEL) only for
rules that span fields or values no plain keyword can express.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

UINT32_MAX = 4_294_967_295
# Gateway API duration (GEP-2257), the same grammar as nodemesh.manifests.validate_route.
DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# A port number 1-65535 written as a string of digits (Istio's `ports: ["8080"]`).
PORT_STRING_PATTERN = (
    r"^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
)
# An IPv4/IPv6 address or CIDR block: a syntax check; the controller parses the value itself.
IP_BLOCK_PATTERN = r"^[0-9a-fA-F:.]+(/[0-9]{1,3})?$"


def obj(
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    description: str = "",
    rules: tuple[Schema, ...] = (),
    **extra: Any,
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return _finish(schema, description, rules, extra)


def string(
    description: str = "",
    *,
    enum: tuple[str, ...] = (),
    pattern: str = "",
    min_length: int | None = None,
    max_length: int | None = None,
    rules: tuple[Schema, ...] = (),
    **extra: Any,
) -> Schema:
    schema: Schema = {"type": "string"}
    if enum:
        schema["enum"] = list(enum)
    if pattern:
        schema["pattern"] = pattern
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    return _finish(schema, description, rules, extra)


def integer(description: str = "", *, low: int = 0, high: int = UINT32_MAX, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", "format": "int64", "minimum": low, "maximum": high}
    return _finish(schema, description, (), extra)


def percentage(description: str = "") -> Schema:
    """0-100, decimals allowed; Istio's `{value: N}` form fails the type check."""
    return _finish({"type": "number", "minimum": 0, "maximum": 100}, description, (), {})


def duration(description: str = "", *, rules: tuple[Schema, ...] = (), **extra: Any) -> Schema:
    """A Gateway API duration longer than zero: some digit of it is not 0."""
    return string(
        description, pattern=DURATION_PATTERN, allOf=[{"pattern": "[1-9]"}], rules=rules, **extra
    )


def array(
    items: Schema,
    description: str = "",
    *,
    min_items: int | None = None,
    max_items: int | None = None,
    rules: tuple[Schema, ...] = (),
    **extra: Any,
) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return _finish(schema, description, rules, extra)


def string_map(description: str = "", **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
    return _finish(schema, description, (), extra)


def rule(expression: str, message: str) -> Schema:
    """One CEL rule; `self` is the node the rule sits on."""
    return {"rule": expression, "message": message}


def _finish(schema: Schema, description: str, rules: tuple[Schema, ...], extra: dict) -> Schema:
    if description:
        schema["description"] = description
    if rules:
        schema["x-kubernetes-validations"] = list(rules)
    schema.update(extra)
    return schema


# ---- shapes shared by every nodemesh CRD ---------------------------------------------------------


def condition() -> Schema:
    """metav1.Condition, as `kubectl explain` shows it for every built-in kind."""
    return obj(
        {
            "type": string("CamelCase condition type, e.g. Accepted.", max_length=316),
            "status": string("", enum=("True", "False", "Unknown")),
            "observedGeneration": integer(
                "The .metadata.generation the condition was set for.", high=2**63 - 1
            ),
            "lastTransitionTime": string(
                "When the condition last changed status.", format="date-time"
            ),
            "reason": string("CamelCase reason.", min_length=1, max_length=1024),
            "message": string("Human-readable details.", max_length=32768),
        },
        required=("type", "status", "lastTransitionTime", "reason", "message"),
    )


def status() -> Schema:
    return obj(
        {
            "conditions": array(
                condition(),
                "What the controller made of the object (Accepted, with a reason when not).",
                max_items=8,
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            ),
        },
        description="Written by nodemesh-controller.",
    )


def selector(description: str) -> Schema:
    """Istio's WorkloadSelector: matchLabels only (matchExpressions is not supported)."""
    return obj(
        {"matchLabels": string_map("Labels a pod must carry, all of them.")},
        description=description,
    )
