"""The node's delta client alone, and the resource and NACK codecs both sides share.

Responses are built the way the controller sends them; the handler is a small recording fake that
refuses what a test tells it to.
"""

from __future__ import annotations

import json

import pytest
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    Resource,
)
from google.protobuf import any_pb2
from google.rpc import status_pb2

from nodemesh.xds.client import DeltaClient, build_node
from nodemesh.xds.resources import (
    NACK_STATUS_CODE,
    LocalProtocolError,
    Rejection,
    RemoteProtocolError,
    ResourceError,
    XdsResource,
    content_version,
    decode_nack,
    encode_nack,
)

TYPE = "type.googleapis.com/nodemesh.test.Thing"
NODE = build_node("node-1", "local", {"NODE_NAME": "node1"})


def res(name: str, payload: str) -> XdsResource:
    return XdsResource.build(TYPE, name, payload.encode())


def ver(payload: str) -> str:
    return content_version(payload.encode())


def response(nonce: str, removed=(), **payloads: str) -> DeltaDiscoveryResponse:
    return DeltaDiscoveryResponse(
        type_url=TYPE,
        nonce=nonce,
        system_version_info="v-" + nonce,
        resources=[res(n, p).to_proto() for n, p in payloads.items()],
        removed_resources=list(removed),
    )


class FakeHandler:
    """Applies what it is given unless told to refuse a name; records every call."""

    def __init__(self) -> None:
        self.refuse: dict[str, str] = {}
        self.calls: list[tuple[list[str], list[str]]] = []
        self.config: dict[str, bytes] = {}

    def __call__(self, upserts: list[XdsResource], removals: list[str]) -> dict[str, str]:
        self.calls.append(([r.name for r in upserts], list(removals)))
        refused = {r.name: self.refuse[r.name] for r in upserts if r.name in self.refuse}
        for r in upserts:
            if r.name not in refused:
                self.config[r.name] = r.payload
        for name in removals:
            self.config.pop(name, None)
        return refused


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler()


@pytest.fixture
def client(handler) -> DeltaClient:
    c = DeltaClient(TYPE, handler)
    c.initial_request(NODE)
    return c


def rejected_in(req: DeltaDiscoveryRequest) -> dict[str, str]:
    assert req.HasField("error_detail"), "expected a NACK"
    assert req.error_detail.code == NACK_STATUS_CODE
    return json.loads(req.error_detail.message)["rejected"]


# --- initial request ---------------------------------------------------------------------------


def test_initial_request_subscribes_to_the_wildcard_with_node():
    req = DeltaClient(TYPE, FakeHandler()).initial_request(NODE)
    assert req.type_url == TYPE
    assert list(req.resource_names_subscribe) == ["*"]
    assert req.node.id == "node-1"
    assert req.node.cluster == "local"
    assert req.node.metadata["NODE_NAME"] == "node1"
    assert dict(req.initial_resource_versions) == {}
    assert not req.response_nonce


def test_initial_request_seeds_known_versions():
    c = DeltaClient(TYPE, FakeHandler())
    req = c.initial_request(NODE, {"a": "v1"})
    assert dict(req.initial_resource_versions) == {"a": "v1"}
    assert c.known_versions() == {"a": "v1"}


def test_reconnect_sends_accepted_versions_and_is_not_synced_until_a_response(client):
    client.on_response(response("n1", a="1", b="2"))
    assert client.synced
    req = client.initial_request(NODE)
    assert dict(req.initial_resource_versions) == {"a": ver("1"), "b": ver("2")}
    assert not client.synced


# --- ACK ---------------------------------------------------------------------------------------


def test_all_applied_gives_an_ack(client, handler):
    req = client.on_response(response("n1", a="1", b="2"))
    assert req.type_url == TYPE
    assert req.response_nonce == "n1"
    assert not req.HasField("error_detail")
    assert handler.calls == [(["a", "b"], [])]
    assert client.known_versions() == {"a": ver("1"), "b": ver("2")}
    assert handler.config == {"a": b"1", "b": b"2"}


