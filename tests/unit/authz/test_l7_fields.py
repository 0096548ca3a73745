"""Every L7 field and `when` key, and its not-form, evaluated for real with HTTP facts (waypoint),
and conservatively without them (agent).

Each row is one rule and one request, and whether the rule matches. The same row is checked in
an ALLOW policy (allowed iff it matches) and in a DENY policy (allowed iff it does not), so a
matcher that always or never matches fails one of the two.
"""

from __future__ import annotations

import pytest

from nodemesh.authz import DecisionCode, evaluate
from tests.unit.authz.policies import (
    SUBJECT,
    connection,
    index,
    on_service,
    policy,
    request,
    src,
    to,
    when,
    workload,
)

Code = DecisionCode
XUSER = "request.headers[x-user]"

ROWS = [
    # methods: exact, case-sensitive, one wildcard
    ("methods", to(methods=["GET"]), request("GET"), True),
    ("methods-miss", to(methods=["GET"]), request("POST"), False),
    ("methods-case", to(methods=["GET"]), request("get"), False),
    ("methods-or", to(methods=["PUT", "POST"]), request("POST"), True),
    ("methods-prefix", to(methods=["P*"]), request("PATCH"), True),
    ("notMethods-excluded", to(notMethods=["DELETE"]), request("DELETE"), False),
    ("notMethods-other", to(notMethods=["DELETE"]), request("GET"), True),
    # paths: exact, prefix, suffix, any; case-sensitive; the trailing slash counts
    ("paths-exact", to(paths=["/admin"]), request(path="/admin"), True),
    ("paths-exact-slash", to(paths=["/admin"]), request(path="/admin/"), False),
    ("paths-exact-case", to(paths=["/admin"]), request(path="/ADMIN"), False),
    ("paths-prefix", to(paths=["/api/*"]), request(path="/api/v1/items"), True),
    ("paths-prefix-miss", to(paths=["/api/*"]), request(path="/apix"), False),
    ("paths-suffix", to(paths=["*.css"]), request(path="/static/site.css"), True),
    ("paths-suffix-miss", to(paths=["*.css"]), request(path="/static/site.js"), False),
    ("paths-any", to(paths=["*"]), request(path="/"), True),
    ("notPaths-excluded", to(notPaths=["/admin*"]), request(path="/admin/users"), False),
    ("notPaths-other", to(notPaths=["/admin*"]), request(path="/shop"), True),
    # hosts: case-insensitive, wildcards, with or without the port
    ("hosts", to(hosts=["cart.shop"]), request(host="cart.shop"), True),
    ("hosts-case", to(hosts=["cart.shop"]), request(host="Cart.SHOP"), True),
    ("hosts-with-port", to(hosts=["cart.shop"]), request(host="cart.shop:8080"), True),
    ("hosts-miss", to(hosts=["cart.shop"]), request(host="cart.shopx"), False),
    ("hosts-pattern-port", to(hosts=["cart.shop:8080"]), request(host="cart.shop:8080"), True),
    ("hosts-pattern-port-miss", to(hosts=["cart.shop:8080"]), request(host="cart.shop"), False),
    ("hosts-prefix", to(hosts=["cart.*"]), request(host="cart.shop.svc.cluster.local"), True),
    ("hosts-suffix", to(hosts=["*.SHOP"]), request(host="cart.shop:80"), True),
    ("hosts-suffix-miss", to(hosts=["*.shop"]), request(host="cart.web"), False),
    ("hosts-any", to(hosts=["*"]), request(host="x"), True),
    ("hosts-any-no-host", to(hosts=["*"]), request(host=""), False),
    ("hosts-ipv6", to(hosts=["[2001:db8::1]"]), request(host="[2001:db8::1]:80"), True),
    ("notHosts-excluded", to(notHosts=["admin.shop"]), request(host="ADMIN.shop:80"), False),
    ("notHosts-other", to(notHosts=["admin.shop"]), request(host="cart.shop"), True),
    ("notHosts-no-host", to(notHosts=["admin.shop"]), request(host=""), True),
    # request headers: Istio's string match on the value; absent matches no value
    ("header", when(XUSER, ["alice"]), request(headers=(("x-user", "alice"),)), True),
    ("header-miss", when(XUSER, ["alice"]), request(headers=(("x-user", "bob"),)), False),
    ("header-absent", when(XUSER, ["alice"]), request(), False),
    ("header-prefix", when(XUSER, ["al*"]), request(headers=(("x-user", "alice"),)), True),
    ("header-present", when(XUSER, ["*"]), request(headers=(("x-user", "a"),)), True),
    ("header-present-empty", when(XUSER, ["*"]), request(headers=(("x-user", ""),)), True),
    ("header-any-absent", when(XUSER, ["*"]), request(), False),
    (
        "header-repeated-joined",
        when(XUSER, ["a,b"]),
        request(headers=(("x-user", "a"), ("x-user", "b"))),
        True,
    ),
    (
        "header-name-case",
        when("request.headers[X-User]", ["a"]),
        request(headers=(("x-user", "a"),)),
        True,
    ),
    (
        "header-not-excluded",
        when(XUSER, None, ["bob"]),
        request(headers=(("x-user", "bob"),)),
        False,
    ),
    ("header-not-other", when(XUSER, None, ["bob"]), request(headers=(("x-user", "al"),)), True),
    ("header-not-absent", when(XUSER, None, ["bob"]), request(), True),
    ("header-pseudo-method", when("request.headers[:method]", ["PUT"]), request("PUT"), True),
    ("header-host", when("request.headers[host]", ["cart.*"]), request(host="cart.shop"), True),
    # remote IP: remoteIpBlocks and remote.ip
    ("remoteIpBlocks", src(remoteIpBlocks=["203.0.113.0/24"]), request(remote="203.0.113.9"), True),
    ("remoteIpBlocks-miss", src(remoteIpBlocks=["203.0.113.0/24"]), request(), False),
    ("notRemoteIpBlocks", src(notRemoteIpBlocks=["203.0.113.0/24"]), request(), True),
    (
        "notRemoteIpBlocks-excluded",
        src(notRemoteIpBlocks=["203.0.113.0/24"]),
        request(remote="203.0.113.9"),
        False,
    ),
    ("when-remote.ip", when("remote.ip", ["198.18.0.5"]), request(), True),
    ("when-remote.ip-not", when("remote.ip", None, ["198.18.0.0/16"]), request(), False),
    # no JWT is ever validated: request principals and claims are absent
    ("requestPrincipals", src(requestPrincipals=["*"]), request(), False),
    ("notRequestPrincipals", src(notRequestPrincipals=["*"]), request(), True),
    ("when-auth-principal", when("request.auth.principal", ["iss/sub"]), request(), False),
    ("when-auth-principal-not", when("request.auth.principal", None, ["*"]), request(), True),
    ("when-auth-claims", when("request.auth.claims[iss]", ["me"]), request(), False),
    ("when-auth-claims-not", when("request.auth.claims[iss]", None, ["me"]), request(), True),
    ("when-auth-audiences", when("request.auth.audiences", ["*"]), request(), False),
    ("when-auth-presenter-not", when("request.auth.presenter", None, ["x"]), request(), True),
    # connection.sni: the client's TLS SNI at the waypoint, absent for plain HTTP
    ("sni", when("connection.sni", ["cart.shop"]), request(sni="cart.shop"), True),
    ("sni-absent", when("connection.sni", ["*"]), request(), False),
    ("sni-not-absent", when("connection.sni", None, ["cart.shop"]), request(), True),
    # L4 and L7 together: fields AND, sources/operations OR
    (
        "l4-and-l7",
        {**src(principals=["cluster.local/ns/web/*"]), **to(methods=["GET"])},
        request("GET"),
        True,
    ),
    (
        "l4-and-l7-wrong-peer",
        {**src(principals=["cluster.local/ns/web/*"]), **to(methods=["GET"])},
        request("GET", identity=None),
        False,
    ),
    ("operation-fields-and", to(methods=["GET"], paths=["/a"]), request("GET", "/b"), False),
    (
        "operations-or",
        {"to": [{"operation": {"methods": ["PUT"]}}, {"operation": {"paths": ["/b"]}}]},
        request("GET", "/b"),
        True,
    ),
    ("ports-at-waypoint", to(ports=["8080"], methods=["GET"]), request(port=8080), True),
    ("ports-at-waypoint-miss", to(ports=["80"], methods=["GET"]), request(port=8080), False),
]
IDS = [row[0] for row in ROWS]


