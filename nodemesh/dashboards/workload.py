"""Workload: one workload's inbound and outbound traffic, picked with namespace/workload variables.

Inbound is what the workload serves (it is the destination: HTTP from waypoints, TCP from its
own node's agent as `reporter="destination"`); outbound is what it calls (TCP from its node's
agent as `reporter="source"`, HTTP from the waypoints in front of the Services it calls).
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from nodemesh.dashboards.exprs import (
    DESTINATION,
    DURATION_BUCKETS,
    REQUESTS,
    SOURCE,
    WAYPOINT,
    quantile,
    rate_sum,
    success_ratio,
)
from nodemesh.dashboards.panels import Query, Section, dashboard, label_variable, timeseries

INBOUND = ['destination_workload_namespace=~"$namespace"', 'destination_workload=~"$workload"']
OUTBOUND = ['source_workload_namespace=~"$namespace"', 'source_workload=~"$workload"']
BY_SOURCE = ["source_workload", "source_workload_namespace"]
SOURCE_LEGEND = "{{source_workload}}.{{source_workload_namespace}}"
BY_SERVICE = ["destination_service"]
SERVICE_LEGEND = "{{destination_service}}"


def _latency(matchers: list[str]) -> tuple:
    queries = [
        Query(quantile(q / 100, DURATION_BUCKETS, [WAYPOINT, *matchers]), f"P{q}")
        for q in (50, 90, 99)
    ]
    return (timeseries("Request latency", *queries, unit="ms"), 8)


def _http(side: list[str], by: list[str], legend: str, peer: str) -> list[tuple]:
    matchers = [WAYPOINT, *side]
    return [
        (
            timeseries(
                f"Requests by {peer}",
                Query(rate_sum(REQUESTS, matchers, by), legend),
                unit="reqps",
            ),
            8,
        ),
        (
            timeseries(
                f"Success rate by {peer}",
                Query(success_ratio(matchers, by), legend),
                unit="percentunit",
            ),
            8,
        ),
        _latency(side),
    ]


def _tcp(side: list[str], reporter: str, by: list[str], legend: str, peer: str) -> list[tuple]:
    matchers = [reporter, *side]
    security = [*by, "connection_security_policy"]
    return [
        (
            timeseries(
                f"TCP connections by {peer} and security",
                Query(
                    rate_sum("istio_tcp_connections_opened_total", matchers, security),
                    f"{legend} ({{{{connection_security_policy}}}})",
                ),
                unit="cps",
                description="mutual_tls: through the mesh; none: plaintext (PERMISSIVE).",
            ),
            8,
        ),
        (
            timeseries(
                f"Bytes to the server by {peer}",
                Query(rate_sum("istio_tcp_received_bytes_total", matchers, by), legend),
                unit="Bps",
                stack=True,
            ),
            8,
        ),
        (
            timeseries(
                f"Bytes to the client by {peer}",
                Query(rate_sum("istio_tcp_sent_bytes_total", matchers, by), legend),
                unit="Bps",
                stack=True,
            ),
            8,
        ),
    ]


def build() -> Dashboard:
    inbound = [
        *_http(INBOUND, BY_SOURCE, SOURCE_LEGEND, "source"),
        *_tcp(INBOUND, DESTINATION, BY_SOURCE, SOURCE_LEGEND, "source"),
    ]
    outbound = [
        *_http(OUTBOUND, BY_SERVICE, SERVICE_LEGEND, "service"),
        *_tcp(OUTBOUND, SOURCE, BY_SERVICE, SERVICE_LEGEND, "service"),
    ]
    variables = [
        label_variable(
            "namespace",
            "Namespace",
            "label_values(istio_tcp_connections_opened_total, destination_workload_namespace)",
        ),
        label_variable(
            "workload",
            "Workload",
            "label_values(istio_tcp_connections_opened_total"
            '{destination_workload_namespace=~"$namespace"}, destination_workload)',
        ),
    ]
    return dashboard(
        "nodemesh-workload",
        "nodemesh / Workload",
        "Inbound and outbound traffic of the chosen workloads.",
        [Section("Inbound", inbound), Section("Outbound", outbound)],
        variables,
    )
