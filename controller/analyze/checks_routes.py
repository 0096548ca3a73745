"""Checks of HTTPRoutes, over the controller's model of them (normalized rules included).

nodemesh attaches HTTPRoutes to Services (Gateway API GAMMA) and only waypoints route HTTP: a
waypoint receives the routes attached to the Services that use it (controller.scope), so a route
on a Service without a waypoint is never applied. A parent Service that does not exist is not an
error to the controller (the route attaches when it appears) but is almost always a typo. A
backendRef to a Service or port that does not exist stays in the weighted draw and its share of
requests gets a 500, and a rule with nowhere to send (no backendRefs, or every weight 0) answers
every request with a 500 (waypoint.routing.backends).
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.analyze.findings import Finding
from controller.analyze.world import World
from controller.model import HttpRoute, RouteParent, Service

_SERVICE_GROUPS = ("", "core")
_REDIRECT = "RequestRedirect"  # a rule that redirects needs no backend


def parents(world: World) -> Iterator[Finding]:
    """NM0201/NM0202/NM0206: the Services a route attaches to, their ports, their waypoint."""
    for route in world.translated.snapshot.http_routes:
        key = ("HTTPRoute", route.namespace, route.name)
        for parent in route.parents:
            service = world.service(parent.namespace, parent.name)
            if service is None:
                yield world.finding("NM0201", key, _parent_missing(parent))
            elif _port_missing(service, parent):
                yield world.finding("NM0202", key, _parent_port_missing(service, parent))
            elif not service.waypoint:
                yield world.finding("NM0206", key, _parent_without_waypoint(service))


def _port_missing(service: Service, parent: RouteParent) -> bool:
    if parent.port and parent.port not in {p.port for p in service.ports}:
        return True
    return bool(parent.section_name) and parent.section_name not in {p.name for p in service.ports}


def _parent_missing(parent: RouteParent) -> str:
    return (
        f"spec.parentRefs names Service {parent.key}, which does not exist, so the route is "
        "attached to nothing; fix the name (and namespace) or create the Service"
    )


def _parent_port_missing(service: Service, parent: RouteParent) -> str:
    wanted = f"port {parent.port}" if parent.port else f"port name {parent.section_name!r}"
    if parent.port and parent.section_name:
        wanted = f"port {parent.port} named {parent.section_name!r}"
    return (
        f"spec.parentRefs asks for {wanted} of Service {service.key}, which has "
        f"{_ports(service)}, so the route is attached to no port; use one of those, or drop "
        "port and sectionName to attach to every port"
    )


def _parent_without_waypoint(service: Service) -> str:
    return (
        f"Service {service.key} has no waypoint, and only a waypoint routes HTTP, so this route "
        f"is not applied; give the Service one ('meshctl waypoint apply -n {service.namespace} "
        "--enroll-namespace', or label the Service nodemesh.io/use-waypoint=<name>)"
    )


def backends(world: World) -> Iterator[Finding]:
    """NM0203/NM0204/NM0205: where each rule sends its requests."""
    for route in world.translated.snapshot.http_routes:
        key = ("HTTPRoute", route.namespace, route.name)
        for index, rule in enumerate(route.rules_data()):
            refs = rule.get("backendRefs") or []
            for ref_index, ref in enumerate(refs):
                yield from _backend(
                    world, route, key, f"rules[{index}].backendRefs[{ref_index}]", ref
                )
            if _redirects(rule):
                continue
            if sum(ref.get("weight", 1) for ref in refs) == 0:
                yield world.finding("NM0205", key, _nowhere(index, bool(refs)))


def _backend(world: World, route: HttpRoute, key, where: str, ref: dict) -> Iterator[Finding]:
    if ref.get("kind") != "Service" or ref.get("group") not in _SERVICE_GROUPS:
        return
    namespace = ref.get("namespace") or route.namespace
    service = world.service(namespace, ref["name"])
    if service is None:
        message = (
            f"spec.{where} names Service {namespace}/{ref['name']}, which does not exist: the "
            f"requests its weight sends there get a 500; fix the name or create the Service"
        )
        yield world.finding("NM0203", key, message)
    elif ref.get("port") not in {p.port for p in service.ports}:
        message = (
            f"spec.{where} sends to port {ref.get('port')} of Service {service.key}, which has "
            f"{_ports(service)}: the requests its weight sends there get a 500; use one of those"
        )
        yield world.finding("NM0204", key, message)


def _redirects(rule: dict) -> bool:
    return any(f.get("type") == _REDIRECT for f in rule.get("filters") or [])


def _nowhere(index: int, has_refs: bool) -> str:
    why = "every backendRef has weight 0" if has_refs else "it has no backendRefs"
    return (
        f"spec.rules[{index}]: {why}, so there is nowhere to send a request and the waypoint "
        "answers every request the rule matches with a 500; give a backendRef a weight above 0 "
        "(or add one: with GAMMA, the parent Service itself)"
    )


def _ports(service: Service) -> str:
    listed = [f"{p.port} ({p.name})" if p.name else str(p.port) for p in service.ports]
    return "ports " + ", ".join(listed) if listed else "no ports"
