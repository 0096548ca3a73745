"""Waypoint: the L7 view of the Services behind waypoints, by status, flags and latency.

Authorization denials are the requests flagged DENY (nodemesh flags L7 denials as ztunnel does,
so an RBAC 403 is never mistaken for the app's own 403). nodemesh exports no retry counter:
retries show up as URX (retries used up) in the response flags. The flow reporter's series are
per waypoint, not per Service, and agents export them too: those panels keep the instances that
export a waypoint-only series (`and on (instance)`) and ignore the Service variables.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from nodemesh.dashboards.exprs import (
    DURATION_BUCKETS,
    REQUESTS,
    WAYPOINT,
    or_zero,
    quantile,
    rate_sum,
    success_ratio,
)
from nodemesh.dashboards.flow_reporter import flow_reporter_panels
from nodemesh.dashboards.panels import Query, Section, dashboard, label_variable, stat, timeseries

CHOSEN = [
    WAYPOINT,
    'destination_service_namespace=~"$namespace"',
    'destination_service=~"$service"',
]
DENIED = 'response_flags=~".*DENY.*"'
# Every waypoint exports it (at 0 until max_label_sets is hit); agents do not.
WAYPOINT_ONLY = "nodemesh_waypoint_label_overflow_total"
# (flag, what it means to an operator): the resilience outcomes worth a line of their own.
RESILIENCE = (
    ("URX", "retries exhausted"),
    ("UT", "timed out"),
    ("UO", "circuit breaker open"),
    ("RL", "rate limited"),
    ("FI", "fault injected"),
)


def _summary() -> Section:
    return Section(
        "Waypoint",
        [
            (stat("Requests/s", Query(rate_sum(REQUESTS, CHOSEN)), unit="reqps"), 6),
            (stat("Success rate", Query(success_ratio(CHOSEN)), unit="percentunit"), 6),
            (
                stat(
                    "P99 latency",
                    Query(quantile(0.99, DURATION_BUCKETS, CHOSEN)),
                    unit="ms",
                ),
                6,
            ),
            (
                stat(
                    "Authorization denials/s",
                    Query(or_zero(rate_sum(REQUESTS, [*CHOSEN, DENIED]))),
                    unit="reqps",
                ),
                6,
            ),
        ],
    )


def _outcomes() -> Section:
    flagged = [*CHOSEN, 'response_flags!="-"']
    resilience = [
        Query(rate_sum(REQUESTS, [*CHOSEN, f'response_flags=~".*{flag}.*"']), f"{flag}: {meaning}")
        for flag, meaning in RESILIENCE
    ]
    return Section(
        "Outcomes",
        [
            (
                timeseries(
                    "Requests by response code",
                    Query(rate_sum(REQUESTS, CHOSEN, ["response_code"]), "{{response_code}}"),
                    unit="reqps",
                    stack=True,
                ),
                8,
            ),
            (
                timeseries(
                    "Requests by response flags",
                    Query(rate_sum(REQUESTS, flagged, ["response_flags"]), "{{response_flags}}"),
                    unit="reqps",
                    description='Only requests the mesh flagged (anything but "-").',
                ),
                8,
            ),
            (
                timeseries(
                    "Resilience outcomes",
                    *resilience,
                    unit="reqps",
                    description="nodemesh exports no retry counter; URX marks retries used up.",
                ),
                8,
            ),
        ],
    )


def _denials_and_limits() -> Section:
    return Section(
        "Authorization, gRPC and limits",
        [
            (
                timeseries(
                    "Authorization denials by source",
                    Query(
                        rate_sum(
                            REQUESTS, [*CHOSEN, DENIED], ["source_workload", "destination_service"]
                        ),
                        "{{source_workload}} -> {{destination_service}}",
                    ),
                    unit="reqps",
                ),
                8,
            ),
            (
                timeseries(
                    "gRPC status",
                    Query(
                        rate_sum(
                            REQUESTS,
                            [*CHOSEN, 'grpc_response_status!=""'],
                            ["grpc_response_status"],
                        ),
                        "{{grpc_response_status}}",
                    ),
                    unit="reqps",
                ),
                8,
            ),
            (
                timeseries(
                    "Label sets over the limit",
                    Query(
                        or_zero(rate_sum("nodemesh_waypoint_label_overflow_total", by=["instance"]))
                    ),
                    unit="reqps",
                    description="Requests counted with unknown peers: max_label_sets was hit.",
                ),
                8,
            ),
        ],
    )


def _sizes() -> Section:
    def quantiles(bucket: str) -> list[Query]:
        return [Query(quantile(q / 100, bucket, CHOSEN), f"P{q}") for q in (50, 90, 99)]

    return Section(
        "Latency and size",
        [
            (timeseries("Request latency", *quantiles(DURATION_BUCKETS), unit="ms"), 8),
            (timeseries("Request size", *quantiles("istio_request_bytes_bucket"), unit="bytes"), 8),
            (
                timeseries(
                    "Response size", *quantiles("istio_response_bytes_bucket"), unit="bytes"
                ),
                8,
            ),
        ],
    )


def _waypoints_only(expr: str) -> str:
    return f"{expr} and on (instance) {WAYPOINT_ONLY}"


def _flow_events() -> Section:
    return Section("Flow events", flow_reporter_panels("waypoint", [], _waypoints_only, 8))


def build() -> Dashboard:
    variables = [
        label_variable(
            "namespace",
            "Namespace",
            'label_values(istio_requests_total{reporter="waypoint"}, '
            "destination_service_namespace)",
        ),
        label_variable(
            "service",
            "Service",
            'label_values(istio_requests_total{reporter="waypoint",'
            'destination_service_namespace=~"$namespace"}, destination_service)',
        ),
    ]
    return dashboard(
        "nodemesh-waypoint",
        "nodemesh / Waypoint",
        "HTTP and gRPC through waypoints: status codes, response flags, latency, denials.",
        [_summary(), _outcomes(), _denials_and_limits(), _sizes(), _flow_events()],
        variables,
    )
