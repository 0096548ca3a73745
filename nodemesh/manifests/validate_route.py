"""gateway.networking.k8s.io/v1 HTTPRoute: shape and Gateway API's own rules, not routing semantics.

Normalization writes out Gateway API's defaults (a rule with no matches matches every path by prefix
"/", backendRefs default to kind Service with weight 1) so the router never has to know them. Where
Gateway API leaves a default to the implementation (a rule's `retry.attempts` and `retry.backoff`),
normalization writes nodemesh's choice, documented in docs/traffic-policy.md.
"""

from __future__ import annotations

import re
from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, item, set_default
from nodemesh.manifests.validate_route_filters import (
    BACKEND_OBJECT_REF_FIELDS,
    normalize_backend_object_ref,
    normalize_filters,
    validate_backend_object_ref,
    validate_filters,
)

ROUTE_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
ROUTE_SPEC_FIELDS = frozenset({"parentRefs", "hostnames", "rules"})
PARENT_REF_FIELDS = frozenset({"group", "kind", "namespace", "name", "sectionName", "port"})
RULE_FIELDS = frozenset({"name", "matches", "filters", "backendRefs", "timeouts", "retry"})
MATCH_FIELDS = frozenset({"path", "headers", "queryParams", "method"})
PATH_MATCH_FIELDS = frozenset({"type", "value"})
VALUE_MATCH_FIELDS = frozenset({"type", "name", "value"})
HTTP_BACKEND_REF_FIELDS = BACKEND_OBJECT_REF_FIELDS | {"weight", "filters"}
TIMEOUTS_FIELDS = frozenset({"request", "backendRequest"})
RETRY_FIELDS = frozenset({"codes", "attempts", "backoff"})

USED_FIELDS = {
    "HTTPRoute": ROUTE_FIELDS,
    "HTTPRouteSpec": ROUTE_SPEC_FIELDS,
    "ParentReference": PARENT_REF_FIELDS,
    "HTTPRouteRule": RULE_FIELDS,
    "HTTPRouteMatch": MATCH_FIELDS,
    "HTTPPathMatch": PATH_MATCH_FIELDS,
    "HTTPHeaderMatch": VALUE_MATCH_FIELDS,
    "HTTPQueryParamMatch": VALUE_MATCH_FIELDS,
    "HTTPBackendRef": HTTP_BACKEND_REF_FIELDS,
    "HTTPRouteTimeouts": TIMEOUTS_FIELDS,
    "HTTPRouteRetry": RETRY_FIELDS,
}

PATH_MATCH_TYPES = ("Exact", "PathPrefix", "RegularExpression")
VALUE_MATCH_TYPES = ("Exact", "RegularExpression")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
MAX_WEIGHT = 1_000_000
_DURATION = re.compile(r"([0-9]{1,5}(h|m|s|ms)){1,4}")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
# Retries where Gateway API says "implementation-specific": Istio's default count (so a route moved
# from a VirtualService behaves the same) and Envoy's default base back-off interval.
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_RETRY_BACKOFF = "25ms"
# HTTPRouteRetryStatusCode: Gateway API allows 400-599 (retrying 1xx-3xx makes no sense).
RETRY_STATUS_LOW, RETRY_STATUS_HIGH = 400, 599
UINT32_MAX = 4_294_967_295


def parse_duration(value: str) -> int | None:
    """Milliseconds in a Gateway API duration ("500ms", "1h2m"), or None if malformed."""
    if not _DURATION.fullmatch(value):
        return None
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(value))


def validate_http_route(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "HTTPRoute", ROUTE_FIELDS)
    spec = check.mapping(obj, "spec", path, required=True)
    if spec is None:
        return
    path = child(path, "spec")
    check.fields(spec, path, "HTTPRouteSpec", ROUTE_SPEC_FIELDS)
    for ref_path, ref in check.each_mapping(spec, "parentRefs", path):
        _validate_parent_ref(ref, ref_path, check)
    check.strings(spec, "hostnames", path, rule=names.gateway_hostname)
    for rule_path, rule in check.each_mapping(spec, "rules", path):
        _validate_rule(rule, rule_path, check)


