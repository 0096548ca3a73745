"""Authorization in the mesh model: Istio's AuthorizationPolicy and PeerAuthentication, frozen.

Part of `controller.model` (which re-exports every name here); split out because policy shapes are
their own concern. The L4/L7 split below is Istio ambient's: the node agent enforces only rules
made of L4 attributes; a rule that needs HTTP attributes needs a waypoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LabelPairs = tuple[tuple[str, str], ...]  # controller.model.Labels: sorted (key, value) pairs


@dataclass(frozen=True)
class Source:
    """Istio's Source: who is calling. Every field is a list of alternatives; `not_` excludes."""

    principals: tuple[str, ...] = ()  # peer identities without "spiffe://" (L4)
    not_principals: tuple[str, ...] = ()  # (L4)
    request_principals: tuple[str, ...] = ()  # JWT "iss/sub" (L7)
    not_request_principals: tuple[str, ...] = ()  # (L7)
    namespaces: tuple[str, ...] = ()  # the peer identity's namespace (L4)
    not_namespaces: tuple[str, ...] = ()  # (L4)
    ip_blocks: tuple[str, ...] = ()  # source address, IP or CIDR (L4)
    not_ip_blocks: tuple[str, ...] = ()  # (L4)
    remote_ip_blocks: tuple[str, ...] = ()  # original client from X-Forwarded-For (L7)
    not_remote_ip_blocks: tuple[str, ...] = ()  # (L7)


@dataclass(frozen=True)
class Operation:
    """Istio's Operation: what is being called."""

    hosts: tuple[str, ...] = ()  # HTTP Host / :authority (L7)
    not_hosts: tuple[str, ...] = ()  # (L7)
    ports: tuple[str, ...] = ()  # destination ports, as strings like Istio's (L4)
    not_ports: tuple[str, ...] = ()  # (L4)
    methods: tuple[str, ...] = ()  # HTTP methods (L7)
    not_methods: tuple[str, ...] = ()  # (L7)
    paths: tuple[str, ...] = ()  # HTTP paths (L7)
    not_paths: tuple[str, ...] = ()  # (L7)


@dataclass(frozen=True)
class Condition:
    """Istio's Condition (`when`): an attribute key and the values it must (not) have."""

    key: str  # "source.ip", "request.headers[x-user]", ...
    values: tuple[str, ...] = ()  # the attribute must equal one of these
    not_values: tuple[str, ...] = ()  # the attribute must equal none of these


@dataclass(frozen=True)
class Rule:
    """Istio's Rule: every non-empty part must match; within a part, any entry may."""

    sources: tuple[Source, ...] = ()  # Istio's `from[].source`
    operations: tuple[Operation, ...] = ()  # Istio's `to[].operation`
    conditions: tuple[Condition, ...] = ()  # Istio's `when`


@dataclass(frozen=True)
class TargetRef:
    """A policy attachment (Istio's targetRefs): a Service or a waypoint Gateway."""

    group: str  # "" for core (Service), "gateway.networking.k8s.io" for a Gateway
    kind: str  # Service, Gateway, ...
    name: str  # the target's name
    namespace: str  # the target's namespace (defaults to the policy's)


# Istio ambient's split (pilot's ambient authorization.go): ztunnel enforces only these; a rule
# using anything else needs an HTTP-aware proxy. connection.sni is not L4 here: ztunnel ignores it.
L7_SOURCE_FIELDS = (
    "request_principals",
    "not_request_principals",
    "remote_ip_blocks",
    "not_remote_ip_blocks",
)
L7_OPERATION_FIELDS = ("hosts", "not_hosts", "methods", "not_methods", "paths", "not_paths")
L4_CONDITION_KEYS = frozenset(
    {"source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"}
)


def rule_needs_l7(rule: Rule) -> bool:
    """True if enforcing the rule needs HTTP attributes (a waypoint), as Istio ambient decides."""
    return (
        any(getattr(source, f) for source in rule.sources for f in L7_SOURCE_FIELDS)
        or any(getattr(op, f) for op in rule.operations for f in L7_OPERATION_FIELDS)
        or any(condition.key not in L4_CONDITION_KEYS for condition in rule.conditions)
    )


def rules_need_l7(rules: Iterable[Rule]) -> bool:
    return any(rule_needs_l7(rule) for rule in rules)


@dataclass(frozen=True)
class AuthorizationPolicy:
    name: str  # the policy's name
    namespace: str  # the policy's namespace
    selector: LabelPairs | None  # workloads it applies to; None: every workload in its scope
    target_refs: tuple[TargetRef, ...]  # attachments (enforced by waypoints); empty: selector scope
    action: str  # ALLOW, DENY or AUDIT
    rules: tuple[Rule, ...]  # any rule may match; an ALLOW with none allows nothing
    is_root: bool  # lives in the root namespace: its scope is every namespace
    needs_l7: bool  # some rule uses HTTP attributes (rule_needs_l7): a waypoint must enforce it

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PeerAuthentication:
    name: str  # the policy's name
    namespace: str  # the policy's namespace
    selector: LabelPairs | None  # workloads it applies to; None: every workload in its scope
    mode: str  # UNSET (inherit), DISABLE, PERMISSIVE or STRICT
    port_level: tuple[tuple[int, str], ...]  # (port, mode) overrides, sorted by port
    is_root: bool  # lives in the root namespace: mesh-wide when it has no selector

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"
