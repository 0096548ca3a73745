"""The reporter's send policy (nodemesh.flows.batch) and the wire form (nodemesh.flows.wire).

Time is an argument, so every case says exactly when events arrived and asks what is due.
"""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from nodemesh.flows import Endpoint, FlowEvent, FlowEventError, FlowRing, FlowVerdict, Point
from nodemesh.flows.batch import BatchCursor
from nodemesh.flows.wire import from_message, to_message
from nodemesh.proto import flows_pb2
from tests.unit.flows.events import event


def fill(ring: FlowRing, cursor: BatchCursor, count: int, now: float) -> None:
    for _ in range(count):
        ring.append(event(flow_id=f"f/{ring.last + 1}"))
        cursor.noted(now)


def test_nothing_recorded_nothing_due():
    cursor = BatchCursor(FlowRing(16))
    assert cursor.due_in(5.0) is None and cursor.pending == 0


def test_a_lone_event_waits_max_delay_from_when_it_was_noted():
    ring = FlowRing(16)
    cursor = BatchCursor(ring, max_batch=4, max_delay=0.1)
    fill(ring, cursor, 1, now=10.0)
    assert cursor.due_in(10.0) == pytest.approx(0.1)
    assert cursor.due_in(10.06) == pytest.approx(0.04)
    fill(ring, cursor, 1, now=10.07)  # a later event does not restart the clock
    assert cursor.due_in(10.1) == 0.0
    batch = cursor.take()
    assert [e.flow_id for e in batch.events] == ["f/1", "f/2"] and batch.dropped == 0
    assert cursor.due_in(10.2) is None


def test_a_full_batch_is_due_at_once_and_takes_at_most_max_batch():
    ring = FlowRing(64)
    cursor = BatchCursor(ring, max_batch=4, max_delay=0.1)
    fill(ring, cursor, 3, now=1.0)
    assert cursor.due_in(1.0) > 0
    fill(ring, cursor, 6, now=1.0)
    assert cursor.due_in(1.0) == 0.0
    assert len(cursor.take().events) == 4
    # five left, more than a batch's worth: due again at once
    assert cursor.due_in(1.0) == 0.0
    assert len(cursor.take().events) == 4
    # one left: it has waited since 1.0 already, so it does not get a fresh delay
    assert cursor.due_in(1.05) == pytest.approx(0.05)
    assert [e.flow_id for e in cursor.take().events] == ["f/9"]


def test_events_overwritten_while_away_are_counted_once_as_dropped():
    ring = FlowRing(8)
    cursor = BatchCursor(ring, max_batch=100, max_delay=0.1)
    fill(ring, cursor, 3, now=0.0)
    cursor.take()
    fill(ring, cursor, 20, now=1.0)  # controller away: the ring keeps the newest 8
    assert cursor.pending == 20
    batch = cursor.take()
    assert batch.dropped == 12
    assert [e.flow_id for e in batch.events] == [f"f/{n}" for n in range(16, 24)]
    fill(ring, cursor, 1, now=2.0)
    assert cursor.take().dropped == 0


def test_bad_limits_are_refused_with_the_values():
    with pytest.raises(ValueError, match="max_batch >= 1"):
        BatchCursor(FlowRing(4), max_batch=0)


@pytest.mark.parametrize(
    "original",
    [
        event(),
        event(http=None, service=None, point=Point.SOURCE_AGENT, route="waypoint"),
        event(verdict=FlowVerdict.DENIED, policy="shop/deny", rule=0, reason=""),
        event(source=Endpoint(address="198.18.1.5"), destination=Endpoint(), http=None),
        event(http=replace(event().http, status=0, trace_id=None, route=None, latency_ms=0.0)),
    ],
)
def test_wire_round_trip_keeps_every_field(original):
    wire = to_message(original).SerializeToString()
    assert from_message(flows_pb2.FlowEvent.FromString(wire)) == original


def test_wire_keeps_empty_string_apart_from_absent():
    original = event(source=Endpoint(namespace="", name="x"), service="")
    assert from_message(to_message(original)) == original


def test_wire_refuses_an_unknown_point_naming_it():
    msg = to_message(event())
    msg.point = "teleported"
    with pytest.raises(FlowEventError, match="teleported"):
        from_message(msg)


def test_the_message_has_a_field_for_every_field_of_the_event():
    """A field added to FlowEvent but not to flows.proto would vanish in the relay."""
    missing = {f.name for f in fields(FlowEvent)} - set(
        flows_pb2.FlowEvent.DESCRIPTOR.fields_by_name
    )
    assert not missing, f"add {sorted(missing)} to nodemesh/proto/flows.proto and regenerate"


def test_every_optional_text_field_survives_the_wire():
    texts = {f.name: f"{f.name}-value" for f in fields(FlowEvent) if f.default is None}
    texts.pop("http")
    texts["rule"] = 3
    original = replace(event(), **texts)
    assert from_message(to_message(original)) == original