def _verdict(action: str, rule: dict, facts):
    idx = index(policy(action, [rule], name="under-test", **on_service()))
    return evaluate(idx.at_waypoint("shop", "cart", "wp"), facts, SUBJECT)


@pytest.mark.parametrize(("rule", "facts", "matches"), [r[1:] for r in ROWS], ids=IDS)
def test_an_allow_rule_allows_exactly_what_it_matches(rule, facts, matches):
    decision = _verdict("ALLOW", rule, facts)
    assert decision.allowed is matches
    assert decision.code is (Code.ALLOWED_BY_POLICY if matches else Code.DENIED_NO_ALLOW_MATCH)


@pytest.mark.parametrize(("rule", "facts", "matches"), [r[1:] for r in ROWS], ids=IDS)
def test_a_deny_rule_denies_exactly_what_it_matches(rule, facts, matches):
    decision = _verdict("DENY", rule, facts)
    assert decision.allowed is not matches
    if matches:
        assert (decision.code, decision.policy, decision.rule) == (
            Code.DENIED_BY_DENY,
            "shop/under-test",
            0,
        )


L7_ONLY = [row for row in ROWS if not row[0].startswith(("l4-", "ports-"))]


@pytest.mark.parametrize("rule", [r[1] for r in L7_ONLY], ids=[r[0] for r in L7_ONLY])
def test_without_http_facts_allow_never_matches_and_deny_always_does(rule):
    # The agent's view of the same rules: the HTTP parts cannot be checked there.
    idx = index(policy("ALLOW", [rule], name="a"), enforcer="the agent")
    allow = evaluate(idx.applicable(workload()), connection(), SUBJECT)
    assert (allow.allowed, allow.code) == (False, Code.DENIED_NO_ALLOW_MATCH)
    idx = index(policy("DENY", [rule], name="d"), enforcer="the agent")
    deny = evaluate(idx.applicable(workload()), connection(), SUBJECT)
    assert (deny.allowed, deny.code, deny.policy) == (False, Code.DENIED_BY_DENY, "shop/d")
    assert "count as matched" in deny.reason


