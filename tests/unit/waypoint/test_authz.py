"""waypoint.authz: a RequestHead and its Peer in, a Decision and a 403 (or 400) out."""

from __future__ import annotations

import pytest

import waypoint.authz as authz_module
from controller.model import Service
from nodemesh.authz import DecisionCode
from tests.unit.authz.policies import (
    SRC,
    VIP,
    WEB,
    index,
    on_gateway,
    on_service,
    policy,
    src,
    to,
    when,
)
from waypoint.authz import (
    PathError,
    authorize_request,
    bad_request_response,
    deny_response,
    normalize_path,
    remote_address,
    request_facts,
)
from waypoint.messages import Peer, RequestHead

Code = DecisionCode
CART = Service("cart", "shop", "cart.shop.svc.cluster.local", (VIP,), (), (), "wp")
API = Service("api", "shop", "api.shop.svc.cluster.local", ("198.18.64.11",), (), (), "wp")
PEER = Peer(WEB, (SRC, 40000), (VIP, 8080))


def head(method="GET", path="/", host="cart.shop", headers=()) -> RequestHead:
    return RequestHead(method, "http", host, path, tuple(headers))


def verdict(idx, request: RequestHead, peer: Peer = PEER, service: Service = CART, **kw):
    return authorize_request(request, peer, service, idx, waypoint="wp", **kw)


DENY_ADMIN = index(
    policy("DENY", [to(paths=["/admin", "/admin/*"])], name="deny-admin", **on_service())
)


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/admin/",
        "/admin/users?page=2",
        "//admin",
        "/public/../admin",
        "/%61dmin",
        "/%2e%2e/admin/users",
        "/./admin",
        "/public/%2E%2E//admin",
    ],
)
def test_disguised_paths_cannot_dodge_a_deny(path):
    decision = verdict(DENY_ADMIN, head(path=path))
    assert (decision.code, decision.policy) == (Code.DENIED_BY_DENY, "shop/deny-admin")


@pytest.mark.parametrize("path", ["/admin%2Fusers", "/admin%5cusers", "/x/..%2Fadmin", "/a\\b"])
def test_unsafe_paths_are_refused_before_any_policy(path):
    with pytest.raises(PathError) as caught:
        verdict(index(), head(path=path))  # no policy at all: still refused
    status, headers, body = bad_request_response(caught.value)
    assert status == 400
    assert body.startswith(b"bad request: the path contains ")
    assert b"admin" not in body  # the path is never echoed
    assert dict(headers)["content-length"] == str(len(body))


def test_a_caller_supplied_normalized_path_is_used_as_is():
    assert normalize_path("/public/../admin") == "/admin"
    path = normalize_path("/public/../admin")
    decision = verdict(DENY_ADMIN, head(path="/public/../admin"), path=path)
    assert decision.code is Code.DENIED_BY_DENY
    assert verdict(DENY_ADMIN, head(path="/admin"), path="/public").allowed


def test_scoped_to_the_destination_service_and_this_waypoint():
    idx = index(
        policy("DENY", [to(methods=["DELETE"])], name="cart-only", **on_service("cart")),
        policy("DENY", [to(methods=["PUT"])], name="this-waypoint", **on_gateway("wp")),
        policy("DENY", [to(methods=["POST"])], name="other-waypoint", **on_gateway("wp2")),
        policy("DENY", [src(namespaces=["web"])], name="selector-l4-is-the-agents"),
    )
    assert verdict(idx, head("DELETE")).policy == "shop/cart-only"
    assert verdict(idx, head("DELETE"), service=API).allowed
    assert verdict(idx, head("PUT"), service=API).policy == "shop/this-waypoint"
    assert verdict(idx, head("POST")).allowed
    assert verdict(idx, head("GET")).allowed


def test_deny_before_allow_with_every_kind_of_l7_attribute():
    idx = index(
        policy(
            "DENY",
            [{**to(hosts=["admin.*"])}, when("request.headers[x-debug]", ["*"])],
            name="deny",
            **on_service(),
        ),
        policy(
            "ALLOW",
            [
                {
                    **src(principals=["cluster.local/ns/web/*"]),
                    **to(methods=["GET"], paths=["/api/*"]),
                }
            ],
            name="allow",
            **on_gateway(),
        ),
    )
    assert verdict(idx, head("GET", "/api/x")).code is Code.ALLOWED_BY_POLICY
    denied = verdict(idx, head("GET", "/api/x", host="Admin.shop:80"))
    assert (denied.policy, denied.rule) == ("shop/deny", 0)
    debug = verdict(idx, head("GET", "/api/x", headers=[("x-debug", "1")]))
    assert (debug.policy, debug.rule) == ("shop/deny", 1)
    assert verdict(idx, head("POST", "/api/x")).code is Code.DENIED_NO_ALLOW_MATCH
    plaintext = Peer(None, (SRC, 40000), (VIP, 8080))
    assert verdict(idx, head("GET", "/api/x"), peer=plaintext).code is Code.DENIED_NO_ALLOW_MATCH


