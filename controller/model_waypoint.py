"""Waypoints in the mesh model: where a waypoint's ready pods are, and why one cannot be used.

A waypoint is a Gateway of class `nodemesh-waypoint`; its pods carry the Gateway API label
`gateway.networking.k8s.io/gateway-name: <name>` and run as service account `<name>`, so every
pod of waypoint `shop/waypoint` proves `spiffe://<td>/ns/shop/sa/waypoint`. A Service or pod
labelled `nodemesh.io/use-waypoint: <name>` must receive its traffic through that waypoint, and
its agent must accept that traffic only from that identity.

Traffic for a destination whose waypoint cannot be used fails CLOSED: sending it direct would
skip the L7 policy the waypoint exists to enforce. So the controller also models the waypoints
that labels name but no Gateway declares (`exists=False`), and every `Waypoint` can say, in one
line an operator can act on, why it cannot take traffic (`unavailable`). An agent holding no
`Waypoint` at all for a name refuses too (`unknown_waypoint`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nodemesh.manifests.validate_gateway import HBONE_PORT, WAYPOINT_CLASS

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"  # on a Gateway API gateway's pods


@dataclass(frozen=True)
class Waypoint:
    """One waypoint, as agents (to send through it, and to admit it) and the waypoint need it."""

    name: str  # the Gateway's name, which is also its pods' service account
    namespace: str  # the Gateway's namespace: it serves Services and pods of this namespace
    identity: str  # spiffe://<td>/ns/<namespace>/sa/<name>: what its pods' certificates prove
    addresses: tuple[str, ...]  # primary IPs of its ready pods, ascending; empty: none is ready
    hbone_port: int  # where its pods take HBONE (15008)
    exists: bool  # a Gateway declares it; False: only use-waypoint labels name it

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def unavailable(self) -> str | None:
        """Why traffic cannot go through this waypoint now, for the refusal; None if it can."""
        if not self.exists:
            return (
                f"waypoint {self.key} does not exist: no Gateway {self.name!r} of class "
                f"{WAYPOINT_CLASS} in namespace {self.namespace!r}; create it with 'meshctl "
                f"waypoint apply -n {self.namespace} --name {self.name}' or remove the "
                "nodemesh.io/use-waypoint label"
            )
        if not self.addresses:
            return (
                f"waypoint {self.key} has no ready pod; see 'meshctl waypoint list -n "
                f"{self.namespace}' and 'meshctl get pods -n {self.namespace}'"
            )
        return None


def unknown_waypoint(namespace: str, name: str) -> str:
    """Why traffic is refused when an agent holds no Waypoint for a name at all."""
    return (
        f"waypoint {namespace}/{name} is unknown to this agent (the controller has sent no "
        "config for it); refusing rather than bypassing its L7 policy; see 'meshctl status'"
    )


def missing_waypoint(namespace: str, name: str, identity: str) -> Waypoint:
    """The model of a waypoint that labels name but no Gateway declares: it refuses traffic."""
    return Waypoint(
        name=name,
        namespace=namespace,
        identity=identity,
        addresses=(),
        hbone_port=HBONE_PORT,
        exists=False,
    )


def waypoint_identity(workload) -> str | None:
    """The SPIFFE ID a pod's inbound traffic must come from when it has a waypoint, else None.

    A waypoint runs as its own service account, named after it, in the pod's namespace; the
    destination agent admits tunnels for such a pod only from that identity, and `meshctl trace`
    explains the same rule."""
    if not workload.waypoint:
        return None
    domain = workload.identity.split("/", 3)[2]  # spiffe://<trust domain>/ns/...
    return f"spiffe://{domain}/ns/{workload.namespace}/sa/{workload.waypoint}"
