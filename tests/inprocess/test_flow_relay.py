"""The flow relay end to end in one process: reporters → controller over mTLS → admin long-poll.

The real controller (controller.main.Controller) runs on loopback with its real CA; two node
agents get their certificates through the real bootstrap, a waypoint is signed by the same CA for
the Gateway the registry declares. Each reporter is the component's own `FlowReporter` over its
`FlowRing`; the reader is `nodemesh.flows.Follower` over the controller's `/debug/flows`, as
`meshctl trace --follow` reads it. Waits are bounded polls; no timing is asserted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry

from controller.main import Controller
from nodemesh import controlplane
from nodemesh.cli.waypoint_ops import gateway_manifest
from nodemesh.controlplane import KeyAndCert
from nodemesh.flows import FlowEvent, FlowRing, Follower
from nodemesh.flows.relay_client import FlowReporter, ReporterMetrics
from nodemesh.flows.wire import to_message
from nodemesh.identity import SpiffeId
from nodemesh.local.credentials import token_path
from nodemesh.local.store import Store
from nodemesh.proto import flows_pb2, flows_pb2_grpc
from tests.inprocess.test_controller_config import controller_args, make_state, until
from tests.unit.flows.events import event


async def admin_get(port: int, path: str) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: admin\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", raw
    return json.loads(body)


async def node_identity(ctl: Controller, state, node: str) -> KeyAndCert:
    token = token_path(state, node).read_text()
    return await controlplane.bootstrap(
        f"127.0.0.1:{ctl.ports['bootstrap']}", ctl.ca.trust_bundle_pem(), node, token
    )


def workload_identity(ctl: Controller, ns: str, sa: str) -> KeyAndCert:
    key = controlplane.new_key()
    issued = ctl.ca.sign_csr(
        controlplane.csr_pem(key).encode(),
        SpiffeId(ctl.ca.trust_domain, ns, sa),
        ttl=timedelta(hours=1),
    )
    return KeyAndCert(
        controlplane.key_pem(key),
        issued.chain_pem,
        ctl.ca.trust_bundle_pem(),
        int(issued.not_after.timestamp()),
    )


class Component:
    """A component's ring and its reporter task, as an agent or waypoint wires them."""

    def __init__(self, ctl: Controller, reporter: str, identity: KeyAndCert) -> None:
        self.ctl, self.reporter, self.identity = ctl, reporter, identity
        self.ring = FlowRing(capacity=8)
        self.metrics = ReporterMetrics(CollectorRegistry())
        self.flows = FlowReporter(self.ring, self.metrics)
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        address = f"127.0.0.1:{self.ctl.ports['mtls']}"
        channels = lambda: controlplane.mtls_channel(address, self.identity)  # noqa: E731
        self.task = asyncio.ensure_future(self.flows.run(channels))

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def record(self, name: str) -> FlowEvent:
        e = event(reporter=self.reporter, flow_id=name)
        self.ring.append(e)
        return e


class Reader:
    """`meshctl trace --follow`'s reading of one source: the controller's relay."""

    def __init__(self, ctl: Controller) -> None:
        self.port = ctl.ports["admin"]
        self.follower = Follower(history=True)
        self.seen: list[FlowEvent] = []

    async def poll(self, wait: float = 0.0) -> list[FlowEvent]:
        answer = await admin_get(self.port, self.follower.path("relay", wait))
        new = self.follower.receive("relay", answer)
        self.seen += new
        return new

    async def until_seen(self, *flow_ids: str) -> None:
        async def seen_all():
            await self.poll()
            return set(flow_ids) <= {e.flow_id for e in self.seen}

        for _ in range(500):
            if await seen_all():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the relay never showed {flow_ids}: {self.seen}")


