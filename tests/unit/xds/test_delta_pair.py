"""Controller subscription and node client back to back, through real serialized bytes.

A Hypothesis state machine publishes random snapshots, delivers messages one at a time in either
direction, lets the node's handler refuse random resources, replays stale replies and reconnects
(with the snapshot known before or after the new stream's first request).  Whenever nothing is on
the wire the two sides must agree, and the node must hold the last snapshot except the versions it
refused, for which it keeps its last good one.
"""

from __future__ import annotations

from collections import deque

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DeltaDiscoveryResponse
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from controller.xds.delta import DeltaSubscription, counter_nonces
from nodemesh.xds.client import DeltaClient, build_node
from nodemesh.xds.resources import XdsResource, content_version

TYPE = "type.googleapis.com/nodemesh.test.Thing"
NAMES = st.sampled_from(["a", "b", "c", "d"])
PAYLOADS = st.sampled_from([b"1", b"2", b"3"])
NODE = build_node("node-1", "local")


def wire(message):
    """What the other side reads: the message serialized and parsed again."""
    return type(message).FromString(message.SerializeToString())


def test_scripted_exchange_push_nack_fix_and_reconnect():
    config: dict[str, bytes] = {}

    def apply(upserts, removals):
        refused = {r.name: "empty payload" for r in upserts if not r.payload}
        config.update({r.name: r.payload for r in upserts if r.name not in refused})
        for name in removals:
            config.pop(name, None)
        return refused

    def build(**payloads: bytes) -> dict[str, XdsResource]:
        return {n: XdsResource.build(TYPE, n, p) for n, p in payloads.items()}

    client = DeltaClient(TYPE, apply)
    server = DeltaSubscription("node-1", TYPE, nonces=counter_nonces("a"))
    assert server.on_request(wire(client.initial_request(NODE))) == []
    (push,) = server.on_snapshot(build(web=b"w1", db=b"d1"), "v1")
    assert server.on_request(wire(client.on_response(wire(push)))) == []
    assert config == {"web": b"w1", "db": b"d1"}

    (push,) = server.on_snapshot(build(web=b"w2", db=b""), "v2")
    reply = client.on_response(wire(push))
    assert reply.HasField("error_detail")
    assert server.on_request(wire(reply)) == []
    assert config == {"web": b"w2", "db": b"d1"}  # db keeps its last good config
    assert server.state()["rejected"]["db"]["reason"] == "empty payload"
    assert server.on_snapshot(build(web=b"w2", db=b""), "v3") == []  # not resent unchanged

    server = DeltaSubscription("node-1", TYPE, nonces=counter_nonces("b"))  # reconnect
    server.on_request(wire(client.initial_request(NODE)))
    (push,) = server.on_snapshot(build(web=b"w2", db=b"d3", cache=b"c1"), "v4")
    assert {r.name for r in push.resources} == {"db", "cache"}
    assert server.on_request(wire(client.on_response(wire(push)))) == []
    assert config == {"web": b"w2", "db": b"d3", "cache": b"c1"}
    assert server.held() == client.known_versions()


class DeltaPair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client = DeltaClient(TYPE, self.apply)
        self.config: dict[str, bytes] = {}
        """What the node runs with: the handler's own state."""
        self.refuse: set[str] = set()
        self.snapshot: dict[str, XdsResource] = {}
        self.version = 0
        self.streams = 0
        self.server: DeltaSubscription | None = None
        self.to_client: deque[bytes] = deque()
        self.to_server: deque[bytes] = deque()
        self.replies: list[bytes] = []

    def apply(self, upserts: list[XdsResource], removals: list[str]) -> dict[str, str]:
        refused = {r.name: "refused by the test" for r in upserts if r.name in self.refuse}
        new = dict(self.config)
        new.update({r.name: r.payload for r in upserts if r.name not in refused})
        for name in removals:
            new.pop(name, None)
        self.config = new
        return refused

    # --- wire --------------------------------------------------------------------------------

    def send_responses(self, responses: list[DeltaDiscoveryResponse]) -> None:
        assert len(responses) <= 1
        self.to_client.extend(r.SerializeToString() for r in responses)

    def send_request(self, req: DeltaDiscoveryRequest) -> None:
        self.to_server.append(req.SerializeToString())

    # --- rules -------------------------------------------------------------------------------

    @initialize(snapshot_first=st.booleans())
    def connect_first_stream(self, snapshot_first):
        self.reconnect(snapshot_first)

    @rule(payloads=st.dictionaries(NAMES, PAYLOADS))
    def publish(self, payloads):
        self.version += 1
        self.snapshot = {n: XdsResource.build(TYPE, n, p) for n, p in payloads.items()}
        self.send_responses(self.server.on_snapshot(self.snapshot, f"v{self.version}"))

    @precondition(lambda self: self.to_client)
    @rule(refuse=st.sets(NAMES))
    def deliver_response(self, refuse):
        resp = DeltaDiscoveryResponse.FromString(self.to_client.popleft())
        self.refuse = refuse
        self.send_request(self.client.on_response(resp))

    @precondition(lambda self: self.to_server)
    @rule()
    def deliver_request(self):
        raw = self.to_server.popleft()
        self.replies.append(raw)
        self.send_responses(self.server.on_request(DeltaDiscoveryRequest.FromString(raw)))

    @precondition(lambda self: self.replies)
    @rule(data=st.data())
    def replay_stale_reply(self, data):
        raw = data.draw(st.sampled_from(self.replies))
        assert self.server.on_request(DeltaDiscoveryRequest.FromString(raw)) == []

    @rule(snapshot_first=st.booleans())
    def reconnect(self, snapshot_first):
        """Drop the stream and whatever was on it; a new subscription serves the new one."""
        self.streams += 1
        self.to_client.clear()
        self.to_server.clear()
        self.replies.clear()
        self.server = DeltaSubscription("node-1", TYPE, nonces=counter_nonces(f"s{self.streams}-"))
        initial = self.client.initial_request(NODE).SerializeToString()
        first = DeltaDiscoveryRequest.FromString(initial)
        version = f"v{self.version}"
        if snapshot_first:
            self.send_responses(self.server.on_snapshot(self.snapshot, version))
            self.send_responses(self.server.on_request(first))
        else:
            self.send_responses(self.server.on_request(first))
            self.send_responses(self.server.on_snapshot(self.snapshot, version))

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def at_most_one_response_in_flight(self):
        assert len(self.to_client) + len(self.to_server) <= 1

    @invariant()
    def node_runs_what_it_accepted(self):
        versions = {n: content_version(p) for n, p in self.config.items()}
        assert versions == self.client.known_versions()

    @invariant()
    def quiescent_means_converged(self):
        if self.to_client or self.to_server:
            return
        held = self.client.known_versions()
        refused = {n: r.version for n, r in self.client.rejected().items()}
        assert self.server.in_flight_nonce is None
        assert self.client.synced
        assert self.server.held() == held
        assert {n: r.version for n, r in self.server.rejected().items()} == refused
        assert set(held) <= set(self.snapshot)
        event(f"quiescent, {'some' if refused else 'no'} refusal, stream {min(self.streams, 3)}")
        for name, resource in self.snapshot.items():
            if name in refused:
                assert refused[name] == resource.version
                assert held.get(name) != resource.version
            else:
                assert held.get(name) == resource.version


TestDeltaPair = DeltaPair.TestCase
TestDeltaPair.settings = settings(max_examples=400, stateful_step_count=40, deadline=None)