def test_removals_are_passed_to_the_handler_and_forgotten(client, handler):
    client.on_response(response("n1", a="1", b="2"))
    req = client.on_response(response("n2", removed=["b", "never-had"]))
    assert not req.HasField("error_detail")
    assert handler.calls[-1] == ([], ["b", "never-had"])
    assert client.known_versions() == {"a": ver("1")}


def test_removed_resource_names_field_is_read_too(client, handler):
    client.on_response(response("n1", a="1"))
    resp = response("n2")
    resp.removed_resource_names.add(name="a")
    client.on_response(resp)
    assert client.known_versions() == {}


# --- NACK --------------------------------------------------------------------------------------


def test_one_refused_resource_is_named_and_the_rest_applies(client, handler):
    client.on_response(response("n1", a="1", b="2"))
    handler.refuse = {"b": "port out of range"}
    req = client.on_response(response("n2", a="11", b="22", c="3"))
    assert req.response_nonce == "n2"
    assert rejected_in(req) == {"b": "port out of range"}
    assert client.known_versions() == {"a": ver("11"), "b": ver("2"), "c": ver("3")}
    assert client.rejected() == {"b": Rejection(ver("22"), "port out of range")}
    assert handler.config["b"] == b"2"  # last good config stays


def test_refused_new_resource_stays_absent(client, handler):
    handler.refuse = {"a": "bad"}
    req = client.on_response(response("n1", a="1"))
    assert rejected_in(req) == {"a": "bad"}
    assert client.known_versions() == {}


def test_accepting_a_later_version_clears_the_rejection(client, handler):
    handler.refuse = {"a": "bad"}
    client.on_response(response("n1", a="1"))
    handler.refuse = {}
    assert not client.on_response(response("n2", a="2")).HasField("error_detail")
    assert client.rejected() == {}


def test_removal_clears_the_rejection(client, handler):
    handler.refuse = {"a": "bad"}
    client.on_response(response("n1", a="1"))
    client.on_response(response("n2", removed=["a"]))
    assert client.rejected() == {}


def test_reconnect_forgets_rejections(client, handler):
    handler.refuse = {"a": "bad"}
    client.on_response(response("n1", a="1"))
    client.initial_request(NODE)
    assert client.rejected() == {}


def test_unreadable_resource_is_refused_without_reaching_the_handler(client, handler):
    resp = response("n1", a="1")
    resp.resources.add(name="nobody", version="v")
    resp.resources.add(
        name="wrongtype",
        version="v",
        resource=any_pb2.Any(type_url=TYPE + "Other", value=b"x"),
    )
    req = client.on_response(resp)
    rejected = rejected_in(req)
    assert set(rejected) == {"nobody", "wrongtype"}
    assert "no body" in rejected["nobody"]
    assert "Other" in rejected["wrongtype"]
    assert handler.calls == [(["a"], [])]
    assert client.known_versions() == {"a": ver("1")}


def test_resource_without_name_is_refused(client, handler):
    resp = response("n1")
    resp.resources.add(resource=any_pb2.Any(type_url=TYPE, value=b"x"))
    assert rejected_in(client.on_response(resp)) == {"": "resource has no name"}


def test_duplicate_name_is_refused_entirely(client, handler):
    resp = response("n1", a="1")
    resp.resources.append(res("a", "2").to_proto())
    resp.resources.append(res("a", "3").to_proto())
    assert set(rejected_in(client.on_response(resp))) == {"a"}
    assert handler.calls == [([], [])]
    assert client.rejected()["a"].version == ver("2")


def test_name_both_updated_and_removed_is_refused_and_not_removed(client, handler):
    client.on_response(response("n1", a="1"))
    req = client.on_response(response("n2", removed=["a"], a="2"))
    assert "both updated and removed" in rejected_in(req)["a"]
    assert handler.calls[-1] == ([], [])
    assert client.known_versions() == {"a": ver("1")}


