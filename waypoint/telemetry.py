"""The waypoint's L7 metrics: Istio's request counter and histograms, reporter="waypoint".

Theory of operation. The proxy core calls `WaypointMetrics.record(record)` once per finished
request. The record's label values are derived (`http_labels`), the four metric children for that
label set are looked up in a memo (created on first use), and the request is counted: one
increment and three histogram observations. Names, labels and buckets are Istio's, so Istio's
dashboards read a nodemesh waypoint unchanged:

- `istio_requests_total`, `istio_request_duration_milliseconds`, `istio_request_bytes`,
  `istio_response_bytes`, labelled with `HTTP_LABELS`: the L4 labels (`nodemesh.telemetry`) plus
  `response_code` and `grpc_response_status`.
- Durations in milliseconds in Istio's buckets; sizes are head plus body (Envoy's total size)
  in Istio's decade buckets, 1 B to 1 GB.

Label values are cheap to get again: the peer labels (20 of them, from the workloads, the Service
and the principals) are memoized per (source, destination, Service, principals) object tuple,
because a waypoint sees few distinct peers and deriving them (canonical names from pod labels)
is most of the cost of counting a request; the memo holds the objects it was keyed on, so an
id cannot be reused while its entry lives, and it is emptied when a new config push brings new
objects (past `_PEER_MEMO_LIMIT` entries).

Cardinality is bounded in two ways. First, every label value comes from a bounded set, never from
what a client typed: workloads, Services and principals come from the mesh model and verified
certificates (not from Host or paths); response_code is 100..599 or "0"; grpc_response_status is a
gRPC code 0..16 or "" (not gRPC); response_flags are combinations of `ResponseFlag`; the rest are
enums. Second, a hard limit: at most `max_label_sets` distinct label sets are created. Past it, a
request with a new label set is counted with its peer labels (workloads, principals, Service) set
to "unknown", keeping reporter, protocol, code, gRPC status, flags and security, and
`nodemesh_waypoint_label_overflow_total` counts it, so totals and error rates stay right and the
operator sees the limit was hit instead of losing requests.

`_created` series: prometheus_client adds them and Istio has none; as for the agent, only the
process can turn them off (PROMETHEUS_DISABLE_CREATED_SERIES=True), so the waypoint's main should.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from nodemesh.telemetry import (
    PEER_LABELS,
    UNKNOWN,
    Reporter,
    peer_labels,
)
from waypoint.histograms import LabelledHistogram
from waypoint.record import RequestRecord

HTTP_LABELS = (
    *PEER_LABELS,
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
# Istio's buckets (its stats filter's defaults).
DURATION_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip
BYTES_BUCKETS = tuple(float(10**i) for i in range(10))  # 1 B .. 1 GB
DEFAULT_MAX_LABEL_SETS = 10_000
_PEER_COUNT = len(PEER_LABELS)
_PEER_MEMO_LIMIT = 4096  # distinct peer tuples remembered; emptied when reached


def response_code_label(code: int) -> str:
    """The status as Istio writes it; "0" for no response or anything that is not a status."""
    return str(code) if 100 <= code <= 599 else "0"


def grpc_status_label(status: int | None) -> str:
    """The gRPC code as a number; the empty string for plain HTTP or no status."""
    return "" if status is None else str(status)


def http_labels(r: RequestRecord, peers: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Values for HTTP_LABELS, in order, for one finished request.

    `peers` are the record's peer labels when the caller already has them (see PeerLabelMemo).
    """
    security = r.security_policy
    if peers is None:
        peers = _peer_labels(r)
    return (
        *peers,
        r.protocol.value,
        response_code_label(r.response_code),
        grpc_status_label(r.grpc_status),
        r.flags_label,
        security.value,
    )


def _peer_labels(r: RequestRecord) -> tuple[str, ...]:
    return peer_labels(
        Reporter.WAYPOINT,
        r.security_policy,
        r.source,
        r.destination,
        r.service,
        r.peer.identity,
        r.destination_principal,
    )


