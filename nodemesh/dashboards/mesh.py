"""Mesh overview: the golden signals of every Service in the mesh, one line per Service.

HTTP signals come from the waypoints (`reporter="waypoint"`, the only L7 reporter nodemesh has);
TCP signals from the destination's agent, which sees each connection once, so counts are not
doubled by the source agent's copy of the same connection.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from nodemesh.dashboards.exprs import (
    DESTINATION,
    DURATION_BUCKETS,
    REQUESTS,
    WAYPOINT,
    quantile,
    rate_sum,
    success_ratio,
)
from nodemesh.dashboards.panels import Query, Section, dashboard, stat, timeseries

SERVICE = ["destination_service"]
PER_SERVICE = "{{destination_service}}"


def _summary() -> Section:
    return Section(
        "Mesh",
        [
            (stat("HTTP requests/s", Query(rate_sum(REQUESTS, [WAYPOINT])), unit="reqps"), 6),
            (stat("HTTP success rate", Query(success_ratio([WAYPOINT])), unit="percentunit"), 6),
            (
                stat(
                    "TCP connections opened/s",
                    Query(rate_sum("istio_tcp_connections_opened_total", [DESTINATION])),
                    unit="cps",
                ),
                6,
            ),
            (
                stat(
                    "TCP throughput",
                    Query(rate_sum("istio_tcp_received_bytes_total", [DESTINATION])),
                    unit="Bps",
                    description="Bytes per second from clients to servers.",
                ),
                6,
            ),
        ],
    )


def _http() -> Section:
    latency = [
        (
            timeseries(
                f"P{q} latency by service",
                Query(quantile(q / 100, DURATION_BUCKETS, [WAYPOINT], SERVICE), PER_SERVICE),
                unit="ms",
            ),
            8,
        )
        for q in (50, 90, 99)
    ]
    return Section(
        "HTTP and gRPC services (waypoints)",
        [
            (
                timeseries(
                    "Requests by service",
                    Query(rate_sum(REQUESTS, [WAYPOINT], SERVICE), PER_SERVICE),
                    unit="reqps",
                ),
                12,
            ),
            (
                timeseries(
                    "Success rate by service",
                    Query(success_ratio([WAYPOINT], SERVICE), PER_SERVICE),
                    unit="percentunit",
                    description="Share of requests not answered with a 5xx.",
                ),
                12,
            ),
            *latency,
        ],
    )


def _tcp() -> Section:
    def by_service(metric: str) -> Query:
        return Query(rate_sum(metric, [DESTINATION], SERVICE), PER_SERVICE)

    return Section(
        "TCP services (node agents)",
        [
            (
                timeseries(
                    "Connections opened by service",
                    by_service("istio_tcp_connections_opened_total"),
                    unit="cps",
                ),
                8,
            ),
            (
                timeseries(
                    "Bytes received by service",
                    by_service("istio_tcp_received_bytes_total"),
                    unit="Bps",
                    description="Client to server.",
                    stack=True,
                ),
                8,
            ),
            (
                timeseries(
                    "Bytes sent by service",
                    by_service("istio_tcp_sent_bytes_total"),
                    unit="Bps",
                    description="Server to client.",
                    stack=True,
                ),
                8,
            ),
        ],
    )


def build() -> Dashboard:
    return dashboard(
        "nodemesh-mesh",
        "nodemesh / Mesh overview",
        "Golden signals per Service: request rate, success rate, latency, TCP traffic.",
        [_summary(), _http(), _tcp()],
    )
