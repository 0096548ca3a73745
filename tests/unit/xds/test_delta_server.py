"""The controller's delta subscription alone: requests and snapshots in, responses out.

Requests are built the way a client sends them; responses are read back by name and version.
Every transition of the table in ``controller.xds.delta`` has a test here.
"""

from __future__ import annotations

import json

import pytest
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DeltaDiscoveryResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.xds.delta import RECENT_NONCES, DeltaSubscription, counter_nonces, plan_push
from nodemesh.xds.resources import (
    LocalProtocolError,
    ProtocolError,
    Rejection,
    RemoteProtocolError,
    XdsResource,
    encode_nack,
)

TYPE = "type.googleapis.com/nodemesh.test.Thing"
NOW = 1_700_000_000.0


def res(name: str, payload: str) -> XdsResource:
    return XdsResource.build(TYPE, name, payload.encode())


def snap(**payloads: str) -> dict[str, XdsResource]:
    return {name: res(name, payload) for name, payload in payloads.items()}


def ver(payload: str) -> str:
    return res("x", payload).version


def subscription() -> DeltaSubscription:
    return DeltaSubscription("node-1", TYPE, nonces=counter_nonces("n"), clock=lambda: NOW)


def first(versions: dict[str, str] | None = None, subscribe=("*",)) -> DeltaDiscoveryRequest:
    return DeltaDiscoveryRequest(
        type_url=TYPE,
        resource_names_subscribe=list(subscribe),
        initial_resource_versions=versions or {},
    )


def ack(nonce: str) -> DeltaDiscoveryRequest:
    return DeltaDiscoveryRequest(type_url=TYPE, response_nonce=nonce)


def nack(nonce: str, rejected: dict[str, str]) -> DeltaDiscoveryRequest:
    req = ack(nonce)
    req.error_detail.CopyFrom(encode_nack(rejected))
    return req


def sent(resp: DeltaDiscoveryResponse) -> dict[str, str]:
    return {r.name: r.version for r in resp.resources}


def only(responses: list[DeltaDiscoveryResponse]) -> DeltaDiscoveryResponse:
    assert len(responses) == 1
    return responses[0]


def opened(**payloads: str) -> tuple[DeltaSubscription, DeltaDiscoveryResponse]:
    """A subscription whose first push (of ``payloads``) is in flight."""
    sub = subscription()
    assert sub.on_request(first()) == []
    return sub, only(sub.on_snapshot(snap(**payloads), "v1"))


def settled(**payloads: str) -> DeltaSubscription:
    """A subscription whose client acknowledged ``payloads``."""
    sub, resp = opened(**payloads)
    assert sub.on_request(ack(resp.nonce)) == []
    return sub


# --- first push --------------------------------------------------------------------------------


def test_first_push_carries_everything_with_nonce_and_snapshot_version():
    sub, resp = opened(a="1", b="2")
    assert resp.type_url == TYPE
    assert resp.nonce == "n1"
    assert resp.system_version_info == "v1"
    assert sent(resp) == {"a": ver("1"), "b": ver("2")}
    assert [r.resource.type_url for r in resp.resources] == [TYPE, TYPE]
    assert list(resp.removed_resources) == []
    assert sub.in_flight_nonce == "n1"


def test_snapshot_before_first_request_waits_for_it():
    sub = subscription()
    assert sub.on_snapshot(snap(a="1"), "v1") == []
    assert sub.state()["pending"] is True
    assert sent(only(sub.on_request(first()))) == {"a": ver("1")}


def test_first_request_without_snapshot_sends_nothing_yet():
    sub = subscription()
    assert sub.on_request(first()) == []
    assert sub.in_flight_nonce is None


def test_first_push_is_sent_even_when_empty():
    # Clients (ztunnel among them) wait for one response per type before they call themselves ready.
    sub, resp = opened()
    assert list(resp.resources) == [] and list(resp.removed_resources) == []
    assert sub.on_request(ack(resp.nonce)) == []
    assert sub.on_snapshot({}, "v2") == []


def test_legacy_wildcard_first_request_with_no_names():
    sub = subscription()
    sub.on_request(first(subscribe=()))
    assert sent(only(sub.on_snapshot(snap(a="1"), "v1"))) == {"a": ver("1")}
    assert sub.state()["wildcard"] is True


def test_subscribe_and_unsubscribe_wildcard_at_once_subscribes_to_nothing():
    # ztunnel's on-demand mode opens this way.
    sub = subscription()
    req = first()
    req.resource_names_unsubscribe.append("*")
    sub.on_request(req)
    resp = only(sub.on_snapshot(snap(a="1"), "v1"))
    assert sent(resp) == {}