async def refused_call(ctl: Controller, identity: KeyAndCert, events: list[FlowEvent]):
    """One raw FlowReports call sending `events`; the error the controller ends it with."""
    address = f"127.0.0.1:{ctl.ports['mtls']}"
    async with controlplane.mtls_channel(address, identity) as channel:
        call = flows_pb2_grpc.FlowRelayStub(channel).FlowReports()
        await call.write(flows_pb2.FlowBatch(events=[to_message(e) for e in events]))
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
    return info.value


def test_two_agents_and_a_waypoint_reach_one_reader_and_spoofers_do_not(tmp_path):
    state = make_state(tmp_path)
    Store(state).apply([gateway_manifest("shop", "waypoint")])  # as `meshctl waypoint apply`

    async def go():
        ctl = Controller(controller_args(state))
        await ctl.start()
        components: list[Component] = []
        try:
            assert ctl._known_waypoint("shop/waypoint")
            node1 = Component(ctl, "agent node1", await node_identity(ctl, state, "node1"))
            node2 = Component(ctl, "agent node2", await node_identity(ctl, state, "node2"))
            wp = Component(
                ctl, "waypoint shop/waypoint", workload_identity(ctl, "shop", "waypoint")
            )
            components = [node1, node2, wp]
            reader = Reader(ctl)
            # A long-poll waiting on an empty relay is woken by the first pushed event.
            waiting = asyncio.ensure_future(reader.poll(wait=30))
            for c in components:
                c.start()
            node1.record("n1-a")
            assert [e.flow_id for e in await waiting] == ["n1-a"]
            node2.record("n2-a")
            wp.record("wp-a")
            await reader.until_seen("n1-a", "n2-a", "wp-a")
            by_flow = {e.flow_id: e.reporter for e in reader.seen}
            assert by_flow["n2-a"] == "agent node2" and by_flow["wp-a"] == "waypoint shop/waypoint"

            # node2's certificate cannot carry node1's events, nor can a non-waypoint workload's.
            spoofed = event(reporter="agent node1", flow_id="spoofed")
            err = await refused_call(ctl, node2.identity, [spoofed])
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "'agent node1'" in err.details() and "'agent node2'" in err.details()
            client = workload_identity(ctl, "shop", "client")
            err = await refused_call(ctl, client, [event(reporter="waypoint shop/client")])
            assert (
                err.code() == grpc.StatusCode.PERMISSION_DENIED and "shop/client" in err.details()
            )

            # node1 goes away while a reader waits; the reader is woken by node2's next event.
            waiting = asyncio.ensure_future(reader.poll(wait=30))
            await node1.stop()
            node2.record("n2-b")
            await waiting
            await reader.until_seen("n2-b")
            sources = await admin_get(ctl.ports["admin"], "/debug/flows/sources")
            await until(lambda: ctl.flows.sources["agent node1"].streams == 0)

            # While node1 is away its ring (capacity 8) overwrites; when it is back, the relay
            # gets the newest 8 and the count of the 4 it never will.
            for i in range(12):
                node1.record(f"n1-away-{i}")
            node1.start()
            await reader.until_seen(*(f"n1-away-{i}" for i in range(4, 12)))
            assert not {f"n1-away-{i}" for i in range(4)} & {e.flow_id for e in reader.seen}
            sources = await admin_get(ctl.ports["admin"], "/debug/flows/sources")
        finally:
            for c in components:
                if c.task is not None:
                    await c.stop()
            await ctl.stop(grace=0.5)
        assert "spoofed" not in {e.flow_id for e in reader.seen}
        assert sources["agent node1"]["dropped"] == 4 and sources["agent node1"]["events"] == 9
        assert sources["agent node2"]["refused"] == 1 and sources["agent node2"]["events"] == 2
        assert sources["waypoint shop/waypoint"]["kind"] == "waypoint"
        dropped = node1.metrics.dropped.labels("overwritten")._value.get()
        assert dropped == 4
        registry = ctl.metrics.registry
        relayed = registry.get_sample_value(
            "nodemesh_flow_events_relayed_total", {"source_kind": "agent"}
        )
        assert relayed == 9 + 2

    asyncio.run(go())
