"""A trace for people and for programs: the hop table, the verdict line, `to_dict`."""

from __future__ import annotations

import pytest

from nodemesh.trace import Component, Hop, Trace, Verdict, render

CAPTURE = Hop(Component.CAPTURE, "pod shop/client", "captured", "captured to 15001")
DENY = Hop(
    Component.DESTINATION_AGENT,
    "node2 → pod shop/web-1",
    "DENY",
    "denied by DENY policy shop/web-deny rule 0: port 8080 matched",
    policy="shop/web-deny",
    rule=0,
    code="denied_by_deny",
    verdict=Verdict.DENIED,
)
TUNNEL = Hop(
    Component.TUNNEL,
    "node1 → 198.18.2.3",
    "mTLS",
    "HBONE",
    details=(("source_identity", "spiffe://td/ns/shop/sa/client"),),
)


def test_a_denial_names_the_hop_the_policy_and_the_rule():
    trace = Trace("shop/client", "Service shop/web", (CAPTURE, TUNNEL, DENY))
    text = render(trace)
    assert (
        "verdict: DENIED at destination-agent by AuthorizationPolicy shop/web-deny rule 0" in text
    )
    assert "port 8080 matched" in text  # the function's own reason is shown
    assert "source_identity: spiffe://td/ns/shop/sa/client" in text
    assert text.index("capture") < text.index("tunnel") < text.index("destination-agent")


def test_a_strict_refusal_is_attributed_to_peer_authentication():
    strict = Hop(
        Component.DESTINATION_AGENT,
        "node2",
        "DENY",
        "denied: plaintext",
        policy="shop/default",
        code="denied_plaintext_strict",
        verdict=Verdict.DENIED,
    )
    line = render(Trace("legacy/outsider", "pod shop/web-1", (strict,))).splitlines()[-1]
    assert line == "verdict: DENIED at destination-agent by PeerAuthentication shop/default"


def test_a_waypoint_answer_shows_its_status():
    answer = Hop(
        Component.WAYPOINT_ROUTE,
        "waypoint shop/wp",
        "answer",
        "no rule",
        status=404,
        verdict=Verdict.ANSWERED,
    )
    text = render(Trace("shop/client", "Service shop/db", (answer,), request="GET /x"))
    assert "answer 404" in text
    assert text.splitlines()[-1] == "verdict: ANSWERED at waypoint-route (HTTP 404)"
    assert text.splitlines()[0].endswith("GET /x")


def test_to_dict_leaves_out_empty_fields_and_keeps_the_verdict():
    doc = Trace("shop/client", "Service shop/web", (CAPTURE, DENY), notes=("n",)).to_dict()
    assert doc["verdict"] == "DENIED" and doc["mode"] == "explain" and doc["notes"] == ["n"]
    assert doc["hops"][0] == {
        "component": "capture",
        "where": "pod shop/client",
        "decision": "captured",
        "reason": "captured to 15001",
    }
    assert doc["hops"][1]["policy"] == "shop/web-deny" and doc["hops"][1]["rule"] == 0


def test_a_trace_with_no_final_hop_has_no_verdict():
    with pytest.raises(ValueError, match="no final hop"):
        _ = Trace("shop/client", "x", (CAPTURE,)).verdict
