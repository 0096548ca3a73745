"""security.nodemesh.io/v1 AuthorizationPolicy and PeerAuthentication: Istio's shapes, checked."""

from __future__ import annotations

import pytest

POLICY = {
    "apiVersion": "security.nodemesh.io/v1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "web-viewers", "namespace": "shop"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"principals": ["cluster.local/ns/shop/sa/frontend"]}}],
                "to": [{"operation": {"methods": ["GET"], "ports": ["8080"], "paths": ["/api/*"]}}],
                "when": [{"key": "request.headers[x-user]", "values": ["alice"]}],
            }
        ],
    },
}
R0 = "spec.rules[0]"
SOURCE = f"{R0}.from[0].source"
OPERATION = f"{R0}.to[0].operation"

PEER = {
    "apiVersion": "security.nodemesh.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "strict", "namespace": "shop"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {8080: {"mode": "PERMISSIVE"}},
    },
}


def test_authorization_policy_defaults(normalized):
    empty = {**POLICY, "spec": {}}

    assert normalized(POLICY)["spec"]["action"] == "ALLOW"
    assert normalized(empty)["spec"] == {"action": "ALLOW", "rules": []}
    assert normalized({k: v for k, v in POLICY.items() if k != "spec"})["spec"]["rules"] == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.action", "DENY"),
        ("spec.action", "AUDIT"),
        ("spec.rules", [{}]),  # allow everything
        (f"{SOURCE}.ipBlocks", ["10.0.0.0/8", "198.18.0.7", "fd00::/8"]),
        (f"{SOURCE}.notRemoteIpBlocks", ["203.0.113.0/24"]),
        (f"{SOURCE}.namespaces", ["shop", "billing-*"]),
        (f"{SOURCE}.notRequestPrincipals", ["*"]),
        (f"{OPERATION}.notPorts", ["1", "65535"]),
        (f"{OPERATION}.hosts", ["web.shop.svc.cluster.local"]),
        (f"{R0}.when[0]", {"key": "source.ip", "notValues": ["10.0.0.1"]}),
        ("spec.selector", None),
        ("spec", {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}]}),
        ("status", {"validationMessages": []}),
    ],
)
def test_authorization_policy_accepted(check_case, path, value):
    assert check_case(POLICY, path, value) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (
            "spec.action",
            "CUSTOM",
            "spec.action",
            "CUSTOM is not supported: nodemesh has no external authorization providers; "
            "use ALLOW, DENY or AUDIT",
        ),
        (
            "spec.action",
            "allow",
            "spec.action",
            "must be one of ALLOW, DENY, AUDIT, CUSTOM, got 'allow'",
        ),
        (
            "spec.provider",
            {"name": "ext-authz"},
            "spec.provider",
            "not supported: nodemesh has no external authorization providers",
        ),
        (
            "spec.targetRefs",
            [{"kind": "Service", "name": "web"}],
            "spec.targetRefs",
            "may not be set together with selector; use one",
        ),
        (
            "spec",
            {"targetRefs": [{"kind": "Service"}]},
            "spec.targetRefs[0].name",
            "required field is missing",
        ),
        (
            "spec.selector.matchLabel",
            {"app": "web"},
            "spec.selector.matchLabel",
            "unknown field; did you mean 'matchLabels'?",
        ),
        (
            f"{SOURCE}.ipBlocks",
            ["10.0.0.0/33"],
            f"{SOURCE}.ipBlocks[0]",
            "must be an IP address or CIDR block like 10.0.0.0/8, got '10.0.0.0/33'",
        ),
        (
            f"{SOURCE}.principals",
            "cluster.local/ns/shop/sa/frontend",
            f"{SOURCE}.principals",
            "must be a list, got string 'cluster.local/ns/shop/sa/frontend' "
            '(write a YAML list: ["a", "b"])',
        ),
        (
            f"{SOURCE}.principal",
            ["x"],
            f"{SOURCE}.principal",
            "unknown field; did you mean 'principals'?",
        ),
        (
            f"{SOURCE}.serviceAccounts",
            ["shop/frontend"],
            f"{SOURCE}.serviceAccounts",
            "not supported yet; use principals: ['cluster.local/ns/NS/sa/NAME']",
        ),
        (
            f"{R0}.from[0]",
            {"source": {}},
            f"{SOURCE}",
            "must not be empty; set at least one of principals, notPrincipals, requestPrincipals, "
            "notRequestPrincipals, namespaces, notNamespaces, ipBlocks, notIpBlocks, "
            "remoteIpBlocks, notRemoteIpBlocks",
        ),
        (f"{R0}.from[0]", {}, f"{SOURCE}", "required field is missing"),
        (
            f"{OPERATION}.ports",
            [8080],
            f"{OPERATION}.ports[0]",
            "must be a string, got integer 8080 (quote it if you meant the string)",
        ),
        (
            f"{OPERATION}.ports",
            ["http"],
            f"{OPERATION}.ports[0]",
            "must be a port number between 1 and 65535 written as a string, got 'http'",
        ),
        (f"{OPERATION}.methods", [""], f"{OPERATION}.methods[0]", "must not be empty"),
        (f"{R0}.when[0].values", None, f"{R0}.when[0]", "must set values or notValues"),
        (f"{R0}.when[0].key", None, f"{R0}.when[0].key", "required field is missing"),
        (f"{R0}.form", [], f"{R0}.form", "unknown field; did you mean 'from'?"),
    ],
)
def test_authorization_policy_errors(check_case, path, value, field, message):
    assert check_case(POLICY, path, value) == [(field, message)]


