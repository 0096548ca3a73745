"""A rule's weighted backendRefs: which Service port one request goes to.

Each request draws one integer below the total weight from the caller's RNG and takes the backend
whose cumulative weight first exceeds it, so a backend gets weight/total of the traffic and a
weight of 0 is never chosen. Invalid backendRefs (an unknown Service, a missing port, a kind
nodemesh cannot send to) stay in the draw, as Gateway API requires: the share of requests that
would have gone to them gets a 500, the rest is served. With no backendRefs, or only zero weights,
there is nowhere to send anything and every request gets a 500.

A Service with no ready endpoints is the load balancer's concern, not this module's: Gateway API
recommends a 503 for it, which the caller answers when the balancer has nothing to pick.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from waypoint.routing.filters import FilterChain, Resolver, compile_filters
from waypoint.routing.sources import BackendTarget


@dataclass(frozen=True)
class Backend:
    target: BackendTarget
    weight: int
    filters: FilterChain = field(default_factory=FilterChain)
    problem: str = ""  # why requests for it get a 500; "" when it is usable


@dataclass(frozen=True)
class WeightedBackends:
    backends: tuple[Backend, ...] = ()

    # Running totals of the weights, computed once: bisecting them is the weighted draw.
    cumulative: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weights = (backend.weight for backend in self.backends)
        object.__setattr__(self, "cumulative", tuple(itertools.accumulate(weights)))

    def pick(self, rng: random.Random) -> Backend | None:
        """One backend, drawn by weight; None when the weights sum to 0 (or there are none)."""
        if not self.cumulative or self.cumulative[-1] <= 0:
            return None
        draw = rng.randrange(self.cumulative[-1])
        return self.backends[bisect.bisect_right(self.cumulative, draw)]


def compile_backends(
    refs: Sequence[Mapping[str, Any]], field: str, resolve: Resolver
) -> WeightedBackends:
    """A normalized backendRefs list; each ref's own filters are compiled with it."""
    backends = []
    for index, ref in enumerate(refs):
        target, problem = resolve(ref)
        filters = compile_filters(ref.get("filters", ()), f"{field}[{index}].filters", resolve)
        backends.append(Backend(target, int(ref.get("weight", 1)), filters, problem))
    return WeightedBackends(tuple(backends))
