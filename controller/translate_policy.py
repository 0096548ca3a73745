"""Registry objects whose specs nodemesh.manifests validates -> model: policies and routes.

Part of `controller.translate`. AuthorizationPolicy, PeerAuthentication and HTTPRoute (and
waypoint Gateways, controller.translate_waypoints) go through nodemesh.manifests' validator and
normalizer (idempotent on objects the local store already normalized), so the model only ever
sees specs of the documented shape, also when they come from a Kubernetes API server. A broken
object raises `Invalid` with a message for the operator; translate reports it and leaves it out.
"""

from __future__ import annotations

from controller.model import (
    AuthorizationPolicy,
    Condition,
    HttpRoute,
    Labels,
    Operation,
    PeerAuthentication,
    RouteParent,
    Rule,
    Source,
    TargetRef,
    canonical_json,
    freeze_labels,
    rules_need_l7,
)
from nodemesh.manifests.validate import validate_object

_SERVICE_PARENT_GROUPS = ("", "core")


class Invalid(ValueError):
    """An object the mesh cannot use; the message says what to fix."""


def validated(obj: dict) -> dict:
    """nodemesh.manifests' validation and defaults; the normalized copy, or Invalid."""
    manifest, problems = validate_object(obj, "registry", 1, None)
    if manifest is None:
        details = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
        raise Invalid(f"invalid {obj['kind']}: {details}")
    return manifest.obj


def _selector(spec: dict) -> Labels | None:
    """Istio's WorkloadSelector; an empty one selects as much as none does, so it becomes None."""
    labels = freeze_labels((spec.get("selector") or {}).get("matchLabels"))
    return labels or None


def authorization_policy(obj: dict, root_namespace: str) -> AuthorizationPolicy:
    obj = validated(obj)
    meta, spec = obj["metadata"], obj["spec"]
    rules = tuple(_rule(rule) for rule in spec["rules"])
    return AuthorizationPolicy(
        name=meta["name"],
        namespace=meta["namespace"],
        selector=_selector(spec),
        target_refs=tuple(
            _target_ref(ref, meta["namespace"]) for ref in spec.get("targetRefs") or []
        ),
        action=spec["action"],
        rules=rules,
        is_root=meta["namespace"] == root_namespace,
        needs_l7=rules_need_l7(rules),
    )


def _target_ref(ref: dict, namespace: str) -> TargetRef:
    return TargetRef(
        group=ref.get("group") or "",
        kind=ref["kind"],
        name=ref["name"],
        namespace=ref.get("namespace") or namespace,
    )


def _strings(obj: dict, key: str) -> tuple[str, ...]:
    return tuple(obj.get(key) or ())


def _rule(rule: dict) -> Rule:
    return Rule(
        sources=tuple(_source(entry["source"]) for entry in rule.get("from") or []),
        operations=tuple(_operation(entry["operation"]) for entry in rule.get("to") or []),
        conditions=tuple(
            Condition(c["key"], _strings(c, "values"), _strings(c, "notValues"))
            for c in rule.get("when") or []
        ),
    )


def _source(source: dict) -> Source:
    return Source(
        principals=_strings(source, "principals"),
        not_principals=_strings(source, "notPrincipals"),
        request_principals=_strings(source, "requestPrincipals"),
        not_request_principals=_strings(source, "notRequestPrincipals"),
        namespaces=_strings(source, "namespaces"),
        not_namespaces=_strings(source, "notNamespaces"),
        ip_blocks=_strings(source, "ipBlocks"),
        not_ip_blocks=_strings(source, "notIpBlocks"),
        remote_ip_blocks=_strings(source, "remoteIpBlocks"),
        not_remote_ip_blocks=_strings(source, "notRemoteIpBlocks"),
    )


def _operation(operation: dict) -> Operation:
    return Operation(
        hosts=_strings(operation, "hosts"),
        not_hosts=_strings(operation, "notHosts"),
        ports=_strings(operation, "ports"),
        not_ports=_strings(operation, "notPorts"),
        methods=_strings(operation, "methods"),
        not_methods=_strings(operation, "notMethods"),
        paths=_strings(operation, "paths"),
        not_paths=_strings(operation, "notPaths"),
    )


def peer_authentication(obj: dict, root_namespace: str) -> PeerAuthentication:
    obj = validated(obj)
    meta, spec = obj["metadata"], obj["spec"]
    port_level = spec.get("portLevelMtls") or {}
    return PeerAuthentication(
        name=meta["name"],
        namespace=meta["namespace"],
        selector=_selector(spec),
        mode=spec["mtls"]["mode"],
        port_level=tuple(sorted((port, mtls["mode"]) for port, mtls in port_level.items())),
        is_root=meta["namespace"] == root_namespace,
    )


def http_route(obj: dict) -> HttpRoute:
    obj = validated(obj)
    meta, spec = obj["metadata"], obj["spec"]
    parents = tuple(
        RouteParent(
            namespace=ref.get("namespace") or meta["namespace"],
            name=ref["name"],
            port=ref.get("port") or 0,
            section_name=ref.get("sectionName") or "",
        )
        for ref in spec["parentRefs"]
        if ref["kind"] == "Service" and ref["group"] in _SERVICE_PARENT_GROUPS
    )
    if not parents:
        raise Invalid(
            "no parentRef is a Service: nodemesh attaches HTTPRoutes to Services (Gateway API "
            "GAMMA); set parentRefs[].group: '' and parentRefs[].kind: Service"
        )
    return HttpRoute(
        name=meta["name"],
        namespace=meta["namespace"],
        parents=parents,
        hostnames=tuple(spec["hostnames"]),
        rules=canonical_json(spec["rules"]),
    )
