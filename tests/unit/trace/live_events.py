"""Flow events one allowed probe leaves behind: client (node1) → waypoint → web-v1 (node2)."""

from __future__ import annotations

from dataclasses import replace

from nodemesh.flows import Endpoint, FlowVerdict, Point
from tests.unit.flows.events import T0, event

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PORT = 23456
CLIENT = Endpoint(
    "shop", "client", "spiffe://cluster.local/ns/shop/sa/client", f"198.18.1.5:{PORT}"
)
VIP = Endpoint(None, None, "spiffe://cluster.local/ns/shop/sa/waypoint", "10.96.0.10:80")
WEB = Endpoint("shop", "web-v1", "spiffe://cluster.local/ns/shop/sa/web", "198.18.2.7:8080")
WAYPOINT_IP = Endpoint(None, None, "spiffe://cluster.local/ns/shop/sa/waypoint", "198.18.2.9")

SOURCE = event(
    time=T0 + 0.001,
    point=Point.SOURCE_AGENT,
    reporter="agent node1",
    flow_id="node1/7",
    reason="waypoint to 10.96.0.10:80",
    source=CLIENT,
    destination=VIP,
    route="waypoint",
    http=None,
)
TUNNEL = replace(SOURCE, time=T0 + 0.05, point=Point.TUNNEL_OUT, reason="closed after 80 bytes")
WAYPOINT = event(time=T0 + 0.01, source=CLIENT, destination=WEB)
WAYPOINT = replace(WAYPOINT, http=replace(WAYPOINT.http, trace_id=TRACE_ID))
DESTINATION = event(
    time=T0 + 0.02,
    point=Point.DESTINATION_AGENT,
    reporter="agent node2",
    flow_id="node2/3",
    reason="allowed: no policy",
    source=WAYPOINT_IP,
    destination=WEB,
    http=None,
)
DELIVERED = replace(DESTINATION, time=T0 + 0.06, point=Point.DELIVERED, reason="closed")
ALL = [SOURCE, WAYPOINT, DESTINATION, TUNNEL, DELIVERED]


def denied_at_waypoint():
    return replace(
        WAYPOINT,
        verdict=FlowVerdict.DENIED,
        policy="shop/web-no-evil",
        rule=0,
        reason="denied by shop/web-no-evil",
        http=replace(WAYPOINT.http, status=403),
    )
