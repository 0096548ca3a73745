"""The component side of the flow relay: push this ring's events to the controller.

Theory of operation: an agent or waypoint runs one `FlowReporter` task beside its config
stream, over its own mutual-TLS channel to the controller (15012), and the controller names the
sender from that channel's certificate. The reporter subscribes to the component's `FlowRing`
only to be woken; `nodemesh.flows.batch.BatchCursor` decides what to send and when (≤ 256 events,
≤ 100 ms), and the ring itself is the bounded queue. Nothing here can block or slow the
datapath: appends only set a flag, sending waits on gRPC flow control in this task alone, and
while the controller is away the ring overwrites its oldest events, which the next batch counts
as dropped (`nodemesh_flow_events_report_dropped_total{reason="overwritten"}`). A batch lost with
its connection is counted as `reason="send_failed"`; nothing is sent twice.

The call is re-opened with exponential back-off (0.2 s to 10 s), like the config stream, and each
attempt gets a fresh channel from the factory so a renewed certificate is used. A refusal by the
controller (PERMISSION_DENIED: an event named another reporter) is logged as an error, since it
means a bug or a misconfigured component, and retried at the slowest pace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from nodemesh.flows.batch import MAX_BATCH, MAX_DELAY, Batch, BatchCursor
from nodemesh.flows.ring import FlowRing
from nodemesh.flows.wire import to_message
from nodemesh.proto import flows_pb2, flows_pb2_grpc

log = logging.getLogger("nodemesh.flows.relay")
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 10.0


class DropReason(StrEnum):
    OVERWRITTEN = "overwritten"  # the ring overwrote them before they were sent
    SEND_FAILED = "send_failed"  # taken for a batch whose connection then failed


class ReporterMetrics:
    """The reporter's counters, on the component's own registry (served on :15020)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "nodemesh_flow_events_reported_total",
            "Flow events sent to the controller's relay.",
            registry=registry,
        )
        self.dropped = Counter(
            "nodemesh_flow_events_report_dropped_total",
            "Flow events never sent to the controller's relay, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in DropReason:  # a series at 0 from the start, so "none lost" is shown
            self.dropped.labels(reason)
        self.connected = Gauge(
            "nodemesh_flow_relay_connected",
            "1 while the flow report stream to the controller is open.",
            registry=registry,
        )


class FlowReporter:
    """Pushes `ring`'s events to the controller until cancelled (`run`)."""

    def __init__(
        self,
        ring: FlowRing,
        metrics: ReporterMetrics,
        *,
        max_batch: int = MAX_BATCH,
        max_delay: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cursor = BatchCursor(ring, max_batch=max_batch, max_delay=max_delay)
        self.ring, self.metrics, self.clock = ring, metrics, clock
        self._wake = asyncio.Event()
        self._connected = False  # the current attempt reached the controller

    async def run(self, channel_factory: Callable[[], grpc.aio.Channel]) -> None:
        subscription = self.ring.subscribe(self._appended)
        backoff = FIRST_BACKOFF
        try:
            while True:
                self._connected = False
                try:
                    async with channel_factory() as channel:
                        await self.run_once(channel)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                        log.error("the controller refused our flow events: %s", exc.details())
                        backoff = MAX_BACKOFF
                    else:
                        log.warning(
                            "flow report stream ended (%s: %s); reconnecting in %.1fs",
                            exc.code().name,
                            exc.details(),
                            backoff,
                        )
                self.metrics.connected.set(0)
                if self._connected and backoff < MAX_BACKOFF:
                    backoff = FIRST_BACKOFF  # it worked for a while: retry soon
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            subscription.cancel()
            self.metrics.connected.set(0)

    async def run_once(self, channel: grpc.aio.Channel) -> None:
        """One call: write batches as they fall due until the call ends (raises its error)."""
        await channel.channel_ready()  # gRPC's own reconnect back-off while the controller is away
        call = flows_pb2_grpc.FlowRelayStub(channel).FlowReports()
        call.add_done_callback(lambda _: self._wake.set())  # notice an end while idle
        self._connected = True
        self.metrics.connected.set(1)
        try:
            while True:
                await self._until_due(call)
                if call.done():  # ended by the controller: its status, before taking a batch
                    await call
                    return
                await self._send(call, self.cursor.take())
        finally:
            call.cancel()

    async def _send(self, call, batch: Batch) -> None:
        if batch.dropped:
            self.metrics.dropped.labels(DropReason.OVERWRITTEN).inc(batch.dropped)
        message = flows_pb2.FlowBatch(
            events=[to_message(e) for e in batch.events], dropped=batch.dropped
        )
        try:
            await call.write(message)
        except BaseException as exc:
            self.metrics.dropped.labels(DropReason.SEND_FAILED).inc(len(batch.events))
            if isinstance(exc, Exception) and call.done():
                await call  # the controller ended the call: raise its status, not a write error
            raise
        self.metrics.sent.inc(len(batch.events))

    async def _until_due(self, call) -> None:
        while not call.done() and (wait := self.cursor.due_in(self.clock())) != 0.0:
            self._wake.clear()
            if wait is None:
                await self._wake.wait()
            else:
                await asyncio.sleep(wait)

    def _appended(self, seq: int) -> None:
        """Ring callback, inside the datapath's append: flag only."""
        self.cursor.noted(self.clock())
        self._wake.set()
