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
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError, Message

from controller import scope
from controller.model import (
    AuthorizationPolicy,
    Condition,
    Endpoint,
    HttpRoute,
    Labels,
    MeshSnapshot,
    Operation,
    PeerAuthentication,
    PeerWorkload,
    RouteParent,
    Rule,
    Service,
    ServicePort,
    Source,
    TargetRef,
    Workload,
    canonical_json,
    freeze_labels,
    rules_need_l7,
)
from nodemesh.identity import IdentityError, SpiffeId
from nodemesh.proto import mesh_pb2
from nodemesh.xds import resources as xds_resources

Model = Workload | PeerWorkload | Service | AuthorizationPolicy | PeerAuthentication | HttpRoute

SERVICE_PROTOCOLS = ("TCP", "UDP", "SCTP")


class ResourceError(xds_resources.ResourceError):
    """A received resource that cannot be used; it is rejected alone and named in the NACK."""


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
    return mesh_pb2.PeerWorkload(**_fields(p))


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


def _encode_selector(selector: Labels | None) -> dict[str, Any]:
    return {} if selector is None else {"selector": {"match_labels": dict(selector)}}


def _encode_authz(p: AuthorizationPolicy) -> mesh_pb2.AuthorizationPolicy:
    return mesh_pb2.AuthorizationPolicy(
        name=p.name,
        namespace=p.namespace,
        target_refs=[mesh_pb2.PolicyTargetReference(**_fields(ref)) for ref in p.target_refs],
        action=mesh_pb2.AuthorizationPolicy.Action.Value(p.action),
        rules=[_encode_rule(rule) for rule in p.rules],
        is_root=p.is_root,
        needs_l7=p.needs_l7,
        **_encode_selector(p.selector),
    )


def _encode_rule(rule: Rule) -> mesh_pb2.Rule:
    parts = {
        "from": [mesh_pb2.Rule.From(source=_fields(s)) for s in rule.sources],
        "to": [mesh_pb2.Rule.To(operation=_fields(o)) for o in rule.operations],
        "when": [mesh_pb2.Condition(**_fields(c)) for c in rule.conditions],
    }
    return mesh_pb2.Rule(**parts)


def _encode_peer_authn(p: PeerAuthentication) -> mesh_pb2.PeerAuthentication:
    mode = mesh_pb2.PeerAuthentication.Mode.Value
    return mesh_pb2.PeerAuthentication(
        name=p.name,
        namespace=p.namespace,
        mode=mode(p.mode),
        port_level={port: mode(port_mode) for port, port_mode in p.port_level},
        is_root=p.is_root,
        **_encode_selector(p.selector),
    )


def _encode_route(r: HttpRoute) -> mesh_pb2.HttpRoute:
    rules = struct_pb2.ListValue()
    json_format.ParseDict(r.rules_data(), rules)
    return mesh_pb2.HttpRoute(
        name=r.name,
        namespace=r.namespace,
        parents=[mesh_pb2.RouteParent(**_fields(parent)) for parent in r.parents],
        hostnames=r.hostnames,
        rules=rules,
    )


