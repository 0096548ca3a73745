"""gateway.networking.k8s.io/v1 HTTPRoute: Gateway API shapes, defaults and CEL-style rules."""

from __future__ import annotations

import pytest

from nodemesh.manifests.validate_route import parse_duration

ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                "backendRefs": [{"name": "web-v1", "port": 80, "weight": 90}],
            }
        ],
    },
}
R0 = "spec.rules[0]"
M0 = f"{R0}.matches[0]"
F0 = f"{R0}.filters[0]"
B0 = f"{R0}.backendRefs[0]"
HEADER_SET = {"set": [{"name": "x-mesh", "value": "nodemesh"}], "remove": ["x-debug"]}


def test_route_defaults(normalized):
    bare = {
        **ROUTE,
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
        },
    }

    spec = normalized(bare)["spec"]

    assert spec["parentRefs"] == [
        {"name": "gw", "group": "gateway.networking.k8s.io", "kind": "Gateway"}
    ]
    assert spec["hostnames"] == []
    (rule,) = spec["rules"]
    assert rule["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/"}, "headers": [], "queryParams": []}
    ]
    assert rule["filters"] == []
    assert rule["backendRefs"] == [
        {"name": "web", "port": 80, "group": "", "kind": "Service", "weight": 1, "filters": []}
    ]


