"""Routes + Services -> one `RouteTables` snapshot, and the routes that had to be rejected.

Compilation is the two-phase apply ztunnel uses for xDS: each route is converted on its own, and a
route that cannot be (a regex that does not compile, a prefix rewrite on an exact match, data that
is not normalized) is reported as a `RouteError` naming the route and rule, and left out, so the
caller NACKs that route alone while the others apply. Then the surviving routes are attached to
their parent Service ports and every table is built and sorted at once; the caller swaps the whole
`RouteTables` in one assignment so no request ever sees half a push.

Each parentRef attaches to every port of its Service, or to the one port its `port` or
`sectionName` names (GEP-1294). A parent Service that does not exist is not an error: the route
attaches to nothing until the Service appears, as Gateway API's status would say.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from waypoint.routing.errors import FieldError, RouteError
from waypoint.routing.rules import RouteId, Rule, compile_rule, default_rule
from waypoint.routing.sources import BackendTarget, RouteSource, ServiceIndex, ServiceLike
from waypoint.routing.table import Entry, RouteTable, RouteTables

# (service key, port) -> client namespace of consumer routes, or None for producer routes -> entries
_Buckets = dict[tuple[str, int], dict[str | None, list[Entry]]]


@dataclass(frozen=True)
class CompiledRoutes:
    tables: RouteTables
    errors: tuple[RouteError, ...]  # one per rejected route; NACK these, apply the rest
    applied: tuple[str, ...]  # "<namespace>/<name>" of every route compiled in


def compile_routes(
    routes: Iterable[RouteSource], services: Iterable[ServiceLike]
) -> CompiledRoutes:
    """Build every Service port's route table from the routes that compile."""
    index = ServiceIndex(services)
    buckets: _Buckets = defaultdict(lambda: defaultdict(list))
    errors: list[RouteError] = []
    applied: list[str] = []
    for route in routes:
        try:
            rules = compile_route(route, index)
        except RouteError as error:
            errors.append(error)
            continue
        applied.append(route.key)
        _attach(route, rules, index, buckets)
    tables = {
        (key, port): _table(key, port, buckets.get((key, port), {}))
        for key in index.service_keys()
        for port in index.ports(key)
    }
    return CompiledRoutes(RouteTables(MappingProxyType(tables)), tuple(errors), tuple(applied))


def compile_route(route: RouteSource, index: ServiceIndex) -> tuple[Rule, ...]:
    """Every rule of one route; RouteError (naming the rule) if any cannot be used."""
    route_id = RouteId(route.namespace, route.name)
    resolve = functools.partial(index.resolve, route_namespace=route.namespace)
    rules = []
    for position, data in enumerate(route.rules):
        name = data.get("name", "") if isinstance(data, dict) else ""
        try:
            rules.append(compile_rule(route_id, position, data, resolve))
        except FieldError as error:
            raise RouteError(route.key, position, name, error) from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RouteError(route.key, position, name, _malformed(position, error)) from None
    return tuple(rules)


def _malformed(position: int, error: Exception) -> FieldError:
    """Pushed data the validator should have normalized: say so rather than crash the push."""
    detail = f"missing field {error}" if isinstance(error, KeyError) else str(error)
    return FieldError(
        f"rules[{position}]",
        f"is not normalized HTTPRoute data ({detail})",
        "the controller normalizes routes before pushing them: is it older than this waypoint?",
    )


def _attach(
    route: RouteSource, rules: tuple[Rule, ...], index: ServiceIndex, buckets: _Buckets
) -> None:
    entries = _entries(route, rules)
    targets = {
        (f"{parent.namespace}/{parent.name}", port, parent.namespace)
        for parent in route.parents
        for port in index.attached_ports(parent)
    }  # a set: two parentRefs reaching one port attach the route there once
    for key, port, namespace in targets:
        # A route in the Service's own namespace is a producer route (every client), any other
        # is a consumer route for clients in the route's namespace only (GEP-1294).
        group = None if namespace == route.namespace else route.namespace
        buckets[(key, port)][group].extend(entries)


def _entries(route: RouteSource, rules: tuple[Rule, ...]) -> list[Entry]:
    return [
        Entry(match, rule, (*match.specificity, route.created, route.key, rule.index, position))
        for rule in rules
        for position, match in enumerate(rule.matches)
    ]


def _table(key: str, port: int, groups: dict[str | None, list[Entry]]) -> RouteTable:
    namespace, name = key.split("/", 1)

    def ordered(entries: list[Entry]) -> tuple[Entry, ...]:
        return tuple(sorted(entries, key=lambda entry: entry.precedence))

    producer = groups.get(None)
    return RouteTable(
        service=key,
        port=port,
        default=default_rule(BackendTarget(namespace, name, port)),
        producer=ordered(producer) if producer is not None else None,
        consumers=MappingProxyType({ns: ordered(e) for ns, e in groups.items() if ns is not None}),
    )
