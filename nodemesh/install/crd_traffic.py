"""Schema of networking.nodemesh.io/v1 TrafficPolicy (docs/traffic-policy.md).

Every bound, enum and required field mirrors nodemesh/manifests/validate_traffic.py, whose
constants are imported rather than copied so the two cannot drift. Defaults are written only where
they are unconditional: a default that depends on another field (`retriableStatusCodes` is [503]
only when `retryOn` was left out; `maxInterval` is 10 x `baseInterval`) is left to the
controller's normalization, because the API server defaults before it validates and would make a
user's omission look like a choice.
"""

from __future__ import annotations

from nodemesh.install import openapi as o
from nodemesh.manifests import validate_traffic as traffic
from nodemesh.manifests.validate_route import (
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF,
    RETRY_STATUS_HIGH,
    RETRY_STATUS_LOW,
)

_CODES_LISTED = "has(self.retryOn) ? self.retryOn.exists(c, c == 'retriable-status-codes') : true"


def _target_ref() -> o.Schema:
    return o.obj(
        {
            "group": o.string('Must be "", the core API group.', enum=("",), default=""),
            "kind": o.string("Must be Service.", enum=("Service",), default="Service"),
            "name": o.string(
                "A Service in the policy's namespace.",
                pattern=o.DNS1035_LABEL_PATTERN,
                min_length=1,
                max_length=63,
            ),
        },
        required=("name",),
    )


def _retries() -> o.Schema:
    backoff = o.obj(
        {
            "baseInterval": o.duration(
                f"Ceiling of the first retry's back-off (default {DEFAULT_RETRY_BACKOFF}).",
                rules=(
                    o.rule(
                        f"duration(self) <= duration('{traffic.MAX_BASE_INTERVAL}')",
                        f"must be at most {traffic.MAX_BASE_INTERVAL}",
                    ),
                ),
            ),
            "maxInterval": o.duration("Largest ceiling (default 10 x baseInterval)."),
        },
        rules=(
            o.rule(
                "!has(self.maxInterval) || duration(self.maxInterval) >= "
                f"duration(has(self.baseInterval) ? self.baseInterval : '{DEFAULT_RETRY_BACKOFF}')",
                "maxInterval must not be shorter than baseInterval",
            ),
        ),
    )
    budget = o.obj(
        {
            "percent": o.percentage("Concurrent retries as a share of active requests."),
            "minRetryConcurrency": o.integer("The budget's floor."),
        }
    )
    return o.obj(
        {
            "attempts": o.integer(
                "Retries after the first attempt; 0 turns retries off.",
                default=DEFAULT_RETRY_ATTEMPTS,
            ),
            "perTryTimeout": o.duration("How long one attempt may take."),
            "retryOn": o.array(
                o.string(enum=traffic.RETRY_ON),
                "Envoy retry conditions (default: Istio's).",
                min_items=1,
                max_items=64,
            ),
            "retriableStatusCodes": o.array(
                o.integer(low=RETRY_STATUS_LOW, high=RETRY_STATUS_HIGH),
                "Statuses retried under retriable-status-codes.",
                max_items=RETRY_STATUS_HIGH - RETRY_STATUS_LOW + 1,
            ),
            "backoff": backoff,
            "budget": budget,
        },
        description="When the waypoint retries a failed attempt.",
        rules=(
            o.rule(
                "!has(self.retriableStatusCodes) || size(self.retriableStatusCodes) == 0 || "
                f"({_CODES_LISTED})",
                "retriableStatusCodes has no effect unless retryOn includes "
                "retriable-status-codes; add it there",
            ),
            o.rule(
                "!has(self.retryOn) || !self.retryOn.exists(c, c == 'retriable-status-codes') || "
                "(has(self.retriableStatusCodes) && size(self.retriableStatusCodes) > 0)",
                "retryOn includes retriable-status-codes but retriableStatusCodes lists no codes",
            ),
        ),
    )


