"""The node agent's telemetry: Istio's TCP metrics, nodemesh's own gauges, JSON access logs.

Label names and values, the enums and the label helpers are the mesh's shared vocabulary in
`nodemesh.telemetry` (the waypoint speaks it too) and are re-exported here for the agent's
importers. What is the agent's own:

- Bytes follow Istio's convention, from the server's side for both reporters (istio/istio#32399):
  `istio_tcp_received_bytes_total` counts source -> destination bytes, `sent` the reply. The
  access log is from the local workload's side, as ztunnel "unflips" it.
- response_flags: one per connection, ztunnel's "-", "DENY", "CONNECT", plus Envoy's "UH" for a
  Service with no ready endpoint (ztunnel drops that case before it counts a connection).

The hot path is `ConnectionTable`: labels are derived once per (reporter, security, source,
destination, service, principals) and the counter children kept with them, so opening a connection
costs one dict lookup and moving bytes costs two counter increments. Connections are counted while
they run, not only at close, so long-lived streams show progress (istio/istio#59183).

`_created` series: prometheus_client adds one per counter series and Istio has none; only the
process can turn them off (PROMETHEUS_DISABLE_CREATED_SERIES=True), so the agent's main should.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily

from controller.model import PeerWorkload, Service, Workload
from node_agent.policy import Decision
from node_agent.routing import Route

# Re-exported: the agent's importers (and tests) keep reading these from here.
from nodemesh.telemetry import (  # noqa: F401
    CLUSTER,
    TCP_LABELS,
    UNKNOWN,
    Reporter,
    ResponseFlag,
    SecurityPolicy,
    canonical_revision,
    canonical_service,
    l4_flag,
    rfc3339,
    tcp_labels,
    workload_name,
)
from nodemesh.telemetry import format_address as _addr

_CACHE_LIMIT = 8192  # distinct label sets remembered; a node sees far fewer peers


class Direction(StrEnum):
    OUTBOUND = "outbound"  # captured from a local pod; the agent reports as the source
    INBOUND = "inbound"  # arriving for a local pod; the agent reports as the destination


_FLAG_AT = TCP_LABELS.index("response_flags")

AnyWorkload = Workload | PeerWorkload


class AgentMetrics:
    """Every metric the agent exposes on :15020, registered on `registry` (never the global)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # Counter names are given whole: prometheus_client strips "_total" and adds it back once.
        counter = partial(Counter, registry=registry)
        gauge = partial(Gauge, registry=registry)
        self.opened = counter("istio_tcp_connections_opened_total", "TCP opens.", TCP_LABELS)
        self.closed = counter("istio_tcp_connections_closed_total", "TCP closes.", TCP_LABELS)
        self.sent = counter("istio_tcp_sent_bytes_total", "Bytes, dst -> src.", TCP_LABELS)
        self.received = counter("istio_tcp_received_bytes_total", "Bytes, src -> dst.", TCP_LABELS)
        self.decisions = counter(
            "nodemesh_agent_policy_decisions_total",
            "L4 authorization decisions, by outcome (allow, deny) and DecisionCode.",
            ["decision", "code"],
        )
        self.captured_pods = gauge("nodemesh_agent_captured_pods", "Local pods captured now.")
        self.config_generation = gauge("nodemesh_agent_config_generation", "Pushes applied.")
        self.certificate_expiry = gauge(
            "nodemesh_agent_certificate_expiry_timestamp_seconds",
            "Unix time each workload certificate the agent holds expires.",
            ["identity"],
        )
        self.active_connections = gauge(
            "nodemesh_agent_active_connections", "Connections open now.", ["direction"]
        )
        # Registered now, read once `watch_capture` is given the maps: the families are named
        # from the start (describe), so the dashboard catalogue lists them like the others.
        self.capture = _CaptureCollector()
        registry.register(self.capture)

    def count_decision(self, decision: Decision) -> None:
        self.decisions.labels(decision.action.lower(), decision.code.value).inc()

    def watch_capture(
        self, reasons: Callable[[], Mapping[Any, int]], drops: Callable[[], int]
    ) -> None:
        """Export the capture programs' own counters, read from their maps at scrape time
        (node_agent.capture: `reason_counts`, keys with `.label` and `.captured`; `event_drops`)."""
        self.capture.watch(reasons, drops)


