"""Per backend Service, what outlives a request: endpoints, rate limit, faults, breaker, ejections.

The resilience primitives are per Service and per waypoint process (docs/traffic-policy.md): a
token bucket, a fault injector, a retry budget, a circuit breaker (`gate`, None when
`connectionPool` sets no limit, so unlimited Services pay nothing per request) and an outlier
detector, built from the Service's
TrafficPolicy and rebuilt only when that policy changes, so ejections and budgets survive
unrelated config pushes. Endpoints are resolved once per config snapshot and (Service, port), so
a pod that became unready is never picked again after the push that says so, while requests in
between pay a dict lookup instead of rebuilding the list (`Backends`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from controller.model import PeerWorkload, Service
from waypoint.resilience.admission import ServiceGate
from waypoint.resilience.circuit import CircuitBreaker
from waypoint.resilience.config import (
    ConnectionPoolConfig,
    RetryBudgetConfig,
    RetryConfig,
    TrafficPolicyConfig,
    effective_retry,
)
from waypoint.resilience.fault import FaultDecision, FaultInjector
from waypoint.resilience.outlier import OutlierDetector
from waypoint.resilience.ratelimit import TokenBucket
from waypoint.resilience.retry import RetryBudget
from waypoint.routing import Pool, RoundRobin
from waypoint.state import WaypointState


@dataclass(frozen=True)
class Endpoint:
    """One ready endpoint of a Service port: where to send, and who must answer."""

    key: str  # "ip:port", the balancer's and the outlier detector's name for it
    address: tuple[str, int]  # pod IP and target port
    peer: PeerWorkload | None  # None: not known to the mesh (plaintext)


def endpoints_for(state: WaypointState, service: Service, port: int) -> list[Endpoint]:
    result = []
    for endpoint in service.endpoints:
        target = next((tp for sp, tp in endpoint.ports if sp == port), None)
        if target is None:
            continue
        result.append(
            Endpoint(
                key=f"{endpoint.address}:{target}",
                address=(endpoint.address, target),
                peer=state.peers.get(endpoint.workload_uid),
            )
        )
    return result


class _NoOutliers:
    """Outlier detection off (no TrafficPolicy sets it, as Istio's default)."""

    def set_endpoints(self, keys) -> None:
        pass

    def record(self, key, outcome, now=None) -> None:
        return None

    def is_ejected(self, key, now=None) -> bool:
        return False


class ServiceResilience:
    def __init__(
        self, policy: TrafficPolicyConfig | None, rng: random.Random, clock: Callable[[], float]
    ) -> None:
        self.policy = policy
        budget = policy.retries.budget if policy and policy.retries else RetryBudgetConfig()
        max_retries = policy.connection_pool.max_retries if policy else None
        self.budget = RetryBudget(budget, max_retries=max_retries)
        self.gate = _gate(policy.connection_pool) if policy else None
        limit = policy.rate_limit if policy else None
        self.bucket = TokenBucket(limit, clock) if limit else None
        faults = policy.faults if policy else None
        self.faults = FaultInjector(faults, rng) if faults else None
        outliers = policy.outlier_detection if policy else None
        self.outlier = OutlierDetector(outliers, clock) if outliers else _NoOutliers()
        self.health = self.outlier
        self._retries: dict[int, tuple[object, RetryConfig]] = {}

    def retry_config(self, match) -> RetryConfig:
        """The retry settings for a matched rule, parsed once per (rule, policy), not per request.

        Keyed by the rule object's id, with the rule kept alive beside its entry so the id
        cannot be reused; emptied when it grows past a bound (each push compiles new rules)."""
        held = self._retries.get(id(match.rule))
        if held is not None:
            return held[1]
        if len(self._retries) > 256:
            self._retries.clear()
        config = effective_retry({"retry": match.retry} if match.retry else None, self.policy)
        self._retries[id(match.rule)] = (match.rule, config)
        return config

    def rate_limited(self) -> tuple[tuple[str, str], ...] | None:
        """None to go on; else the Retry-After header of the 429."""
        if self.bucket is None:
            return None
        limited = self.bucket.try_acquire()
        return None if limited is None else (("retry-after", limited.retry_after_header),)

    def fault(self) -> FaultDecision:
        return self.faults.decide() if self.faults else FaultDecision()


def _gate(pool: ConnectionPoolConfig) -> ServiceGate | None:
    """The Service's circuit breaker, or None when it limits nothing (maxRetries lives in the
    retry budget)."""
    limits = (pool.max_connections, pool.max_pending_requests, pool.max_requests)
    if all(limit is None for limit in limits):
        return None
    return ServiceGate(CircuitBreaker(pool))


class Backends:
    """What the proxy keeps per backend Service between requests: resilience and balancers.

    `resilience` is rebuilt only when the Service's TrafficPolicy changes (see the module
    docstring). `balancer` resolves endpoints once per (snapshot, Service, port): the snapshot
    is immutable and swapped whole on a push, so its identity says whether the cached list is
    still right; a balancer (and its round-robin position) survives a push that leaves the
    endpoint set unchanged.
    """

    def __init__(self, rng: random.Random, clock: Callable[[], float]) -> None:
        self.rng, self.clock = rng, clock
        self._resilience: dict[str, ServiceResilience] = {}
        # (Service key, port) -> (snapshot, its endpoint keys, the guard it reports to, balancer)
        self._balancers: dict[tuple[str, int], tuple[object, tuple, object, RoundRobin]] = {}

    def resilience(self, service: Service, state: WaypointState) -> ServiceResilience:
        policy = state.traffic_policies.get(service.key)
        held = self._resilience.get(service.key)
        if held is None or (held.policy is not policy and held.policy != policy):
            held = ServiceResilience(policy, self.rng, self.clock)
            self._resilience[service.key] = held
        return held

    def balancer(self, state: WaypointState, service: Service, port: int) -> RoundRobin:
        """The balancer over `service`'s endpoints on `port`; call `resilience` first.

        A new balancer when the endpoint set or the Service's resilience (its outlier
        detector) changed; the same one, round-robin position kept, otherwise.
        """
        key = (service.key, port)
        held = self._balancers.get(key)
        if held is not None and held[0] is state:
            return held[3]
        guard = self._resilience[service.key]
        eps = endpoints_for(state, service, port)
        keys = tuple(e.key for e in eps)
        if held is not None and held[1] == keys and held[2] is guard:
            balancer = held[3]
        else:
            guard.outlier.set_endpoints(keys)
            balancer = RoundRobin(Pool(eps, key=lambda e: e.key, health=guard.health))
        self._balancers[key] = (state, keys, guard, balancer)
        return balancer
