"""Every check, in one registry, and the function that runs them all over a `World`.

A check is a function `World -> Iterable[Finding]`, pure and independent of the others, so adding
one is one function and one line here (and a row in findings.CODES and docs/analyze.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from controller.analyze import (
    checks_model,
    checks_policy,
    checks_routes,
    checks_traffic,
    checks_waypoint,
    checks_workloads,
)
from controller.analyze.findings import Finding
from controller.analyze.world import World

Check = Callable[[World], Iterable[Finding]]

CHECKS: tuple[Check, ...] = (
    checks_model.left_out,
    checks_policy.selects_nothing,
    checks_policy.target_refs,
    checks_policy.l7_without_waypoint,
    checks_policy.deny_without_rules,
    checks_routes.parents,
    checks_routes.backends,
    checks_waypoint.missing_waypoints,
    checks_waypoint.unenrolled_waypoints,
    checks_waypoint.unready_waypoints,
    checks_workloads.nodes_without_agent,
    checks_workloads.opt_out_without_enrollment,
    checks_workloads.target_port_names,
    checks_workloads.port_protocols,
    checks_traffic.missing_targets,
    checks_traffic.conflicts,
)


def run_checks(world: World, checks: Iterable[Check] = CHECKS) -> list[Finding]:
    """Every finding once, most severe first, then by code and object."""
    found = {finding for check in checks for finding in check(world)}
    return sorted(found, key=Finding.sort_key)
