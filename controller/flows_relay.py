"""The controller's flow relay: every agent's and waypoint's events in one cluster-wide ring.

Theory of operation (issue 6; Hubble Relay's job, pushed instead of pulled): each component
streams its flow events to the `FlowRelay.FlowReports` call on the mutual-TLS listener (15012);
see nodemesh/proto/flows.proto and nodemesh.flows.relay_client. The controller never trusts what
a component says about itself:

  - the sender is named from the verified client certificate, as the config stream names its
    subscribers: a node identity is "agent <node>", a waypoint identity "waypoint <ns>/<name>"
    (the `reporter` its events carry), and a workload identity that is no waypoint the model
    knows is refused, so a pod that bought a certificate with its token cannot feed the relay;
  - a batch holding one event whose `reporter` is not the sender is refused whole and the call
    ends with PERMISSION_DENIED naming both, so spoofed events never reach a reader.

Accepted events go into one bounded `FlowRing` (the newest `capacity` of the cluster), served on
the controller's admin endpoint as `/debug/flows` with the components' own long-poll contract
(`nodemesh.flows_admin.flows_route`), so `meshctl trace --follow` reads the relay exactly as it
reads one agent. `/debug/flows/sources` shows per sender: events relayed, events the sender lost
before sending (its `dropped`), batches refused, streams open and when it was last heard from.

`sender_of` and `check_batch` are pure and unit-tested; `FlowRelay` is the gRPC shell.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

import grpc

from controller.auth import AuthError
from controller.certs_service import caller_identity
from controller.metrics import ControllerMetrics
from nodemesh.flows.event import FlowEvent, FlowEventError
from nodemesh.flows.ring import FlowRing
from nodemesh.flows.wire import from_message
from nodemesh.flows_admin import flows_route
from nodemesh.identity import NodeId, SpiffeId
from nodemesh.proto import flows_pb2, flows_pb2_grpc

log = logging.getLogger("nodemesh.controller.flows")
RELAY_CAPACITY = 16384  # cluster-wide: four components' worth of the per-component ring


class SourceKind(StrEnum):
    AGENT = "agent"
    WAYPOINT = "waypoint"
    UNKNOWN = "unknown"  # a caller refused before it could be named


class RefusalReason(StrEnum):
    NOT_A_REPORTER = "not_a_reporter"  # the certificate is neither a node nor a known waypoint
    SPOOFED_REPORTER = "spoofed_reporter"  # an event names another reporter
    MALFORMED = "malformed"  # an event this controller cannot read (version skew)


class FlowRelayError(Exception):
    """A sender or batch the relay refuses; the message is returned to the sender."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Sender:
    """Who is on the other end of a FlowReports call, as its certificate proves."""

    kind: SourceKind
    reporter: str  # the `reporter` its events must carry: "agent node1", "waypoint shop/wp"


def sender_of(identity: NodeId | SpiffeId, known_waypoint: Callable[[str], bool]) -> Sender:
    """The sender a verified identity stands for; `known_waypoint("ns/name")` vets workloads."""
    if isinstance(identity, NodeId):
        return Sender(SourceKind.AGENT, f"agent {identity.node}")
    key = f"{identity.namespace}/{identity.service_account}"
    if not known_waypoint(key):
        raise FlowRelayError(
            RefusalReason.NOT_A_REPORTER,
            f"{identity} is not a node or a waypoint the controller knows; only node agents "
            f"and waypoints report flow events (is the Gateway {key} declared?)",
        )
    return Sender(SourceKind.WAYPOINT, f"waypoint {key}")


def check_batch(sender: Sender, messages: Iterable[flows_pb2.FlowEvent]) -> list[FlowEvent]:
    """The batch's events, if every one is readable and reported by `sender`; else refused."""
    events = []
    for msg in messages:
        try:
            event = from_message(msg)
        except FlowEventError as exc:
            raise FlowRelayError(RefusalReason.MALFORMED, f"unreadable flow event: {exc}") from None
        if event.reporter != sender.reporter:
            raise FlowRelayError(
                RefusalReason.SPOOFED_REPORTER,
                f"an event names reporter {event.reporter!r} but this connection's certificate "
                f"is {sender.reporter!r}; a component reports only its own events",
            )
        events.append(event)
    return events


@dataclass
class SourceStats:
    """Per-sender counters for `/debug/flows/sources`."""

    kind: str
    events: int = 0  # relayed
    dropped: int = 0  # lost at the sender before it could send them (its own count)
    refused: int = 0  # batches refused here
    streams: int = 0  # FlowReports calls open now
    last_seen: float | None = None  # Unix time of its last batch


class FlowRelay(flows_pb2_grpc.FlowRelayServicer):
    """The FlowReports servicer and the cluster-wide ring it fills."""

    def __init__(
        self,
        metrics: ControllerMetrics,
        known_waypoint: Callable[[str], bool],
        *,
        capacity: int = RELAY_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ring = FlowRing(capacity)
        self.metrics, self.known_waypoint, self.clock = metrics, known_waypoint, clock
        self.sources: dict[str, SourceStats] = {}

    def add_to_server(self, server: grpc.aio.Server) -> None:
        flows_pb2_grpc.add_FlowRelayServicer_to_server(self, server)

    def routes(self) -> dict:
        """Admin routes: the relay's long-poll, and who is reporting."""
        return {
            "/debug/flows": flows_route(self.ring),  # ?since=N&limit=M&wait=S
            "/debug/flows/sources": lambda q: {
                name: asdict(stats) for name, stats in sorted(self.sources.items())
            },
        }

    async def FlowReports(self, request_iterator, context):  # gRPC method name
        try:
            sender = sender_of(caller_identity(context), self.known_waypoint)
        except AuthError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except FlowRelayError as exc:
            self.metrics.flow_refused.labels(SourceKind.UNKNOWN, exc.reason).inc()
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        stats = self.sources.setdefault(sender.reporter, SourceStats(str(sender.kind)))
        stats.streams += 1
        self.metrics.flow_reporters.labels(sender.kind).inc()
        accepted = 0
        try:
            async for batch in request_iterator:
                accepted += self.receive(sender, stats, batch)
        except FlowRelayError as exc:
            log.warning("refused flow events from %s: %s", sender.reporter, exc)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        finally:
            stats.streams -= 1
            self.metrics.flow_reporters.labels(sender.kind).dec()
        return flows_pb2.FlowReportsSummary(accepted=accepted)

    def receive(self, sender: Sender, stats: SourceStats, batch: flows_pb2.FlowBatch) -> int:
        """Check one batch and relay it whole, or refuse it whole (raises FlowRelayError)."""
        stats.last_seen = self.clock()
        try:
            events = check_batch(sender, batch.events)
        except FlowRelayError as exc:
            stats.refused += 1
            self.metrics.flow_refused.labels(sender.kind, exc.reason).inc(len(batch.events))
            raise
        stats.dropped += batch.dropped
        stats.events += len(events)
        if batch.dropped:
            self.metrics.flow_dropped.labels(sender.kind).inc(batch.dropped)
        self.metrics.flow_relayed.labels(sender.kind).inc(len(events))
        for event in events:
            self.ring.append(event)
        return len(events)
