"""Checks of TrafficPolicies, with the controller's own conflict rule (controller.model_traffic).

A TrafficPolicy applies to the Services its targetRefs name in its own namespace; a target that
does not exist is kept (it applies once the Service appears, as Gateway API attachments do), so
the controller says nothing, yet it is usually a typo. Several policies targeting one Service:
the oldest creationTimestamp wins, then the name that sorts first (GEP-713); in files, which have
no timestamps, the name decides, as it would for objects applied in the same second.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.analyze.findings import Finding
from controller.analyze.world import World
from controller.model_traffic import TrafficPolicyConflict, resolve_conflicts
from controller.translate_policy import Invalid
from controller.translate_traffic import traffic_policy


def missing_targets(world: World) -> Iterator[Finding]:
    """NM0601: a targetRef naming no Service."""
    for policy in _policies(world):
        key = ("TrafficPolicy", policy.namespace, policy.name)
        for name in policy.services:
            if world.service(policy.namespace, name) is None:
                message = (
                    f"spec.targetRefs names Service {policy.namespace}/{name}, which does not "
                    "exist, so none of its settings apply to anything yet; fix the name "
                    "(targets are Services of the policy's own namespace) or create the Service"
                )
                yield world.finding("NM0601", key, message)


def conflicts(world: World) -> Iterator[Finding]:
    """NM0602: the policy that loses a contested Service, with the one that wins it."""
    for conflict in traffic_conflicts(world):
        key = ("TrafficPolicy", conflict.loser.namespace, conflict.loser.name)
        yield world.finding("NM0602", key, conflict.message())


def traffic_conflicts(world: World) -> list[TrafficPolicyConflict]:
    """Every lost (policy, Service) pair, as the controller resolves them."""
    return resolve_conflicts(_policies(world))[1]


def _policies(world: World) -> list:
    policies = []
    for obj in world.of_kind("TrafficPolicy"):
        try:
            policies.append(traffic_policy(obj))
        except Invalid:
            continue  # the controller leaves it out; NM0002 reports why
    return policies
