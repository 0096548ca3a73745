"""waypoint.accesslog: the JSON line's shape, its values, and the denial fields."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from nodemesh.authz.decision import Decision, DecisionCode
from nodemesh.telemetry import ResponseFlag, rfc3339
from tests.unit.waypoint.records import CART_ID, SPAN_ID, TRACE_ID, WEB_ID, grpc_head, head, record
from waypoint.accesslog import access_log, access_log_line, render_line, start_time
from waypoint.messages import Peer, ResponseHead
from waypoint.record import AuthzOutcome

# Istio's default JSON access log keys, written out here.
ISTIO_KEYS = {
    "start_time",
    "route_name",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
    "x_forwarded_for",
    "user_agent",
    "request_id",
    "authority",
    "upstream_host",
    "upstream_cluster",
    "downstream_local_address",
    "downstream_remote_address",
}
DENIED = AuthzOutcome(False, "shop/no-writes", 0, "DENY policy shop/no-writes rule 0 matched")


def test_line_is_one_compact_json_object():
    line = access_log_line(record())
    assert "\n" not in line and ", " not in line
    assert json.loads(line) == access_log(record())


def test_values_of_a_successful_request():
    entry = access_log(record())
    assert entry.keys() >= ISTIO_KEYS
    expected = {
        "start_time": "2023-11-14T22:13:20.000Z",
        "method": "GET",
        "path": "/cart/items?page=2",
        "protocol": "HTTP/1.1",
        "authority": "cart.shop:80",
        "user_agent": "curl/8.5",
        "x_forwarded_for": "203.0.113.9",
        "request_id": "5b9e1c2a-0d3f-4e7a-9b1c-2d3e4f5a6b7c",
        "response_code": 200,
        "response_flags": "-",
        "bytes_received": 10,  # body bytes, as Envoy's %BYTES_RECEIVED%
        "bytes_sent": 1400,
        "duration": 12,  # 12.5 ms, truncated to whole milliseconds as Envoy does
        "upstream_service_time": 10,
        "upstream_host": "198.18.2.7:8080",
        "upstream_cluster": "outbound|80||cart.shop.svc.cluster.local",
        "route_name": "shop/cart",
        "downstream_remote_address": "198.18.1.2:40000",
        "downstream_local_address": "198.18.128.20:80",
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "source_workload": "web",
        "source_namespace": "shop",
        "source_principal": WEB_ID,
        "destination_workload": "cart-0",
        "destination_principal": CART_ID,
        "destination_service": "cart.shop.svc.cluster.local",
        "connection_security_policy": "mutual_tls",
        "grpc_status": None,
        "retries": 0,
    }
    assert {k: entry[k] for k in expected} == expected


def test_unknown_values_are_null_and_every_key_stays():
    bare = record(
        response=None,
        request=grpc_head(),
        source=None,
        destination=None,
        service=None,
        destination_principal=None,
        upstream_address=None,
        upstream_cluster=None,
        upstream_duration=None,
        route_name=None,
        request_id=None,
        trace=None,
        peer=Peer(None, ("2001:db8::7", 5555), ("198.18.128.20", 80)),
        flags=frozenset({ResponseFlag.DOWNSTREAM_TERMINATED}),
    )
    entry = access_log(bare)
    assert entry.keys() == access_log(record()).keys()  # same shape, always
    for key in ("upstream_host", "route_name", "trace_id", "source_workload", "user_agent"):
        assert entry[key] is None, key
    assert (entry["response_code"], entry["response_flags"]) == (0, "DC")
    assert entry["grpc_status"] is None  # gRPC, but no response to take a status from
    assert entry["downstream_remote_address"] == "[2001:db8::7]:5555"
    assert entry["connection_security_policy"] == "none"


def test_request_id_falls_back_to_the_header():
    r = record(request_id=None, request=head(headers=(("x-request-id", "abc"),)))
    assert access_log(r)["request_id"] == "abc"


def test_durations_truncate_to_milliseconds():
    entry = access_log(record(duration=0.029, upstream_duration=0.0009999))
    assert (entry["duration"], entry["upstream_service_time"]) == (29, 0)


def test_grpc_status_from_trailers():
    r = record(request=grpc_head(), trailers=(("grpc-status", "5"),))
    assert access_log(r)["grpc_status"] == 5


def test_denied_request_names_the_policy():
    entry = access_log(
        record(response=ResponseHead(403), authz=DENIED, flags=frozenset({ResponseFlag.DENY}))
    )
    assert entry["response_flags"] == "DENY"
    assert entry["authz_decision"] == "deny"
    assert entry["authz_policy"] == "shop/no-writes"
    assert entry["authz_rule"] == 0
    assert "rule 0 matched" in entry["authz_reason"]


def test_the_authz_packages_decision_is_accepted_as_is():
    denied = Decision(False, "DENY", DecisionCode.DENIED_BY_DENY, "port matched", "shop/x", 2)
    entry = access_log(record(response=ResponseHead(403), authz=denied))
    assert (entry["authz_decision"], entry["authz_policy"], entry["authz_rule"]) == (
        "deny",
        "shop/x",
        2,
    )


def test_allowed_request_has_no_authz_keys():
    entry = access_log(record(authz=AuthzOutcome(True, "shop/allow-web", 0)))
    assert not any(k.startswith("authz_") for k in entry)


def test_rendered_line_is_exactly_what_the_json_encoder_writes():
    encoder = json.JSONEncoder(separators=(",", ":"))
    weird = head(path='/a"b\\c\n\x00é%s%%', headers=[("user-agent", "ü\u2028 \t%d")])
    denied = AuthzOutcome(False, "shop/no-writes", 0, "no rule allows it")
    for r in (record(), record(request=weird), record(authz=denied), record(response=None)):
        entry = access_log(r)
        assert access_log_line(r) == encoder.encode(entry)
    odd = {"a%s": True, "b": 1.5, "c": [1, "x"], "d": None, "e": -3, "f": "%(x)s"}
    assert render_line(odd) == encoder.encode(odd)


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)
    | st.integers(0, 4_102_444_800).map(lambda s: s + 0.0005)
    | st.integers(0, 4_102_444_800).map(lambda s: s + 0.9999995)
    | st.integers(0, 4_102_444_800).map(lambda s: s + 0.0015)
)
def test_start_time_is_rfc3339_to_the_millisecond(ts):
    assert start_time(ts) == rfc3339(ts)
