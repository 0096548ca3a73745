"""nodemesh.authz.evaluate with HTTP facts: DENY before ALLOW, AUDIT, and the reasons given."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nodemesh.authz import Decision, DecisionCode, Subject, allowed_without_policy, evaluate
from tests.unit.authz.policies import (
    ROOT,
    SUBJECT,
    connection,
    index,
    on_gateway,
    on_service,
    policy,
    request,
    src,
    to,
    when,
    workload,
)

Code = DecisionCode


def _at_waypoint(idx, facts, subject: Subject = SUBJECT) -> Decision:
    return evaluate(idx.at_waypoint("shop", "cart", "wp"), facts, subject)


def test_deny_on_a_path_wins_over_an_allow_on_the_method():
    idx = index(
        policy("DENY", [to(paths=["/admin*"])], name="deny-admin", **on_service()),
        policy("ALLOW", [to(methods=["GET", "HEAD"])], name="read-only", **on_gateway()),
    )
    denied = _at_waypoint(idx, request("GET", "/admin/users"))
    assert denied == Decision(
        allowed=False,
        action="DENY",
        code=Code.DENIED_BY_DENY,
        reason="denied by DENY policy shop/deny-admin rule 0: path /admin/users matched",
        policy="shop/deny-admin",
        rule=0,
    )
    allowed = _at_waypoint(idx, request("GET", "/items"))
    assert (allowed.code, allowed.policy, allowed.rule) == (
        Code.ALLOWED_BY_POLICY,
        "shop/read-only",
        0,
    )
    assert allowed.reason == "allowed by ALLOW policy shop/read-only rule 0: method GET matched"
    posted = _at_waypoint(idx, request("POST", "/items"))
    assert (posted.allowed, posted.code, posted.policy) == (
        False,
        Code.DENIED_NO_ALLOW_MATCH,
        None,
    )
    assert posted.reason == (
        "denied: ALLOW policies apply to Service shop/cart (shop/read-only) and none matched "
        "GET / from a caller to port 8080"
    )


def test_a_mesh_wide_deny_wins_and_any_allow_suffices():
    idx = index(
        policy("DENY", [to(methods=["TRACE"])], name="no-trace", ns=ROOT),
        policy("ALLOW", [to(paths=["/a"])], name="a", **on_service()),
        policy("ALLOW", [to(paths=["/b"])], name="b", **on_service()),
    )
    assert _at_waypoint(idx, request("TRACE", "/a")).policy == f"{ROOT}/no-trace"
    assert _at_waypoint(idx, request("GET", "/a")).policy == "shop/a"
    assert _at_waypoint(idx, request("GET", "/b")).policy == "shop/b"
    assert not _at_waypoint(idx, request("GET", "/c")).allowed


def test_no_policy_allows():
    decision = _at_waypoint(index(), request())
    assert (decision.allowed, decision.code) == (True, Code.ALLOWED_NO_POLICY)
    assert decision.reason.endswith("no ALLOW policy applies to Service shop/cart")


def test_audit_reports_l7_matches_at_the_waypoint_but_not_at_the_agent():
    idx = index(
        policy("AUDIT", [to(paths=["/pay*"])], name="audit-pay"),
        policy("AUDIT", [to(methods=["DELETE"])], name="audit-delete"),
        policy("AUDIT", [src(namespaces=["web"])], name="audit-web", **on_service()),
    )
    decision = _at_waypoint(idx, request("POST", "/pay/now"))
    assert (decision.allowed, decision.code) == (True, Code.ALLOWED_NO_POLICY)
    assert decision.audit == ("shop/audit-web", "shop/audit-pay")
    at_agent = evaluate(idx.applicable(workload()), connection(), SUBJECT)
    assert at_agent.audit == ()  # HTTP-only AUDIT rules cannot be known to match there


def test_audit_is_listed_on_denials_too():
    idx = index(
        policy("AUDIT", [{}], name="audit-all", **on_service()),
        policy("DENY", [to(methods=["POST"])], name="no-post", **on_service()),
    )
    decision = _at_waypoint(idx, request("POST"))
    assert (decision.allowed, decision.audit) == (False, ("shop/audit-all",))


def test_reasons_name_what_matched_but_never_a_header_value():
    rule = {
        **src(principals=["*"]),
        **to(methods=["GET"], hosts=["cart.*"]),
        **when("request.headers[authorization]", ["Bearer *"]),
    }
    idx = index(policy("DENY", [rule], name="d", **on_service()))
    secret = (("authorization", "Bearer s3cr3t"),)
    decision = _at_waypoint(idx, request("GET", host="cart.shop:80", headers=secret))
    assert decision.reason == (
        "denied by DENY policy shop/d rule 0: principal cluster.local/ns/web/sa/frontend, "
        "host cart.shop:80, method GET, request header authorization matched"
    )
    empty = _at_waypoint(index(policy("DENY", [{}], name="d", **on_service())), request())
    assert empty.reason.endswith("the rule has no conditions, so it matches every request")


def test_at_the_agent_a_deny_says_its_http_parts_counted_as_matched():
    idx = index(policy("DENY", [to(methods=["GET"], ports=["8080"])], name="d"))
    decision = evaluate(idx.applicable(workload(waypoint="")), connection(port=8080), SUBJECT)
    assert decision.reason == (
        "denied by DENY policy shop/d rule 0: port 8080 matched; its HTTP attributes (methods) "
        "cannot be checked by the node agent and count as matched, so the DENY errs on the "
        "side of denying"
    )
    assert evaluate(idx.applicable(workload(waypoint="")), connection(port=9090), SUBJECT).allowed


# --- property: with HTTP facts, a matching DENY always wins ---------------------------------------

_rules = st.sampled_from(
    [
        to(methods=["GET"]),
        to(notPaths=["/admin*"]),
        to(hosts=["*.shop"]),
        src(namespaces=["web"]),
        when("request.headers[x-user]", ["alice"]),
        {},
    ]
)
_requests = st.builds(
    request,
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["/", "/admin", "/items"]),
    st.sampled_from(["cart.shop", "other"]),
    st.sampled_from([(), (("x-user", "alice"),)]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["ALLOW", "AUDIT", "DENY"]), _rules), max_size=5),
    _requests,
)
def test_a_matching_deny_always_wins(parts, facts):
    policies = [
        policy(action, [rule], name=f"p{i}", **on_service())
        for i, (action, rule) in enumerate(parts)
    ]
    catch_all = policy("DENY", [to(methods=[facts.http.method])], name="zz", **on_gateway())
    decision = _at_waypoint(index(*policies, catch_all), facts)
    assert (decision.allowed, decision.code) == (False, Code.DENIED_BY_DENY)


def test_no_policy_is_one_shared_verdict_equal_to_evaluating():
    empty = index().at_waypoint("shop", "cart", "wp")
    assert empty.empty
    shared = allowed_without_policy(SUBJECT.destination)
    assert shared == _at_waypoint(index(), request())
    assert shared is allowed_without_policy(SUBJECT.destination)


def test_an_audit_policy_alone_makes_the_applicable_set_non_empty():
    idx = index(policy("AUDIT", [{}], name="audit-all", **on_service()))
    assert not idx.at_waypoint("shop", "cart", "wp").empty
    assert _at_waypoint(idx, request()).audit == ("shop/audit-all",)
