"""Mesh model <-> `nodemesh.v1` messages: what the controller sends, and what a client accepts.

The controller calls `to_resources(snapshot, keys)` with the keys `controller.scope` chose for a
subscriber and gets messages grouped by type URL and named as the xDS layer names them. A node
agent or waypoint calls `from_resource(type_url, payload)` on each received resource: it parses
and validates one resource into the same frozen model the controller holds, or raises
`ResourceError`, so the client rejects (NACKs) that resource alone and applies the rest.

Decoding is the trust boundary of a client: it checks what the client would otherwise trip over
later (addresses that are IPs, ports in range, identities that parse and agree with the
workload's namespace and service account, enum values this build knows, policies of the shape
nodemesh enforces). It recomputes derived facts (`AuthorizationPolicy.needs_l7`) instead of
trusting them, so an agent older than its controller treats an attribute it does not know as one
it cannot enforce.

This module holds the table of codecs and the workload, service and route ones; the policy codecs
are in `controller.resources_policy`, the Waypoint codec in `controller.resources_waypoint`, the
TrafficPolicy codec in `controller.resources_traffic`, and the field checks they share in
`controller.resource_checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError, Message

from controller import scope
from controller.model import (
    Endpoint,
    HttpRoute,
    MeshSnapshot,
    PeerWorkload,
    RouteParent,
    Service,
    ServicePort,
    Workload,
    canonical_json,
)
from controller.resource_checks import (
    ResourceError,
    fields_of,
    ip_address,
    ip_addresses,
    labels_of,
    port_number,
    require_text,
    spiffe_id,
)
from controller.resources_policy import (
    decode_authz,
    decode_peer_authn,
    encode_authz,
    encode_peer_authn,
)
from controller.resources_traffic import decode_traffic_policy, encode_traffic_policy
from controller.resources_waypoint import decode_waypoint, encode_waypoint
from nodemesh.proto import mesh_pb2

__all__ = ["ResourceError", "from_message", "from_resource", "lookup", "to_message", "to_resources"]

Model = scope.ModelObject

SERVICE_PROTOCOLS = ("TCP", "UDP", "SCTP")


def type_url_of(message_type: type[Message]) -> str:
    return f"type.googleapis.com/{message_type.DESCRIPTOR.full_name}"


# --- model -> messages ----------------------------------------------------------------------------


def to_resources(
    snapshot: MeshSnapshot, keys: Iterable[scope.ResourceKey]
) -> dict[str, dict[str, Message]]:
    """{type URL: {resource name: message}} for `keys`; a key not in the snapshot is left out."""
    resources: dict[str, dict[str, Message]] = {}
    for key in sorted(keys):
        obj = lookup(snapshot, key)
        if obj is not None:
            resources.setdefault(key.type_url, {})[key.name] = to_message(obj)
    return resources


def lookup(snapshot: MeshSnapshot, key: scope.ResourceKey) -> Model | None:
    """The model object a resource key names in `snapshot`, or None if it has none."""
    if key.type_url in (scope.WORKLOAD, scope.PEER_WORKLOAD):
        workload = snapshot.workloads_by_uid.get(key.name)
        if workload is None or key.type_url == scope.WORKLOAD:
            return workload
        return PeerWorkload.of(workload)
    namespace, _, name = key.name.partition("/")
    find = {
        scope.SERVICE: snapshot.service,
        scope.AUTHORIZATION_POLICY: snapshot.authorization_policy,
        scope.PEER_AUTHENTICATION: snapshot.peer_authentication,
        scope.HTTP_ROUTE: snapshot.http_route,
        scope.WAYPOINT: snapshot.waypoint,
        scope.TRAFFIC_POLICY: snapshot.traffic_policy,
    }.get(key.type_url)
    return find(namespace, name) if find else None


def to_message(obj: Model) -> Message:
    return _CODECS[scope.key_of(obj).type_url].encode(obj)


def _encode_workload(w: Workload) -> mesh_pb2.Workload:
    return mesh_pb2.Workload(
        uid=w.uid,
        name=w.name,
        namespace=w.namespace,
        node=w.node,
        addresses=w.addresses,
        service_account=w.service_account,
        identity=w.identity,
        labels=dict(w.labels),
        enrolled=w.enrolled,
        waypoint=w.waypoint,
        ready=w.ready,
        netns=w.netns,
        cgroup=w.cgroup,
        owner=w.owner,
    )


def _encode_peer(p: PeerWorkload) -> mesh_pb2.PeerWorkload:
    return mesh_pb2.PeerWorkload(**fields_of(p))


def _encode_service(s: Service) -> mesh_pb2.Service:
    return mesh_pb2.Service(
        name=s.name,
        namespace=s.namespace,
        hostname=s.hostname,
        vips=s.vips,
        ports=[_encode_port(port) for port in s.ports],
        endpoints=[
            mesh_pb2.Endpoint(
                workload_uid=e.workload_uid,
                address=e.address,
                ports=[
                    mesh_pb2.Endpoint.PortMapping(service_port=p, target_port=t) for p, t in e.ports
                ],
            )
            for e in s.endpoints
        ],
        waypoint=s.waypoint,
    )


def _encode_port(port: ServicePort) -> mesh_pb2.ServicePort:
    target = (
        {"target_port_number": port.target_port}
        if isinstance(port.target_port, int)
        else {"target_port_name": port.target_port}
    )
    return mesh_pb2.ServicePort(
        name=port.name,
        port=port.port,
        protocol=port.protocol,
        app_protocol=port.app_protocol,
        **target,
    )


def _encode_route(r: HttpRoute) -> mesh_pb2.HttpRoute:
    rules = struct_pb2.ListValue()
    json_format.ParseDict(r.rules_data(), rules)
    return mesh_pb2.HttpRoute(
        name=r.name,
        namespace=r.namespace,
        parents=[mesh_pb2.RouteParent(**fields_of(parent)) for parent in r.parents],
        hostnames=r.hostnames,
        rules=rules,
    )


# --- messages -> model ----------------------------------------------------------------------------


def from_resource(type_url: str, payload: bytes, name: str | None = None) -> Model:
    """Parse and validate one received resource; ResourceError says why it cannot be used.

    With `name` (the xDS resource name it arrived under), the content must be that resource: a
    Service named "a/web" that says it is "b/web" is refused rather than stored under two names.
    """
    codec = _CODECS.get(type_url)
    if codec is None:
        raise ResourceError(f"unknown resource type {type_url!r}; known: {', '.join(_CODECS)}")
    message = codec.message()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise ResourceError(f"{type_url}: payload does not parse: {exc}") from None
    obj = from_message(message)
    actual = scope.key_of(obj).name
    if name is not None and actual != name:
        raise ResourceError(f"resource {name!r} carries {actual!r}; the names must agree")
    return obj


def from_message(message: Message) -> Model:
    """Validate a parsed message into the model (ResourceError if it cannot be used)."""
    codec = _CODECS.get(type_url_of(type(message)))
    if codec is None:
        raise ResourceError(f"not a nodemesh resource message: {type(message).__name__}")
    try:
        return codec.decode(message)
    except ResourceError as exc:
        raise ResourceError(f"{message.DESCRIPTOR.name}: {exc}") from None


def _decode_workload(m: mesh_pb2.Workload) -> Workload:
    identity = spiffe_id(m.identity)
    if (identity.namespace, identity.service_account) != (m.namespace, m.service_account):
        raise ResourceError(
            f"identity {m.identity} is not namespace {m.namespace!r}, service account "
            f"{m.service_account!r}: a pod may only hold its own service account's identity"
        )
    return Workload(
        uid=require_text(m.uid, "uid"),
        name=require_text(m.name, "name"),
        namespace=require_text(m.namespace, "namespace"),
        node=require_text(m.node, "node"),
        # none while pending: scheduled, IP not published yet (controller.translate)
        addresses=ip_addresses(m.addresses, "addresses", required=False),
        service_account=require_text(m.service_account, "service_account"),
        identity=m.identity,
        labels=labels_of(m.labels),
        enrolled=m.enrolled,
        waypoint=m.waypoint,
        ready=m.ready,
        netns=m.netns,
        cgroup=m.cgroup,
        owner=m.owner,
    )


def _decode_peer(m: mesh_pb2.PeerWorkload) -> PeerWorkload:
    spiffe_id(m.identity)
    return PeerWorkload(
        uid=require_text(m.uid, "uid"),
        name=require_text(m.name, "name"),
        namespace=require_text(m.namespace, "namespace"),
        addresses=ip_addresses(m.addresses, "addresses", required=True),
        node=require_text(m.node, "node"),
        identity=m.identity,
        waypoint=m.waypoint,
        enrolled=m.enrolled,
    )


def _decode_service(m: mesh_pb2.Service) -> Service:
    return Service(
        name=require_text(m.name, "name"),
        namespace=require_text(m.namespace, "namespace"),
        hostname=require_text(m.hostname, "hostname"),
        vips=ip_addresses(m.vips, "vips", required=False),
        ports=tuple(_decode_port(port, f"ports[{i}]") for i, port in enumerate(m.ports)),
        endpoints=tuple(_decode_endpoint(e, f"endpoints[{i}]") for i, e in enumerate(m.endpoints)),
        waypoint=m.waypoint,
    )


def _decode_port(m: mesh_pb2.ServicePort, what: str) -> ServicePort:
    which = m.WhichOneof("target")
    if which is None:
        raise ResourceError(f"{what}: no target port")
    target: int | str = (
        port_number(m.target_port_number, f"{what}.target_port_number")
        if which == "target_port_number"
        else require_text(m.target_port_name, f"{what}.target_port_name")
    )
    if m.protocol not in SERVICE_PROTOCOLS:
        raise ResourceError(f"{what}.protocol: {m.protocol!r} is not one of {SERVICE_PROTOCOLS}")
    return ServicePort(
        name=m.name,
        port=port_number(m.port, f"{what}.port"),
        target_port=target,
        protocol=m.protocol,
        app_protocol=m.app_protocol,
    )


def _decode_endpoint(m: mesh_pb2.Endpoint, what: str) -> Endpoint:
    return Endpoint(
        workload_uid=require_text(m.workload_uid, f"{what}.workload_uid"),
        address=ip_address(m.address, f"{what}.address"),
        ports=tuple(
            (
                port_number(p.service_port, f"{what}.ports"),
                port_number(p.target_port, f"{what}.ports"),
            )
            for p in m.ports
        ),
    )


def _decode_route(m: mesh_pb2.HttpRoute) -> HttpRoute:
    if not m.parents:
        raise ResourceError("no parents: a route attaches to at least one Service")
    rules = _integral(json_format.MessageToDict(m.rules))
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise ResourceError("rules: must be a list of objects")
    return HttpRoute(
        name=require_text(m.name, "name"),
        namespace=require_text(m.namespace, "namespace"),
        parents=tuple(_decode_parent(p) for p in m.parents),
        hostnames=tuple(require_text(h, "hostnames") for h in m.hostnames),
        rules=canonical_json(rules),
    )


def _decode_parent(m: mesh_pb2.RouteParent) -> RouteParent:
    if m.port > 65535:
        raise ResourceError(f"parents.port: {m.port} is not a port number")
    return RouteParent(
        namespace=require_text(m.namespace, "parents.namespace"),
        name=require_text(m.name, "parents.name"),
        port=m.port,
        section_name=m.section_name,
    )


def _integral(value: Any) -> Any:
    """Struct numbers are doubles: give whole numbers back as ints, as the route JSON had them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Codec:
    message: type[Message]  # the nodemesh.v1 message class
    encode: Callable[[Any], Message]  # model object -> message
    decode: Callable[[Any], Model]  # message -> model object, or ResourceError


_CODECS: dict[str, _Codec] = {
    type_url_of(codec.message): codec
    for codec in (
        _Codec(mesh_pb2.Workload, _encode_workload, _decode_workload),
        _Codec(mesh_pb2.PeerWorkload, _encode_peer, _decode_peer),
        _Codec(mesh_pb2.Service, _encode_service, _decode_service),
        _Codec(mesh_pb2.AuthorizationPolicy, encode_authz, decode_authz),
        _Codec(mesh_pb2.PeerAuthentication, encode_peer_authn, decode_peer_authn),
        _Codec(mesh_pb2.HttpRoute, _encode_route, _decode_route),
        _Codec(mesh_pb2.Waypoint, encode_waypoint, decode_waypoint),
        _Codec(mesh_pb2.TrafficPolicy, encode_traffic_policy, decode_traffic_policy),
    )
}
assert set(_CODECS) == set(scope.TYPE_URLS), "scope's type URLs and mesh.proto disagree"
