"""Resilience settings as frozen dataclasses, read from validated, normalized manifests.

Theory of operation. `nodemesh.manifests` validates a TrafficPolicy or HTTPRoute and writes every
default into it; this module only translates the result into typed values in the units the
primitives use (seconds as floats, status codes as ints, conditions as an enum). It decides
nothing on its own except which source wins for a route's retries (`effective_retry`):

- an HTTPRoute rule's `retry` replaces the TrafficPolicy's retry conditions, count and back-off
  for that rule (Gateway API fields win over the nodemesh CRD), and its `timeouts.backendRequest`
  is the per-try timeout;
- the TrafficPolicy's `retries.budget` still applies, because a budget protects the Service from
  every route's retries together;
- with neither, the waypoint retries as Istio does by default (`DEFAULT_RETRY`).

Parsing an unnormalized or malformed spec raises `ResilienceConfigError` (once, here, at the
boundary), never a KeyError from deep inside the request path. The dataclasses' own defaults equal
the manifest defaults, so tests and callers may also build them directly.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from nodemesh.manifests import validate_route as route
from nodemesh.manifests import validate_traffic as traffic
from waypoint.resilience.errors import ResilienceConfigError

T = TypeVar("T")


class RetryOn(enum.StrEnum):
    """Envoy's retry-on conditions (x-envoy-retry-on, x-envoy-retry-grpc-on)."""

    FIVE_XX = "5xx"
    GATEWAY_ERROR = "gateway-error"
    RESET = "reset"
    CONNECT_FAILURE = "connect-failure"
    RETRIABLE_4XX = "retriable-4xx"
    REFUSED_STREAM = "refused-stream"
    RETRIABLE_STATUS_CODES = "retriable-status-codes"
    CANCELLED = "cancelled"
    DEADLINE_EXCEEDED = "deadline-exceeded"
    RESOURCE_EXHAUSTED = "resource-exhausted"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


DEFAULT_RETRY_ON = frozenset(RetryOn(name) for name in traffic.DEFAULT_RETRY_ON)
# Gateway API: "implementations SHOULD retry on connection errors if a retry stanza is configured".
ROUTE_RETRY_ON = frozenset({RetryOn.CONNECT_FAILURE, RetryOn.RESET, RetryOn.REFUSED_STREAM})
# Envoy's default max_ejection_time: repeated ejections grow to at most this (or the base time).
MAX_EJECTION_TIME = 300.0