# --- ACK ---------------------------------------------------------------------------------------


def test_ack_marks_sent_versions_held_and_sends_nothing_when_unchanged():
    sub, resp = opened(a="1", b="2")
    assert sub.on_request(ack(resp.nonce)) == []
    assert sub.held() == {"a": ver("1"), "b": ver("2")}
    state = sub.state()
    assert state["in_flight_nonce"] is None
    assert state["last_acked_version"] == "v1"
    assert state["last_ack_time"] == NOW
    assert (state["pushes"], state["acks"], state["nacks"]) == (1, 1, 0)


def test_next_snapshot_sends_only_changes_and_removals():
    sub = settled(a="1", b="2", c="3")
    resp = only(sub.on_snapshot(snap(a="1", b="22", d="4"), "v2"))
    assert sent(resp) == {"b": ver("22"), "d": ver("4")}
    assert list(resp.removed_resources) == ["c"]
    assert resp.system_version_info == "v2"
    sub.on_request(ack(resp.nonce))
    assert sub.held() == {"a": ver("1"), "b": ver("22"), "d": ver("4")}


def test_unchanged_snapshot_sends_nothing():
    sub = settled(a="1")
    assert sub.on_snapshot(snap(a="1"), "v2") == []
    assert sub.state()["pending"] is False


# --- one in flight, coalescing -----------------------------------------------------------------


def test_snapshots_while_in_flight_are_coalesced_into_one_push_after_the_ack():
    sub, resp = opened(a="1", b="2")
    assert sub.on_snapshot(snap(a="11", b="2"), "v2") == []
    assert sub.on_snapshot(snap(a="111", c="3"), "v3") == []
    assert sub.state()["pending"] is True
    nxt = only(sub.on_request(ack(resp.nonce)))
    assert sent(nxt) == {"a": ver("111"), "c": ver("3")}
    assert list(nxt.removed_resources) == ["b"]
    assert nxt.system_version_info == "v3"
    assert sub.state()["pending"] is False


def test_change_reverted_while_in_flight_sends_nothing():
    sub, resp = opened(a="1")
    sub.on_snapshot(snap(a="2"), "v2")
    sub.on_snapshot(snap(a="1"), "v3")
    assert sub.on_request(ack(resp.nonce)) == []


def test_coalesced_push_follows_a_nack_too():
    sub, resp = opened(a="1", b="2")
    sub.on_snapshot(snap(a="1", b="2", c="3"), "v2")
    nxt = only(sub.on_request(nack(resp.nonce, {"b": "bad"})))
    assert sent(nxt) == {"c": ver("3")}


# --- NACK --------------------------------------------------------------------------------------


def test_nack_rejects_only_the_named_resource_and_the_rest_is_held():
    sub = settled(a="1", b="2")
    resp = only(sub.on_snapshot(snap(a="11", b="22", c="3"), "v2"))
    assert sub.on_request(nack(resp.nonce, {"b": "port out of range"})) == []
    assert sub.held() == {"a": ver("11"), "b": ver("2"), "c": ver("3")}
    assert sub.rejected() == {"b": Rejection(ver("22"), "port out of range")}
    state = sub.state()
    assert state["rejected"] == {"b": {"version": ver("22"), "reason": "port out of range"}}
    assert (state["acks"], state["nacks"]) == (1, 1)
    assert state["last_acked_version"] == "v1"


def test_rejected_version_is_not_resent_unchanged():
    sub, resp = opened(a="1", b="2")
    sub.on_request(nack(resp.nonce, {"b": "bad"}))
    assert sub.on_snapshot(snap(a="1", b="2"), "v2") == []
    assert sub.on_snapshot(snap(a="1", b="2", c="3"), "v3") != []


def test_new_version_of_rejected_resource_is_sent_and_its_ack_clears_the_rejection():
    sub, resp = opened(a="1")
    sub.on_request(nack(resp.nonce, {"a": "bad"}))
    nxt = only(sub.on_snapshot(snap(a="2"), "v2"))
    assert sent(nxt) == {"a": ver("2")}
    sub.on_request(ack(nxt.nonce))
    assert sub.rejected() == {}
    assert sub.held() == {"a": ver("2")}


