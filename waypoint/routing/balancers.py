"""Load balancers: which endpoint of a Service port gets the next request.

Endpoints are opaque to this module: any objects, named by a `key` function the caller supplies
(a pod uid, or "ip:port"). Balancers are built over one endpoint list and replaced, not edited,
when the list changes; what must outlive a rebuild lives outside them: ejections in a `HealthView`
(the outlier detector writes it; `EjectionSet` is the simple one), in-flight counts in an
`InFlight` the caller updates as requests start and finish.

Ejected endpoints are skipped. When too few are left the pool "panics" and balances over every
endpoint, ejected or not, as Envoy does below its healthy panic threshold: sending to a maybe-bad
endpoint beats refusing every request, and it stops one bad outlier verdict from emptying a
Service. The threshold is the fraction of endpoints that must be healthy; nodemesh's default, 0,
panics only when every endpoint is ejected (Envoy's default is 0.5; Istio's minHealthPercent, 0%).
`pick` returns None only for an empty endpoint list: the caller answers 503, as Gateway API
recommends for a Service with no ready endpoints.

Round robin cycles through the pool in list order. Least request is Envoy's power of two choices:
two distinct endpoints drawn with the caller's RNG, the one with fewer requests in flight wins,
which tracks load nearly as well as a full scan at O(1) cost and without herding every waypoint
worker onto the same least-loaded endpoint. Consistent hashing is in hashring.py.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from waypoint.messages import RequestHead

T = TypeVar("T")
Key = Callable[[T], str]


class HealthView(Protocol):
    """What balancers ask the outlier detector (or health checker)."""

    def is_ejected(self, key: str) -> bool: ...


class NoEjections:
    """A HealthView for when nothing checks health: every endpoint is usable."""

    def is_ejected(self, key: str) -> bool:
        return False


class EjectionSet:
    """A HealthView holding the keys of ejected endpoints."""

    def __init__(self) -> None:
        self._ejected: set[str] = set()

    def eject(self, key: str) -> None:
        self._ejected.add(key)

    def restore(self, key: str) -> None:
        self._ejected.discard(key)

    def is_ejected(self, key: str) -> bool:
        return key in self._ejected


class InFlight:
    """Requests in flight per endpoint key; the I/O shell counts, LeastRequest reads."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def started(self, key: str) -> None:
        self._counts[key] += 1

    def finished(self, key: str) -> None:
        if self._counts[key] <= 1:
            del self._counts[key]  # also forgets endpoints that are gone
        else:
            self._counts[key] -= 1

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)


class Pool(Generic[T]):
    """Endpoints and their health: which of them a balancer may pick from right now."""

    def __init__(
        self,
        endpoints: Sequence[T],
        key: Key[T],
        health: HealthView | None = None,
        panic_threshold: float = 0.0,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.key = key
        self.health = health or NoEjections()
        self.panic_threshold = panic_threshold

    def usable(self, endpoint: T) -> bool:
        return not self.health.is_ejected(self.key(endpoint))

    def candidates(self) -> tuple[T, ...]:
        """The healthy endpoints, or all of them when the pool panics (see the module doc)."""
        healthy = tuple(e for e in self.endpoints if self.usable(e))
        if not healthy or len(healthy) < self.panic_threshold * len(self.endpoints):
            return self.endpoints
        return healthy

    def panicking(self) -> bool:
        """True when ejected endpoints are being picked too (worth a metric and a log line)."""
        return any(not self.usable(e) for e in self.candidates())


class RoundRobin(Generic[T]):
    def __init__(self, pool: Pool[T], start: int = 0) -> None:
        self.pool = pool
        self._next = start  # a random start keeps many waypoints from all starting on one pod

    def pick(self, head: RequestHead | None = None) -> T | None:
        candidates = self.pool.candidates()
        if not candidates:
            return None
        chosen = candidates[self._next % len(candidates)]
        self._next += 1
        return chosen


class LeastRequest(Generic[T]):
    def __init__(self, pool: Pool[T], in_flight: InFlight, rng: random.Random) -> None:
        self.pool = pool
        self.in_flight = in_flight
        self.rng = rng

    def pick(self, head: RequestHead | None = None) -> T | None:
        candidates = self.pool.candidates()
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        first, second = self.rng.sample(candidates, 2)
        if self._load(second) < self._load(first):
            return second
        return first

    def _load(self, endpoint: T) -> int:
        return self.in_flight.count(self.pool.key(endpoint))
