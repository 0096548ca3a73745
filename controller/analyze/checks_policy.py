"""Checks of AuthorizationPolicy and PeerAuthentication, over the controller's model of them.

Where a policy applies is Istio ambient's rule as nodemesh.authz.index implements it: a selector
(or none) picks workloads of the policy's namespace (every namespace from the root namespace)
and node agents enforce it; targetRefs attach it to a Service or a waypoint Gateway and only
waypoints enforce it. An agent cannot see HTTP, so a selector-scope rule that needs HTTP
attributes is decided conservatively there (an ALLOW rule never matches, a DENY rule's HTTP parts
count as matched): the traffic is denied, as Istio ambient's ztunnel does.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.analyze.findings import Finding
from controller.analyze.world import Template, World
from controller.model import (
    L4_CONDITION_KEYS,
    L7_OPERATION_FIELDS,
    L7_SOURCE_FIELDS,
    AuthorizationPolicy,
    Labels,
    PeerAuthentication,
)
from nodemesh.authz.index import GATEWAY_GROUP

_SERVICE_GROUPS = ("", "core")
_SHOWN = 3  # workloads named in a message; the rest are counted


def selects_nothing(world: World) -> Iterator[Finding]:
    """NM0101/NM0102: a selector that picks no workload, or only workloads nothing captures."""
    snapshot = world.translated.snapshot
    policies = [*snapshot.authorization_policies, *snapshot.peer_authentications]
    for policy in policies:
        if isinstance(policy, AuthorizationPolicy) and policy.target_refs:
            continue
        kind = type(policy).__name__
        key = (kind, policy.namespace, policy.name)
        picked = world.selected(policy.namespace, policy.selector, root=policy.is_root)
        if policy.selector is not None and not picked:
            yield world.finding("NM0101", key, _nothing_message(policy))
        elif policy.selector is not None and all(world.enrolled(t) is False for t in picked):
            yield world.finding("NM0102", key, _unenrolled_message(picked))
        elif (
            policy.selector is None
            and not policy.is_root
            and world.enrolled_namespace(policy.namespace) is False
            and not _has_waypoint(world, policy.namespace)
        ):
            yield world.finding("NM0102", key, _namespace_unenrolled_message(policy.namespace))


def _has_waypoint(world: World, namespace: str) -> bool:
    return any(w.namespace == namespace and w.exists for w in world.translated.snapshot.waypoints)


def _nothing_message(policy: AuthorizationPolicy | PeerAuthentication) -> str:
    where = "any namespace" if policy.is_root else f"namespace {policy.namespace!r}"
    return (
        f"spec.selector.matchLabels {_labels(policy.selector)} matches no pod or Deployment pod "
        f"template in {where}, so the policy applies to nothing; fix the labels to match the "
        "workload's pod labels (see 'meshctl get pods -n <namespace> -o yaml' or the "
        "Deployment's spec.template.metadata.labels), or delete the policy"
    )


def _unenrolled_message(picked: list[Template]) -> str:
    return (
        f"it selects only {_names(picked)}, which are not in the mesh (their namespace is not "
        "labelled nodemesh.io/dataplane-mode=ambient, or the pods are labelled "
        "nodemesh.io/dataplane-mode=none), so no node agent enforces it; enroll the namespace "
        "or remove the opt-out label"
    )


def _namespace_unenrolled_message(namespace: str) -> str:
    return (
        f"namespace {namespace!r} is not labelled nodemesh.io/dataplane-mode=ambient and has no "
        "waypoint, so no node agent captures its pods and nothing enforces this policy; enroll "
        f"the namespace ('kubectl label namespace {namespace} "
        "nodemesh.io/dataplane-mode=ambient') or delete the policy"
    )


def target_refs(world: World) -> Iterator[Finding]:
    """NM0103/NM0104: a targetRef naming nothing, or a Service no waypoint fronts."""
    for policy in world.translated.snapshot.authorization_policies:
        key = ("AuthorizationPolicy", policy.namespace, policy.name)
        for ref in policy.target_refs:
            if ref.kind == "Service" and ref.group in _SERVICE_GROUPS:
                service = world.service(ref.namespace, ref.name)
                if service is None:
                    yield world.finding("NM0103", key, _missing_target("Service", ref))
                elif not service.waypoint:
                    yield world.finding("NM0104", key, _no_waypoint(ref.namespace, ref.name))
            elif (
                ref.kind == "Gateway"
                and ref.group == GATEWAY_GROUP
                and not world.has_waypoint_gateway(ref.namespace, ref.name)
            ):
                yield world.finding("NM0103", key, _missing_target("waypoint Gateway", ref))


def _missing_target(what: str, ref) -> str:
    return (
        f"spec.targetRefs names {what} {ref.namespace}/{ref.name}, which does not exist, so the "
        "policy is attached to nothing; fix the name (targetRefs name objects of the policy's "
        "own namespace) or create it"
    )


def _no_waypoint(namespace: str, name: str) -> str:
    return (
        f"Service {namespace}/{name} has no waypoint, and policies attached with targetRefs are "
        "enforced only by waypoints, so nothing enforces this one; give the Service a waypoint "
        f"('meshctl waypoint apply -n {namespace} --enroll-namespace', or label the Service "
        "nodemesh.io/use-waypoint=<name>), or use spec.selector for rules with only L4 "
        "attributes"
    )


def l7_without_waypoint(world: World) -> Iterator[Finding]:
    """NM0105: HTTP attributes in a selector-scope policy that node agents must enforce."""
    for policy in world.translated.snapshot.authorization_policies:
        if policy.target_refs or not policy.needs_l7 or policy.action == "AUDIT":
            continue
        picked = world.selected(policy.namespace, policy.selector, root=policy.is_root)
        enrolled = [t for t in picked if world.enrolled(t)]
        bare = [t for t in enrolled if not world.waypoint_of(t)]
        fronted = [t for t in enrolled if world.waypoint_of(t)] if policy.selector else []
        if not (bare or fronted):
            continue
        key = ("AuthorizationPolicy", policy.namespace, policy.name)
        yield world.finding("NM0105", key, _l7_message(policy, bare, fronted))


def _l7_message(policy: AuthorizationPolicy, bare: list[Template], fronted: list[Template]) -> str:
    attributes = ", ".join(_l7_attributes(policy))
    effect = (
        "a DENY rule's HTTP parts count as matched there, so it denies every connection its L4 "
        "parts match"
        if policy.action == "DENY"
        else "an ALLOW rule that needs HTTP never matches there, so the connections it means to "
        "allow are denied"
    )
    if bare:
        where = f"{_names(bare)} have no waypoint"
        fix = (
            f"give them one ('meshctl waypoint apply -n {bare[0].namespace} --enroll-namespace') "
            "and attach the policy with spec.targetRefs, or drop the HTTP attributes"
        )
    else:
        where = (
            f"{_names(fronted)} have a waypoint, but a policy with a label selector cannot be "
            "handed to it (a waypoint sees Services, not pod labels)"
        )
        fix = "attach the policy to their Service with spec.targetRefs instead of spec.selector"
    return (
        f"its rules use HTTP attributes ({attributes}) and {where}: their node agent enforces it "
        f"without seeing HTTP, and {effect}, as Istio ambient does; {fix}"
    )


def _l7_attributes(policy: AuthorizationPolicy) -> list[str]:
    names: dict[str, None] = {}
    for rule in policy.rules:
        for source in rule.sources:
            names.update({_camel(f): None for f in L7_SOURCE_FIELDS if getattr(source, f)})
        for operation in rule.operations:
            names.update({_camel(f): None for f in L7_OPERATION_FIELDS if getattr(operation, f)})
        names.update({c.key: None for c in rule.conditions if c.key not in L4_CONDITION_KEYS})
    return list(names)


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


def deny_without_rules(world: World) -> Iterator[Finding]:
    """NM0106: a DENY policy with no rules matches nothing (unlike an ALLOW with none)."""
    for policy in world.translated.snapshot.authorization_policies:
        if policy.action == "DENY" and not policy.rules:
            key = ("AuthorizationPolicy", policy.namespace, policy.name)
            message = (
                "action DENY with no rules matches no request, so the policy denies nothing; to "
                "deny everything use action ALLOW with no rules (Istio's deny-all), otherwise add "
                "the rules that say what to deny"
            )
            yield world.finding("NM0106", key, message)


def _labels(selector: Labels | None) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in selector or ()) + "}"


def _names(templates: list[Template]) -> str:
    shown = [f"{t.kind.lower()}/{t.name}" for t in templates[:_SHOWN]]
    more = len(templates) - _SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
