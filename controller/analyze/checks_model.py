"""Objects the controller's translation leaves out of the mesh model, and why (NM0002).

controller.translate never raises on a bad object: it records a TranslateError and carries on.
Those errors are exactly what an operator would otherwise find only in the controller's log:
two objects with one name, a cluster IP claimed twice, a policy the validator refuses (objects
read from a cluster were stored by an older version, or written around the validator). Losses
of a TrafficPolicy conflict are reported by their own code (NM0602), not here.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.analyze.checks_traffic import traffic_conflicts
from controller.analyze.findings import Finding
from controller.analyze.world import World


def left_out(world: World) -> Iterator[Finding]:
    conflicts = {(c.loser.namespace, c.loser.name, c.message()) for c in traffic_conflicts(world)}
    for error in world.translated.errors:
        if (
            error.kind == "TrafficPolicy"
            and (error.namespace, error.name, error.message) in conflicts
        ):
            continue
        message = f"the controller leaves it out of the mesh: {error.message}"
        yield world.finding("NM0002", (error.kind, error.namespace, error.name), message)
