"""The controller's Prometheus metrics, served on :15014.

Names follow istiod's (`pilot_*` for configuration, `citadel_*` for certificates) wherever istiod
has a metric for the same thing, so Istio's control-plane dashboard and alerts work unchanged.
Every metric is registered on the registry passed in: library code never uses the global one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.connected = Gauge(
            "pilot_xds", "Connected config subscribers.", ["kind"], registry=registry
        )
        self.pushes = Counter(
            "pilot_xds_pushes",
            "Config responses sent, by resource type.",
            ["type"],
            registry=registry,
        )
        self.push_time = Histogram(
            "pilot_proxy_convergence_time",
            "Seconds from a registry change to the push that carries it being sent.",
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.rejects = Counter(
            "pilot_total_xds_rejects",
            "Resources a subscriber rejected (NACK).",
            ["type"],
            registry=registry,
        )
        self.translate_errors = Gauge(
            "nodemesh_controller_invalid_objects",
            "Registry objects left out of the model because they do not translate.",
            registry=registry,
        )
        self.csr = Counter(
            "citadel_server_csr_count",
            "Certificate signing requests received.",
            registry=registry,
        )
        self.issued = Counter(
            "citadel_server_success_cert_issuance_count",
            "Certificates issued.",
            ["kind"],
            registry=registry,
        )
        self.refused = Counter(
            "nodemesh_controller_csr_refused_total",
            "Signing requests refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.root_expiry = Gauge(
            "citadel_server_root_cert_expiry_timestamp",
            "Unix time the newest root certificate expires.",
            registry=registry,
        )
        self.leaf_expiry = Gauge(
            "nodemesh_controller_leaf_cert_expiry_timestamp",
            "Unix time the most recently issued certificate expires, by kind.",
            ["kind"],
            registry=registry,
        )
        # The flow relay (controller/flows_relay.py), by source_kind: agent | waypoint.
        self.flow_relayed = Counter(
            "nodemesh_flow_events_relayed",
            "Flow events received from components and put in the cluster-wide ring.",
            ["source_kind"],
            registry=registry,
        )
        self.flow_dropped = Counter(
            "nodemesh_flow_events_source_dropped",
            "Flow events components lost before sending them (ring overwritten), as they report.",
            ["source_kind"],
            registry=registry,
        )
        self.flow_refused = Counter(
            "nodemesh_flow_events_refused",
            "Flow events refused by the relay, by reason (e.g. spoofed_reporter).",
            ["source_kind", "reason"],
            registry=registry,
        )
        self.flow_reporters = Gauge(
            "nodemesh_flow_reporters",
            "FlowReports streams open now.",
            ["source_kind"],
            registry=registry,
        )
        self._flow_children()

    def _flow_children(self) -> None:
        """Every flow relay series at 0 before its first event, so dashboards show "none"
        instead of no data (prometheus_client exports a labelled child once it exists)."""
        # Imported here: controller.flows_relay imports this module for ControllerMetrics.
        from controller.flows_relay import RefusalReason, SourceKind

        for kind in SourceKind:
            for reason in RefusalReason:
                self.flow_refused.labels(kind, reason)
            if kind is not SourceKind.UNKNOWN:  # "unknown" is only ever refused
                for metric in (self.flow_relayed, self.flow_dropped, self.flow_reporters):
                    metric.labels(kind)