def test_peer_authentication_is_normalized(normalized):
    obj = normalized(PEER)

    assert obj["spec"]["mtls"] == {"mode": "STRICT"}
    assert obj["spec"]["portLevelMtls"] == {8080: {"mode": "PERMISSIVE"}}


def test_peer_authentication_string_ports_become_integers(normalized):
    spec = {**PEER["spec"], "portLevelMtls": {"9090": {}}}

    obj = normalized({**PEER, "spec": spec})

    assert obj["spec"]["portLevelMtls"] == {9090: {"mode": "UNSET"}}


def test_empty_peer_authentication_means_unset(normalized):
    obj = normalized({**PEER, "spec": None})

    assert obj["spec"] == {"mtls": {"mode": "UNSET"}, "portLevelMtls": {}}


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (
            "spec.mtls.mode",
            "strict",
            "spec.mtls.mode",
            "must be one of UNSET, DISABLE, PERMISSIVE, STRICT, got 'strict'",
        ),
        ("spec.mtls.mod", "STRICT", "spec.mtls.mod", "unknown field; did you mean 'mode'?"),
        (
            "spec.portLevelMtls",
            {"http": {"mode": "DISABLE"}},
            "spec.portLevelMtls.http",
            "keys must be port numbers 1-65535, got 'http'",
        ),
        (
            "spec.portLevelMtls",
            {70000: {"mode": "DISABLE"}},
            "spec.portLevelMtls[70000]",
            "keys must be port numbers 1-65535, got 70000",
        ),
        (
            "spec.portLevelMtls",
            {8080: {"mode": "DISABLE"}, "8080": {"mode": "STRICT"}},
            "spec.portLevelMtls['8080']",
            "duplicate port 8080",
        ),
        (
            "spec.selector",
            None,
            "spec.portLevelMtls",
            "requires a selector: port numbers only mean something for chosen workloads",
        ),
        (
            "apiVersion",
            "security.istio.io/v1",
            "apiVersion",
            "PeerAuthentication is served as security.nodemesh.io/v1 by nodemesh, not "
            "'security.istio.io/v1'; the spec is the same as Istio's, only the apiVersion changes",
        ),
    ],
)
def test_peer_authentication_errors(check_case, path, value, field, message):
    assert check_case(PEER, path, value) == [(field, message)]
