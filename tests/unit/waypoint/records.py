"""Shared builders for the waypoint telemetry tests: model objects and a `RequestRecord` factory.

Real controller.model objects are used on purpose, so the tests also prove that the telemetry
protocols (WorkloadLike, ServiceLike) accept what the waypoint will really be given.
"""

from __future__ import annotations

from controller.model import PeerWorkload, Service, ServicePort, Workload, freeze_labels
from waypoint.messages import Peer, RequestHead, ResponseHead
from waypoint.record import RequestRecord
from waypoint.tracing import TraceContext

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
WEB_ID = "spiffe://cluster.local/ns/shop/sa/web"
CART_ID = "spiffe://cluster.local/ns/shop/sa/cart"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
PARENT_ID = "b7ad6b7169203331"


def workload(name, app, owner, sa, version="v1"):
    return Workload(
        uid=f"uid-{name}",
        name=name,
        namespace="shop",
        node="node1",
        addresses=("198.18.1.2",),
        service_account=sa,
        identity=f"spiffe://cluster.local/ns/shop/sa/{sa}",
        labels=freeze_labels({"app": app, "version": version}),
        enrolled=True,
        waypoint="",
        ready=True,
        netns="",
        cgroup="",
        owner=owner,
    )


WEB = workload("web-5d4f8-abcde", "web", "Deployment/web", "web")
CART_POD = workload("cart-0", "cart", "StatefulSet/cart", "cart", version="v3")
CART = PeerWorkload.of(CART_POD)  # a remote endpoint: no owner, no labels
CART_SVC = Service(
    name="cart",
    namespace="shop",
    hostname="cart.shop.svc.cluster.local",
    vips=("198.18.128.20",),
    ports=(ServicePort("http", 80, 8080, "TCP", "http"),),
    endpoints=(),
    waypoint="shop-waypoint",
)
PEER = Peer(identity=WEB_ID, address=("198.18.1.2", 40000), destination=("198.18.128.20", 80))


def head(method="GET", path="/cart/items?page=2", headers=(), protocol="HTTP/1.1"):
    return RequestHead(method, "http", "cart.shop:80", path, tuple(headers), protocol)


def grpc_head(path="/shop.Cart/Add"):
    return head("POST", path, (("content-type", "application/grpc"),), "HTTP/2")


def record(**overrides) -> RequestRecord:
    """A complete, successful, traced request; override any field."""
    fields = dict(
        peer=PEER,
        request=head(headers=(("user-agent", "curl/8.5"), ("x-forwarded-for", "203.0.113.9"))),
        response=ResponseHead(200),
        start_time=T0,
        duration=0.0125,
        source=WEB,
        destination=CART,
        service=CART_SVC,
        destination_principal=CART_ID,
        request_header_bytes=90,
        request_body_bytes=10,
        response_header_bytes=100,
        response_body_bytes=1400,
        upstream_duration=0.010,
        upstream_address=("198.18.2.7", 8080),
        upstream_cluster="outbound|80||cart.shop.svc.cluster.local",
        route_name="shop/cart",
        request_id="5b9e1c2a-0d3f-4e7a-9b1c-2d3e4f5a6b7c",
        trace=TraceContext(TRACE_ID, SPAN_ID, 1),
        parent_span_id=PARENT_ID,
    )
    fields.update(overrides)
    return RequestRecord(**fields)