def _capture_families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
    decisions = CounterMetricFamily(
        "nodemesh_agent_capture_decisions",
        "TCP connections the eBPF hooks captured or passed, by reason.",
        labels=["decision", "reason"],
    )
    dropped = CounterMetricFamily(
        "nodemesh_agent_capture_event_drops",
        "Capture events lost because the ring buffer was full (the connection was not).",
    )
    return decisions, dropped


class _CaptureCollector:
    """eBPF decisions by reason, and capture events lost to a full ring buffer.

    Nothing is exported until `watch` names the readers (an agent without capture programs has
    no such counters); every reason the maps count is exported, at 0 too."""

    def __init__(self) -> None:
        self._reasons: Callable[[], Mapping[Any, int]] | None = None
        self._drops: Callable[[], int] | None = None

    def watch(self, reasons: Callable[[], Mapping[Any, int]], drops: Callable[[], int]) -> None:
        self._reasons, self._drops = reasons, drops

    def describe(self) -> list:
        return list(_capture_families())  # names only: the maps are read at scrape time

    def collect(self):
        if self._reasons is None or self._drops is None:
            return
        decisions, dropped = _capture_families()
        try:
            counts, lost = self._reasons(), self._drops()
        except Exception:  # the programs are closing: nothing to report
            return
        for reason, count in counts.items():
            decision = "captured" if reason.captured else "passed"
            decisions.add_metric([decision, reason.label], count)
        dropped.add_metric([], lost)
        yield decisions
        yield dropped


@dataclass(eq=False, slots=True)
class _Series:
    """One label set and its counter children, looked up once and shared by its connections."""

    labels: tuple[str, ...]
    opened: Any
    sent: Any
    received: Any
    closed: dict[ResponseFlag, Any]


# --- connections ----------------------------------------------------------------------------------

_ids = itertools.count(1)


@dataclass(eq=False, slots=True)
class ConnectionRecord:
    """Everything known about one connection; the agent fills it in, the table times it."""

    direction: Direction
    source_address: tuple[str, int]
    destination_address: tuple[str, int]  # the original destination (:authority)
    security_policy: SecurityPolicy = SecurityPolicy.NONE
    source: AnyWorkload | None = None
    destination: AnyWorkload | None = None
    service: Service | None = None  # the Service the client addressed, if any
    source_principal: str | None = None  # verified (inbound) or our own (outbound) SPIFFE ID
    destination_principal: str | None = None  # SPIFFE ID the destination proved
    route: Route | None = None  # outbound only
    decision: Decision | None = None  # inbound only
    tunnel: str | None = None  # the HBONE tunnel's key, either direction (headers.tunnel_key)
    traceparent: str | None = None  # inbound HBONE: the traceparent its CONNECT carried
    id: int = field(default_factory=lambda: next(_ids))
    start_time: float = 0.0  # Unix time, set by ConnectionTable.open
    end_time: float | None = None  # Unix time, set by ConnectionTable.close
    bytes_sent: int = 0  # by the local workload (the source outbound, the destination inbound)
    bytes_received: int = 0  # by the local workload
    error: str | None = None
    response_flag: ResponseFlag = ResponseFlag.NONE
    _series: _Series | None = field(default=None, init=False, repr=False)
    _started: float = field(default=0.0, init=False, repr=False)  # monotonic, for durations

    @property
    def reporter(self) -> Reporter:
        return Reporter.SOURCE if self.direction is Direction.OUTBOUND else Reporter.DESTINATION


