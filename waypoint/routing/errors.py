"""Why a route cannot be compiled, said once per route so the caller can reject that route alone.

Compilation code deep inside a rule raises `FieldError` (a field path relative to the route and a
problem); `compile_routes` catches it at the route boundary and turns it into a `RouteError` that
names the route and the rule. That is the one conversion point, like h11's receive boundary: code
below it never needs to know which route it is working on.
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base of every error this package raises on purpose."""


class FieldError(RoutingError):
    """A field of one route that the router cannot use; converted to `RouteError` by the caller."""

    def __init__(self, field: str, problem: str, hint: str = "") -> None:
        # `field` is kubectl-style and relative to spec: "rules[1].matches[0].path.value".
        self.field = field
        self.problem = problem
        self.hint = hint
        super().__init__(f"{field}: {problem}" + (f"; {hint}" if hint else ""))


class RouteError(RoutingError):
    """An HTTPRoute the waypoint cannot program: reject (NACK) it alone, keep serving the rest."""

    def __init__(self, route: str, rule: int | None, rule_name: str, error: FieldError) -> None:
        self.route = route  # "<namespace>/<name>"
        self.rule = rule  # index into spec.rules, or None when the problem is not in one rule
        self.rule_name = rule_name  # the rule's `name`, or ""
        self.field = error.field
        self.problem = error.problem
        self.hint = error.hint
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"HTTPRoute {self.route}"
        if self.rule is not None:
            where += f" rule {self.rule}" + (f" ({self.rule_name!r})" if self.rule_name else "")
        hint = self.hint or "fix the route and apply it again; the other routes keep working"
        return f"{where}: spec.{self.field}: {self.problem}; {hint}"
