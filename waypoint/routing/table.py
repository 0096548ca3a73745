"""The routes of one Service port, ordered by Gateway API precedence: first match wins.

Every match of every rule of every attached route becomes one `Entry`, sorted once when compiled
by: the match's own specificity (exact path > longest prefix > regex > method > most header
matches > most query matches, see matching.py), then the oldest route, then "namespace/name", then
the rule's and the match's position in the route. Matching a request is then a scan for the first
entry that matches, and a miss means no route wants the request: the caller answers 404.

GAMMA (GEP-1294) gives routes two roles. A producer route lives in the Service's own namespace and
applies to every client; a consumer route lives in another namespace and applies only to clients
in that namespace. A table keeps one entry list per role and picks it by the client's namespace.
A Service with no route at all for a client keeps its implicit behaviour: a default rule sending
everything to the Service itself. Attaching any route replaces that default, it does not add to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from waypoint.messages import RequestHead
from waypoint.routing.matching import RequestMatch, RequestView
from waypoint.routing.rules import RouteMatch, Rule


@dataclass(frozen=True)
class Entry:
    match: RequestMatch
    rule: Rule
    precedence: tuple  # sort key; smaller wins


@dataclass(frozen=True)
class RouteTable:
    service: str  # "<namespace>/<name>" of the Service the table routes for
    port: int  # the Service port
    default: Rule  # the implicit route, used when no route applies to the client
    producer: tuple[Entry, ...] | None = None  # None: no producer route is attached
    consumers: Mapping[str, tuple[Entry, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # client namespace -> that namespace's consumer routes

    def entries_for(self, client_namespace: str | None) -> tuple[Entry, ...] | None:
        """The entries that apply to a client in `client_namespace`; None: the default route."""
        if client_namespace is not None and client_namespace in self.consumers:
            return self.consumers[client_namespace]
        return self.producer

    def match(self, head: RequestHead, client_namespace: str | None = None) -> RouteMatch | None:
        """The winning rule for a request, or None when routes apply but none matches (404).

        `client_namespace` is the caller's namespace (from its SPIFFE identity); None considers
        producer routes only.
        """
        entries = self.entries_for(client_namespace)
        if entries is None:
            return RouteMatch(self.default, self.port, "")
        request = RequestView(head)
        for entry in entries:
            if entry.match.matches(request):
                return RouteMatch(entry.rule, self.port, entry.match.prefix)
        return None


@dataclass(frozen=True)
class RouteTables:
    """Every Service port's table, by ("<namespace>/<name>", port): one snapshot, swapped whole."""

    tables: Mapping[tuple[str, int], RouteTable]

    def get(self, namespace: str, name: str, port: int) -> RouteTable | None:
        """The table for a Service port; None when the Service or the port is unknown."""
        return self.tables.get((f"{namespace}/{name}", port))