def test_going_back_to_the_held_version_resends_it_to_end_the_refusal():
    sub = settled(a="1")
    resp = only(sub.on_snapshot(snap(a="2"), "v2"))
    sub.on_request(nack(resp.nonce, {"a": "bad"}))
    nxt = only(sub.on_snapshot(snap(a="1"), "v3"))
    assert sent(nxt) == {"a": ver("1")}
    sub.on_request(ack(nxt.nonce))
    assert sub.rejected() == {}


def test_nack_in_another_format_rejects_the_whole_response():
    sub = settled(a="1")
    resp = only(sub.on_snapshot(snap(a="2", b="3"), "v2"))
    req = ack(resp.nonce)
    req.error_detail.message = "a: invalid; b: invalid"  # how Envoy and ztunnel write it
    sub.on_request(req)
    assert sub.held() == {"a": ver("1")}
    assert set(sub.rejected()) == {"a", "b"}
    assert sub.rejected()["a"].reason == "a: invalid; b: invalid"


def test_nack_naming_resources_not_in_the_response_ignores_those_names():
    sub, resp = opened(a="1")
    sub.on_request(nack(resp.nonce, {"zzz": "never sent"}))
    assert sub.held() == {"a": ver("1")}
    assert sub.rejected() == {}


def test_refused_new_resource_leaving_the_snapshot_is_removed_to_clear_the_record():
    sub, resp = opened(a="1", b="2")
    sub.on_request(nack(resp.nonce, {"b": "bad"}))
    nxt = only(sub.on_snapshot(snap(a="1"), "v2"))
    assert sent(nxt) == {}
    assert list(nxt.removed_resources) == ["b"]
    sub.on_request(ack(nxt.nonce))
    assert sub.rejected() == {}
    assert sub.held() == {"a": ver("1")}


def test_refused_update_of_a_held_resource_then_removal():
    sub = settled(a="1")
    resp = only(sub.on_snapshot(snap(a="2"), "v2"))
    sub.on_request(nack(resp.nonce, {"a": "bad"}))
    assert sub.held() == {"a": ver("1")}
    nxt = only(sub.on_snapshot({}, "v3"))
    assert list(nxt.removed_resources) == ["a"]
    sub.on_request(ack(nxt.nonce))
    assert sub.held() == {} and sub.rejected() == {}


# --- removal -----------------------------------------------------------------------------------


def test_removal_is_sent_and_acked_removal_forgets_the_resource():
    sub = settled(a="1", b="2")
    resp = only(sub.on_snapshot(snap(a="1"), "v2"))
    assert sent(resp) == {}
    assert list(resp.removed_resources) == ["b"]
    sub.on_request(ack(resp.nonce))
    assert sub.held() == {"a": ver("1")}
    assert sub.on_snapshot(snap(a="1"), "v3") == []


# --- stale and unknown nonces ------------------------------------------------------------------


def test_duplicate_ack_is_stale_and_ignored():
    sub, resp = opened(a="1")
    sub.on_request(ack(resp.nonce))
    assert sub.on_request(ack(resp.nonce)) == []
    assert sub.state()["stale_replies"] == 1
    assert sub.state()["acks"] == 1


def test_late_reply_to_an_old_nonce_does_not_touch_the_response_in_flight():
    sub, r1 = opened(a="1")
    sub.on_request(ack(r1.nonce))
    r2 = only(sub.on_snapshot(snap(a="2"), "v2"))
    assert sub.on_request(nack(r1.nonce, {"a": "late"})) == []
    assert sub.in_flight_nonce == r2.nonce
    assert sub.rejected() == {}
    assert sub.held() == {"a": ver("1")}
    sub.on_request(ack(r2.nonce))
    assert sub.held() == {"a": ver("2")}


def test_unknown_nonce_closes_the_stream():
    sub, _ = opened(a="1")
    with pytest.raises(RemoteProtocolError, match="never sent"):
        sub.on_request(ack("forged"))


def test_nonce_in_the_first_request_is_unknown():
    sub = subscription()
    req = first()
    req.response_nonce = "n1"
    with pytest.raises(RemoteProtocolError):
        sub.on_request(req)


def test_only_recent_nonces_count_as_stale():
    sub = settled(a="0")
    for i in range(1, RECENT_NONCES + 1):
        resp = only(sub.on_snapshot(snap(a=str(i)), f"v{i}"))
        sub.on_request(ack(resp.nonce))
    with pytest.raises(RemoteProtocolError):
        sub.on_request(ack("n1"))
    assert sub.on_request(ack("n2")) == []


def test_error_detail_without_nonce_closes_the_stream():
    sub, _ = opened(a="1")
    req = DeltaDiscoveryRequest(type_url=TYPE)
    req.error_detail.message = "something"
    with pytest.raises(RemoteProtocolError, match="without response_nonce"):
        sub.on_request(req)