def test_deny_response_names_the_policy_and_rule_and_nothing_else():
    decision = verdict(DENY_ADMIN, head(path="/admin", headers=[("cookie", "secret")]))
    status, headers, body = deny_response(decision)
    assert status == 403
    assert body == b"RBAC: access denied by AuthorizationPolicy shop/deny-admin rule 0\n"
    assert headers == (
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
    )
    assert b"secret" not in body and b"matched" not in body  # no rule contents, no reason


def test_deny_response_when_no_allow_matched_names_no_policy():
    idx = index(policy("ALLOW", [to(methods=["GET"])], name="secret-name", **on_service()))
    status, _, body = deny_response(verdict(idx, head("POST")))
    assert status == 403
    assert body == b"RBAC: access denied: no ALLOW rule of the AuthorizationPolicies here matched\n"


def test_deny_response_refuses_an_allowing_decision():
    with pytest.raises(ValueError, match="needs a denial"):
        deny_response(verdict(index(), head()))


# --- facts ----------------------------------------------------------------------------------------


def test_request_facts_come_from_the_peer_and_the_head():
    peer = Peer(WEB, (SRC, 40000), (VIP, 9090), {"sni": "cart.shop"})
    facts = request_facts(head("PUT", host="Cart.shop:9090"), peer, path="/x")
    assert (facts.principal, facts.namespace) == ("cluster.local/ns/web/sa/frontend", "web")
    assert (facts.source_ip, facts.destination_ip, facts.port) == (SRC, VIP, 9090)
    assert (facts.http.method, facts.http.path, facts.http.sni) == ("PUT", "/x", "cart.shop")
    assert facts.http.hosts == ("cart.shop:9090", "cart.shop")
    assert facts.http.remote_ip == SRC


XFF = "x-forwarded-for"


@pytest.mark.parametrize(
    ("headers", "hops", "remote"),
    [
        ([(XFF, "203.0.113.7")], 0, SRC),  # no trusted proxy: the client's claim is ignored
        ([(XFF, "203.0.113.7")], 1, "203.0.113.7"),
        ([(XFF, "192.0.2.1, 203.0.113.7")], 1, "203.0.113.7"),
        ([(XFF, "192.0.2.1, 203.0.113.7")], 2, "192.0.2.1"),
        ([(XFF, "192.0.2.1"), (XFF, "203.0.113.7")], 2, "192.0.2.1"),  # lines joined
        ([(XFF, "203.0.113.7")], 2, SRC),  # chain too short
        ([(XFF, "garbage")], 1, SRC),  # not an address
        ([], 1, SRC),
    ],
)
def test_remote_address_trusts_only_the_configured_hops(headers, hops, remote):
    assert remote_address(head(headers=headers), PEER, hops) == remote


def test_remote_ip_blocks_see_the_trusted_client():
    idx = index(policy("DENY", [src(remoteIpBlocks=["203.0.113.0/24"])], **on_service()))
    spoofed = head(headers=[(XFF, "203.0.113.7")])
    assert verdict(idx, spoofed).allowed
    assert not verdict(idx, spoofed, trusted_hops=1).allowed


def test_no_applicable_policy_skips_the_facts_but_gives_the_same_verdict(monkeypatch):
    def no_facts(*args, **kwargs):
        raise AssertionError("facts were built although no policy applies")

    monkeypatch.setattr(authz_module, "request_facts", no_facts)
    decision = verdict(index(), head("DELETE", "/admin"))
    assert (decision.allowed, decision.code) == (True, Code.ALLOWED_NO_POLICY)
    assert decision.reason.endswith("no ALLOW policy applies to Service shop/cart")
    with pytest.raises(AssertionError, match="facts were built"):
        verdict(DENY_ADMIN, head("DELETE", "/admin"))
