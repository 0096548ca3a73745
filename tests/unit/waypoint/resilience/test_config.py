"""config: normalized TrafficPolicy and HTTPRoute specs -> typed settings, and route precedence."""

from __future__ import annotations

import pytest
import yaml

from nodemesh.manifests import validate_traffic
from nodemesh.manifests.load import parse_documents
from waypoint.resilience.config import (
    DEFAULT_RETRY,
    ROUTE_RETRY_ON,
    AbortFault,
    Backoff,
    ConnectionPoolConfig,
    DelayFault,
    OutlierConfig,
    RateLimitConfig,
    RetryBudgetConfig,
    RetryConfig,
    RetryOn,
    effective_retry,
    route_retry_from_rule,
    traffic_policy_from_spec,
)
from waypoint.resilience.errors import ResilienceConfigError

TARGET = [{"name": "reviews"}]


def normalized(kind: str, spec: dict) -> dict:
    """The normalized spec of a valid TrafficPolicy or HTTPRoute, as the validator writes it."""
    api_version = {
        "TrafficPolicy": "networking.nodemesh.io/v1",
        "HTTPRoute": "gateway.networking.k8s.io/v1",
    }[kind]
    doc = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    (manifest,) = parse_documents(yaml.safe_dump(doc), "test.yaml")
    return manifest.obj["spec"]


def policy(**sections):
    return traffic_policy_from_spec(normalized("TrafficPolicy", {"targetRefs": TARGET, **sections}))


def route_rule(**rule):
    spec = {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews"}], "rules": [rule]}
    return normalized("HTTPRoute", spec)["rules"][0]


def test_condition_names_match_the_validator():
    assert [condition.value for condition in RetryOn] == list(validate_traffic.RETRY_ON)


def test_manifest_defaults_are_the_dataclass_defaults():
    config = policy(retries={}, outlierDetection={})

    assert config.retries == DEFAULT_RETRY
    assert config.outlier_detection == OutlierConfig()
    assert config.connection_pool == ConnectionPoolConfig()
    assert DEFAULT_RETRY.backoff == Backoff(base=0.025, cap=0.25)
    assert DEFAULT_RETRY.budget == RetryBudgetConfig(percent=20.0, min_concurrency=3)


def test_full_policy():
    config = policy(
        retries={
            "attempts": 4,
            "perTryTimeout": "2s",
            "retryOn": ["5xx", "reset", "retriable-status-codes"],
            "retriableStatusCodes": [429],
            "backoff": {"baseInterval": "100ms", "maxInterval": "3s"},
            "budget": {"percent": 12.5, "minRetryConcurrency": 1},
        },
        connectionPool={"maxConnections": 10, "maxPendingRequests": 0, "maxRequests": 20},
        outlierDetection={
            "consecutive5xxErrors": 0,
            "consecutiveGatewayErrors": 2,
            "interval": "1s",
            "baseEjectionTime": "1m",
            "maxEjectionPercent": 33.3,
        },
        faults={
            "delay": {"percentage": 0.1, "fixedDelay": "5s"},
            "abort": {"percentage": 1, "grpcStatus": "UNAVAILABLE"},
        },
        rateLimit={"maxTokens": 50, "fillInterval": "500ms"},
    )

    assert config.services == ("reviews",)
    assert config.retries == RetryConfig(
        attempts=4,
        retry_on=frozenset({RetryOn.FIVE_XX, RetryOn.RESET, RetryOn.RETRIABLE_STATUS_CODES}),
        retriable_status_codes=frozenset({429}),
        backoff=Backoff(base=0.1, cap=3.0),
        per_try_timeout=2.0,
        budget=RetryBudgetConfig(percent=12.5, min_concurrency=1),
    )
    assert config.connection_pool == ConnectionPoolConfig(10, 0, 20, None)
    assert config.outlier_detection == OutlierConfig(0, 2, 1.0, 60.0, 33.3)
    assert config.faults is not None
    assert config.faults.delay == DelayFault(0.1, 5.0)
    assert config.faults.abort == AbortFault(1.0, grpc_status=14)
    assert config.rate_limit == RateLimitConfig(50, 50, 0.5)


def test_absent_sections_are_off():
    config = policy(rateLimit={"maxTokens": 1, "tokensPerFill": 1, "fillInterval": "1s"})

    assert (config.retries, config.outlier_detection, config.faults) == (None, None, None)


def test_route_retry():
    rule = route_rule(
        retry={"codes": [503, 500], "attempts": 3, "backoff": "100ms"},
        timeouts={"request": "10s", "backendRequest": "1s"},
    )

    assert route_retry_from_rule(rule) == RetryConfig(
        attempts=3,
        retry_on=ROUTE_RETRY_ON | {RetryOn.RETRIABLE_STATUS_CODES},
        retriable_status_codes=frozenset({500, 503}),
        backoff=Backoff(base=0.1, cap=1.0, floor=0.1),
        per_try_timeout=1.0,
    )


def test_route_retry_without_codes_retries_connection_errors_only():
    retry = route_retry_from_rule(route_rule(retry={}))

    assert retry is not None
    assert retry.retry_on == {RetryOn.CONNECT_FAILURE, RetryOn.RESET, RetryOn.REFUSED_STREAM}
    assert retry.attempts == 2
    assert retry.backoff == Backoff(base=0.025, cap=0.25, floor=0.025)


def test_rule_without_retry():
    assert route_retry_from_rule(route_rule()) is None


def test_route_retry_wins_but_the_policy_budget_stays():
    services = policy(retries={"attempts": 5, "budget": {"percent": 50}})
    rule = route_rule(retry={"attempts": 1, "codes": [502]})

    retry = effective_retry(rule, services)

    assert retry.attempts == 1
    assert retry.retriable_status_codes == {502}
    assert retry.budget == RetryBudgetConfig(percent=50, min_concurrency=3)


def test_policy_retries_apply_when_the_route_has_none():
    services = policy(retries={"attempts": 5, "perTryTimeout": "3s"})

    retry = effective_retry(route_rule(), services)

    assert retry == services.retries
    assert retry.per_try_timeout == 3.0


@pytest.mark.parametrize(("backend_request", "per_try"), [("1s", 1.0), ("0s", None)])
def test_route_backend_request_timeout_wins_over_per_try_timeout(backend_request, per_try):
    services = policy(retries={"perTryTimeout": "3s"})
    rule = route_rule(timeouts={"backendRequest": backend_request})

    assert effective_retry(rule, services).per_try_timeout == per_try


def test_istio_default_without_any_configuration():
    assert effective_retry(None, None) == DEFAULT_RETRY
    assert effective_retry(route_rule(), policy(outlierDetection={})) == DEFAULT_RETRY


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"targetRefs": TARGET, "retries": {"retryOn": ["sometimes"]}},
        {"targetRefs": TARGET, "faults": {"abort": {"percentage": 1}}},
        {"targetRefs": TARGET, "rateLimit": {"maxTokens": 1, "fillInterval": "soon"}},
    ],
)
def test_unnormalized_policy_is_a_typed_error(spec):
    with pytest.raises(ResilienceConfigError, match=r"nodemesh\.manifests validation"):
        traffic_policy_from_spec(spec)


def test_unnormalized_rule_is_a_typed_error():
    with pytest.raises(ResilienceConfigError, match="HTTPRoute rule"):
        effective_retry({"retry": {"backoff": "1.5s"}}, None)