def test_missing_version_is_derived_from_the_payload(client):
    resp = response("n1")
    resp.resources.add(name="a", resource=any_pb2.Any(type_url=TYPE, value=b"1"))
    client.on_response(resp)
    assert client.known_versions() == {"a": ver("1")}


# --- misuse and a broken server ----------------------------------------------------------------


def test_handler_refusing_what_it_was_not_given_is_a_bug():
    def bad_handler(upserts, removals):  # removals cannot be refused
        return {"b": "no"}

    c = DeltaClient(TYPE, bad_handler)
    c.initial_request(NODE)
    with pytest.raises(LocalProtocolError, match="not among the upserts"):
        c.on_response(response("n1", removed=["b"], a="1"))


def test_response_before_initial_request_is_a_bug():
    with pytest.raises(LocalProtocolError, match="initial_request"):
        DeltaClient(TYPE, FakeHandler()).on_response(response("n1"))


def test_response_of_another_type_is_a_routing_bug(client):
    resp = response("n1")
    resp.type_url = TYPE + "Other"
    with pytest.raises(LocalProtocolError):
        client.on_response(resp)


def test_response_without_nonce_closes_the_stream(client):
    with pytest.raises(RemoteProtocolError, match="nonce"):
        client.on_response(response(""))


# --- observability -----------------------------------------------------------------------------


def test_state_is_json_ready(client, handler):
    handler.refuse = {"b": "bad"}
    client.on_response(response("n1", a="1", b="2"))
    state = client.state()
    assert json.loads(json.dumps(state)) == state
    assert state == {
        "type_url": TYPE,
        "synced": True,
        "last_nonce": "n1",
        "last_system_version": "v-n1",
        "accepted": {"a": ver("1")},
        "rejected": {"b": {"version": ver("2"), "reason": "bad"}},
        "responses": 1,
        "acks": 0,
        "nacks": 1,
    }


# --- the shared codecs -------------------------------------------------------------------------


def test_content_version_is_a_short_stable_hash():
    assert content_version(b"x") == content_version(b"x")
    assert content_version(b"x") != content_version(b"y")
    assert len(content_version(b"x")) == 16


def test_resource_round_trips_through_the_envelope():
    r = res("a", "payload")
    proto = Resource.FromString(r.to_proto().SerializeToString())
    assert proto.resource.type_url == TYPE
    assert XdsResource.from_proto(proto, TYPE) == r


def test_resource_of_another_type_is_refused():
    with pytest.raises(ResourceError):
        XdsResource.from_proto(res("a", "1").to_proto(), TYPE + "Other")


def test_nack_codec_round_trips():
    status = encode_nack({"b": "bad", "a": "worse"})
    assert status.code == NACK_STATUS_CODE
    assert status.message == '{"rejected": {"a": "worse", "b": "bad"}}'
    assert decode_nack(status) == {"a": "worse", "b": "bad"}


@pytest.mark.parametrize(
    "message",
    [
        "",
        "a: invalid; b: invalid",
        "[1, 2]",
        '{"rejected": {}}',
        '{"rejected": ["a"]}',
        '{"rejected": {"a": 1}}',
        '{"other": {"a": "b"}}',
    ],
)
def test_nack_in_another_format_is_not_decoded(message):
    assert decode_nack(status_pb2.Status(code=3, message=message)) is None


def test_resent_held_version_skips_the_handler_and_clears_the_refusal(client, handler):
    client.on_response(response("n1", a="1"))
    handler.refuse = {"a": "bad"}
    client.on_response(response("n2", a="2"))
    req = client.on_response(response("n3", a="1"))
    assert not req.HasField("error_detail")
    assert handler.calls[-1] == ([], [])
    assert client.rejected() == {}
    assert client.known_versions() == {"a": ver("1")}
