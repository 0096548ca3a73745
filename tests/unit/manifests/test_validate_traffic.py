"""networking.nodemesh.io/v1 TrafficPolicy and HTTPRoute `retry`: shapes, defaults, clear errors."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.manifests.validate_route import parse_duration
from nodemesh.manifests.validate_traffic import RETRY_ON, format_duration
from tests.unit.manifests.test_manifests_fuzz import FUZZ, VALUES, parse_or_refuse, paths, replaced

POLICY = {
    "apiVersion": "networking.nodemesh.io/v1",
    "kind": "TrafficPolicy",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "reviews"}],
        "retries": {
            "attempts": 3,
            "perTryTimeout": "2s",
            "retryOn": ["5xx", "connect-failure"],
            "backoff": {"baseInterval": "50ms", "maxInterval": "1s"},
            "budget": {"percent": 25, "minRetryConcurrency": 2},
        },
        "connectionPool": {
            "maxConnections": 100,
            "maxPendingRequests": 10,
            "maxRequests": 200,
            "maxRetries": 5,
        },
        "outlierDetection": {
            "consecutive5xxErrors": 5,
            "consecutiveGatewayErrors": 3,
            "interval": "10s",
            "baseEjectionTime": "30s",
            "maxEjectionPercent": 50,
        },
        "faults": {
            "delay": {"percentage": 0.5, "fixedDelay": "100ms"},
            "abort": {"percentage": 1, "httpStatus": 503},
        },
        "rateLimit": {"maxTokens": 100, "tokensPerFill": 10, "fillInterval": "1s"},
    },
}
ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
        "rules": [
            {
                "backendRefs": [{"name": "reviews-v1", "port": 9080}],
                "timeouts": {"request": "1s"},
                "retry": {"codes": [500, 502, 503, 504], "attempts": 2, "backoff": "100ms"},
            }
        ],
    },
}
S = "spec"
T0 = "spec.targetRefs[0]"
R = "spec.retries"
P = "spec.connectionPool"
OD = "spec.outlierDetection"
F = "spec.faults"
L = "spec.rateLimit"
RR = "spec.rules[0].retry"
DURATION = "must be a Gateway API duration like '500ms', '10s' or '1h2m', got "
UINT32 = "must be between {} and 4294967295, got {}"


def bare(**sections):
    """A TrafficPolicy with only the given sections."""
    return {**POLICY, "spec": {"targetRefs": [{"name": "reviews"}], **sections}}


def test_the_base_objects_are_valid(problems_of):
    assert problems_of(yaml.safe_dump_all([POLICY, ROUTE])) == []


# ---- TrafficPolicy ------------------------------------------------------------------------------


ALL_CONDITIONS = {"retryOn": list(RETRY_ON), "retriableStatusCodes": [503, 429]}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.targetRefs", [{"name": "reviews"}, {"name": "ratings"}]),
        (R, {}),
        (R, ALL_CONDITIONS),
        (R, {"retryOn": ["retriable-status-codes"], "retriableStatusCodes": [409]}),
        (R, {"retriableStatusCodes": [502]}),  # the default retryOn has retriable-status-codes
        (f"{R}.attempts", 0),
        (f"{R}.budget.percent", 12.5),
        (f"{R}.backoff", {"maxInterval": "25ms"}),  # equal to the default base
        (P, {}),
        (f"{P}.maxPendingRequests", 0),
        (OD, {}),
        (f"{OD}.maxEjectionPercent", 0.5),
        (f"{OD}.consecutive5xxErrors", 0),
        (F, {"delay": {"percentage": 100, "fixedDelay": "1h"}}),
        (F, {"abort": {"percentage": 0, "grpcStatus": "UNAVAILABLE"}}),
        (L, {"maxTokens": 1, "fillInterval": "50ms"}),
        ("status", {"conditions": []}),
    ],
)
def test_policy_accepted(check_case, path, value):
    assert check_case(POLICY, path, value) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (S, None, S, "required field is missing"),
        ("spec.targetRefs", None, "spec.targetRefs", "required field is missing"),
        ("spec.targetRefs", [], "spec.targetRefs", "must have at least 1 item(s)"),
        (f"{T0}.kind", "Deployment", f"{T0}.kind", "must be one of Service, got 'Deployment'"),
        (
            f"{T0}.group",
            "apps",
            f"{T0}.group",
            "must be \"\" (the core API group of Services), got 'apps'",
        ),
        (
            f"{T0}.name",
            "Reviews",
            f"{T0}.name",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
            "with a letter or digit), got 'Reviews'",
        ),
        (
            "spec.targetRefs[1]",
            {"name": "reviews"},
            "spec.targetRefs[1].name",
            f"duplicate Service 'reviews' (also {T0})",
        ),
        (f"{T0}.nmae", "x", f"{T0}.nmae", "unknown field; did you mean 'name'?"),
        (
            f"{R}.retryOn",
            ["5xx", "sometimes"],
            f"{R}.retryOn[1]",
            f"must be one of {', '.join(RETRY_ON)}, got 'sometimes'",
        ),
        (
            f"{R}.retryOn",
            ["503"],
            f"{R}.retryOn[0]",
            "status codes go in retriableStatusCodes (and retryOn lists retriable-status-codes), "
            "got '503'",
        ),
        (
            f"{R}.retryOn",
            "5xx,reset",
            f"{R}.retryOn",
            'must be a list, got string \'5xx,reset\' (write a YAML list: ["a", "b"])',
        ),
        (f"{R}.retryOn", [], f"{R}.retryOn", "must have at least 1 item(s)"),
        (
            f"{R}.retriableStatusCodes",
            [503],
            f"{R}.retriableStatusCodes",
            "has no effect unless retryOn includes retriable-status-codes; add it there",
        ),
        (
            f"{R}.retryOn",
            ["5xx", "retriable-status-codes"],
            f"{R}.retryOn",
            "includes retriable-status-codes but retriableStatusCodes lists no codes; add the "
            "codes to retry on, e.g. retriableStatusCodes: [503]",
        ),
        (
            f"{R}.retriableStatusCodes",
            [200],
            f"{R}.retriableStatusCodes[0]",
            "must be between 400 and 599, got 200",
        ),
        (f"{R}.attempts", -1, f"{R}.attempts", UINT32.format(0, -1)),
        (f"{R}.perTryTimeout", "0s", f"{R}.perTryTimeout", "must be longer than zero, got '0s'"),
        (f"{R}.perTryTimeout", "1.5s", f"{R}.perTryTimeout", DURATION + "'1.5s'"),
        (
            f"{R}.backoff.baseInterval",
            "2h",
            f"{R}.backoff.baseInterval",
            "must be at most 1h, got '2h'",
        ),
        (
            f"{R}.backoff.maxInterval",
            "10ms",
            f"{R}.backoff.maxInterval",
            "must not be shorter than baseInterval (10ms < 50ms)",
        ),
        (
            f"{R}.backoff",
            {"maxInterval": "10ms"},
            f"{R}.backoff.maxInterval",
            "must not be shorter than baseInterval (10ms < the default 25ms)",
        ),
        (
            f"{R}.backoff.jitter",
            True,
            f"{R}.backoff.jitter",
            "unknown field; fields nodemesh reads here: baseInterval, maxInterval",
        ),
        (f"{R}.budget.percent", 150, f"{R}.budget.percent", "must be between 0 and 100, got 150"),
        (
            f"{R}.budget.percent",
            "20%",
            f"{R}.budget.percent",
            "must be a number from 0 to 100, got string '20%'",
        ),
        (
            f"{R}.budget.percent",
            {"value": 20},
            f"{R}.budget.percent",
            "write the number itself (Istio's {value: N} form is not used here)",
        ),
        (
            f"{R}.budget.percent",
            True,
            f"{R}.budget.percent",
            "must be a number from 0 to 100, got boolean true",
        ),
        (
            f"{R}.budget.minRetryConcurrency",
            -3,
            f"{R}.budget.minRetryConcurrency",
            UINT32.format(0, -3),
        ),
        (f"{P}.maxConnections", 0, f"{P}.maxConnections", UINT32.format(1, 0)),
        (f"{P}.maxRequests", 2**32, f"{P}.maxRequests", UINT32.format(1, 2**32)),
        (f"{P}.maxRetries", 1.5, f"{P}.maxRetries", "must be an integer, got number 1.5"),
        (
            f"{P}.maxConnection",
            1,
            f"{P}.maxConnection",
            "unknown field; did you mean 'maxConnections'?",
        ),
        (f"{OD}.interval", "0s", f"{OD}.interval", "must be longer than zero, got '0s'"),
        (
            f"{OD}.maxEjectionPercent",
            101,
            f"{OD}.maxEjectionPercent",
            "must be between 0 and 100, got 101",
        ),
        (
            f"{OD}.consecutive5xxErrors",
            -1,
            f"{OD}.consecutive5xxErrors",
            UINT32.format(0, -1),
        ),
        (F, {}, F, "must set delay, abort or both"),
        (
            f"{F}.delay.percentage",
            None,
            f"{F}.delay.percentage",
            "required field is missing; give a percentage from 0 to 100",
        ),
        (f"{F}.delay.fixedDelay", None, f"{F}.delay.fixedDelay", "required field is missing"),
        (
            f"{F}.abort",
            {"percentage": 1},
            f"{F}.abort",
            "must set httpStatus (HTTP) or grpcStatus (gRPC)",
        ),
        (
            f"{F}.abort.grpcStatus",
            "UNAVAILABLE",
            f"{F}.abort.grpcStatus",
            "may not be set together with httpStatus; use one",
        ),
        (
            f"{F}.abort.httpStatus",
            600,
            f"{F}.abort.httpStatus",
            "must be between 200 and 599, got 600",
        ),
        (
            f"{F}.abort",
            {"percentage": 1, "grpcStatus": "Unavailable"},
            f"{F}.abort.grpcStatus",
            "must be one of CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, "
            "ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, "
            "OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED, "
            "got 'Unavailable'",
        ),
        (
            f"{L}.fillInterval",
            "10ms",
            f"{L}.fillInterval",
            "must be at least 50ms (Envoy's minimum), got '10ms'",
        ),
        (f"{L}.maxTokens", None, f"{L}.maxTokens", "required field is missing"),
        (f"{L}.tokensPerFill", 0, f"{L}.tokensPerFill", UINT32.format(1, 0)),
        (
            "apiVersion",
            "networking.istio.io/v1",
            "apiVersion",
            "TrafficPolicy is served as networking.nodemesh.io/v1 by nodemesh, not "
            "'networking.istio.io/v1'",
        ),
    ],
)
def test_policy_errors(check_case, path, value, field, message):
    assert check_case(POLICY, path, value) == [(field, message)]


def test_a_policy_that_sets_nothing_is_refused(check_case):
    assert check_case(bare(), "spec.retries", None) == [
        (
            S,
            "sets none of retries, connectionPool, outlierDetection, faults, rateLimit, so the "
            "policy would do nothing",
        )
    ]


def test_policy_defaults(normalized):
    spec = normalized(bare(retries={}, outlierDetection={}, connectionPool={}))["spec"]

    assert spec["targetRefs"] == [{"name": "reviews", "group": "", "kind": "Service"}]
    assert spec["retries"] == {
        "attempts": 2,
        "retryOn": [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ],
        "retriableStatusCodes": [503],
        "backoff": {"baseInterval": "25ms", "maxInterval": "250ms"},
        "budget": {"percent": 20, "minRetryConcurrency": 3},
    }
    assert spec["outlierDetection"] == {
        "consecutive5xxErrors": 5,
        "consecutiveGatewayErrors": 0,
        "interval": "10s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 10,
    }
    assert spec["connectionPool"] == {}  # no limits: unlimited
    assert "faults" not in spec and "rateLimit" not in spec


def test_retry_lists_are_deduplicated(normalized):
    retries = {
        "retryOn": ["reset", "retriable-status-codes", "reset"],
        "retriableStatusCodes": [504, 502, 504],
    }

    spec = normalized(bare(retries=retries))["spec"]

    assert spec["retries"]["retryOn"] == ["reset", "retriable-status-codes"]
    assert spec["retries"]["retriableStatusCodes"] == [502, 504]


@pytest.mark.parametrize(
    ("base", "maximum"), [("1s", "10s"), ("150ms", "1s500ms"), ("1h", "10h"), ("7m", "1h10m")]
)
def test_max_interval_defaults_to_ten_times_the_base(normalized, base, maximum):
    spec = normalized(bare(retries={"backoff": {"baseInterval": base}}))["spec"]

    assert spec["retries"]["backoff"]["maxInterval"] == maximum


def test_tokens_per_fill_defaults_to_max_tokens(normalized):
    spec = normalized(bare(rateLimit={"maxTokens": 40, "fillInterval": "1s"}))["spec"]

    assert spec["rateLimit"]["tokensPerFill"] == 40


@given(st.integers(min_value=0, max_value=10 * 3_600_000 + 59 * 60_000 + 59_999))
def test_format_duration_round_trips(milliseconds):
    text = format_duration(milliseconds)

    assert parse_duration(text) == milliseconds


# ---- HTTPRoute retry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry",
    [
        {},
        {"attempts": 0},
        {"codes": [400, 599]},
        {"backoff": "999ms"},
        {"attempts": 5, "codes": [503], "backoff": "0s"},
    ],
)
def test_route_retry_accepted(check_case, retry):
    assert check_case(ROUTE, RR, retry) == []


def test_route_retry_allowed_with_a_short_timeout_when_off(check_case):
    rule = {**ROUTE["spec"]["rules"][0], "timeouts": {"request": "10ms"}, "retry": {"attempts": 0}}

    assert check_case(ROUTE, "spec.rules[0]", rule) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (f"{RR}.codes", [600], f"{RR}.codes[0]", "must be between 400 and 599, got 600"),
        (f"{RR}.codes", [503, "504"], f"{RR}.codes[1]", "must be an integer, got string '504'"),
        (
            f"{RR}.codes",
            "503",
            f"{RR}.codes",
            'must be a list, got string \'503\' (write a YAML list: ["a", "b"])',
        ),
        (f"{RR}.attempts", -1, f"{RR}.attempts", UINT32.format(0, -1)),
        (f"{RR}.backoff", "1.5s", f"{RR}.backoff", DURATION + "'1.5s'"),
        (
            f"{RR}.backoff",
            "1s",
            f"{RR}.backoff",
            "must be shorter than the request timeout (1s >= 1s), or no retry could ever start",
        ),
        (f"{RR}.codez", [503], f"{RR}.codez", "unknown field; did you mean 'codes'?"),
    ],
)
def test_route_retry_errors(check_case, path, value, field, message):
    assert check_case(ROUTE, path, value) == [(field, message)]


def test_default_backoff_must_fit_the_request_timeout(check_case):
    rule = {**ROUTE["spec"]["rules"][0], "timeouts": {"request": "20ms"}, "retry": {}}

    assert check_case(ROUTE, "spec.rules[0]", rule) == [
        (
            RR,
            "the default retry back-off (25ms) is not shorter than the request timeout (20ms), "
            "so no retry could start; set retry.backoff below it",
        )
    ]


def test_route_retry_defaults(normalized):
    route = {**ROUTE, "spec": {**ROUTE["spec"], "rules": [{"retry": {}}]}}

    (rule,) = normalized(route)["spec"]["rules"]

    assert rule["retry"] == {"codes": [], "attempts": 2, "backoff": "25ms"}


def test_route_retry_codes_are_sorted_and_deduplicated(normalized):
    route = {**ROUTE, "spec": {**ROUTE["spec"], "rules": [{"retry": {"codes": [504, 500, 504]}}]}}

    (rule,) = normalized(route)["spec"]["rules"]

    assert rule["retry"]["codes"] == [500, 504]


def test_rule_without_retry_stays_without(normalized):
    route = {**ROUTE, "spec": {**ROUTE["spec"], "rules": [{}]}}

    (rule,) = normalized(route)["spec"]["rules"]

    assert "retry" not in rule


# ---- every field replaced by anything: refused cleanly, or a fixed point ------------------------

MUTATIONS = st.sampled_from([POLICY, ROUTE]).flatmap(
    lambda obj: st.tuples(st.just(obj), st.sampled_from(list(paths(obj))), VALUES)
)


@FUZZ
@given(MUTATIONS)
def test_any_field_replaced_by_anything(case):
    obj, path, value = case
    parse_or_refuse(yaml.safe_dump(replaced(obj, path, value)), "fuzz.yaml")


@FUZZ
@given(st.sampled_from(["retries", "outlierDetection", "rateLimit", "faults"]), VALUES)
def test_any_section_value(section, value):
    parse_or_refuse(yaml.safe_dump(bare(**{section: value})), "fuzz.yaml")
