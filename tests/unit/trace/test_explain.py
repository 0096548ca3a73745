"""`explain` on a table of allow and deny cases, each built from manifests (objects.py).

Every case names the verdict and the hop that decides it; denials also name the policy and rule
(or the decision code), which is what `meshctl trace` promises to show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from nodemesh.trace import Component, HttpProbe, Probe, TraceError, Verdict, explain
from tests.unit.trace.objects import MESH, TD, authz, route, strict

CLIENT = "spiffe://cluster.local/ns/shop/sa/client"
WAYPOINT = "spiffe://cluster.local/ns/shop/sa/wp"

L4_ALLOW_CLIENT = authz(
    "web-allow",
    {
        "selector": {"matchLabels": {"app": "web"}},
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/client"]}}]}],
    },
)
L4_DENY_8080 = authz(
    "web-deny",
    {
        "selector": {"matchLabels": {"app": "web"}},
        "action": "DENY",
        "rules": [{"to": [{"operation": {"ports": ["8080"]}}]}],
    },
)
L7_AT_AGENT = authz(
    "web-l7",
    {
        "selector": {"matchLabels": {"app": "web"}},
        "action": "ALLOW",
        "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}],
    },
)
DB_PUBLIC = authz(
    "db-public",
    {
        "targetRefs": [{"kind": "Service", "group": "", "name": "db"}],
        "action": "ALLOW",
        "rules": [{"to": [{"operation": {"methods": ["GET"], "paths": ["/public*"]}}]}],
    },
)
DB_NO_EVIL = authz(
    "db-no-evil",
    {
        "targetRefs": [{"kind": "Service", "group": "", "name": "db"}],
        "action": "DENY",
        "rules": [{"when": [{"key": "request.headers[x-evil]", "values": ["yes"]}]}],
    },
)
DB_API_ONLY = route(
    "db-api",
    "db",
    [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "backendRefs": [{"name": "db", "port": 80}],
            "retry": {"attempts": 3, "codes": [503]},
        }
    ],
)


@dataclass(frozen=True)
class Case:
    extra: tuple  # objects added to MESH
    source: str
    target: str
    verdict: Verdict
    at: Component  # the hop that decides
    port: int | None = None
    http: HttpProbe | None = None
    policy: str | None = None
    rule: int | None = None
    code: str | None = None
    status: int | None = None


GET_PUBLIC = HttpProbe("GET", "/public/x")
CASES = {
    "no policy: direct to a Service": Case(
        (), "shop/client", "web", Verdict.FORWARDED, Component.DELIVERY
    ),
    "L4 ALLOW for the client's principal": Case(
        (L4_ALLOW_CLIENT,), "shop/client", "web", Verdict.FORWARDED, Component.DELIVERY
    ),
    "L4 ALLOW: another principal is denied": Case(
        (L4_ALLOW_CLIENT,),
        "shop/other",
        "web",
        Verdict.DENIED,
        Component.DESTINATION_AGENT,
        code="denied_no_allow_match",
    ),
    "L4 DENY on the port wins over ALLOW": Case(
        (L4_ALLOW_CLIENT, L4_DENY_8080),
        "shop/client",
        "web",
        Verdict.DENIED,
        Component.DESTINATION_AGENT,
        policy="shop/web-deny",
        rule=0,
        code="denied_by_deny",
    ),
    "L7 ALLOW rule with no waypoint to enforce it": Case(
        (L7_AT_AGENT,),
        "shop/client",
        "web",
        Verdict.DENIED,
        Component.DESTINATION_AGENT,
        code="denied_l7_without_waypoint",
    ),
    "plaintext from outside the mesh, PERMISSIVE": Case(
        (), "legacy/outsider", "shop/web-1", Verdict.FORWARDED, Component.DELIVERY
    ),
    "plaintext from outside the mesh, STRICT": Case(
        (strict(),),
        "legacy/outsider",
        "shop/web-1",
        Verdict.DENIED,
        Component.DESTINATION_AGENT,
        policy="shop/default",
        code="denied_plaintext_strict",
    ),
    "plaintext to a Service VIP, STRICT": Case(
        (strict(),),
        "legacy/outsider",
        "shop/web",
        Verdict.DENIED,
        Component.DESTINATION_AGENT,
        code="denied_plaintext_strict",
    ),
    "STRICT does not touch mTLS": Case(
        (strict(),), "shop/client", "web", Verdict.FORWARDED, Component.DELIVERY
    ),
    "waypoint L7 ALLOW matches": Case(
        (DB_PUBLIC, DB_NO_EVIL),
        "shop/client",
        "db",
        Verdict.FORWARDED,
        Component.DELIVERY,
        http=GET_PUBLIC,
    ),
    "waypoint L7 ALLOW does not match": Case(
        (DB_PUBLIC,),
        "shop/client",
        "db",
        Verdict.DENIED,
        Component.WAYPOINT_AUTHZ,
        http=HttpProbe("POST", "/admin"),
        code="denied_no_allow_match",
        status=403,
    ),
    "waypoint L7 DENY on a header wins": Case(
        (DB_PUBLIC, DB_NO_EVIL),
        "shop/client",
        "db",
        Verdict.DENIED,
        Component.WAYPOINT_AUTHZ,
        http=HttpProbe("GET", "/public", (("x-evil", "yes"),)),
        policy="shop/db-no-evil",
        rule=0,
        status=403,
    ),
    "HTTPRoute matches": Case(
        (DB_API_ONLY,),
        "shop/client",
        "db",
        Verdict.FORWARDED,
        Component.DELIVERY,
        http=HttpProbe("GET", "/api/v1"),
    ),
    "HTTPRoute: no rule matches": Case(
        (DB_API_ONLY,),
        "shop/client",
        "db",
        Verdict.ANSWERED,
        Component.WAYPOINT_ROUTE,
        http=HttpProbe("GET", "/other"),
        status=404,
    ),
    "a pod addressed directly behind its waypoint": Case(
        (), "shop/client", "api-1", Verdict.ANSWERED, Component.WAYPOINT_ROUTE, status=404
    ),
    "missing waypoint": Case(
        (), "shop/client", "cart", Verdict.UNROUTABLE, Component.SOURCE_AGENT, code="no_waypoint"
    ),
    "service with no endpoints": Case(
        (), "shop/client", "empty", Verdict.UNROUTABLE, Component.SOURCE_AGENT, code="no_endpoints"
    ),
    "passthrough to an unenrolled pod": Case(
        (), "shop/client", "legacy/old-1", Verdict.FORWARDED, Component.DELIVERY
    ),
    "passthrough to an unenrolled Service": Case(
        (), "shop/client", "legacy/old", Verdict.FORWARDED, Component.DELIVERY
    ),
    "an address unknown to the mesh": Case(
        (), "shop/client", "203.0.113.9", Verdict.FORWARDED, Component.DELIVERY, port=443
    ),
    "no endpoints, from outside the mesh": Case(
        (), "legacy/outsider", "shop/empty", Verdict.UNROUTABLE, Component.KUBE_PROXY
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_verdicts_and_the_hop_that_decides(case: Case):
    probe = Probe(case.source, case.target, port=case.port, http=case.http)
    trace = explain([*MESH, *case.extra], probe, trust_domain=TD)
    hop = trace.stopped_at
    assert (trace.verdict, hop.component) == (case.verdict, case.at), trace.to_dict()
    assert hop is trace.hops[-1]  # nothing is explained past the hop that ends the path
    if case.policy is not None:
        assert (hop.policy, hop.rule) == (case.policy, case.rule)
    if case.code is not None:
        assert hop.code == case.code
    assert hop.status == case.status


def test_a_direct_path_names_both_identities_and_every_component_in_order():
    trace = explain(MESH, Probe("shop/client", "web"), trust_domain=TD)
    assert [h.component for h in trace.hops] == [
        Component.CAPTURE,
        Component.SOURCE_AGENT,
        Component.TUNNEL,
        Component.DESTINATION_AGENT,
        Component.DELIVERY,
    ]
    tunnel = dict(trace.hops[2].details)
    assert tunnel == {
        "source_identity": CLIENT,
        "destination_identity": "spiffe://cluster.local/ns/shop/sa/web",
    }
    assert "pod shop/web-1 on node2" in trace.hops[1].reason  # build_request's own reason
    assert trace.hops[3].where.startswith("node2")


def test_through_a_waypoint_the_last_leg_comes_from_the_waypoints_identity():
    trace = explain(MESH, Probe("shop/client", "db", http=GET_PUBLIC), trust_domain=TD)
    components = [h.component for h in trace.hops]
    assert components == [
        Component.CAPTURE,
        Component.SOURCE_AGENT,
        Component.TUNNEL,
        Component.WAYPOINT_AUTHZ,
        Component.WAYPOINT_ROUTE,
        Component.TUNNEL,
        Component.DESTINATION_AGENT,
        Component.DELIVERY,
    ]
    first, second = (dict(h.details) for h in trace.hops if h.component is Component.TUNNEL)
    assert first["destination_identity"] == WAYPOINT
    assert second["source_identity"] == WAYPOINT
    assert second["destination_identity"] == "spiffe://cluster.local/ns/shop/sa/db"
    assert "from 198.18.2.9" in trace.hops[-1].reason  # the waypoint's address, not the client's


def test_an_l4_policy_behind_a_waypoint_sees_the_waypoint_not_the_client():
    only_client = authz(
        "db-client-only",
        {
            "selector": {"matchLabels": {"app": "db"}},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/client"]}}]}],
        },
    )
    trace = explain([*MESH, only_client], Probe("shop/client", "db"), trust_domain=TD)
    assert trace.verdict is Verdict.DENIED
    assert trace.stopped_at.component is Component.DESTINATION_AGENT
    assert WAYPOINT in trace.stopped_at.reason


def test_route_retries_and_rule_are_shown_on_the_route_hop():
    trace = explain(
        [*MESH, DB_API_ONLY],
        Probe("shop/client", "db", http=HttpProbe("GET", "/api")),
        trust_domain=TD,
    )
    hop = next(h for h in trace.hops if h.component is Component.WAYPOINT_ROUTE)
    details = dict(hop.details)
    assert details["rule"] == "HTTPRoute shop/db-api rule 0"
    assert details["retries"].startswith("3 attempts on ")
    assert "retriable-status-codes" in details["retries"]


def test_a_weighted_split_is_drawn_with_the_callers_rng():
    split = route(
        "db-split",
        "db",
        [
            {
                "backendRefs": [
                    {"name": "db", "port": 80, "weight": 1},
                    {"name": "web", "port": 80, "weight": 1},
                ]
            }
        ],
    )
    seen = set()
    for seed in range(20):
        trace = explain(
            [*MESH, split], Probe("shop/client", "db", http=GET_PUBLIC), rng=random.Random(seed)
        )
        seen.add(trace.hops[-1].where.split()[1])
    assert seen == {"shop/db-1", "shop/web-1"}


def test_without_http_the_waypoint_is_explained_for_get_slash_and_says_so():
    trace = explain([*MESH, DB_PUBLIC], Probe("shop/client", "db"), trust_domain=TD)
    assert trace.verdict is Verdict.DENIED  # GET / is not under /public
    assert any("GET /" in note for note in trace.notes)


def test_a_host_header_is_the_requests_authority_at_the_waypoint():
    hosts = authz(
        "db-hosts",
        {
            "targetRefs": [{"kind": "Service", "group": "", "name": "db"}],
            "action": "ALLOW",
            "rules": [{"to": [{"operation": {"hosts": ["db.shop"]}}]}],
        },
    )
    by_host = HttpProbe("GET", "/", (("host", "db.shop"),))
    assert explain([*MESH, hosts], Probe("shop/client", "db", http=by_host)).verdict is (
        Verdict.FORWARDED
    )
    assert explain([*MESH, hosts], Probe("shop/client", "db", http=HttpProbe())).verdict is (
        Verdict.DENIED
    )


def test_a_source_pod_that_is_not_running_is_refused_with_what_to_do():
    with pytest.raises(TraceError, match=r"no running pod shop/ghost.*meshctl get pods -n shop"):
        explain(MESH, Probe("ghost", "web", namespace="shop"))
