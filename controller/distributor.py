"""Configuration distribution: the ADS stream servicer and the set of connected subscribers.

Each stream belongs to the identity in its verified client certificate: a node agent (NodeId)
subscribes for its node; a waypoint (SpiffeId, service account = waypoint name) for its namespace.
Per stream and type, a sans-I/O `DeltaSubscription` decides what to send; this module only feeds
it requests and snapshots and writes what it returns. A new mesh snapshot is offered to every
subscriber at once (`publish`), each scoped to what that subscriber needs (controller.scope), so
an agent on node1 never learns node2's pod labels or sandbox paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from controller import scope
from controller.certs_service import caller_identity
from controller.metrics import ControllerMetrics
from controller.model import MeshSnapshot
from controller.wanted import ResourceCache, wanted_for
from controller.xds.delta import DeltaSubscription
from nodemesh.identity import NodeId
from nodemesh.xds.resources import ProtocolError, RemoteProtocolError, XdsResource

log = logging.getLogger("nodemesh.controller.xds")
Scope = Callable[[MeshSnapshot], frozenset]


@dataclass
class Subscriber:
    """One connected ADS stream."""

    id: str  # "agent/node1" or "waypoint/<ns>/<name>"
    kind: str  # agent | waypoint
    scope: Scope
    connected_at: float = field(default_factory=time.time)
    subscriptions: dict[str, DeltaSubscription] = field(default_factory=dict)
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)

    def offer(self, wanted: dict[str, dict[str, XdsResource]], version: str) -> None:
        for type_url, sub in self.subscriptions.items():
            for resp in sub.on_snapshot(wanted.get(type_url, {}), version):
                self.outbox.put_nowait(resp)

    def state(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "connectedAt": self.connected_at,
            "types": {t: s.state() for t, s in sorted(self.subscriptions.items())},
        }


def subscriber_for(identity) -> tuple[str, str, Scope]:
    if isinstance(identity, NodeId):
        node = identity.node
        return f"agent/{node}", "agent", lambda snap: scope.for_node(snap, node)
    ns, name = identity.namespace, identity.service_account
    return f"waypoint/{ns}/{name}", "waypoint", lambda snap: scope.for_waypoint(snap, ns, name)


class Distributor(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Holds the current snapshot and every subscriber; the servicer of DeltaAggregatedResources.

    State-of-the-world StreamAggregatedResources stays the base class's UNIMPLEMENTED: nodemesh
    speaks only the incremental protocol.
    """

    def __init__(self, metrics: ControllerMetrics) -> None:
        self.metrics = metrics
        self.snapshot: MeshSnapshot | None = None
        self.changed_at = time.monotonic()
        self.subscribers: dict[int, Subscriber] = {}
        self.cache = ResourceCache()

    def publish(self, snapshot: MeshSnapshot, changed_at: float) -> None:
        """Offer a new snapshot to every subscriber (each gets only its scope)."""
        self.snapshot, self.changed_at = snapshot, changed_at
        for sub in list(self.subscribers.values()):
            sub.offer(wanted_for(snapshot, sub.scope(snapshot), self.cache), snapshot.version)
        self.cache.sweep()

    def states(self) -> list[dict]:
        return sorted((s.state() for s in self.subscribers.values()), key=lambda s: s["id"])

    async def DeltaAggregatedResources(self, request_iterator, context):  # gRPC method name
        try:
            identity = caller_identity(context)
        except Exception as exc:  # any failure here means: not authenticated
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        sub_id, kind, sub_scope = subscriber_for(identity)
        sub = Subscriber(sub_id, kind, sub_scope)
        key = id(sub)
        self.subscribers[key] = sub
        self.metrics.connected.labels(kind).inc()
        log.info("%s connected", sub_id)
        reader = asyncio.ensure_future(self._read(sub, request_iterator))
        try:
            while True:
                getter = asyncio.ensure_future(sub.outbox.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break  # the client closed its side, or broke the protocol
                resp = getter.result()
                self.metrics.pushes.labels(resp.type_url.rsplit(".", 1)[-1]).inc()
                self.metrics.push_time.observe(max(0.0, time.monotonic() - self.changed_at))
                yield resp
            exc = reader.exception() if not reader.cancelled() else None
            if isinstance(exc, RemoteProtocolError):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            del self.subscribers[key]
            self.metrics.connected.labels(kind).dec()
            log.info("%s disconnected", sub_id)

    async def _read(self, sub: Subscriber, request_iterator) -> None:
        async for req in request_iterator:
            new = req.type_url not in sub.subscriptions
            if new:
                sub.subscriptions[req.type_url] = DeltaSubscription(sub.id, req.type_url)
            dsub = sub.subscriptions[req.type_url]
            if new and self.snapshot is not None:
                wanted = wanted_for(self.snapshot, sub.scope(self.snapshot), self.cache)
                dsub.on_snapshot(wanted.get(req.type_url, {}), self.snapshot.version)
            before = dsub.state().get("nacks", 0)
            try:
                responses = dsub.on_request(req)
            except ProtocolError as exc:
                log.warning("%s broke the xDS protocol, closing its stream: %s", sub.id, exc)
                raise
            if dsub.state().get("nacks", 0) > before:
                self.metrics.rejects.labels(req.type_url.rsplit(".", 1)[-1]).inc()
                log.warning("%s rejected %s: %s", sub.id, req.type_url, req.error_detail.message)
            for resp in responses:
                sub.outbox.put_nowait(resp)