class ConnectionHooks(Protocol):
    """Told of each connection as it opens (fate decided) and as it closes (outcome known)."""

    def opened(self, record: ConnectionRecord) -> None: ...

    def closed(self, record: ConnectionRecord) -> None: ...


class ConnectionTable:
    """Open connections (the admin endpoint's /debug/connections) and their accounting.

    `log_sink` receives one JSON line per closed connection. `wall` and `monotonic` are clocks,
    injectable so tests get exact timestamps and durations. `hooks`, when given, is told of
    every open and close (after the record is filled in), so other outputs such as flow events
    (nodemesh.flows.agent) read the same record instead of keeping their own.
    """

    def __init__(
        self,
        metrics: AgentMetrics,
        log_sink: Callable[[str], None],
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        hooks: ConnectionHooks | None = None,
    ) -> None:
        self.metrics = metrics
        self._log = log_sink
        self._hooks = hooks
        self._wall, self._monotonic = wall, monotonic
        self._open: dict[int, ConnectionRecord] = {}
        self._cache: dict[tuple, _Series] = {}

    def series(self, r: ConnectionRecord) -> _Series:
        """The record's label set and counter children (memoized: one dict lookup when known)."""
        key = (r.reporter, r.security_policy, r.source, r.destination, r.service)
        key += (r.source_principal, r.destination_principal)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            labels = tcp_labels(*key)
            m = self.metrics
            opened, sent, received = (c.labels(*labels) for c in (m.opened, m.sent, m.received))
            closed = {ResponseFlag.NONE: m.closed.labels(*labels)}
            found = self._cache[key] = _Series(labels, opened, sent, received, closed)
        return found

    def open(self, record: ConnectionRecord) -> ConnectionRecord:
        record.start_time, record._started = self._wall(), self._monotonic()
        record._series = self.series(record)
        record._series.opened.inc()
        self.metrics.active_connections.labels(record.direction.value).inc()
        if record.decision is not None:
            self.metrics.count_decision(record.decision)
        self._open[record.id] = record
        if self._hooks is not None:
            self._hooks.opened(record)
        return record

    def decide(self, record: ConnectionRecord, decision: Decision) -> None:
        """Attach and count a decision made after `open` (inbound: after the handshake)."""
        record.decision = decision
        self.metrics.count_decision(decision)

    def update_bytes(self, record: ConnectionRecord, sent: int, received: int) -> None:
        """Add bytes moved since the last call (sent/received by the local workload)."""
        record.bytes_sent += sent
        record.bytes_received += received
        outbound = record.direction is Direction.OUTBOUND
        request, reply = (sent, received) if outbound else (received, sent)
        series = record._series
        if request:
            series.received.inc(request)  # Istio: received = source -> destination
        if reply:
            series.sent.inc(reply)

    def close(
        self,
        record: ConnectionRecord,
        error: str | None = None,
        flag: ResponseFlag | str = ResponseFlag.NONE,
        *,
        sent: int = 0,
        received: int = 0,
    ) -> None:
        """Count the close (once: later calls do nothing) and write the access log line.

        `sent`/`received` are the last deltas. With no flag, a denying decision implies DENY and
        a NO_ENDPOINTS route UH, so a refused connection can never be counted as a success.
        """
        if record.end_time is not None:
            return
        if self._open.pop(record.id, None) is None:
            raise ValueError(f"connection {record.id} was never opened in this table")
        self.update_bytes(record, sent, received)
        record.end_time, record.error = self._wall(), error
        record.response_flag = flag = _implied(record, l4_flag(flag))
        series = record._series
        closed = series.closed.get(flag)
        if closed is None:
            labels = (*series.labels[:_FLAG_AT], flag.value, *series.labels[_FLAG_AT + 1 :])
            closed = series.closed[flag] = self.metrics.closed.labels(*labels)
        closed.inc()
        self.metrics.active_connections.labels(record.direction.value).dec()
        duration_ms = int((self._monotonic() - record._started) * 1000)
        self._log(json.dumps(access_log(record, duration_ms), separators=(",", ":")))
        if self._hooks is not None:
            self._hooks.closed(record)

    def __len__(self) -> int:
        return len(self._open)

    def snapshot(self) -> list[dict[str, Any]]:
        """The open connections, oldest first, as JSON-ready dicts."""
        now = self._monotonic()
        return [
            _view(r, int((now - r._started) * 1000))
            for r in sorted(self._open.values(), key=lambda r: r.id)
        ]


