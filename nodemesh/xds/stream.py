"""The I/O shell of a config subscriber: one ADS stream, one sans-I/O DeltaClient per type.

Used by node agents and waypoints. `run` keeps the stream up: on any failure it waits (with
back-off) and reconnects, sending the versions it already holds, so the controller sends only
what changed; meanwhile the subscriber keeps serving with its last good config.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from nodemesh.xds.client import DeltaClient, build_node

log = logging.getLogger("nodemesh.xds.stream")
Handler = Callable[[str, list, list], dict]  # (type_url, upserts, removals) -> rejected


class ConfigStream:
    def __init__(self, node_id: str, type_urls: Iterable[str], handler: Handler) -> None:
        self.node = build_node(node_id, "nodemesh", {})
        self.clients = {
            t: DeltaClient(t, lambda ups, rms, t=t: handler(t, ups, rms)) for t in type_urls
        }
        self.connected = asyncio.Event()
        self.responses = 0

    def synced(self) -> bool:
        return all(c.synced for c in self.clients.values())

    async def run_once(self, channel: grpc.aio.Channel) -> None:
        """One stream, until it ends; raises the gRPC error that ended it."""
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources()
        for client in self.clients.values():
            await call.write(client.initial_request(self.node, client.known_versions()))
        self.connected.set()
        try:
            async for resp in call:
                client = self.clients.get(resp.type_url)
                if client is None:
                    log.warning("controller sent unsubscribed type %s; ignoring", resp.type_url)
                    continue
                self.responses += 1
                await call.write(client.on_response(resp))
        finally:
            self.connected.clear()
            call.cancel()

    async def run(self, channel_factory: Callable[[], grpc.aio.Channel]) -> None:
        backoff = 0.2
        while True:
            try:
                async with channel_factory() as channel:
                    await self.run_once(channel)
                backoff = 0.2
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "config stream ended (%s: %s); reconnecting in %.1fs",
                    exc.code().name,
                    exc.details(),
                    backoff,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
