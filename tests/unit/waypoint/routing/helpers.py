"""Builders for router tests: terse HTTPRoute rules in, normalized exactly as the controller does.

Rules are written the way a user writes YAML and passed through nodemesh.manifests' own
`normalize_http_route`, so the router is always tested on the data shape it receives in production.
"""

from __future__ import annotations

import copy
from typing import Any

from nodemesh.manifests.validate_route import normalize_http_route
from waypoint.messages import RequestHead
from waypoint.routing import (
    CompiledRoutes,
    ParentRef,
    PortInfo,
    RouteSource,
    RouteTable,
    ServiceInfo,
    compile_routes,
)

NS = "shop"
SERVICES = (
    ServiceInfo(NS, "web", (PortInfo("http", 80), PortInfo("admin", 9090))),
    ServiceInfo(NS, "v1", (PortInfo("", 8080),)),
    ServiceInfo(NS, "v2", (PortInfo("", 8080),)),
    ServiceInfo(NS, "v3", (PortInfo("", 8080),)),
    ServiceInfo(NS, "mirror", (PortInfo("", 8080),)),
    ServiceInfo("other", "api", (PortInfo("http", 80),)),
)


def backend(name: str, weight: int | None = None, **extra: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": 8080, **extra}
    if weight is not None:
        ref["weight"] = weight
    return ref


def rule(*matches: dict[str, Any], to: str = "v1", **fields: Any) -> dict[str, Any]:
    """A rule with the given matches (none: Gateway API's match-all) sending to Service `to`."""
    data: dict[str, Any] = {"backendRefs": [backend(to)], **fields}
    if matches:
        data["matches"] = list(matches)
    return data


def prefix(value: str, **fields: Any) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": value}, **fields}


def exact(value: str, **fields: Any) -> dict[str, Any]:
    return {"path": {"type": "Exact", "value": value}, **fields}


def regex(value: str, **fields: Any) -> dict[str, Any]:
    return {"path": {"type": "RegularExpression", "value": value}, **fields}


def headers(**values: str) -> list[dict[str, str]]:
    return [{"name": name.replace("_", "-"), "value": value} for name, value in values.items()]


def params(**values: str) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def normalize(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    obj = {"spec": {"rules": copy.deepcopy(rules)}}
    normalize_http_route(obj)
    return obj["spec"]["rules"]


def route(
    name: str,
    *rules: dict[str, Any],
    namespace: str = NS,
    parents: tuple[ParentRef, ...] = (ParentRef(NS, "web"),),
    created: float = 0,
) -> RouteSource:
    return RouteSource(
        namespace=namespace,
        name=name,
        parents=parents,
        rules=tuple(normalize(list(rules))),
        created=created,
    )


def compile_(*routes: RouteSource, services=SERVICES) -> CompiledRoutes:
    return compile_routes(routes, services)


def table(*routes: RouteSource, port: int = 80) -> RouteTable:
    compiled = compile_(*routes)
    assert compiled.errors == ()
    found = compiled.tables.get(NS, "web", port)
    assert found is not None
    return found


def request(
    path: str = "/",
    method: str = "GET",
    headers: tuple[tuple[str, str], ...] = (),
    authority: str = "web.shop.svc.cluster.local",
    scheme: str = "http",
) -> RequestHead:
    return RequestHead(method, scheme, authority, path, headers)


def winner(table_: RouteTable, head: RequestHead, client_namespace: str | None = None):
    """(route name, rule index, Service the rule's first backendRef names) of the match, or None."""
    found = table_.match(head, client_namespace)
    if found is None:
        return None
    route_name = found.route.name if found.route else None
    return route_name, found.rule.index, found.rule.backends.backends[0].target.name
