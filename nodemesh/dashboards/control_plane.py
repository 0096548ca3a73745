"""Control plane: config distribution and the certificate authority of the controller.

Names are istiod's where istiod has the metric (`pilot_*`, `citadel_*`); expiries are shown as
time left, since the root certificate running out stops every new workload certificate. The
flow relay's series are split by `source_kind` (agent, waypoint), the kind of sender the
controller named from its certificate.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from nodemesh.dashboards.exprs import or_zero, quantile, rate_sum
from nodemesh.dashboards.panels import Query, Section, dashboard, stat, timeseries

CONVERGENCE = "pilot_proxy_convergence_time_bucket"


def _summary() -> Section:
    return Section(
        "Controller",
        [
            (stat("Connected subscribers", Query("sum(pilot_xds)")), 6),
            (
                stat(
                    "Root certificate expires in",
                    Query("min(citadel_server_root_cert_expiry_timestamp) - time()"),
                    unit="s",
                ),
                6,
            ),
            (
                stat(
                    "Objects left out of the model",
                    Query("max(nodemesh_controller_invalid_objects)"),
                    description="Registry objects that do not translate: run `meshctl analyze`.",
                ),
                6,
            ),
            (
                stat(
                    "Config rejects (NACK)/s",
                    Query(or_zero(rate_sum("pilot_total_xds_rejects_total"))),
                    unit="cps",
                ),
                6,
            ),
        ],
    )


def _config() -> Section:
    convergence = [Query(quantile(q / 100, CONVERGENCE), f"P{q}") for q in (50, 90, 99)]
    return Section(
        "Config distribution",
        [
            (
                timeseries(
                    "Connected subscribers by kind",
                    Query("sum by (kind) (pilot_xds)", "{{kind}}"),
                ),
                6,
            ),
            (
                timeseries(
                    "Pushes by resource type",
                    Query(rate_sum("pilot_xds_pushes_total", by=["type"]), "{{type}}"),
                    unit="ops",
                    stack=True,
                ),
                6,
            ),
            (
                timeseries(
                    "Rejects (NACK) by resource type",
                    Query(rate_sum("pilot_total_xds_rejects_total", by=["type"]), "{{type}}"),
                    unit="ops",
                ),
                6,
            ),
            (timeseries("Push convergence time", *convergence, unit="s"), 6),
        ],
    )


def _certificates() -> Section:
    return Section(
        "Certificate authority",
        [
            (
                timeseries(
                    "Signing requests",
                    Query(rate_sum("citadel_server_csr_count_total"), "received"),
                    unit="ops",
                ),
                6,
            ),
            (
                timeseries(
                    "Certificates issued by kind",
                    Query(
                        rate_sum("citadel_server_success_cert_issuance_count_total", by=["kind"]),
                        "{{kind}}",
                    ),
                    unit="ops",
                ),
                6,
            ),
            (
                timeseries(
                    "Signing requests refused by reason",
                    Query(
                        rate_sum("nodemesh_controller_csr_refused_total", by=["reason"]),
                        "{{reason}}",
                    ),
                    unit="ops",
                ),
                6,
            ),
            (
                timeseries(
                    "Certificate time to expiry",
                    Query("min(citadel_server_root_cert_expiry_timestamp) - time()", "root"),
                    Query(
                        "min by (kind) (nodemesh_controller_leaf_cert_expiry_timestamp) - time()",
                        "newest {{kind}} certificate",
                    ),
                    unit="s",
                ),
                6,
            ),
        ],
    )


def _flow_relay() -> Section:
    return Section(
        "Flow relay",
        [
            (
                timeseries(
                    "Flow events relayed by source",
                    Query(
                        rate_sum("nodemesh_flow_events_relayed_total", by=["source_kind"]),
                        "{{source_kind}}",
                    ),
                    unit="ops",
                    stack=True,
                ),
                6,
            ),
            (
                timeseries(
                    "Reporting streams open by source",
                    Query("sum by (source_kind) (nodemesh_flow_reporters)", "{{source_kind}}"),
                    description="One per agent and per waypoint while each reaches the relay.",
                ),
                6,
            ),
            (
                timeseries(
                    "Flow events lost before sending",
                    Query(
                        rate_sum("nodemesh_flow_events_source_dropped_total", by=["source_kind"]),
                        "{{source_kind}}",
                    ),
                    unit="ops",
                    description="Overwritten in a component's ring while it could not send, as "
                    "the component reports: the relay is slow or was away.",
                ),
                6,
            ),
            (
                timeseries(
                    "Flow events refused by reason",
                    Query(
                        rate_sum(
                            "nodemesh_flow_events_refused_total", by=["source_kind", "reason"]
                        ),
                        "{{source_kind}} {{reason}}",
                    ),
                    unit="ops",
                    description="spoofed_reporter or not_a_reporter: a misconfigured component "
                    "or a workload posing as one (the controller logs which).",
                ),
                6,
            ),
        ],
    )


def build() -> Dashboard:
    return dashboard(
        "nodemesh-control-plane",
        "nodemesh / Control plane",
        "Config pushes and subscribers, certificates issued and refused, root expiry, "
        "flow events relayed.",
        [_summary(), _config(), _certificates(), _flow_relay()],
    )
