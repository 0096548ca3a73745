"""nodemesh.authz.index: which policies apply where (selector scope, targetRefs, deferral)."""

from __future__ import annotations

import pytest

from tests.unit.authz.policies import (
    GATEWAY,
    ROOT,
    index,
    on_gateway,
    on_service,
    policy,
    src,
    to,
    workload,
)

L7 = [to(methods=["GET"])]
L4 = [src(namespaces=["web"])]
LABELLED = {"selector": {"matchLabels": {"app": "cart"}}}

# (row id, policy, applies at waypoint "wp" for Service shop/cart)
WAYPOINT_ROWS = [
    ("gateway", policy(rules=L4, **on_gateway()), True),
    ("gateway-other-waypoint", policy(rules=L4, **on_gateway("wp2")), False),
    ("gateway-other-namespace", policy(rules=L4, ns="web", **on_gateway()), False),
    ("service", policy(rules=L4, **on_service()), True),
    ("service-other", policy(rules=L4, **on_service("api")), False),
    ("service-same-name-other-namespace", policy(rules=L4, ns="web", **on_service()), False),
    ("root-targets-service", policy(rules=L4, ns=ROOT, **on_service(namespace="shop")), True),
    ("deferred-namespace-wide-l7", policy(rules=L7), True),
    ("deferred-root-l7", policy(rules=L7, ns=ROOT), True),
    ("deferred-other-namespace", policy(rules=L7, ns="web"), False),
    ("namespace-wide-l4-stays-at-agent", policy(rules=L4), False),
    ("selector-l7-stays-at-agent", policy(rules=L7, **LABELLED), False),
    ("no-rules-namespace-wide-stays-at-agent", policy(), False),
]


@pytest.mark.parametrize(
    ("authz", "applies"), [r[1:] for r in WAYPOINT_ROWS], ids=[r[0] for r in WAYPOINT_ROWS]
)
def test_what_applies_at_the_waypoint(authz, applies):
    found = index(authz).at_waypoint("shop", "cart", "wp")
    assert [p.key for p in found.allow] == ([f"{authz['metadata']['namespace']}/p"] * applies)


# (row id, policy, applies at the agent: direct, via the waypoint)
AGENT_ROWS = [
    ("targetRefs-never", policy(rules=L7, **on_service()), False, False),
    ("gateway-never", policy(rules=L4, **on_gateway()), False, False),
    ("l4", policy(rules=L4), True, True),
    ("deferred-l7", policy(rules=L7), True, False),
    ("deferred-root-l7", policy(rules=L7, ns=ROOT), True, False),
    ("selector-l7-kept", policy(rules=L7, **LABELLED), True, True),
]


@pytest.mark.parametrize(
    ("authz", "direct", "via"), [r[1:] for r in AGENT_ROWS], ids=[r[0] for r in AGENT_ROWS]
)
def test_what_applies_at_the_agent(authz, direct, via):
    idx = index(authz, enforcer="the agent")
    assert bool(idx.applicable(workload()).allow) is direct
    assert bool(idx.applicable(workload(), via_waypoint=True).allow) is via


def test_a_policy_attached_twice_applies_once():
    both = policy(
        "DENY",
        rules=L7,
        targetRefs=[
            {"kind": "Gateway", "group": GATEWAY, "name": "wp"},
            {"kind": "Service", "name": "cart"},
        ],
    )
    assert [p.key for p in index(both).at_waypoint("shop", "cart", "wp").deny] == ["shop/p"]


def test_actions_are_split_and_keep_the_index_order():
    idx = index(
        policy("AUDIT", L7, name="c-audit", **on_service()),
        policy("DENY", L7, name="b-deny", **on_gateway()),
        policy("ALLOW", L7, name="a-allow", **on_service()),
        policy("DENY", L7, name="a-deny", ns=ROOT, **on_service(namespace="shop")),
    )
    found = idx.at_waypoint("shop", "cart", "wp")
    assert [p.key for p in found.deny] == ["shop/b-deny", f"{ROOT}/a-deny"]
    assert [p.key for p in found.allow] == ["shop/a-allow"]
    assert [p.key for p in found.audit] == ["shop/c-audit"]
    assert idx.at_waypoint("shop", "cart", "wp") is found  # memoized per push


@pytest.mark.parametrize(
    ("ref", "trouble"),
    [
        (
            {"kind": "Gateway", "name": "wp"},
            "needs group gateway.networking.k8s.io (a waypoint is a Gateway API Gateway)",
        ),
        (
            {"kind": "Service", "group": "apps", "name": "cart"},
            'needs group "" (the core API group of Services)',
        ),
        (
            {"kind": "HTTPRoute", "group": GATEWAY, "name": "cart"},
            "is not supported: attach to a Service or to a waypoint (kind Gateway)",
        ),
        (
            {"kind": "Service", "name": "cart", "namespace": "web"},
            "is in another namespace than the policy (shop); move the policy there",
        ),
    ],
    ids=["gateway-without-group", "service-wrong-group", "other-kind", "cross-namespace"],
)
def test_unusable_target_refs_attach_nowhere_and_say_why(ref, trouble):
    idx = index(policy("DENY", L7, name="bad", targetRefs=[ref]))
    where = f"{ref.get('namespace', 'shop')}/{ref['name']}"
    assert idx.problems == (
        f"AuthorizationPolicy shop/bad: targetRef {ref['kind']} {where} {trouble}; "
        "it attaches to nothing",
    )
    for namespace in ("shop", "web"):
        assert not idx.at_waypoint(namespace, "cart", "wp").deny
    assert not idx.applicable(workload()).deny