def _seconds(text: str) -> float:
    milliseconds = route.parse_duration(text)
    if milliseconds is None:
        raise ValueError(f"{text!r} is not a Gateway API duration")
    return milliseconds / 1000


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: the nth retry waits a random time in [floor, min(cap, base*2^(n-1))).

    `floor` is 0 for TrafficPolicy retries (Envoy's full jitter) and `base` for an HTTPRoute's
    `retry.backoff`, which Gateway API defines as the minimum wait before a retry.
    """

    base: float = 0.025
    cap: float = 0.25
    floor: float = 0.0


@dataclass(frozen=True)
class RetryBudgetConfig:
    """Concurrent retries allowed: `percent` of active requests, but always `min_concurrency`."""

    percent: float = float(traffic.DEFAULT_BUDGET_PERCENT)
    min_concurrency: int = traffic.DEFAULT_MIN_RETRY_CONCURRENCY


@dataclass(frozen=True)
class RetryConfig:
    # Retries after the first attempt (Gateway API and Istio `attempts`); 0 turns retries off.
    attempts: int = route.DEFAULT_RETRY_ATTEMPTS
    retry_on: frozenset[RetryOn] = DEFAULT_RETRY_ON
    retriable_status_codes: frozenset[int] = frozenset(traffic.DEFAULT_RETRIABLE_STATUS_CODES)
    backoff: Backoff = field(default_factory=Backoff)
    # Seconds one attempt may take; None leaves only the route's request timeout.
    per_try_timeout: float | None = None
    budget: RetryBudgetConfig = field(default_factory=RetryBudgetConfig)


DEFAULT_RETRY = RetryConfig()


@dataclass(frozen=True)
class ConnectionPoolConfig:
    """Circuit-breaker limits for one Service; None is unlimited (Istio's default)."""

    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None
    max_retries: int | None = None


@dataclass(frozen=True)
class OutlierConfig:
    """Consecutive-error ejection; a threshold of 0 turns that counter off."""

    consecutive_5xx: int = traffic.DEFAULT_CONSECUTIVE_5XX
    consecutive_gateway_errors: int = traffic.DEFAULT_CONSECUTIVE_GATEWAY_ERRORS
    interval: float = _seconds(traffic.DEFAULT_OUTLIER_INTERVAL)
    base_ejection_time: float = _seconds(traffic.DEFAULT_BASE_EJECTION_TIME)
    max_ejection_percent: float = float(traffic.DEFAULT_MAX_EJECTION_PERCENT)
    max_ejection_time: float = MAX_EJECTION_TIME


@dataclass(frozen=True)
class DelayFault:
    percentage: float
    delay: float  # seconds


@dataclass(frozen=True)
class AbortFault:
    """Answer instead of forwarding: an HTTP status, or HTTP 200 with this grpc-status."""

    percentage: float
    http_status: int | None = None
    grpc_status: int | None = None


@dataclass(frozen=True)
class FaultConfig:
    delay: DelayFault | None = None
    abort: AbortFault | None = None


@dataclass(frozen=True)
class RateLimitConfig:
    """Envoy's local token bucket: `tokens_per_fill` every `fill_interval`, at most `max_tokens`."""

    max_tokens: int
    tokens_per_fill: int
    fill_interval: float  # seconds


@dataclass(frozen=True)
class TrafficPolicyConfig:
    """One TrafficPolicy: the Services it targets and the sections it sets (None: not set)."""

    services: tuple[str, ...]
    retries: RetryConfig | None = None
    connection_pool: ConnectionPoolConfig = field(default_factory=ConnectionPoolConfig)
    outlier_detection: OutlierConfig | None = None
    faults: FaultConfig | None = None
    rate_limit: RateLimitConfig | None = None


# ---- parsing ----------------------------------------------------------------------------------


def _parse(what: str, build: Callable[[], T]) -> T:
    """Run `build`, turning the errors a malformed spec causes into one ResilienceConfigError."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ResilienceConfigError(
            f"{what} is not a normalized spec ({type(error).__name__}: {error}); "
            "pass it through nodemesh.manifests validation first"
        ) from error


def traffic_policy_from_spec(spec: Mapping[str, Any]) -> TrafficPolicyConfig:
    """A TrafficPolicy's normalized `spec` as a TrafficPolicyConfig."""
    return _parse("TrafficPolicy spec", lambda: _traffic_policy(spec))


def _traffic_policy(spec: Mapping[str, Any]) -> TrafficPolicyConfig:
    def section(key: str, parse: Callable[[Mapping[str, Any]], T]) -> T | None:
        value = spec.get(key)
        return None if value is None else parse(value)

    return TrafficPolicyConfig(
        services=tuple(ref["name"] for ref in spec["targetRefs"]),
        retries=section("retries", _retries),
        connection_pool=section("connectionPool", _connection_pool) or ConnectionPoolConfig(),
        outlier_detection=section("outlierDetection", _outlier),
        faults=section("faults", _faults),
        rate_limit=section("rateLimit", _rate_limit),
    )


def _retries(retries: Mapping[str, Any]) -> RetryConfig:
    per_try = retries.get("perTryTimeout")
    return RetryConfig(
        attempts=int(retries.get("attempts", route.DEFAULT_RETRY_ATTEMPTS)),
        retry_on=frozenset(RetryOn(name) for name in retries.get("retryOn", DEFAULT_RETRY_ON)),
        retriable_status_codes=frozenset(
            int(code) for code in retries.get("retriableStatusCodes", ())
        ),
        backoff=_backoff(retries.get("backoff") or {}),
        per_try_timeout=_seconds(per_try) if per_try else None,
        budget=_budget(retries.get("budget") or {}),
    )


def _backoff(backoff: Mapping[str, Any]) -> Backoff:
    base = _seconds(backoff.get("baseInterval", route.DEFAULT_RETRY_BACKOFF))
    cap = backoff.get("maxInterval")
    return Backoff(base, _seconds(cap) if cap else base * traffic.MAX_INTERVAL_FACTOR)


def _budget(budget: Mapping[str, Any]) -> RetryBudgetConfig:
    return RetryBudgetConfig(
        percent=float(budget.get("percent", traffic.DEFAULT_BUDGET_PERCENT)),
        min_concurrency=int(
            budget.get("minRetryConcurrency", traffic.DEFAULT_MIN_RETRY_CONCURRENCY)
        ),
    )


def _connection_pool(pool: Mapping[str, Any]) -> ConnectionPoolConfig:
    def limit(key: str) -> int | None:
        return None if pool.get(key) is None else int(pool[key])

    return ConnectionPoolConfig(
        max_connections=limit("maxConnections"),
        max_pending_requests=limit("maxPendingRequests"),
        max_requests=limit("maxRequests"),
        max_retries=limit("maxRetries"),
    )


def _outlier(outlier: Mapping[str, Any]) -> OutlierConfig:
    defaults = OutlierConfig()
    base = outlier.get("baseEjectionTime")
    interval = outlier.get("interval")
    return OutlierConfig(
        consecutive_5xx=int(outlier.get("consecutive5xxErrors", defaults.consecutive_5xx)),
        consecutive_gateway_errors=int(
            outlier.get("consecutiveGatewayErrors", defaults.consecutive_gateway_errors)
        ),
        interval=_seconds(interval) if interval else defaults.interval,
        base_ejection_time=_seconds(base) if base else defaults.base_ejection_time,
        max_ejection_percent=float(
            outlier.get("maxEjectionPercent", defaults.max_ejection_percent)
        ),
    )


def _faults(faults: Mapping[str, Any]) -> FaultConfig:
    delay, abort = faults.get("delay"), faults.get("abort")
    return FaultConfig(
        delay=_delay(delay) if delay is not None else None,
        abort=_abort(abort) if abort is not None else None,
    )


def _delay(delay: Mapping[str, Any]) -> DelayFault:
    return DelayFault(float(delay["percentage"]), _seconds(delay["fixedDelay"]))


def _abort(abort: Mapping[str, Any]) -> AbortFault:
    grpc = abort.get("grpcStatus")
    http = abort.get("httpStatus")
    if (grpc is None) == (http is None):
        raise ValueError("an abort fault needs exactly one of httpStatus and grpcStatus")
    return AbortFault(
        percentage=float(abort["percentage"]),
        http_status=None if http is None else int(http),
        grpc_status=None if grpc is None else traffic.GRPC_STATUS_CODES[grpc],
    )


def _rate_limit(rate_limit: Mapping[str, Any]) -> RateLimitConfig:
    max_tokens = int(rate_limit["maxTokens"])
    return RateLimitConfig(
        max_tokens=max_tokens,
        tokens_per_fill=int(rate_limit.get("tokensPerFill", max_tokens)),
        fill_interval=_seconds(rate_limit["fillInterval"]),
    )


def route_retry_from_rule(rule: Mapping[str, Any]) -> RetryConfig | None:
    """An HTTPRoute rule's `retry` (None when the rule has none), as a RetryConfig.

    Connection errors are always retried (Gateway API's SHOULD), `codes` through the
    retriable-status-codes condition; `backoff` is a floor as well as the base of the exponential
    back-off; `timeouts.backendRequest` is the per-try timeout.
    """
    return _parse("HTTPRoute rule", lambda: _route_retry(rule))


def _route_retry(rule: Mapping[str, Any]) -> RetryConfig | None:
    retry = rule.get("retry")
    if retry is None:
        return None
    codes = frozenset(int(code) for code in retry.get("codes") or ())
    retry_on = ROUTE_RETRY_ON | ({RetryOn.RETRIABLE_STATUS_CODES} if codes else set())
    base = _seconds(retry.get("backoff") or route.DEFAULT_RETRY_BACKOFF)
    return RetryConfig(
        attempts=int(retry.get("attempts", route.DEFAULT_RETRY_ATTEMPTS)),
        retry_on=frozenset(retry_on),
        retriable_status_codes=codes,
        backoff=Backoff(base, base * traffic.MAX_INTERVAL_FACTOR, floor=base),
        per_try_timeout=_route_per_try_timeout(rule, None),
    )


def _route_per_try_timeout(rule: Mapping[str, Any], fallback: float | None) -> float | None:
    """The rule's `timeouts.backendRequest` in seconds ("0s": none), or `fallback` if unset."""
    text = (rule.get("timeouts") or {}).get("backendRequest")
    if text is None:
        return fallback
    return _seconds(text) or None


def effective_retry(
    rule: Mapping[str, Any] | None, policy: TrafficPolicyConfig | None
) -> RetryConfig:
    """The retries for requests matched by `rule`, to a Service with `policy` (either may be None).

    The route's `retry` wins over the policy's `retries`, and its `timeouts.backendRequest` over
    `perTryTimeout`; the policy's budget always applies (see the module docstring).
    """
    return _parse("HTTPRoute rule", lambda: _effective_retry(rule or {}, policy))


def _effective_retry(rule: Mapping[str, Any], policy: TrafficPolicyConfig | None) -> RetryConfig:
    policy_retries = policy.retries if policy is not None else None
    chosen = _route_retry(rule) or policy_retries or DEFAULT_RETRY
    return replace(
        chosen,
        budget=policy_retries.budget if policy_retries else RetryBudgetConfig(),
        per_try_timeout=_route_per_try_timeout(rule, chosen.per_try_timeout),
    )