def test_initial_versions_after_the_first_request_close_the_stream():
    sub, resp = opened(a="1")
    req = ack(resp.nonce)
    req.initial_resource_versions["a"] = "x"
    with pytest.raises(RemoteProtocolError, match="first request"):
        sub.on_request(req)


# --- local misuse ------------------------------------------------------------------------------


def test_request_of_another_type_is_a_routing_bug():
    sub = subscription()
    with pytest.raises(LocalProtocolError):
        sub.on_request(DeltaDiscoveryRequest(type_url=TYPE + "Other"))


@pytest.mark.parametrize(
    "resources",
    [
        {"a": XdsResource.build(TYPE, "b", b"1")},
        {"a": XdsResource.build(TYPE + "Other", "a", b"1")},
    ],
    ids=["key-is-not-the-name", "other-type"],
)
def test_snapshot_entries_must_match_name_and_type(resources):
    with pytest.raises(LocalProtocolError):
        subscription().on_snapshot(resources, "v1")


def test_repeated_nonce_from_the_factory_is_refused():
    sub = DeltaSubscription("node-1", TYPE, nonces=lambda: "same")
    sub.on_request(first())
    resp = only(sub.on_snapshot(snap(a="1"), "v1"))
    sub.on_request(ack(resp.nonce))
    with pytest.raises(LocalProtocolError, match="reused"):
        sub.on_snapshot(snap(a="2"), "v2")


# --- reconnect ---------------------------------------------------------------------------------


def test_reconnect_sends_only_differences_and_removes_what_should_not_be_held():
    sub = subscription()
    held = {"same": ver("1"), "old": ver("1"), "gone": ver("1")}
    sub.on_request(first(held))
    resp = only(sub.on_snapshot(snap(same="1", old="2", new="3"), "v7"))
    assert sent(resp) == {"old": ver("2"), "new": ver("3")}
    assert list(resp.removed_resources) == ["gone"]
    sub.on_request(ack(resp.nonce))
    assert sub.held() == {"same": ver("1"), "old": ver("2"), "new": ver("3")}


def test_reconnect_holding_exactly_the_snapshot_still_gets_one_empty_response():
    sub = subscription()
    sub.on_request(first({"a": ver("1")}))
    resp = only(sub.on_snapshot(snap(a="1"), "v1"))
    assert sent(resp) == {} and list(resp.removed_resources) == []


def test_initial_versions_without_versions_resend_everything():
    # ztunnel sends names with empty versions: correct, just not minimal.
    sub = subscription()
    sub.on_request(first({"a": ""}))
    assert sent(only(sub.on_snapshot(snap(a="1"), "v1"))) == {"a": ver("1")}


# --- subscription changes ----------------------------------------------------------------------


def test_explicit_names_get_only_those_and_unsubscribe_is_silent():
    sub = subscription()
    sub.on_request(first(subscribe=("a", "b")))
    resp = only(sub.on_snapshot(snap(a="1", b="2", c="3"), "v1"))
    assert sent(resp) == {"a": ver("1"), "b": ver("2")}
    sub.on_request(ack(resp.nonce))
    unsub = DeltaDiscoveryRequest(type_url=TYPE, resource_names_unsubscribe=["b"])
    assert sub.on_request(unsub) == []  # the client drops it itself
    assert sub.held() == {"a": ver("1")}
    resub = DeltaDiscoveryRequest(type_url=TYPE, resource_names_subscribe=["b", "c"])
    assert sent(only(sub.on_request(resub))) == {"b": ver("2"), "c": ver("3")}


def test_subscription_change_while_in_flight_is_coalesced():
    sub = subscription()
    sub.on_request(first(subscribe=("a",)))
    resp = only(sub.on_snapshot(snap(a="1", b="2"), "v1"))
    change = DeltaDiscoveryRequest(type_url=TYPE, resource_names_subscribe=["b"])
    assert sub.on_request(change) == []
    assert sent(only(sub.on_request(ack(resp.nonce)))) == {"b": ver("2")}


def test_ack_and_subscription_change_in_one_request():
    sub = subscription()
    sub.on_request(first(subscribe=("a",)))
    resp = only(sub.on_snapshot(snap(a="1", b="2"), "v1"))
    req = ack(resp.nonce)
    req.resource_names_subscribe.append("b")
    assert sent(only(sub.on_request(req))) == {"b": ver("2")}


