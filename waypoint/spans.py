"""The waypoint's spans: one per request, the last N kept in memory for the admin endpoint.

Theory of operation. When a request finishes, `span_of(record)` turns its `RequestRecord` into a
`Span` (ids from the record's trace context, times from its start and duration, attributes from
what happened) and `SpanRecorder.add` puts it in a ring of fixed capacity: the newest span pushes
out the oldest, so memory stays bounded however long the waypoint runs. The admin endpoint and
`meshctl trace` read the ring (`spans()`, `trace(trace_id)`); exporting to a collector would be one
more reader of the same spans. The ring keeps unsampled spans too: it is a local debugging aid, and
the sampled flag travels with each span for an exporter to honour.

Attribute names: OpenTelemetry's (older, widely read) HTTP names for what they cover, `nodemesh.*`
for the mesh's own facts. Status follows OpenTelemetry's server-span rule: an error when the
client got no response or a 5xx, or when a gRPC call ended with a server-side failure code;
a 4xx is the client's problem and leaves the status unset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nodemesh.telemetry import WorkloadLike, format_address, workload_name
from waypoint.record import RequestRecord, authz_decision

DEFAULT_CAPACITY = 1024
# gRPC codes OpenTelemetry counts as a server error: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
# INTERNAL, UNAVAILABLE, DATA_LOSS.
_GRPC_SERVER_ERRORS = frozenset({2, 4, 12, 13, 14, 15})

Attribute = str | int | bool


class SpanStatus(StrEnum):
    UNSET = "unset"
    ERROR = "error"


@dataclass(frozen=True)
class Span:
    """One finished request as a trace span."""

    trace_id: str
    span_id: str
    parent_span_id: str | None  # None: the waypoint started this trace
    name: str  # "<method> <route or path>"
    start_time: float  # Unix seconds
    end_time: float  # Unix seconds
    sampled: bool
    status: SpanStatus = SpanStatus.UNSET
    attributes: Mapping[str, Attribute] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (admin endpoint, `meshctl trace -o json`)."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "sampled": self.sampled,
            "status": self.status.value,
            "attributes": dict(self.attributes),
        }


def span_name(record: RequestRecord) -> str:
    """The method and the matched route ("GET shop/web"), else the path ("GET /cart").

    The query string is dropped so a name stays readable and spans group by endpoint.
    """
    return f"{record.request.method} {record.route_name or record.request.path_only}"


def span_status(record: RequestRecord) -> SpanStatus:
    code, grpc = record.response_code, record.grpc_status
    if code == 0 or code >= 500 or grpc in _GRPC_SERVER_ERRORS:
        return SpanStatus.ERROR
    return SpanStatus.UNSET


def span_attributes(record: RequestRecord) -> dict[str, Attribute]:
    """What the span says about the request; absent facts are left out, not written empty."""
    head = record.request
    attrs: dict[str, Attribute] = {
        "http.method": head.method,
        "http.target": head.path,
        "http.host": head.authority,
        "http.flavor": head.protocol,
        "http.status_code": record.response_code,
        "nodemesh.request_protocol": record.protocol.value,
        "nodemesh.response_flags": record.flags_label,
        "nodemesh.retries": record.retries,
        "nodemesh.source.address": format_address(record.peer.address),
    }
    # The optional facts, in this order, each only when known (one `if` each: this runs for
    # every request, and a dict of candidates filtered by a comprehension cost twice as much).
    if record.grpc_status is not None:
        attrs["rpc.grpc.status_code"] = record.grpc_status
    if record.request_id is not None:
        attrs["nodemesh.request_id"] = record.request_id
    if record.peer.identity is not None:
        attrs["nodemesh.source.principal"] = record.peer.identity
    if record.source is not None:
        attrs["nodemesh.source.workload"] = _workload(record.source)
    if record.destination is not None:
        attrs["nodemesh.destination.workload"] = _workload(record.destination)
    if record.service and record.service.hostname is not None:
        attrs["nodemesh.destination.service"] = record.service.hostname
    if record.route_name is not None:
        attrs["nodemesh.route"] = record.route_name
    if record.upstream_address is not None:
        attrs["nodemesh.upstream"] = format_address(record.upstream_address)
    if record.upstream_cluster is not None:
        attrs["nodemesh.upstream_cluster"] = record.upstream_cluster
    authz = record.authz
    if authz:
        attrs["nodemesh.authz.decision"] = authz_decision(authz)
        if authz.policy is not None:
            attrs["nodemesh.authz.policy"] = authz.policy
    return attrs


def _workload(w: WorkloadLike | None) -> str | None:
    return f"{w.namespace}/{workload_name(w)}" if w is not None else None


def span_of(record: RequestRecord) -> Span | None:
    """The request's span, or None when the record carries no trace context."""
    if record.trace is None:
        return None
    return Span(
        trace_id=record.trace.trace_id,
        span_id=record.trace.span_id,
        parent_span_id=record.parent_span_id,
        name=span_name(record),
        start_time=record.start_time,
        end_time=record.end_time,
        sampled=record.trace.sampled,
        status=span_status(record),
        attributes=span_attributes(record),
    )


class SpanRecorder:
    """The last `capacity` finished spans, oldest first; older ones are forgotten."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"span recorder capacity must be at least 1, got {capacity}")
        self._ring: deque[Span] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._ring.maxlen or 0

    def add(self, span: Span) -> None:
        self._ring.append(span)

    def record(self, record: RequestRecord) -> Span | None:
        """Make the request's span and keep it; returns it (None when untraced)."""
        span = span_of(record)
        if span is not None:
            self.add(span)
        return span

    def spans(self) -> list[Span]:
        return list(self._ring)

    def trace(self, trace_id: str) -> list[Span]:
        """The kept spans of one trace, oldest first."""
        return [s for s in self._ring if s.trace_id == trace_id]

    def __len__(self) -> int:
        return len(self._ring)

    def __iter__(self) -> Iterator[Span]:
        return iter(list(self._ring))