class PeerLabelMemo:
    """The peer labels of a record, derived once per distinct (source, destination, Service,
    principals); see the module docstring for why entries cannot go stale."""

    def __init__(self, limit: int = _PEER_MEMO_LIMIT) -> None:
        self.limit = limit
        self._memo: dict[tuple, tuple[tuple, tuple[str, ...]]] = {}

    def labels(self, r: RequestRecord) -> tuple[str, ...]:
        held = (r.source, r.destination, r.service)
        key = (*map(id, held), r.peer.identity, r.destination_principal)
        found = self._memo.get(key)
        if found is not None and all(a is b for a, b in zip(found[0], held, strict=True)):
            return found[1]
        if len(self._memo) >= self.limit:
            self._memo.clear()
        labels = _peer_labels(r)
        self._memo[key] = (held, labels)
        return labels


def overflow_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    """`labels` with every peer label but the reporter set to "unknown"."""
    return (labels[0], *(UNKNOWN,) * (_PEER_COUNT - 1), *labels[_PEER_COUNT:])


@dataclass(eq=False, slots=True)
class _Series:
    """The four metric children of one label set, looked up once."""

    requests: Any
    duration: Any
    request_bytes: Any
    response_bytes: Any


class WaypointMetrics:
    """Every L7 metric the waypoint exposes on :15020, on `registry` (never the global one)."""

    def __init__(
        self, registry: CollectorRegistry, *, max_label_sets: int = DEFAULT_MAX_LABEL_SETS
    ) -> None:
        if max_label_sets < 1:
            raise ValueError(f"max_label_sets must be at least 1, got {max_label_sets}")
        self.registry = registry
        self.max_label_sets = max_label_sets
        # Counted in plain Python (waypoint.histograms): three observations per request.
        histogram = partial(LabelledHistogram, labelnames=HTTP_LABELS, registry=registry)
        # Counter names are given whole: prometheus_client strips "_total" and adds it back once.
        self.requests = Counter(
            "istio_requests_total", "HTTP and gRPC requests.", HTTP_LABELS, registry=registry
        )
        self.duration = histogram(
            name="istio_request_duration_milliseconds",
            documentation="Request duration, head in to last response byte out.",
            buckets=DURATION_BUCKETS_MS,
        )
        self.request_bytes = histogram(
            name="istio_request_bytes",
            documentation="Request size, head and body.",
            buckets=BYTES_BUCKETS,
        )
        self.response_bytes = histogram(
            name="istio_response_bytes",
            documentation="Response size, head and body.",
            buckets=BYTES_BUCKETS,
        )
        self.overflow = Counter(
            "nodemesh_waypoint_label_overflow_total",
            "Requests counted with 'unknown' peer labels: max_label_sets was reached.",
            registry=registry,
        )
        self._series: dict[tuple[str, ...], _Series] = {}
        self._peers = PeerLabelMemo()

    def record(self, r: RequestRecord) -> None:
        """Count one finished request."""
        series = self._series_for(http_labels(r, self._peers.labels(r)))
        series.requests.inc()
        series.duration.observe(r.duration * 1000.0)
        series.request_bytes.observe(r.request_bytes)
        series.response_bytes.observe(r.response_bytes)

    def label_sets(self) -> int:
        """How many distinct label sets exist now (at most max_label_sets plus overflow sets)."""
        return len(self._series)

    def _series_for(self, labels: tuple[str, ...]) -> _Series:
        found = self._series.get(labels)
        if found is not None:
            return found
        if len(self._series) >= self.max_label_sets:
            self.overflow.inc()
            labels = overflow_labels(labels)
            found = self._series.get(labels)
            if found is not None:
                return found
        found = self._series[labels] = _Series(
            self.requests.labels(*labels),
            self.duration.labels(*labels),
            self.request_bytes.labels(*labels),
            self.response_bytes.labels(*labels),
        )
        return found