def _connection_pool() -> o.Schema:
    return o.obj(
        {
            "maxConnections": o.integer("Most upstream connections open at once.", low=1),
            "maxPendingRequests": o.integer("Most requests waiting for a connection."),
            "maxRequests": o.integer("Most requests in flight upstream.", low=1),
            "maxRetries": o.integer("Most retries in flight."),
        },
        description="Circuit-breaker limits; a field left out means no limit.",
    )


def _outlier_detection() -> o.Schema:
    return o.obj(
        {
            "consecutive5xxErrors": o.integer(
                "Consecutive 5xx that eject; 0 is off.", default=traffic.DEFAULT_CONSECUTIVE_5XX
            ),
            "consecutiveGatewayErrors": o.integer(
                "Consecutive 502/503/504 that eject; 0 is off.",
                default=traffic.DEFAULT_CONSECUTIVE_GATEWAY_ERRORS,
            ),
            "interval": o.duration(
                "Time back in rotation that forgives one ejection.",
                default=traffic.DEFAULT_OUTLIER_INTERVAL,
            ),
            "baseEjectionTime": o.duration(
                "Ejection time, times the ejection count.",
                default=traffic.DEFAULT_BASE_EJECTION_TIME,
            ),
            "maxEjectionPercent": {
                **o.percentage("Largest share of endpoints ejected at once."),
                "default": traffic.DEFAULT_MAX_EJECTION_PERCENT,
            },
        },
        description="Ejects endpoints that keep failing.",
    )


def _faults() -> o.Schema:
    delay = o.obj(
        {
            "percentage": o.percentage("Share of requests to delay."),
            "fixedDelay": o.duration("How long to hold the request."),
        },
        required=("percentage", "fixedDelay"),
    )
    abort = o.obj(
        {
            "percentage": o.percentage("Share of requests to abort."),
            "httpStatus": o.integer("HTTP status to answer with.", low=200, high=599),
            "grpcStatus": o.string(
                "gRPC status name, sent as HTTP 200 with grpc-status.",
                enum=tuple(traffic.GRPC_STATUS_CODES),
            ),
        },
        required=("percentage",),
        description="Exactly one of httpStatus and grpcStatus.",
        oneOf=[{"required": ["httpStatus"]}, {"required": ["grpcStatus"]}],
    )
    return o.obj(
        {"delay": delay, "abort": abort},
        description="Fault injection: delay, abort or both.",
        minProperties=1,
    )


def _rate_limit() -> o.Schema:
    return o.obj(
        {
            "maxTokens": o.integer("Bucket size: the largest burst.", low=1),
            "tokensPerFill": o.integer("Tokens added per fill (default maxTokens).", low=1),
            "fillInterval": o.duration(
                "Time between fills.",
                rules=(
                    o.rule(
                        f"duration(self) >= duration('{traffic.MIN_FILL_INTERVAL_MS}ms')",
                        f"must be at least {traffic.MIN_FILL_INTERVAL_MS}ms (Envoy's minimum)",
                    ),
                ),
            ),
        },
        required=("maxTokens", "fillInterval"),
        description="Local token-bucket rate limit, per waypoint process.",
    )


def traffic_policy_spec() -> o.Schema:
    sections = traffic.SECTIONS
    return o.obj(
        {
            "targetRefs": o.array(
                _target_ref(),
                "Services in the policy's namespace (Gateway API policy attachment).",
                min_items=1,
                # (group, kind, name) as map keys: the API server refuses a Service listed twice.
                **{
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["group", "kind", "name"],
                },
            ),
            "retries": _retries(),
            "connectionPool": _connection_pool(),
            "outlierDetection": _outlier_detection(),
            "faults": _faults(),
            "rateLimit": _rate_limit(),
        },
        required=("targetRefs",),
        description=f"Resilience settings; set at least one of {', '.join(sections)}.",
        anyOf=[{"required": [section]} for section in sections],
    )
