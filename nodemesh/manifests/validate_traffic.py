"""networking.nodemesh.io/v1 TrafficPolicy: the waypoint's resilience settings for a Service.

Gateway API has fields for a route's timeouts and retries (HTTPRoute `timeouts`, `retry`) and
nothing for the rest, so those live here, in one CRD that attaches to Services through
`targetRefs` (Gateway API policy attachment): `retries` (Envoy's retry-on conditions, back-off, a
retry budget), `connectionPool` (Istio DestinationRule's circuit-breaker limits), `outlierDetection`
(Istio's consecutive-error ejection), `faults` (Istio's delay and abort injection) and `rateLimit`
(Envoy's local token bucket). Field names are Istio's or Envoy's wherever one exists, so users
bring their YAML habits; docs/traffic-policy.md documents every field, default and equivalent.

Only shape and self-consistency are checked here; which policy wins when several target one
Service is the controller's business. Normalization writes every default of a section that is
present, so the waypoint (waypoint/resilience/config.py) reads values instead of re-deriving them;
an absent section means the feature is off (or, for connectionPool limits, unlimited).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, describe, set_default
from nodemesh.manifests.validate_route import (
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF,
    RETRY_STATUS_HIGH,
    RETRY_STATUS_LOW,
    UINT32_MAX,
    duration_rule,
    parse_duration,
    validate_status_codes,
)

POLICY_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
SECTIONS = ("retries", "connectionPool", "outlierDetection", "faults", "rateLimit")
SPEC_FIELDS = frozenset({"targetRefs", *SECTIONS})
TARGET_REF_FIELDS = frozenset({"group", "kind", "name"})
RETRIES_FIELDS = frozenset(
    {"attempts", "perTryTimeout", "retryOn", "retriableStatusCodes", "backoff", "budget"}
)
BACKOFF_FIELDS = frozenset({"baseInterval", "maxInterval"})
BUDGET_FIELDS = frozenset({"percent", "minRetryConcurrency"})
POOL_FIELDS = frozenset({"maxConnections", "maxPendingRequests", "maxRequests", "maxRetries"})
OUTLIER_FIELDS = frozenset(
    {
        "consecutive5xxErrors",
        "consecutiveGatewayErrors",
        "interval",
        "baseEjectionTime",
        "maxEjectionPercent",
    }
)
FAULTS_FIELDS = frozenset({"delay", "abort"})
DELAY_FIELDS = frozenset({"percentage", "fixedDelay"})
ABORT_FIELDS = frozenset({"percentage", "httpStatus", "grpcStatus"})
RATE_LIMIT_FIELDS = frozenset({"maxTokens", "tokensPerFill", "fillInterval"})

USED_FIELDS = {
    "TrafficPolicy": POLICY_FIELDS,
    "TrafficPolicySpec": SPEC_FIELDS,
    "TrafficPolicyTargetReference": TARGET_REF_FIELDS,
    "RetryPolicy": RETRIES_FIELDS,
    "RetryBackoff": BACKOFF_FIELDS,
    "RetryBudget": BUDGET_FIELDS,
    "ConnectionPoolSettings": POOL_FIELDS,
    "OutlierDetection": OUTLIER_FIELDS,
    "FaultInjection": FAULTS_FIELDS,
    "DelayFault": DELAY_FIELDS,
    "AbortFault": ABORT_FIELDS,
    "LocalRateLimit": RATE_LIMIT_FIELDS,
}

# Envoy's x-envoy-retry-on (HTTP) and x-envoy-retry-grpc-on (gRPC) condition names.
RETRY_ON = (
    "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
    "retriable-status-codes", "cancelled", "deadline-exceeded", "resource-exhausted",
    "unavailable", "internal",
)  # fmt: skip
# Istio's mesh-wide default retry policy, so a waypoint behaves as Istio's does out of the box.
DEFAULT_RETRY_ON = (
    "connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes",
)  # fmt: skip
DEFAULT_RETRIABLE_STATUS_CODES = (503,)
MAX_INTERVAL_FACTOR = 10  # Envoy: max_interval defaults to 10 x base_interval
MAX_BASE_INTERVAL = "1h"  # a longer back-off outlives any request (and 10x must stay a duration)
DEFAULT_BUDGET_PERCENT = 20  # Envoy's retry_budget defaults
DEFAULT_MIN_RETRY_CONCURRENCY = 3
# Istio's OutlierDetection defaults (0 turns a counter off).
DEFAULT_CONSECUTIVE_5XX = 5
DEFAULT_CONSECUTIVE_GATEWAY_ERRORS = 0
DEFAULT_OUTLIER_INTERVAL = "10s"
DEFAULT_BASE_EJECTION_TIME = "30s"
DEFAULT_MAX_EJECTION_PERCENT = 10
MIN_FILL_INTERVAL_MS = 50  # Envoy refuses a local rate limit fill_interval below 50ms
# gRPC status codes by name (grpc/status.proto); OK is no fault to inject.
GRPC_STATUS_CODES = {
    "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip


def validate_traffic_policy(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "TrafficPolicy", POLICY_FIELDS)
    spec = check.mapping(obj, "spec", path, required=True)
    if spec is None:
        return
    path = child(path, "spec")
    check.fields(spec, path, "TrafficPolicySpec", SPEC_FIELDS)
    _validate_target_refs(spec, path, check)
    if all(spec.get(section) is None for section in SECTIONS):
        check.fail(path, f"sets none of {', '.join(SECTIONS)}, so the policy would do nothing")
    _validate_retries(spec, path, check)
    _validate_connection_pool(spec, path, check)
    _validate_outlier_detection(spec, path, check)
    _validate_faults(spec, path, check)
    _validate_rate_limit(spec, path, check)


def normalize_traffic_policy(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    for ref in spec["targetRefs"]:
        set_default(ref, "group", "")
        set_default(ref, "kind", "Service")
    if spec.get("retries") is not None:
        _normalize_retries(spec["retries"])
    if spec.get("outlierDetection") is not None:
        _normalize_outlier_detection(spec["outlierDetection"])
    rate_limit = spec.get("rateLimit")
    if rate_limit is not None:
        set_default(rate_limit, "tokensPerFill", rate_limit["maxTokens"])


# ---- targetRefs -------------------------------------------------------------------------------


def _validate_target_refs(spec: dict[str, Any], path: str, check: Check) -> None:
    seen: dict[str, str] = {}
    for ref_path, ref in check.each_mapping(spec, "targetRefs", path, required=True, min_items=1):
        check.fields(ref, ref_path, "TrafficPolicyTargetReference", TARGET_REF_FIELDS)
        group = check.string(ref, "group", ref_path)
        if group:
            message = f'must be "" (the core API group of Services), got {group!r}'
            check.fail(child(ref_path, "group"), message)
        check.choice(ref, "kind", ref_path, ("Service",))
        name = check.string(ref, "name", ref_path, required=True, rule=names.dns1035_label)
        if name is None:
            continue
        if name in seen:
            check.fail(child(ref_path, "name"), f"duplicate Service {name!r} (also {seen[name]})")
        seen.setdefault(name, ref_path)


# ---- retries ------------------------------------------------------------------------------------


def _validate_retries(spec: dict[str, Any], path: str, check: Check) -> None:
    retries = check.mapping(spec, "retries", path)
    if retries is None:
        return
    path = child(path, "retries")
    check.fields(retries, path, "RetryPolicy", RETRIES_FIELDS)
    check.integer(retries, "attempts", path, low=0, high=UINT32_MAX)
    _duration(retries, "perTryTimeout", path, check)
    retry_on = check.strings(retries, "retryOn", path, min_items=1, rule=_retry_condition)
    codes = validate_status_codes(
        retries, "retriableStatusCodes", path, check, RETRY_STATUS_LOW, RETRY_STATUS_HIGH
    )
    _check_status_code_condition(retries, retry_on, codes, path, check)
    _validate_backoff(retries, path, check)
    budget = check.mapping(retries, "budget", path)
    if budget is not None:
        budget_path = child(path, "budget")
        check.fields(budget, budget_path, "RetryBudget", BUDGET_FIELDS)
        _percentage(budget, "percent", budget_path, check)
        check.integer(budget, "minRetryConcurrency", budget_path, low=0, high=UINT32_MAX)


def _retry_condition(value: str) -> str | None:
    if value in RETRY_ON:
        return None
    if value.isascii() and value.isdigit():
        return (
            f"status codes go in retriableStatusCodes (and retryOn lists "
            f"retriable-status-codes), got {value!r}"
        )
    return f"must be one of {', '.join(RETRY_ON)}, got {value!r}"


def _check_status_code_condition(
    retries: dict[str, Any],
    retry_on: list[str] | None,
    codes: list[int] | None,
    path: str,
    check: Check,
) -> None:
    """retriableStatusCodes and the retriable-status-codes condition only make sense together."""
    if (retry_on is None and retries.get("retryOn") is not None) or (
        codes is None and retries.get("retriableStatusCodes")
    ):
        return  # one of them is malformed, and that is already reported
    listed = "retriable-status-codes" in (retry_on or DEFAULT_RETRY_ON)
    if codes and not listed:
        message = "has no effect unless retryOn includes retriable-status-codes; add it there"
        check.fail(child(path, "retriableStatusCodes"), message)
    elif retry_on and listed and not codes:
        message = (
            "includes retriable-status-codes but retriableStatusCodes lists no codes; "
            "add the codes to retry on, e.g. retriableStatusCodes: [503]"
        )
        check.fail(child(path, "retryOn"), message)


def _validate_backoff(retries: dict[str, Any], path: str, check: Check) -> None:
    backoff = check.mapping(retries, "backoff", path)
    if backoff is None:
        return
    path = child(path, "backoff")
    check.fields(backoff, path, "RetryBackoff", BACKOFF_FIELDS)
    base = _duration(backoff, "baseInterval", path, check, at_most=MAX_BASE_INTERVAL)
    maximum = _duration(backoff, "maxInterval", path, check)
    base_ms = base if base is not None else parse_duration(DEFAULT_RETRY_BACKOFF)
    if maximum is not None and base_ms is not None and maximum < base_ms:
        shown = backoff.get("baseInterval") or f"the default {DEFAULT_RETRY_BACKOFF}"
        message = f"must not be shorter than baseInterval ({backoff['maxInterval']} < {shown})"
        check.fail(child(path, "maxInterval"), message)


def _normalize_retries(retries: dict[str, Any]) -> None:
    set_default(retries, "attempts", DEFAULT_RETRY_ATTEMPTS)
    retries["retryOn"] = list(dict.fromkeys(retries.get("retryOn") or DEFAULT_RETRY_ON))
    codes = sorted(set(retries.get("retriableStatusCodes") or []))
    if not codes and "retriable-status-codes" in retries["retryOn"]:
        codes = list(DEFAULT_RETRIABLE_STATUS_CODES)  # only reachable with retryOn defaulted
    retries["retriableStatusCodes"] = codes
    set_default(retries, "backoff", {})
    backoff = retries["backoff"]
    set_default(backoff, "baseInterval", DEFAULT_RETRY_BACKOFF)
    base_ms = parse_duration(backoff["baseInterval"]) or 0
    set_default(backoff, "maxInterval", format_duration(base_ms * MAX_INTERVAL_FACTOR))
    set_default(retries, "budget", {})
    set_default(retries["budget"], "percent", DEFAULT_BUDGET_PERCENT)
    set_default(retries["budget"], "minRetryConcurrency", DEFAULT_MIN_RETRY_CONCURRENCY)


# ---- connectionPool, outlierDetection -----------------------------------------------------------


def _validate_connection_pool(spec: dict[str, Any], path: str, check: Check) -> None:
    pool = check.mapping(spec, "connectionPool", path)
    if pool is None:
        return
    path = child(path, "connectionPool")
    check.fields(pool, path, "ConnectionPoolSettings", POOL_FIELDS)
    # A limit of 0 would refuse every connection or request; 0 pending or retries is a choice.
    check.integer(pool, "maxConnections", path, low=1, high=UINT32_MAX)
    check.integer(pool, "maxRequests", path, low=1, high=UINT32_MAX)
    check.integer(pool, "maxPendingRequests", path, low=0, high=UINT32_MAX)
    check.integer(pool, "maxRetries", path, low=0, high=UINT32_MAX)


def _validate_outlier_detection(spec: dict[str, Any], path: str, check: Check) -> None:
    outlier = check.mapping(spec, "outlierDetection", path)
    if outlier is None:
        return
    path = child(path, "outlierDetection")
    check.fields(outlier, path, "OutlierDetection", OUTLIER_FIELDS)
    check.integer(outlier, "consecutive5xxErrors", path, low=0, high=UINT32_MAX)
    check.integer(outlier, "consecutiveGatewayErrors", path, low=0, high=UINT32_MAX)
    _duration(outlier, "interval", path, check)
    _duration(outlier, "baseEjectionTime", path, check)
    _percentage(outlier, "maxEjectionPercent", path, check)


def _normalize_outlier_detection(outlier: dict[str, Any]) -> None:
    set_default(outlier, "consecutive5xxErrors", DEFAULT_CONSECUTIVE_5XX)
    set_default(outlier, "consecutiveGatewayErrors", DEFAULT_CONSECUTIVE_GATEWAY_ERRORS)
    set_default(outlier, "interval", DEFAULT_OUTLIER_INTERVAL)
    set_default(outlier, "baseEjectionTime", DEFAULT_BASE_EJECTION_TIME)
    set_default(outlier, "maxEjectionPercent", DEFAULT_MAX_EJECTION_PERCENT)


# ---- faults, rateLimit --------------------------------------------------------------------------


def _validate_faults(spec: dict[str, Any], path: str, check: Check) -> None:
    faults = check.mapping(spec, "faults", path)
    if faults is None:
        return
    path = child(path, "faults")
    check.fields(faults, path, "FaultInjection", FAULTS_FIELDS)
    if faults.get("delay") is None and faults.get("abort") is None:
        check.fail(path, "must set delay, abort or both")
    delay = check.mapping(faults, "delay", path)
    if delay is not None:
        delay_path = child(path, "delay")
        check.fields(delay, delay_path, "DelayFault", DELAY_FIELDS)
        _percentage(delay, "percentage", delay_path, check, required=True)
        _duration(delay, "fixedDelay", delay_path, check, required=True)
    abort = check.mapping(faults, "abort", path)
    if abort is not None:
        _validate_abort(abort, child(path, "abort"), check)


def _validate_abort(abort: dict[str, Any], path: str, check: Check) -> None:
    check.fields(abort, path, "AbortFault", ABORT_FIELDS)
    _percentage(abort, "percentage", path, check, required=True)
    # Envoy's fault filter accepts abort statuses in [200, 600).
    check.integer(abort, "httpStatus", path, low=200, high=599)
    check.choice(abort, "grpcStatus", path, tuple(GRPC_STATUS_CODES))
    chosen = [key for key in ("httpStatus", "grpcStatus") if abort.get(key) is not None]
    if not chosen:
        check.fail(path, "must set httpStatus (HTTP) or grpcStatus (gRPC)")
    elif len(chosen) == 2:
        check.fail(child(path, "grpcStatus"), "may not be set together with httpStatus; use one")


def _validate_rate_limit(spec: dict[str, Any], path: str, check: Check) -> None:
    rate_limit = check.mapping(spec, "rateLimit", path)
    if rate_limit is None:
        return
    path = child(path, "rateLimit")
    check.fields(rate_limit, path, "LocalRateLimit", RATE_LIMIT_FIELDS)
    check.integer(rate_limit, "maxTokens", path, required=True, low=1, high=UINT32_MAX)
    check.integer(rate_limit, "tokensPerFill", path, low=1, high=UINT32_MAX)
    fill = _duration(rate_limit, "fillInterval", path, check, required=True)
    if fill is not None and fill < MIN_FILL_INTERVAL_MS:
        message = f"must be at least {MIN_FILL_INTERVAL_MS}ms (Envoy's minimum), got "
        check.fail(child(path, "fillInterval"), message + repr(rate_limit["fillInterval"]))


# ---- value helpers ------------------------------------------------------------------------------


def _duration(
    obj: dict[str, Any],
    key: str,
    path: str,
    check: Check,
    *,
    required: bool = False,
    at_most: str | None = None,
) -> int | None:
    """A positive Gateway API duration, in milliseconds (0 would mean "never" or "always")."""
    text = check.string(obj, key, path, required=required, rule=duration_rule)
    milliseconds = parse_duration(text) if text is not None else None
    if milliseconds is None:
        return None
    limit = parse_duration(at_most) if at_most else None
    if milliseconds == 0:
        check.fail(child(path, key), f"must be longer than zero, got {text!r}")
    elif limit is not None and milliseconds > limit:
        check.fail(child(path, key), f"must be at most {at_most}, got {text!r}")
    else:
        return milliseconds
    return None


def _percentage(
    obj: dict[str, Any], key: str, path: str, check: Check, *, required: bool = False
) -> float | None:
    """A percentage from 0 to 100, decimals allowed (0.1 is one request in a thousand)."""
    value = obj.get(key)
    field = child(path, key)
    if value is None:
        if required:
            check.fail(field, "required field is missing; give a percentage from 0 to 100")
        return None
    if isinstance(value, Mapping) and "value" in value:
        check.fail(field, "write the number itself (Istio's {value: N} form is not used here)")
    elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        check.fail(field, f"must be a number from 0 to 100, got {describe(value)}")
    elif not 0 <= value <= 100:
        check.fail(field, f"must be between 0 and 100, got {value}")
    else:
        return float(value)
    return None


def format_duration(milliseconds: int) -> str:
    """The shortest Gateway API duration for a whole number of milliseconds ("1m30s", "250ms")."""
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
