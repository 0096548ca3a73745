"""waypoint.spans: a span per request (ids, name, times, attributes, status), the ring."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.telemetry import ResponseFlag
from tests.unit.waypoint.records import (
    PARENT_ID,
    SPAN_ID,
    T0,
    TRACE_ID,
    WEB_ID,
    grpc_head,
    head,
    record,
)
from waypoint.messages import ResponseHead
from waypoint.record import AuthzOutcome
from waypoint.spans import Span, SpanRecorder, SpanStatus, span_of
from waypoint.tracing import TraceContext


def span(i: int, trace_id: str = TRACE_ID) -> Span:
    return Span(trace_id, f"{i + 1:016x}", None, f"GET /{i}", T0 + i, T0 + i + 1, True)


def test_span_ids_times_and_name():
    s = span_of(record(duration=0.25))
    assert (s.trace_id, s.span_id, s.parent_span_id) == (TRACE_ID, SPAN_ID, PARENT_ID)
    assert (s.start_time, s.end_time) == (T0, T0 + 0.25)
    assert s.name == "GET shop/cart"
    assert s.sampled


def test_span_name_falls_back_to_the_path_without_query():
    assert span_of(record(route_name=None)).name == "GET /cart/items"


def test_root_span_has_no_parent():
    assert span_of(record(parent_span_id=None)).parent_span_id is None


def test_unsampled_trace_is_still_recorded_with_its_flag():
    s = span_of(record(trace=TraceContext(TRACE_ID, SPAN_ID, 0)))
    assert s is not None and not s.sampled


def test_untraced_record_has_no_span():
    assert span_of(record(trace=None)) is None


def test_attributes():
    attrs = span_of(record()).attributes
    assert attrs["http.method"] == "GET"
    assert attrs["http.status_code"] == 200
    assert attrs["nodemesh.source.workload"] == "shop/web"
    assert attrs["nodemesh.source.principal"] == WEB_ID
    assert attrs["nodemesh.destination.workload"] == "shop/cart-0"
    assert attrs["nodemesh.upstream"] == "198.18.2.7:8080"
    assert attrs["nodemesh.response_flags"] == "-"
    assert "nodemesh.authz.decision" not in attrs  # no policy applied: nothing to say
    assert "rpc.grpc.status_code" not in attrs


def test_denied_request_attributes():
    r = record(
        response=ResponseHead(403),
        authz=AuthzOutcome(False, "shop/no-writes", 0),
        flags=frozenset({ResponseFlag.DENY}),
    )
    s = span_of(r)
    assert s.attributes["nodemesh.authz.decision"] == "deny"
    assert s.attributes["nodemesh.authz.policy"] == "shop/no-writes"
    assert s.attributes["nodemesh.response_flags"] == "DENY"
    assert s.status is SpanStatus.UNSET  # a 4xx is the client's, not the server's, error


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({}, SpanStatus.UNSET),
        ({"response": ResponseHead(404)}, SpanStatus.UNSET),
        ({"response": ResponseHead(503)}, SpanStatus.ERROR),
        ({"response": None}, SpanStatus.ERROR),
        ({"request": grpc_head(), "trailers": (("grpc-status", "14"),)}, SpanStatus.ERROR),
        ({"request": grpc_head(), "trailers": (("grpc-status", "5"),)}, SpanStatus.UNSET),
        ({"request": grpc_head(), "trailers": (("grpc-status", "0"),)}, SpanStatus.UNSET),
    ],
)
def test_status(overrides, status):
    assert span_of(record(**overrides)).status is status


def test_grpc_attribute():
    r = record(request=grpc_head(), trailers=(("grpc-status", "5"),))
    assert span_of(r).attributes["rpc.grpc.status_code"] == 5


def test_to_dict_is_json_ready():
    d = span_of(record()).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["status"] == "unset" and d["attributes"]["http.method"] == "GET"


# --- the ring -------------------------------------------------------------------------------------


def test_ring_keeps_the_last_n_oldest_first():
    ring = SpanRecorder(capacity=3)
    for i in range(5):
        ring.add(span(i))
    assert len(ring) == 3
    assert [s.name for s in ring.spans()] == ["GET /2", "GET /3", "GET /4"]


@given(st.integers(1, 20), st.integers(0, 60))
def test_ring_never_exceeds_its_capacity(capacity, added):
    ring = SpanRecorder(capacity)
    for i in range(added):
        ring.add(span(i))
    assert len(ring) == min(capacity, added)
    kept = ring.spans()
    assert [s.start_time for s in kept] == [T0 + i for i in range(added - len(kept), added)]


def test_ring_finds_one_trace():
    ring = SpanRecorder(capacity=10)
    other = "a" * 32
    for i in range(4):
        ring.add(span(i, TRACE_ID if i % 2 else other))
    assert [s.name for s in ring.trace(TRACE_ID)] == ["GET /1", "GET /3"]
    assert ring.trace("b" * 32) == []


def test_record_makes_and_keeps_the_span():
    ring = SpanRecorder(capacity=2)
    made = ring.record(record(request=head("POST", "/cart")))
    assert ring.spans() == [made]
    assert ring.record(record(trace=None)) is None
    assert len(ring) == 1


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        SpanRecorder(capacity=0)
