"""node_agent.policy beside the waypoint: what the agent defers, what it keeps, and old imports.

test_policy.py covers the agent's L4 semantics; this file covers the split of work with the
waypoint's enforcement (nodemesh.authz.index) and the compatibility of the moved engine.
"""

from __future__ import annotations

from node_agent.policy import Connection, DecisionCode, authorize
from tests.unit.authz.policies import (
    WEB,
    index,
    on_service,
    policy,
    src,
    to,
    when,
    workload,
)

Code = DecisionCode
WAYPOINT = "spiffe://cluster.local/ns/shop/sa/waypoint"
LABELLED = {"selector": {"matchLabels": {"app": "cart"}}}


def via_waypoint() -> Connection:
    return Connection(WAYPOINT, "198.18.0.9", "198.18.1.2", 8080, via_waypoint=True, tls=True)


def direct(identity: str = WEB) -> Connection:
    return Connection(identity, "198.18.0.5", "198.18.1.2", 8080, tls=True)


def test_a_labelled_http_allow_stays_with_the_agent_and_says_to_use_target_refs():
    idx = index(
        policy("ALLOW", [{**src(principals=["*"]), **to(methods=["GET"])}], **LABELLED),
        enforcer="the agent",
    )
    decision = authorize(via_waypoint(), workload(), idx)
    assert (decision.code, decision.policy) == (Code.DENIED_L7_WITHOUT_WAYPOINT, "shop/p")
    assert "does not enforce a policy that selects pods by label" in decision.reason
    assert "targetRefs" in decision.reason


def test_a_labelled_http_deny_stays_with_the_agent_and_errs_on_denying():
    idx = index(policy("DENY", [to(paths=["/admin"])], **LABELLED), enforcer="the agent")
    assert authorize(via_waypoint(), workload(), idx).code is Code.DENIED_BY_DENY
    other_pod = workload(labels={"app": "db"})
    assert authorize(via_waypoint(), other_pod, idx).code is Code.ALLOWED_NO_POLICY


def test_deferred_policies_apply_again_when_the_waypoint_is_bypassed():
    idx = index(policy("ALLOW", [to(methods=["GET"])]), enforcer="the agent")
    assert authorize(via_waypoint(), workload(), idx).code is Code.ALLOWED_NO_POLICY
    bypass = authorize(direct(), workload(), idx)
    assert bypass.code is Code.DENIED_L7_WITHOUT_WAYPOINT
    assert "did not come through it" in bypass.reason


def test_policies_attached_to_the_service_never_reach_the_agents_decision():
    idx = index(policy("DENY", [{}], **on_service()), enforcer="the agent")
    assert authorize(direct(), workload(waypoint=""), idx).code is Code.ALLOWED_NO_POLICY


def test_unknown_when_keys_fail_closed_at_the_agent_and_are_reported():
    allow = index(policy("ALLOW", [when("source.user", ["x"])], name="a"), enforcer="the agent")
    decision = authorize(direct(), workload(waypoint=""), allow)
    assert (decision.allowed, decision.code) == (False, Code.DENIED_NO_ALLOW_MATCH)
    assert allow.problems == (
        "AuthorizationPolicy shop/a rule 0: does not support condition key 'source.user' "
        "(not a key nodemesh knows); the agent never matches the rule",
    )
    deny = index(policy("DENY", [when("source.user", ["x"])], name="d"), enforcer="the agent")
    assert authorize(direct(), workload(waypoint=""), deny).code is Code.DENIED_BY_DENY


def test_the_old_import_paths_still_work():
    from node_agent import policy_rules
    from nodemesh import authz

    assert policy_rules.CompiledRule is authz.CompiledRule
    assert policy_rules.Facts is authz.Facts
    assert policy_rules.compile_rule is authz.compile_rule
