"""The waypoint's HTTPRoute router and load balancers: pure decisions, no I/O.

Theory of operation. On every config push the waypoint calls `compile_routes(routes, services)`:
each HTTPRoute (`RouteSource`, Gateway API's normalized `spec.rules`) compiles on its own, a route
that cannot (a bad regex, say) comes back as a `RouteError` for the caller to NACK, and the rest are
attached to their parent Service ports (GAMMA) and sorted by Gateway API's precedence into one
`RouteTable` per Service port. The whole `RouteTables` snapshot is swapped in one assignment.

Per request, the I/O shell:

1. finds the table for the Service port the client dialled (`tables.get(ns, name, port)`);
2. `table.match(head, client_namespace)` -> a `RouteMatch`, or None: answer 404. A Service with no
   route attached matches its implicit default route, which forwards to the Service itself;
3. `route_match.decide(head, rng)` -> `Forward` (rewritten head, target Service port, mirrors,
   timeouts, response filters) or `Reply` (a redirect, or Gateway API's 500s);
4. load-balances `Forward.target`'s endpoints with a balancer from balancers.py / hashring.py
   (None from `pick`: answer 503), sends, fires the mirrors and forgets them, and passes the
   response through `Forward.filter_response`.

Modules, one concern each: sources (inputs), urls (path prefix and authority text), matching
(HTTPRouteMatch), headers (header modifiers), filters (the filter chain), backends (weighted
backendRefs), rules (a compiled rule and `decide`), outcomes (Forward/Reply), table (precedence
and lookup), compiler (routes -> tables), balancers and hashring (endpoint choice).
"""

from waypoint.routing.balancers import EjectionSet, InFlight, LeastRequest, Pool, RoundRobin
from waypoint.routing.compiler import CompiledRoutes, compile_routes
from waypoint.routing.errors import FieldError, RouteError, RoutingError
from waypoint.routing.hashring import ConsistentHash
from waypoint.routing.outcomes import Forward, Mirror, Reply, ReplyReason, Timeouts
from waypoint.routing.rules import RouteId, RouteMatch
from waypoint.routing.sources import (
    BackendTarget,
    ParentRef,
    PortInfo,
    RouteSource,
    ServiceInfo,
)
from waypoint.routing.table import RouteTable, RouteTables

__all__ = [
    "BackendTarget",
    "CompiledRoutes",
    "ConsistentHash",
    "EjectionSet",
    "FieldError",
    "Forward",
    "InFlight",
    "LeastRequest",
    "Mirror",
    "ParentRef",
    "Pool",
    "PortInfo",
    "Reply",
    "ReplyReason",
    "RoundRobin",
    "RouteError",
    "RouteId",
    "RouteMatch",
    "RouteSource",
    "RouteTable",
    "RouteTables",
    "RoutingError",
    "ServiceInfo",
    "Timeouts",
    "compile_routes",
]
