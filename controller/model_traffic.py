"""TrafficPolicies in the mesh model: which policy a Service gets, and why another lost it.

A `networking.nodemesh.io/v1` TrafficPolicy (docs/traffic-policy.md) attaches to Services of its
own namespace through `spec.targetRefs`; the waypoint in front of a Service applies its retries,
limits, faults and ejection. A Service gets exactly one TrafficPolicy. When several target it, the
controller applies Gateway API's rule for conflicting policies (GEP-713): the oldest
`creationTimestamp` wins, and a tie goes to the name that sorts first. The rule is per Service: a
policy that loses one target still applies to the others, so `TrafficPolicy.services` holds the
targets it won, not every target its spec names. A policy that wins none is left out.

`resolve_conflicts` is pure and deterministic (input order does not matter), so the controller
can report every loss as an error an operator reads once, and a waypoint handed a conflict anyway
settles it the same way.

Timestamps are kept in one spelling, "YYYY-MM-DDTHH:MM:SSZ" in UTC (Kubernetes' own, with whole
seconds as metav1.Time has), so comparing the strings compares the instants; "" (unknown) sorts
after every known time, since a policy whose age nobody knows cannot claim to be the oldest.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class TrafficPolicy:
    """One TrafficPolicy, with the Services it won; the spec is for the waypoint to read."""

    name: str  # the policy's name
    namespace: str  # the policy's namespace, which is also its target Services' namespace
    services: tuple[str, ...]  # names of the Services it applies to (targets it won), in spec order
    spec: str  # canonical JSON of the normalized spec (every default written), targetRefs and all
    created: str  # metadata.creationTimestamp as "YYYY-MM-DDTHH:MM:SSZ", or "" if unknown

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def service_keys(self) -> tuple[str, ...]:
        """ "<namespace>/<service>" of every Service it applies to (a Service's key)."""
        return tuple(f"{self.namespace}/{service}" for service in self.services)

    @property
    def precedence(self) -> tuple[bool, str, str, str]:
        """Sorts the winner of a contested Service first: oldest, then by name (GEP-713)."""
        return (self.created == "", self.created, self.name, self.namespace)

    def spec_data(self) -> dict[str, Any]:
        """The spec as plain data (a fresh copy on every call)."""
        return json.loads(self.spec)


@dataclass(frozen=True)
class TrafficPolicyConflict:
    """A Service two TrafficPolicies target: `loser` does not apply to it, `winner` does."""

    loser: TrafficPolicy  # the policy as translated, before it lost `service`
    winner: TrafficPolicy  # the policy that applies to `service`
    service: str  # the contested Service's name (in both policies' namespace)
    left_out: bool  # the loser won no Service at all, so the model leaves it out

    def message(self) -> str:
        """The operator's line: what lost, to whom, by which rule, and what to change."""
        winner = self.winner
        age = f"created {winner.created}" if winner.created else "no creationTimestamp"
        outcome = "left out" if self.left_out else "kept for its other Services"
        return (
            f"not applied to Service {self.loser.namespace}/{self.service} ({outcome}): "
            f"TrafficPolicy {winner.key} ({age}) targets it too and wins (one TrafficPolicy per "
            "Service: the oldest creationTimestamp wins, then the name that sorts first); merge "
            f"the two policies or remove {self.service!r} from this one's spec.targetRefs"
        )


def resolve_conflicts(
    policies: Iterable[TrafficPolicy],
) -> tuple[list[TrafficPolicy], list[TrafficPolicyConflict]]:
    """Each policy with only the Services it wins, those that win none dropped; and the losses.

    The kept policies come back in precedence order; the conflicts one per (loser, Service), in
    that order too.
    """
    owners: dict[str, TrafficPolicy] = {}
    kept: list[TrafficPolicy] = []
    conflicts: list[TrafficPolicyConflict] = []
    for policy in sorted(policies, key=lambda p: p.precedence):
        won, lost = [], []
        for service, key in zip(policy.services, policy.service_keys, strict=True):
            winner = owners.setdefault(key, policy)
            (won if winner is policy else lost).append((service, winner))
        conflicts += [TrafficPolicyConflict(policy, w, s, left_out=not won) for s, w in lost]
        if won:
            kept.append(replace(policy, services=tuple(service for service, _ in won)))
    return kept, conflicts


def creation_timestamp(value: object) -> str:
    """metadata.creationTimestamp in the model's one spelling; "" when absent.

    ValueError for a value that is no RFC 3339 time: the API server never sends one, so it means
    a broken registry object, which translate reports instead of guessing its age.
    """
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ValueError(f"metadata.creationTimestamp: {value!r} is not an RFC 3339 time")
    try:
        instant = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"metadata.creationTimestamp: {value!r} is not an RFC 3339 time "
            "such as 2025-06-02T09:14:27Z"
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=datetime.UTC)  # Kubernetes times are UTC
    return instant.astimezone(datetime.UTC).strftime(_TIMESTAMP_FORMAT)
