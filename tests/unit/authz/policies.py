"""Builders shared by the authorization tests: policies as Kubernetes-shaped dicts, facts.

Policies go through `controller.translate` (validation included), so the tests exercise the
model the agent and the waypoint really receive.
"""

from __future__ import annotations

from controller.model import Workload, freeze_labels
from controller.translate import translate
from nodemesh.authz import Facts, HttpFacts, PolicyIndex, Subject

ROOT = "nodemesh-system"
WEB = "spiffe://cluster.local/ns/web/sa/frontend"
OTHER = "spiffe://cluster.local/ns/other/sa/backend"
SRC = "198.18.0.5"
VIP = "198.18.64.10"  # the Service VIP a client dials through the waypoint
GATEWAY = "gateway.networking.k8s.io"


def policy(action: str = "ALLOW", rules: list | None = None, *, name="p", ns="shop", **spec):
    spec["action"] = action
    if rules is not None:
        spec["rules"] = rules
    return {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def on_service(name: str = "cart", **ref) -> dict:
    """targetRefs attaching a policy to a Service (through its waypoint)."""
    return {"targetRefs": [{"kind": "Service", "group": "", "name": name, **ref}]}


def on_gateway(name: str = "wp", **ref) -> dict:
    """targetRefs attaching a policy to a waypoint."""
    return {"targetRefs": [{"kind": "Gateway", "group": GATEWAY, "name": name, **ref}]}


def src(**source) -> dict:
    return {"from": [{"source": source}]}


def to(**operation) -> dict:
    return {"to": [{"operation": operation}]}


def when(key: str, values=None, not_values=None) -> dict:
    condition: dict = {"key": key}
    if values is not None:
        condition["values"] = values
    if not_values is not None:
        condition["notValues"] = not_values
    return {"when": [condition]}


def index(*objects: dict, enforcer: str = "the waypoint", trust_domain="cluster.local"):
    result = translate(list(objects), root_namespace=ROOT)
    assert result.errors == ()
    snapshot = result.snapshot
    return PolicyIndex.build(
        snapshot.authorization_policies + snapshot.peer_authentications,
        trust_domain=trust_domain,
        root_namespace=ROOT,
        enforcer=enforcer,
    )


def request(
    method: str = "GET",
    path: str = "/",
    host: str = "cart.shop",
    headers: tuple = (),
    *,
    identity: str | None = WEB,
    source: str = SRC,
    remote: str | None = None,
    port: int = 8080,
    sni: str = "",
) -> Facts:
    """Facts of a request at the waypoint (`path` already normalized)."""
    http = HttpFacts.of(method, path, host, headers, remote_ip=remote or source, sni=sni)
    return Facts.of(identity, source, VIP, port, http)


def connection(identity: str | None = WEB, *, source: str = SRC, port: int = 8080) -> Facts:
    """Facts of a connection at the node agent: no HTTP part."""
    return Facts.of(identity, source, "198.18.1.2", port)


def workload(ns: str = "shop", labels: dict | None = None, *, waypoint: str = "wp") -> Workload:
    """A pod behind waypoint `waypoint` ("" for none), labelled app=cart unless told."""
    return Workload(
        uid=f"uid-{ns}-cart-1",
        name="cart-1",
        namespace=ns,
        node="node1",
        addresses=("198.18.1.2",),
        service_account="cart",
        identity=f"spiffe://cluster.local/ns/{ns}/sa/cart",
        labels=freeze_labels({"app": "cart"} if labels is None else labels),
        enrolled=True,
        waypoint=waypoint,
        ready=True,
        netns="",
        cgroup="",
        owner="",
    )


SUBJECT = Subject("Service shop/cart", "GET / from a caller", 8080)