def normalize_http_route(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    set_default(spec, "parentRefs", [])
    for ref in spec["parentRefs"]:
        set_default(ref, "group", "gateway.networking.k8s.io")
        set_default(ref, "kind", "Gateway")
    set_default(spec, "hostnames", [])
    set_default(spec, "rules", [{}])
    for rule in spec["rules"]:
        _normalize_rule(rule)


def _validate_parent_ref(ref: dict[str, Any], path: str, check: Check) -> None:
    check.fields(ref, path, "ParentReference", PARENT_REF_FIELDS)
    check.string(ref, "group", path)
    check.string(ref, "kind", path, rule=names.non_empty)
    check.string(ref, "namespace", path, rule=names.dns1123_label)
    check.string(ref, "name", path, required=True, rule=names.non_empty)
    check.string(ref, "sectionName", path, rule=names.dns1123_subdomain)
    check.integer(ref, "port", path, low=1, high=65535)


def _validate_rule(rule: dict[str, Any], path: str, check: Check) -> None:
    check.fields(rule, path, "HTTPRouteRule", RULE_FIELDS)
    check.string(rule, "name", path, rule=names.dns1123_subdomain)
    for match_path, match in check.each_mapping(rule, "matches", path):
        _validate_match(match, match_path, check)
    validate_filters(rule, path, check)
    for ref_path, ref in check.each_mapping(rule, "backendRefs", path):
        validate_backend_object_ref(
            ref, ref_path, check, type_name="HTTPBackendRef", used=HTTP_BACKEND_REF_FIELDS
        )
        check.integer(ref, "weight", ref_path, low=0, high=MAX_WEIGHT)
        validate_filters(ref, ref_path, check)
    _validate_timeouts(rule, path, check)
    _validate_retry(rule, path, check)
    _check_prefix_rewrites(rule, path, check)


def _check_prefix_rewrites(rule: dict[str, Any], path: str, check: Check) -> None:
    """ReplacePrefixMatch replaces the prefix a PathPrefix match matched: with an Exact or a
    RegularExpression match there is none, so Gateway API refuses the rule (and the waypoint's
    route compiler would NACK it). Refused here, naming the match, so `meshctl apply` says so."""
    refs = rule.get("backendRefs")
    filter_lists = [rule.get("filters")] + [
        ref.get("filters")
        for ref in (refs if isinstance(refs, list) else [])
        if isinstance(ref, dict)
    ]
    uses_prefix = any(
        isinstance(f, dict)
        and isinstance(f.get("urlRewrite"), dict)
        and isinstance(f["urlRewrite"].get("path"), dict)
        and f["urlRewrite"]["path"].get("type") == "ReplacePrefixMatch"
        for filters in filter_lists
        if isinstance(filters, list)
        for f in filters
    )
    if not uses_prefix:
        return
    matches = rule.get("matches")
    for index, match in enumerate(matches if isinstance(matches, list) and matches else [{}]):
        path_match = match.get("path") if isinstance(match, dict) else None
        kind = path_match.get("type", "PathPrefix") if isinstance(path_match, dict) else None
        if kind is not None and kind != "PathPrefix":  # a wrong shape is reported elsewhere
            check.fail(
                child(child(item(child(path, "matches"), index), "path"), "type"),
                f"is {kind}, but a filter of this rule uses ReplacePrefixMatch, which works only "
                "with PathPrefix matches; use ReplaceFullPath or move this match to its own rule",
            )


def _normalize_rule(rule: dict[str, Any]) -> None:
    set_default(rule, "matches", [{}])
    for match in rule["matches"]:
        set_default(match, "path", {})
        set_default(match["path"], "type", "PathPrefix")
        set_default(match["path"], "value", "/")
        for key in ("headers", "queryParams"):
            set_default(match, key, [])
            for value_match in match[key]:
                set_default(value_match, "type", "Exact")
    normalize_filters(rule)
    set_default(rule, "backendRefs", [])
    for ref in rule["backendRefs"]:
        normalize_backend_object_ref(ref)
        set_default(ref, "weight", 1)
        normalize_filters(ref)
    if rule.get("retry") is not None:
        _normalize_retry(rule["retry"])


def _validate_match(match: dict[str, Any], path: str, check: Check) -> None:
    check.fields(match, path, "HTTPRouteMatch", MATCH_FIELDS)
    check.choice(match, "method", path, METHODS)
    path_match = check.mapping(match, "path", path)
    if path_match is not None:
        path_match_path = child(path, "path")
        check.fields(path_match, path_match_path, "HTTPPathMatch", PATH_MATCH_FIELDS)
        kind = check.choice(path_match, "type", path_match_path, PATH_MATCH_TYPES) or "PathPrefix"
        value = check.string(path_match, "value", path_match_path)
        if value is not None:
            _validate_path_value(kind, value, child(path_match_path, "value"), check)
    for key, type_name in (("headers", "HTTPHeaderMatch"), ("queryParams", "HTTPQueryParamMatch")):
        seen: dict[str, str] = {}
        for value_path, value_match in check.each_mapping(match, key, path):
            name = _validate_value_match(value_match, value_path, check, type_name)
            if name is None:
                continue
            # HTTP header names are case-insensitive; query parameter names are not.
            folded = name.lower() if key == "headers" else name
            if folded in seen:
                check.fail(
                    child(value_path, "name"), f"duplicate name {name!r} (also {seen[folded]})"
                )
            seen.setdefault(folded, value_path)


def _validate_path_value(kind: str, value: str, path: str, check: Check) -> None:
    if len(value) > 1024:
        check.fail(path, f"must be at most 1024 characters, got {len(value)}")
    elif kind == "RegularExpression":
        _compiles(value, path, check)
    elif not value.startswith("/"):
        check.fail(path, f"must start with '/' for a {kind} match, got {value!r}")


def _validate_value_match(
    value_match: dict[str, Any], path: str, check: Check, type_name: str
) -> str | None:
    check.fields(value_match, path, type_name, VALUE_MATCH_FIELDS)
    kind = check.choice(value_match, "type", path, VALUE_MATCH_TYPES)
    name = check.string(value_match, "name", path, required=True, rule=names.http_token)
    value = check.string(value_match, "value", path, required=True)
    if value is not None and len(value) > 4096:
        check.fail(child(path, "value"), f"must be at most 4096 characters, got {len(value)}")
    elif value is not None and kind == "RegularExpression":
        _compiles(value, child(path, "value"), check)
    return name


def _compiles(pattern: str, path: str, check: Check) -> None:
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        check.fail(path, f"is not a valid regular expression: {error}")


def _validate_timeouts(rule: dict[str, Any], path: str, check: Check) -> None:
    timeouts = check.mapping(rule, "timeouts", path)
    if timeouts is None:
        return
    path = child(path, "timeouts")
    check.fields(timeouts, path, "HTTPRouteTimeouts", TIMEOUTS_FIELDS)
    request = check.string(timeouts, "request", path, rule=duration_rule)
    backend = check.string(timeouts, "backendRequest", path, rule=duration_rule)
    if request is None or backend is None:
        return
    request_ms, backend_ms = parse_duration(request), parse_duration(backend)
    if request_ms and backend_ms and backend_ms > request_ms:  # "0s" means no request timeout
        check.fail(
            child(path, "backendRequest"),
            f"must not be longer than the request timeout ({backend} > {request})",
        )


def duration_rule(value: str) -> str | None:
    """A `Check.string` rule for Gateway API durations (GEP-2257)."""
    if parse_duration(value) is None:
        return f"must be a Gateway API duration like '500ms', '10s' or '1h2m', got {value!r}"
    return None


def _validate_retry(rule: dict[str, Any], path: str, check: Check) -> None:
    """HTTPRouteRetry (Gateway API v1.2+): codes, attempts and a minimum back-off."""
    retry = check.mapping(rule, "retry", path)
    if retry is None:
        return
    path = child(path, "retry")
    check.fields(retry, path, "HTTPRouteRetry", RETRY_FIELDS)
    validate_status_codes(retry, "codes", path, check, RETRY_STATUS_LOW, RETRY_STATUS_HIGH)
    attempts = check.integer(retry, "attempts", path, low=0, high=UINT32_MAX)
    backoff = check.string(retry, "backoff", path, rule=duration_rule)
    if attempts == 0 or (backoff is None and retry.get("backoff") is not None):
        return  # retries are off, or the back-off is malformed (already reported)
    _check_backoff_fits(rule, backoff, path, check)


def _check_backoff_fits(rule: dict[str, Any], backoff: str | None, path: str, check: Check) -> None:
    """Gateway API: retries must end within timeouts.request, so a longer back-off never retries."""
    timeouts = rule.get("timeouts")
    request = timeouts.get("request") if isinstance(timeouts, dict) else None
    request_ms = parse_duration(request) if isinstance(request, str) else None
    backoff_ms = parse_duration(backoff or DEFAULT_RETRY_BACKOFF)
    if not request_ms or backoff_ms is None or backoff_ms < request_ms:  # "0s": no timeout
        return
    if backoff is None:
        message = (
            f"the default retry back-off ({DEFAULT_RETRY_BACKOFF}) is not shorter than the request "
            f"timeout ({request}), so no retry could start; set retry.backoff below it"
        )
        check.fail(path, message)
    else:
        message = f"must be shorter than the request timeout ({backoff} >= {request}), "
        check.fail(child(path, "backoff"), message + "or no retry could ever start")


def _normalize_retry(retry: dict[str, Any]) -> None:
    retry["codes"] = sorted(set(retry.get("codes") or []))
    set_default(retry, "attempts", DEFAULT_RETRY_ATTEMPTS)
    set_default(retry, "backoff", DEFAULT_RETRY_BACKOFF)


def validate_status_codes(
    obj: dict[str, Any], key: str, path: str, check: Check, low: int, high: int
) -> list[int] | None:
    """A list of HTTP status codes in [low, high]; None when absent or any element is bad."""
    values = check.sequence(obj, key, path)
    if values is None:
        return None
    list_path = child(path, key)
    good = [
        check.whole(value, item(list_path, i), low=low, high=high) for i, value in enumerate(values)
    ]
    return None if any(code is None for code in good) else values