def test_route_without_rules_gets_the_default_rule(normalized):
    spec = normalized({**ROUTE, "spec": {"parentRefs": [{"name": "gw"}]}})["spec"]

    assert spec["rules"][0]["matches"][0]["path"] == {"type": "PathPrefix", "value": "/"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.hostnames", ["web.example.com", "*.example.com"]),
        (f"{M0}.path", {"type": "Exact", "value": "/healthz"}),
        (f"{M0}.path", {"type": "RegularExpression", "value": "/v[0-9]+/.*"}),
        (f"{M0}.headers", [{"name": "x-version", "value": "2"}]),
        (f"{M0}.headers", [{"type": "RegularExpression", "name": "x-user", "value": "a.*"}]),
        (f"{M0}.queryParams", [{"name": "debug", "value": "1"}, {"name": "Debug", "value": "2"}]),
        (f"{M0}.method", "POST"),
        (f"{R0}.filters", [{"type": "RequestHeaderModifier", "requestHeaderModifier": HEADER_SET}]),
        (
            f"{R0}.filters",
            [{"type": "ResponseHeaderModifier", "responseHeaderModifier": HEADER_SET}],
        ),
        (
            f"{R0}.filters",
            [
                {
                    "type": "RequestRedirect",
                    "requestRedirect": {"scheme": "https", "statusCode": 301},
                }
            ],
        ),
        (
            f"{R0}.filters",
            [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {
                        "hostname": "api.internal",
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
                    },
                }
            ],
        ),
        (
            f"{R0}.filters",
            [
                {
                    "type": "RequestMirror",
                    "requestMirror": {"backendRef": {"name": "a", "port": 80}},
                },
                {
                    "type": "RequestMirror",
                    "requestMirror": {"backendRef": {"name": "b", "port": 80}, "percent": 10},
                },
            ],
        ),
        (
            f"{R0}.filters",
            [
                {
                    "type": "ExtensionRef",
                    "extensionRef": {"group": "x.io", "kind": "Rate", "name": "r"},
                }
            ],
        ),
        (f"{B0}.weight", 0),
        (f"{B0}.weight", 1_000_000),
        (f"{B0}.namespace", "billing"),
        (f"{B0}", {"group": "x.io", "kind": "Backend", "name": "b"}),  # only Services need a port
        (f"{R0}.timeouts", {"request": "10s", "backendRequest": "500ms"}),
        (f"{R0}.timeouts", {"request": "0s", "backendRequest": "1h2m"}),
        (f"{R0}.name", "api"),
        ("status", {"parents": []}),
    ],
)
def test_route_accepted(check_case, path, value):
    assert check_case(ROUTE, path, value) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("spec", None, "spec", "required field is missing"),
        ("spec.parentRefs[0].name", None, "spec.parentRefs[0].name", "required field is missing"),
        (
            "spec.parentRefs[0].port",
            0,
            "spec.parentRefs[0].port",
            "must be between 1 and 65535, got 0",
        ),
        (
            "spec.hostnames",
            ["Web.example.com"],
            "spec.hostnames[0]",
            "must be a lowercase DNS name, optionally starting with '*.', got 'Web.example.com'",
        ),
        (
            "spec.hostnames",
            ["10.0.0.1"],
            "spec.hostnames[0]",
            "must be a DNS name, not an IP address, got '10.0.0.1'",
        ),
        (
            f"{M0}.path.type",
            "Prefix",
            f"{M0}.path.type",
            "must be one of Exact, PathPrefix, RegularExpression, got 'Prefix'",
        ),
        (
            f"{M0}.path.value",
            "api",
            f"{M0}.path.value",
            "must start with '/' for a PathPrefix match, got 'api'",
        ),
        (
            f"{M0}.path",
            {"type": "RegularExpression", "value": "/v[0-9"},
            f"{M0}.path.value",
            "is not a valid regular expression: unterminated character set at position 2",
        ),
        (f"{M0}.headers", [{"name": "x-a"}], f"{M0}.headers[0].value", "required field is missing"),
        (
            f"{M0}.headers",
            [{"name": "x a", "value": "1"}],
            f"{M0}.headers[0].name",
            "must be an HTTP token of at most 256 characters (no spaces or ':'), got 'x a'",
        ),
        (
            f"{M0}.headers",
            [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}],
            f"{M0}.headers[1].name",
            f"duplicate name 'x-a' (also {M0}.headers[0])",
        ),
        (
            f"{M0}.headers",
            [{"type": "Prefix", "name": "x", "value": "1"}],
            f"{M0}.headers[0].type",
            "must be one of Exact, RegularExpression, got 'Prefix'",
        ),
        (
            f"{M0}.queryParams",
            [{"type": "RegularExpression", "name": "q", "value": "("}],
            f"{M0}.queryParams[0].value",
            "is not a valid regular expression: missing ), unterminated subpattern at position 0",
        ),
        (
            f"{M0}.method",
            "get",
            f"{M0}.method",
            "must be one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, "
            "got 'get'",
        ),
        (f"{M0}.methd", "GET", f"{M0}.methd", "unknown field; did you mean 'method'?"),
        (
            f"{R0}.filters",
            [{"type": "RequestHeaderModifier"}],
            f"{F0}.requestHeaderModifier",
            "required when type is RequestHeaderModifier",
        ),
        (
            f"{R0}.filters",
            [{"type": "URLRewrite", "urlRewrite": {}, "requestMirror": {}}],
            f"{F0}.requestMirror",
            "must not be set when type is URLRewrite",
        ),
        (
            f"{R0}.filters",
            [{"type": "CORS", "cors": {}}],
            f"{F0}.type",
            "must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, "
            "URLRewrite, RequestMirror, ExtensionRef, got 'CORS'",
        ),
        (
            f"{R0}.filters",
            [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 307}}],
            f"{F0}.requestRedirect.statusCode",
            "must be 301 or 302, got 307",
        ),
        (
            f"{R0}.filters",
            [{"type": "RequestRedirect", "requestRedirect": {"hostname": "*.a.com"}}],
            f"{F0}.requestRedirect.hostname",
            "must be a precise hostname without wildcards, got '*.a.com'",
        ),
        (
            f"{R0}.filters",
            [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath"}}}],
            f"{F0}.urlRewrite.path.replaceFullPath",
            "required field is missing",
        ),
        (
            f"{R0}.filters",
            [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "m"}}}],
            f"{F0}.requestMirror.backendRef.port",
            "required when referring to a Service",
        ),
        (
            f"{R0}.filters",
            [
                {
                    "type": "RequestMirror",
                    "requestMirror": {
                        "backendRef": {"name": "m", "port": 80},
                        "fraction": {"numerator": 5, "denominator": 2},
                    },
                }
            ],
            f"{F0}.requestMirror.fraction",
            "numerator must not be greater than denominator",
        ),
        (
            f"{R0}.filters",
            [
                {"type": "RequestRedirect", "requestRedirect": {}},
                {"type": "URLRewrite", "urlRewrite": {}},
            ],
            f"{R0}.filters",
            "RequestRedirect and URLRewrite may not be used together",
        ),
        (
            f"{R0}.filters",
            [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}] * 2,
            f"{R0}.filters[1].type",
            f"RequestHeaderModifier may appear once (also {F0})",
        ),
        (
            f"{R0}.filters",
            [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["a b"]}}],
            f"{F0}.requestHeaderModifier.remove[0]",
            "must be an HTTP token of at most 256 characters (no spaces or ':'), got 'a b'",
        ),
        (f"{B0}.weight", 1_000_001, f"{B0}.weight", "must be between 0 and 1000000, got 1000001"),
        (f"{B0}.port", None, f"{B0}.port", "required when referring to a Service"),
        (f"{B0}.name", None, f"{B0}.name", "required field is missing"),
        (f"{B0}.wieght", 1, f"{B0}.wieght", "unknown field; did you mean 'weight'?"),
        (
            f"{R0}.timeouts",
            {"request": "1.5s"},
            f"{R0}.timeouts.request",
            "must be a Gateway API duration like '500ms', '10s' or '1h2m', got '1.5s'",
        ),
        (
            f"{R0}.timeouts",
            {"request": "1s", "backendRequest": "2s"},
            f"{R0}.timeouts.backendRequest",
            "must not be longer than the request timeout (2s > 1s)",
        ),
        (
            f"{R0}",
            {
                "matches": [{"path": {"type": "Exact", "value": "/api"}}],
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
                        },
                    }
                ],
                "backendRefs": [{"name": "web-v1", "port": 80}],
            },
            f"{M0}.path.type",
            "is Exact, but a filter of this rule uses ReplacePrefixMatch, which works only with "
            "PathPrefix matches; use ReplaceFullPath or move this match to its own rule",
        ),
    ],
)
def test_route_errors(check_case, path, value, field, message):
    assert check_case(ROUTE, path, value) == [(field, message)]


@pytest.mark.parametrize(
    ("text", "milliseconds"),
    [("500ms", 500), ("1s", 1000), ("1h2m", 3_720_000), ("0s", 0), ("1h1m1s1ms", 3_661_001)],
)
def test_parse_duration(text, milliseconds):
    assert parse_duration(text) == milliseconds


@pytest.mark.parametrize("text", ["", "1", "1.5s", "1d", "-1s", "1h1m1s1ms1h", "123456s"])
def test_parse_duration_refuses(text):
    assert parse_duration(text) is None
