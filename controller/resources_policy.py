"""AuthorizationPolicy and PeerAuthentication <-> `nodemesh.v1` messages (controller.resources).

Decoding checks the shape nodemesh enforces, not only the types: a Source or Operation with no
entry would match everything, CUSTOM has no provider, a selector and targetRefs together are
ambiguous. `needs_l7` is recomputed from the rules with this build's own idea of what it can
enforce, never trusted from the message.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from controller.model import (
    AuthorizationPolicy,
    Condition,
    Operation,
    PeerAuthentication,
    Rule,
    Source,
    TargetRef,
    rules_need_l7,
)
from controller.resource_checks import (
    ResourceError,
    decode_selector,
    encode_selector,
    enum_name,
    fields_of,
    port_number,
    require_text,
)
from nodemesh.proto import mesh_pb2


def encode_authz(p: AuthorizationPolicy) -> mesh_pb2.AuthorizationPolicy:
    return mesh_pb2.AuthorizationPolicy(
        name=p.name,
        namespace=p.namespace,
        target_refs=[mesh_pb2.PolicyTargetReference(**fields_of(ref)) for ref in p.target_refs],
        action=mesh_pb2.AuthorizationPolicy.Action.Value(p.action),
        rules=[_encode_rule(rule) for rule in p.rules],
        is_root=p.is_root,
        needs_l7=p.needs_l7,
        **encode_selector(p.selector),
    )


def _encode_rule(rule: Rule) -> mesh_pb2.Rule:
    parts = {
        "from": [mesh_pb2.Rule.From(source=fields_of(s)) for s in rule.sources],
        "to": [mesh_pb2.Rule.To(operation=fields_of(o)) for o in rule.operations],
        "when": [mesh_pb2.Condition(**fields_of(c)) for c in rule.conditions],
    }
    return mesh_pb2.Rule(**parts)


def encode_peer_authn(p: PeerAuthentication) -> mesh_pb2.PeerAuthentication:
    mode = mesh_pb2.PeerAuthentication.Mode.Value
    return mesh_pb2.PeerAuthentication(
        name=p.name,
        namespace=p.namespace,
        mode=mode(p.mode),
        port_level={port: mode(port_mode) for port, port_mode in p.port_level},
        is_root=p.is_root,
        **encode_selector(p.selector),
    )


def decode_authz(m: mesh_pb2.AuthorizationPolicy) -> AuthorizationPolicy:
    action = enum_name(mesh_pb2.AuthorizationPolicy.Action, m.action, "action")
    if action == "CUSTOM":
        raise ResourceError("action CUSTOM is not supported: no external authorization providers")
    selector = decode_selector(m)
    if selector is not None and m.target_refs:
        raise ResourceError("selector and target_refs are both set; a policy uses one")
    rules = tuple(_decode_rule(rule, f"rules[{i}]") for i, rule in enumerate(m.rules))
    return AuthorizationPolicy(
        name=require_text(m.name, "name"),
        namespace=require_text(m.namespace, "namespace"),
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
        kind=require_text(m.kind, "target_refs.kind"),
        name=require_text(m.name, "target_refs.name"),
        namespace=require_text(m.namespace, "target_refs.namespace"),
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
    require_text(entry, what)
    if field.endswith("ip_blocks"):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ResourceError(f"{what}: {entry!r} is not an IP address or CIDR") from None
    elif field.endswith("ports") and not (entry.isascii() and entry.isdigit()):
        raise ResourceError(f"{what}: {entry!r} is not a port number")
    elif field.endswith("ports"):
        port_number(int(entry), what)


def _decode_condition(m: mesh_pb2.Condition, what: str) -> Condition:
    if not m.values and not m.not_values:
        raise ResourceError(f"{what}: neither values nor not_values is set")
    return Condition(
        key=require_text(m.key, f"{what}.key"),
        values=tuple(require_text(v, f"{what}.values") for v in m.values),
        not_values=tuple(require_text(v, f"{what}.not_values") for v in m.not_values),
    )


def decode_peer_authn(m: mesh_pb2.PeerAuthentication) -> PeerAuthentication:
    modes = mesh_pb2.PeerAuthentication.Mode
    port_level = tuple(
        sorted(
            (port_number(port, "port_level"), enum_name(modes, mode, f"port_level[{port}]"))
            for port, mode in m.port_level.items()
        )
    )
    return PeerAuthentication(
        name=require_text(m.name, "name"),
        namespace=require_text(m.namespace, "namespace"),
        selector=decode_selector(m),
        mode=enum_name(modes, m.mode, "mode"),
        port_level=port_level,
        is_root=m.is_root,
    )