def _fields(obj: Any) -> dict[str, Any]:
    """A model value's fields by name, for messages whose field names are the same."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


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


def _text(value: str, what: str) -> str:
    if not value:
        raise ResourceError(f"{what} is empty")
    return value


def _address(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ResourceError(f"{what}: {value!r} is not an IP address") from None


def _addresses(values: Iterable[str], what: str, *, required: bool) -> tuple[str, ...]:
    addresses = tuple(_address(value, what) for value in values)
    if required and not addresses:
        raise ResourceError(f"{what}: no address")
    return addresses


def _port(value: int, what: str) -> int:
    if not 1 <= value <= 65535:
        raise ResourceError(f"{what}: {value} is not a port number 1-65535")
    return value


def _identity(value: str) -> SpiffeId:
    try:
        return SpiffeId.parse(value)
    except IdentityError as exc:
        raise ResourceError(f"identity: {exc}") from None


def _labels(labels: Mapping[str, str]) -> Labels:
    return freeze_labels(labels)


def _decode_workload(m: mesh_pb2.Workload) -> Workload:
    identity = _identity(m.identity)
    if (identity.namespace, identity.service_account) != (m.namespace, m.service_account):
        raise ResourceError(
            f"identity {m.identity} is not namespace {m.namespace!r}, service account "
            f"{m.service_account!r}: a pod may only hold its own service account's identity"
        )
    return Workload(
        uid=_text(m.uid, "uid"),
        name=_text(m.name, "name"),
        namespace=_text(m.namespace, "namespace"),
        node=_text(m.node, "node"),
        addresses=_addresses(m.addresses, "addresses", required=True),
        service_account=_text(m.service_account, "service_account"),
        identity=m.identity,
        labels=_labels(m.labels),
        enrolled=m.enrolled,
        waypoint=m.waypoint,
        ready=m.ready,
        netns=m.netns,
        cgroup=m.cgroup,
        owner=m.owner,
    )


def _decode_peer(m: mesh_pb2.PeerWorkload) -> PeerWorkload:
    _identity(m.identity)
    return PeerWorkload(
        uid=_text(m.uid, "uid"),
        name=_text(m.name, "name"),
        namespace=_text(m.namespace, "namespace"),
        addresses=_addresses(m.addresses, "addresses", required=True),
        node=_text(m.node, "node"),
        identity=m.identity,
        waypoint=m.waypoint,
        enrolled=m.enrolled,
    )


def _decode_service(m: mesh_pb2.Service) -> Service:
    return Service(
        name=_text(m.name, "name"),
        namespace=_text(m.namespace, "namespace"),
        hostname=_text(m.hostname, "hostname"),
        vips=_addresses(m.vips, "vips", required=False),
        ports=tuple(_decode_port(port, f"ports[{i}]") for i, port in enumerate(m.ports)),
        endpoints=tuple(_decode_endpoint(e, f"endpoints[{i}]") for i, e in enumerate(m.endpoints)),
        waypoint=m.waypoint,
    )


def _decode_port(m: mesh_pb2.ServicePort, what: str) -> ServicePort:
    which = m.WhichOneof("target")
    if which is None:
        raise ResourceError(f"{what}: no target port")
    target: int | str = (
        _port(m.target_port_number, f"{what}.target_port_number")
        if which == "target_port_number"
        else _text(m.target_port_name, f"{what}.target_port_name")
    )
    if m.protocol not in SERVICE_PROTOCOLS:
        raise ResourceError(f"{what}.protocol: {m.protocol!r} is not one of {SERVICE_PROTOCOLS}")
    return ServicePort(
        name=m.name,
        port=_port(m.port, f"{what}.port"),
        target_port=target,
        protocol=m.protocol,
        app_protocol=m.app_protocol,
    )


def _decode_endpoint(m: mesh_pb2.Endpoint, what: str) -> Endpoint:
    return Endpoint(
        workload_uid=_text(m.workload_uid, f"{what}.workload_uid"),
        address=_address(m.address, f"{what}.address"),
        ports=tuple(
            (_port(p.service_port, f"{what}.ports"), _port(p.target_port, f"{what}.ports"))
            for p in m.ports
        ),
    )


def _decode_selector(
    m: mesh_pb2.AuthorizationPolicy | mesh_pb2.PeerAuthentication,
) -> Labels | None:
    """An absent or empty selector is None: both select every workload in scope."""
    if not m.HasField("selector"):
        return None
    return _labels(m.selector.match_labels) or None


def _decode_authz(m: mesh_pb2.AuthorizationPolicy) -> AuthorizationPolicy:
    action = _enum(mesh_pb2.AuthorizationPolicy.Action, m.action, "action")
    if action == "CUSTOM":
        raise ResourceError("action CUSTOM is not supported: no external authorization providers")
    selector = _decode_selector(m)
    if selector is not None and m.target_refs:
        raise ResourceError("selector and target_refs are both set; a policy uses one")
    rules = tuple(_decode_rule(rule, f"rules[{i}]") for i, rule in enumerate(m.rules))
    return AuthorizationPolicy(
        name=_text(m.name, "name"),
        namespace=_text(m.namespace, "namespace"),
        selector=selector,
        target_refs=tuple(_decode_target_ref(ref) for ref in m.target_refs),
        action=action,
        rules=rules,
        is_root=m.is_root,
        needs_l7=rules_need_l7(rules),  # recomputed: this build's own idea of what it can enforce
    )


def _decode_target_ref(m: mesh_pb2.PolicyTargetReference) -> TargetRef:
    return TargetRef(
        group=m.group,
        kind=_text(m.kind, "target_refs.kind"),
        name=_text(m.name, "target_refs.name"),
        namespace=_text(m.namespace, "target_refs.namespace"),
    )


def _decode_rule(m: mesh_pb2.Rule, what: str) -> Rule:
    sources = tuple(
        _decode_match(Source, entry.source, f"{what}.from[{i}].source")
        for i, entry in enumerate(getattr(m, "from"))
    )
    operations = tuple(
        _decode_match(Operation, entry.operation, f"{what}.to[{i}].operation")
        for i, entry in enumerate(m.to)
    )
    return Rule(
        sources=sources,
        operations=operations,
        conditions=tuple(_decode_condition(c, f"{what}.when[{i}]") for i, c in enumerate(m.when)),
    )


def _decode_match(cls: type, m: mesh_pb2.Source | mesh_pb2.Operation, what: str):
    """A Source or Operation: at least one list set, every entry non-empty and well-formed."""
    values = {f.name: tuple(getattr(m, f.name)) for f in dataclasses.fields(cls)}
    if not any(values.values()):
        raise ResourceError(f"{what} is empty; it would match everything")
    for name, entries in values.items():
        for entry in entries:
            _check_match_entry(name, entry, f"{what}.{name}")
    return cls(**values)


def _check_match_entry(field: str, entry: str, what: str) -> None:
    _text(entry, what)
    if field.endswith("ip_blocks"):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ResourceError(f"{what}: {entry!r} is not an IP address or CIDR") from None
    elif field.endswith("ports") and not (entry.isascii() and entry.isdigit()):
        raise ResourceError(f"{what}: {entry!r} is not a port number")
    elif field.endswith("ports"):
        _port(int(entry), what)


def _decode_condition(m: mesh_pb2.Condition, what: str) -> Condition:
    if not m.values and not m.not_values:
        raise ResourceError(f"{what}: neither values nor not_values is set")
    return Condition(
        key=_text(m.key, f"{what}.key"),
        values=tuple(_text(v, f"{what}.values") for v in m.values),
        not_values=tuple(_text(v, f"{what}.not_values") for v in m.not_values),
    )


def _decode_peer_authn(m: mesh_pb2.PeerAuthentication) -> PeerAuthentication:
    modes = mesh_pb2.PeerAuthentication.Mode
    port_level = tuple(
        sorted(
            (_port(port, "port_level"), _enum(modes, mode, f"port_level[{port}]"))
            for port, mode in m.port_level.items()
        )
    )
    return PeerAuthentication(
        name=_text(m.name, "name"),
        namespace=_text(m.namespace, "namespace"),
        selector=_decode_selector(m),
        mode=_enum(modes, m.mode, "mode"),
        port_level=port_level,
        is_root=m.is_root,
    )


def _enum(enum_type: Any, value: int, what: str) -> str:
    try:
        return enum_type.Name(value)
    except ValueError:
        raise ResourceError(f"{what}: unknown value {value}; is this client older?") from None


def _decode_route(m: mesh_pb2.HttpRoute) -> HttpRoute:
    if not m.parents:
        raise ResourceError("no parents: a route attaches to at least one Service")
    rules = _integral(json_format.MessageToDict(m.rules))
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise ResourceError("rules: must be a list of objects")
    return HttpRoute(
        name=_text(m.name, "name"),
        namespace=_text(m.namespace, "namespace"),
        parents=tuple(_decode_parent(p) for p in m.parents),
        hostnames=tuple(_text(h, "hostnames") for h in m.hostnames),
        rules=canonical_json(rules),
    )


def _decode_parent(m: mesh_pb2.RouteParent) -> RouteParent:
    if m.port > 65535:
        raise ResourceError(f"parents.port: {m.port} is not a port number")
    return RouteParent(
        namespace=_text(m.namespace, "parents.namespace"),
        name=_text(m.name, "parents.name"),
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
        _Codec(mesh_pb2.AuthorizationPolicy, _encode_authz, _decode_authz),
        _Codec(mesh_pb2.PeerAuthentication, _encode_peer_authn, _decode_peer_authn),
        _Codec(mesh_pb2.HttpRoute, _encode_route, _decode_route),
    )
}
assert set(_CODECS) == set(scope.TYPE_URLS), "scope's type URLs and mesh.proto disagree"