def test_unsubscribing_the_wildcard_forgets_everything_not_named():
    sub = settled(a="1", b="2")
    change = DeltaDiscoveryRequest(
        type_url=TYPE, resource_names_subscribe=["a"], resource_names_unsubscribe=["*"]
    )
    assert sub.on_request(change) == []
    assert sub.held() == {"a": ver("1")}
    assert sub.on_snapshot(snap(a="1", b="3"), "v2") == []


# --- plan_push, the pure core ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "held", "rejected", "upserts", "removals"),
    [
        ({}, {}, {}, [], []),
        ({"a": "1"}, {}, {}, ["a"], []),
        ({"a": "1"}, {"a": "1"}, {}, [], []),
        ({"a": "2"}, {"a": "1"}, {}, ["a"], []),
        ({}, {"a": "1"}, {}, [], ["a"]),
        ({"a": "2"}, {"a": "1"}, {"a": "2"}, [], []),
        ({"a": "3"}, {"a": "1"}, {"a": "2"}, ["a"], []),
        ({"a": "1"}, {"a": "1"}, {"a": "2"}, ["a"], []),
        ({}, {}, {"a": "2"}, [], ["a"]),
        ({"b": "1", "a": "1"}, {"c": "1", "d": "1"}, {}, ["a", "b"], ["c", "d"]),
    ],
    ids=[
        "nothing",
        "new",
        "held",
        "changed",
        "gone",
        "refused-version",
        "newer-than-refused",
        "back-to-held-after-refusal",
        "refused-and-gone",
        "sorted",
    ],
)
def test_plan_push(wanted, held, rejected, upserts, removals):
    wanted_res = {n: res(n, p) for n, p in wanted.items()}
    held_v = {n: ver(p) for n, p in held.items()}
    rejected_v = {n: Rejection(ver(p), "why") for n, p in rejected.items()}
    got_upserts, got_removals = plan_push(wanted_res, held_v, rejected_v)
    assert [r.name for r in got_upserts] == upserts
    assert got_removals == removals


# --- observability -----------------------------------------------------------------------------


def test_state_is_json_ready_and_complete():
    sub, _ = opened(a="1")
    state = sub.state()
    assert json.loads(json.dumps(state)) == state
    assert state == {
        "subscriber": "node-1",
        "type_url": TYPE,
        "wildcard": True,
        "names": [],
        "snapshot_version": "v1",
        "last_sent_nonce": "n1",
        "last_sent_version": "v1",
        "last_acked_version": None,
        "last_ack_time": None,
        "in_flight_nonce": "n1",
        "pending": False,
        "held_resources": 0,
        "rejected": {},
        "pushes": 1,
        "acks": 0,
        "nacks": 0,
        "stale_replies": 0,
    }


# --- any input, any state ----------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
NONCES = st.sampled_from(["", "n1", "n2", "n3", "n4", "bogus"])


@st.composite
def requests(draw) -> DeltaDiscoveryRequest:
    req = DeltaDiscoveryRequest(
        type_url=TYPE,
        response_nonce=draw(NONCES),
        resource_names_subscribe=draw(st.lists(st.sampled_from(["*", "a", "b"]), max_size=2)),
        resource_names_unsubscribe=draw(st.lists(st.sampled_from(["*", "a", "b"]), max_size=2)),
    )
    if draw(st.booleans()):
        req.initial_resource_versions.update(draw(st.dictionaries(NAMES, st.text(max_size=3))))
    if draw(st.booleans()):
        rejected = draw(st.dictionaries(NAMES, st.text(max_size=5)))
        req.error_detail.CopyFrom(encode_nack(rejected))
    return req


snapshots = st.dictionaries(NAMES, st.sampled_from(["1", "2", "3"])).map(lambda d: snap(**d))


@settings(max_examples=300)
@given(st.lists(st.one_of(requests(), snapshots), max_size=12))
def test_any_input_gives_at_most_one_response_in_flight_or_a_protocol_error(inputs):
    sub = subscription()
    for item in inputs:
        was_in_flight = sub.in_flight_nonce
        try:
            if isinstance(item, DeltaDiscoveryRequest):
                out = sub.on_request(item)
            else:
                out = sub.on_snapshot(item, "v")
        except ProtocolError:
            return  # the shell closes the stream; this subscription is done
        assert len(out) <= 1
        if out:
            assert sub.in_flight_nonce == out[0].nonce
        if out and was_in_flight:  # only the reply to the one in flight makes room for the next
            assert isinstance(item, DeltaDiscoveryRequest)
            assert item.response_nonce == was_in_flight