def _implied(record: ConnectionRecord, flag: ResponseFlag) -> ResponseFlag:
    if flag is not ResponseFlag.NONE:
        return flag
    if record.decision is not None and not record.decision.allowed:
        return ResponseFlag.DENY
    if record.route is Route.NO_ENDPOINTS:
        return ResponseFlag.NO_HEALTHY_UPSTREAM
    return flag


# --- destination_service on the inbound side ------------------------------------------------------


def claimed_service(
    services: Mapping[str, Service], hostname: str | None, destination: Workload, port: int
) -> Service | None:
    """The Service a source agent says its client dialled, if this agent's config confirms it.

    Only the source sees the Service VIP; the destination sees the pod's address, so its
    `destination_service` comes from the CONNECT's baggage (nodemesh.hbone.baggage). Any peer
    can write that header, so the claim counts only when the Service exists, selects
    `destination` (it is one of its endpoints) and maps a Service port to `port` there, as
    ztunnel looks for the client's host only among the Services of the destination workload.
    Anything else is None: a series is never labelled from an unchecked claim.
    """
    if not hostname:
        return None
    name, _, rest = hostname.partition(".")
    namespace = rest.partition(".")[0]
    service = services.get(f"{namespace}/{name}")
    if service is None or service.hostname != hostname:
        return None
    for endpoint in service.endpoints:
        if endpoint.workload_uid == destination.uid:
            return service if any(target == port for _, target in endpoint.ports) else None
    return None


# --- views ----------------------------------------------------------------------------------------


def access_log(r: ConnectionRecord, duration_ms: int) -> dict[str, Any]:
    """ztunnel's "connection complete" fields (absent values left out), plus nodemesh's own."""
    mtls = r.security_policy is SecurityPolicy.MUTUAL_TLS  # else no identity was proven
    entry = {
        "timestamp": rfc3339(r.end_time or r.start_time),
        "level": "error" if r.error or r.response_flag is not ResponseFlag.NONE else "info",
        "scope": "access",
        "message": "connection complete",
        "src.addr": _addr(r.source_address),
        "src.workload": r.source.name if r.source else None,
        "src.namespace": r.source.namespace if r.source else None,
        "src.identity": r.source_principal if mtls else None,
        "dst.addr": _addr(r.destination_address),
        "dst.service": r.service.hostname if r.service else None,
        "dst.workload": r.destination.name if r.destination else None,
        "dst.namespace": r.destination.namespace if r.destination else None,
        "dst.identity": r.destination_principal if mtls else None,
        "direction": r.direction.value,
        "bytes_sent": r.bytes_sent,
        "bytes_recv": r.bytes_received,
        "duration": f"{duration_ms}ms",
        "error": r.error,
        "route": r.route.value if r.route else None,
    }
    if r.decision is not None:
        entry |= {
            "policy": r.decision.policy,
            "policy.rule": r.decision.rule,
            "decision": r.decision.code.value,
            "reason": r.decision.reason,
        }
    return {k: v for k, v in entry.items() if v is not None}


def _view(r: ConnectionRecord, age_ms: int) -> dict[str, Any]:
    view = {"id": r.id, "started": rfc3339(r.start_time), "age_ms": age_ms}
    view |= access_log(r, age_ms) | {"security": r.security_policy.value}
    for key in ("timestamp", "level", "scope", "message", "duration"):
        del view[key]
    return view
