"""A FlowEvent factory for the flow tests: a complete waypoint event, any field overridable."""

from __future__ import annotations

from dataclasses import replace

from nodemesh.flows import Endpoint, FlowEvent, FlowVerdict, Http, Point

T0 = 1_700_000_000.25
CLIENT = Endpoint("shop", "client", "spiffe://cluster.local/ns/shop/sa/client", "198.18.1.5:40000")
WEB = Endpoint("shop", "web-v1", "spiffe://cluster.local/ns/shop/sa/web", "198.18.2.7:8080")


def event(**overrides) -> FlowEvent:
    base = FlowEvent(
        time=T0,
        point=Point.WAYPOINT,
        reporter="waypoint shop/waypoint",
        flow_id="shop/waypoint/1",
        verdict=FlowVerdict.FORWARDED,
        reason="route shop/web-split/0, flags -",
        source=CLIENT,
        destination=WEB,
        service="shop/web",
        http=Http("GET", "/public", 200, 12.5, "4bf92f3577b34da6a3ce929d0e0e4736", "shop/r/0"),
    )
    return replace(base, **overrides)
