"""Node agent: what each node's agent carries, captures, decides, holds and has applied.

Per-agent series are told apart by Prometheus' `instance` label (one scrape target per agent),
so the dashboard depends on no relabelling. Certificate expiry is shown as time left (the
exported value is a Unix time), because "expires in 3 h" is what an operator acts on. The flow
reporter's series are exported by waypoints too: those queries keep only the instances that
export an agent-only series (`and on (instance)`), so "All" agents never counts a waypoint.
"""

from __future__ import annotations

from grafanalib.core import Dashboard

from nodemesh.dashboards.exprs import DESTINATION, or_zero, rate_sum, selector
from nodemesh.dashboards.flow_reporter import flow_reporter_panels
from nodemesh.dashboards.panels import Query, Section, dashboard, label_variable, stat, timeseries

AGENT = ['instance=~"$instance"']
OPENED = "istio_tcp_connections_opened_total"
EXPIRY = "nodemesh_agent_certificate_expiry_timestamp_seconds"
GENERATION = "nodemesh_agent_config_generation"
DECISIONS = "nodemesh_agent_policy_decisions_total"
CAPTURE = "nodemesh_agent_capture_decisions_total"
AGENT_ONLY = "nodemesh_agent_captured_pods"  # every agent exports it, at 0 with no pods


def _gauge(metric: str, op: str = "sum", by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"{op}{grouping} ({selector(metric, AGENT)})"


def _agents_only(expr: str) -> str:
    """`expr` (grouped by instance) for agents alone, of series that waypoints export too."""
    return f"{expr} and on (instance) {AGENT_ONLY}"


def _summary() -> Section:
    denials = or_zero(rate_sum(DECISIONS, [*AGENT, 'decision="deny"']))
    return Section(
        "Node",
        [
            (stat("Captured pods", Query(_gauge("nodemesh_agent_captured_pods"))), 6),
            (stat("Open connections", Query(_gauge("nodemesh_agent_active_connections"))), 6),
            (
                stat(
                    "Soonest certificate expiry",
                    Query(f"{_gauge(EXPIRY, 'min')} - time()"),
                    unit="s",
                    description="Time left on the workload certificate that expires first.",
                ),
                6,
            ),
            (stat("Policy denials/s", Query(denials), unit="cps"), 6),
        ],
    )


def _connections() -> Section:
    by_flag = "{{instance}} {{response_flags}}"
    return Section(
        "Connections",
        [
            (
                timeseries(
                    "Open connections by direction",
                    Query(
                        _gauge("nodemesh_agent_active_connections", by="instance, direction"),
                        "{{instance}} {{direction}}",
                    ),
                ),
                8,
            ),
            (
                timeseries(
                    "Connections opened by reporter",
                    Query(
                        rate_sum(OPENED, AGENT, ["instance", "reporter"]),
                        "{{instance}} {{reporter}}",
                    ),
                    unit="cps",
                ),
                8,
            ),
            (
                timeseries(
                    "Connections closed by response flags",
                    Query(
                        rate_sum(
                            "istio_tcp_connections_closed_total",
                            AGENT,
                            ["instance", "response_flags"],
                        ),
                        by_flag,
                    ),
                    unit="cps",
                    description='"-": clean close; DENY: refused by policy; CONNECT: upstream '
                    "unreachable; UH: no ready endpoint.",
                ),
                8,
            ),
        ],
    )


def _bytes_and_security() -> Section:
    bytes_in = Query(
        rate_sum("istio_tcp_received_bytes_total", AGENT, ["instance"]), "{{instance}}"
    )
    bytes_out = Query(rate_sum("istio_tcp_sent_bytes_total", AGENT, ["instance"]), "{{instance}}")
    return Section(
        "Bytes and security",
        [
            (timeseries("Bytes to servers (src -> dst)", bytes_in, unit="Bps", stack=True), 8),
            (timeseries("Bytes to clients (dst -> src)", bytes_out, unit="Bps", stack=True), 8),
            (
                timeseries(
                    "Inbound connections by security",
                    Query(
                        rate_sum(OPENED, [*AGENT, DESTINATION], ["connection_security_policy"]),
                        "{{connection_security_policy}}",
                    ),
                    unit="cps",
                    description="none: plaintext accepted under PERMISSIVE.",
                ),
                8,
            ),
        ],
    )


def _capture_and_policy() -> Section:
    return Section(
        "Capture and policy",
        [
            (
                timeseries(
                    "Captured pods",
                    Query(_gauge("nodemesh_agent_captured_pods", by="instance"), "{{instance}}"),
                ),
                8,
            ),
            (
                timeseries(
                    "Capture decisions by reason",
                    Query(
                        rate_sum(CAPTURE, AGENT, ["decision", "reason"]), "{{decision}} {{reason}}"
                    ),
                    unit="cps",
                    description="What the eBPF hooks did with each new TCP connection: captured "
                    "(redirected to the agent) or passed, and why.",
                ),
                8,
            ),
            (
                timeseries(
                    "Policy decisions by outcome and code",
                    Query(
                        rate_sum(DECISIONS, AGENT, ["decision", "code"]), "{{decision}} {{code}}"
                    ),
                    unit="cps",
                ),
                8,
            ),
        ],
    )


def _flow_events() -> Section:
    return Section(
        "Flow events",
        [
            (
                timeseries(
                    "Capture events lost",
                    Query(
                        rate_sum("nodemesh_agent_capture_event_drops_total", AGENT, ["instance"]),
                        "{{instance}}",
                    ),
                    unit="ops",
                    description="The eBPF ring buffer was full: the connection was still "
                    "captured, only its `captured` flow event is missing.",
                ),
                6,
            ),
            *flow_reporter_panels("agent", AGENT, _agents_only, 6),
        ],
    )


def _identity_and_config() -> Section:
    return Section(
        "Certificates and configuration",
        [
            (
                timeseries(
                    "Certificate time to expiry by identity",
                    Query(f"{_gauge(EXPIRY, 'min', 'identity')} - time()", "{{identity}}"),
                    unit="s",
                    description="Rotation at half-life keeps this above half the lifetime.",
                ),
                8,
            ),
            (
                timeseries(
                    "Config generation",
                    Query(_gauge(GENERATION, "max", "instance"), "{{instance}}"),
                    description="Config pushes applied since the agent started.",
                ),
                8,
            ),
            (
                timeseries(
                    "Config changes applied",
                    Query(
                        "sum by (instance) "
                        f"(changes({selector(GENERATION, AGENT)}[$__rate_interval]))",
                        "{{instance}}",
                    ),
                    description="A flat zero while the controller's pushes go on means this "
                    "agent's config is stale.",
                ),
                8,
            ),
        ],
    )


def build() -> Dashboard:
    variables = [
        label_variable("instance", "Agent", "label_values(nodemesh_agent_captured_pods, instance)")
    ]
    return dashboard(
        "nodemesh-node-agent",
        "nodemesh / Node agent",
        "Connections, bytes, capture, L4 policy, flow events, certificates and config of the "
        "node agents.",
        [
            _summary(),
            _connections(),
            _bytes_and_security(),
            _capture_and_policy(),
            _flow_events(),
            _identity_and_config(),
        ],
        variables,
    )