def test_path_templates_are_refused_not_taken_literally():
    rule = to(paths=["/api/{*}/items"])
    idx = index(policy("ALLOW", [rule], name="t", **on_service()))
    assert idx.problems == (
        "AuthorizationPolicy shop/t rule 0: cannot parse path: '/api/{*}/items'; the waypoint "
        "never matches the rule",
    )
    literal = request(path="/api/{*}/items")
    assert not evaluate(idx.at_waypoint("shop", "cart", "wp"), literal, SUBJECT).allowed
    deny = index(policy("DENY", [{**rule, **to(methods=["POST"])}], **on_service()))
    # the refused test is left out, the rest of the rule still denies
    applicable = deny.at_waypoint("shop", "cart", "wp")
    assert not evaluate(applicable, request("POST", "/other"), SUBJECT).allowed
    assert evaluate(applicable, request("GET", "/other"), SUBJECT).allowed


@pytest.mark.parametrize(
    "key",
    [
        "experimental.envoy.filters.http.jwt_authn[issuer]",
        "request.regex.headers[x]",
        "source.user",
    ],
)
def test_unsupported_condition_keys_fail_closed_and_are_reported(key):
    allow = index(policy("ALLOW", [when(key, ["x"])], name="a", **on_service()))
    assert allow.problems == (
        f"AuthorizationPolicy shop/a rule 0: does not support condition key {key!r} "
        + (
            "(Envoy filter metadata, which nodemesh does not have)"
            if key.startswith("experimental.")
            else "(not a key nodemesh knows)"
        )
        + "; the waypoint never matches the rule",
    )
    assert not evaluate(allow.at_waypoint("shop", "cart", "wp"), request(), SUBJECT).allowed
    deny = index(policy("DENY", [{**when(key, ["x"]), **to(methods=["POST"])}], **on_service()))
    applicable = deny.at_waypoint("shop", "cart", "wp")
    denied = evaluate(applicable, request("POST"), SUBJECT)
    assert "unsupported conditions count as matched" in denied.reason
    assert evaluate(applicable, request("GET"), SUBJECT).allowed
