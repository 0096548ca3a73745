"""The flow reporter's panels, shown on the agent's and the waypoint's dashboards.

Agents and waypoints report their flow events to the controller's relay through the same client
(nodemesh.flows.relay_client), so they export the same three series; each dashboard shows them
for its own component alone, since both kinds of process are scraped under one job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grafanalib.core import TimeSeries

from nodemesh.dashboards.exprs import rate_sum, selector
from nodemesh.dashboards.panels import Query, timeseries

REPORTED = "nodemesh_flow_events_reported_total"
NOT_REPORTED = "nodemesh_flow_events_report_dropped_total"
CONNECTED = "nodemesh_flow_relay_connected"


def flow_reporter_panels(
    component: str, matchers: Sequence[str], only: Callable[[str], str], width: int
) -> list[tuple[TimeSeries, int]]:
    """Sent, not sent and connected, per instance of `component` ("agent", "waypoint"):
    `matchers` select the series, `only` keeps the component's instances of a grouped expr."""
    return [
        (
            timeseries(
                "Flow events sent to the relay",
                Query(only(rate_sum(REPORTED, matchers, ["instance"])), "{{instance}}"),
                unit="ops",
            ),
            width,
        ),
        (
            timeseries(
                "Flow events not sent by reason",
                Query(
                    only(rate_sum(NOT_REPORTED, matchers, ["instance", "reason"])),
                    "{{instance}} {{reason}}",
                ),
                unit="ops",
                description="overwritten: the ring outran the stream to the controller; "
                "send_failed: lost with a broken stream.",
            ),
            width,
        ),
        (
            timeseries(
                "Connected to the flow relay",
                Query(only(f"max by (instance) ({selector(CONNECTED, matchers)})"), "{{instance}}"),
                description=f"1 while the {component}'s flow report stream to the controller "
                "is open.",
            ),
            width,
        ),
    ]
