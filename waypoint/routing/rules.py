"""One compiled HTTPRouteRule, and what a request that matched it gets: `RouteMatch.decide`.

`decide` runs the pipeline Gateway API describes for a matched rule: the rule's filters (which may
answer, e.g. a redirect), its mirrors, a weighted draw among its backendRefs (500 when there is no
valid choice), then the chosen backendRef's own filters and mirrors. The result is a `Forward` or a
`Reply` (see outcomes.py); the RNG is the caller's, so tests and simulations are reproducible.

The implicit route a Service has when no HTTPRoute is attached to it is an ordinary rule here, with
`route` None and one backend: the Service itself on the port the request came to.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodemesh.manifests.validate_route import parse_duration
from waypoint.messages import RequestHead
from waypoint.routing.backends import Backend, WeightedBackends, compile_backends
from waypoint.routing.errors import FieldError
from waypoint.routing.filters import FilterChain, FilterContext, Resolver, compile_filters
from waypoint.routing.matching import RequestMatch, compile_match
from waypoint.routing.outcomes import Forward, Mirror, Reply, ReplyReason, Timeouts, error_reply
from waypoint.routing.sources import BackendTarget


@dataclass(frozen=True)
class RouteId:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Rule:
    route: RouteId | None  # None: the implicit route of a Service with no HTTPRoute attached
    index: int  # position in spec.rules
    name: str  # the rule's `name`, or ""
    matches: tuple[RequestMatch, ...]
    filters: FilterChain
    backends: WeightedBackends
    timeouts: Timeouts
    # The rule's normalized HTTPRouteRetry ({"codes", "attempts", "backoff"}) or None, passed
    # through untouched: retrying is the resilience layer's concern, not routing's.
    retry: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RouteMatch:
    """A request's matched rule, and the facts of the match that filters need."""

    rule: Rule
    target_port: int  # the Service port the request arrived on (GAMMA's listener port)
    prefix: str | None  # the normalized PathPrefix that matched, for ReplacePrefixMatch

    @property
    def route(self) -> RouteId | None:
        return self.rule.route

    @property
    def timeouts(self) -> Timeouts:
        return self.rule.timeouts

    @property
    def retry(self) -> Mapping[str, Any] | None:
        return self.rule.retry

    def decide(self, head: RequestHead, rng: random.Random) -> Forward | Reply:
        """Forward the request somewhere, or the response to answer it with."""
        ctx = FilterContext(self.prefix, self.target_port)
        outcome = self.rule.filters.on_request(head, ctx)
        if isinstance(outcome, Reply):
            return outcome
        mirrors = self.rule.filters.mirrors(outcome, rng)
        backend = self.rule.backends.pick(rng)
        if backend is None:
            return error_reply(500, ReplyReason.NO_BACKEND, f"{self._where()} has no backend")
        if backend.problem:
            return error_reply(500, ReplyReason.INVALID_BACKEND, backend.problem)
        return _through_backend(self.rule, backend, outcome, ctx, rng, mirrors)

    def _where(self) -> str:
        route = self.rule.route or "the default route"
        return f"rule {self.rule.index} of HTTPRoute {route}"


def _through_backend(
    rule: Rule,
    backend: Backend,
    head: RequestHead,
    ctx: FilterContext,
    rng: random.Random,
    mirrors: tuple[Mirror, ...],
) -> Forward | Reply:
    """The backendRef's own filters and mirrors, after the rule's."""
    outcome = backend.filters.on_request(head, ctx)
    if isinstance(outcome, Reply):
        return outcome
    return Forward(
        head=outcome,
        target=backend.target,
        timeouts=rule.timeouts,
        mirrors=mirrors + backend.filters.mirrors(outcome, rng),
        response_modifiers=rule.filters.response_modifiers + backend.filters.response_modifiers,
    )


def default_rule(target: BackendTarget) -> Rule:
    """The implicit route GAMMA gives a Service with no HTTPRoute: everything to itself."""
    return Rule(
        route=None,
        index=0,
        name="",
        matches=(compile_match({"path": {"type": "PathPrefix", "value": "/"}}, "default"),),
        filters=FilterChain(),
        backends=WeightedBackends((Backend(target, 1),)),
        timeouts=Timeouts(),
    )


def compile_rule(route: RouteId, index: int, data: Mapping[str, Any], resolve: Resolver) -> Rule:
    """One normalized HTTPRouteRule; raises FieldError for what the router cannot use."""
    field = f"rules[{index}]"
    matches = tuple(
        compile_match(match, f"{field}.matches[{i}]") for i, match in enumerate(data["matches"])
    )
    filters = compile_filters(data.get("filters", ()), f"{field}.filters", resolve)
    backends = compile_backends(data.get("backendRefs", ()), f"{field}.backendRefs", resolve)
    rule = Rule(
        route=route,
        index=index,
        name=data.get("name", ""),
        matches=matches,
        filters=filters,
        backends=backends,
        timeouts=_timeouts(data, field),
        retry=data.get("retry"),
    )
    _check_prefix_rewrites(rule, field)
    return rule


def _check_prefix_rewrites(rule: Rule, field: str) -> None:
    """ReplacePrefixMatch needs a prefix to replace: every match of the rule must be PathPrefix."""
    chains = (rule.filters, *(backend.filters for backend in rule.backends.backends))
    if not any(chain.rewrites_prefix for chain in chains):
        return
    for index, match in enumerate(rule.matches):
        if match.prefix is None:
            raise FieldError(
                f"{field}.matches[{index}].path.type",
                f"is {match.path.kind.name}, but a filter of this rule uses ReplacePrefixMatch",
                "ReplacePrefixMatch works only with PathPrefix matches; use ReplaceFullPath or "
                "move this match to its own rule",
            )


def _timeouts(data: Mapping[str, Any], field: str) -> Timeouts:
    timeouts = data.get("timeouts") or {}
    return Timeouts(
        request_ms=_duration(timeouts.get("request"), f"{field}.timeouts.request"),
        backend_request_ms=_duration(
            timeouts.get("backendRequest"), f"{field}.timeouts.backendRequest"
        ),
    )


def _duration(value: str | None, field: str) -> int | None:
    """Milliseconds of a Gateway API duration; None when unset or "0s" (which disables it)."""
    if value is None:
        return None
    ms = parse_duration(value)
    if ms is None:
        raise FieldError(field, f"{value!r} is not a Gateway API duration like '500ms' or '1h2m'")
    return ms or None
