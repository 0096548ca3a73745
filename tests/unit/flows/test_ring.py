"""FlowRing: bounded, numbered, read by cursor; losses are reported, not hidden."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.flows import FlowRing
from tests.unit.flows.events import event


def filled(capacity: int, count: int) -> FlowRing:
    ring = FlowRing(capacity)
    for i in range(count):
        ring.append(event(flow_id=str(i + 1)))
    return ring


def ids(page) -> list[str]:
    return [e.flow_id for _, e in page.events]


def test_sequence_numbers_start_at_one_and_follow_appends():
    ring = FlowRing(4)
    assert ring.last == 0 and ring.since(0).events == ()
    assert [ring.append(event()) for _ in range(3)] == [1, 2, 3]
    page = ring.since(0)
    assert [seq for seq, _ in page.events] == [1, 2, 3] and page.next == 3 and page.missed == 0


def test_a_full_ring_forgets_the_oldest_and_says_how_many_a_reader_missed():
    ring = filled(3, 5)
    assert len(ring) == 3 and ring.first == 3
    page = ring.since(0)
    assert ids(page) == ["3", "4", "5"] and page.missed == 2 and page.next == 5


def test_limit_pages_through_and_next_resumes():
    ring = filled(10, 7)
    first = ring.since(0, limit=3)
    assert ids(first) == ["1", "2", "3"] and first.next == 3
    second = ring.since(first.next, limit=3)
    assert ids(second) == ["4", "5", "6"]
    assert ids(ring.since(second.next, limit=3)) == ["7"]


def test_nothing_new_keeps_the_cursor():
    ring = filled(4, 2)
    page = ring.since(2)
    assert page.events == () and page.next == 2 and page.missed == 0


def test_a_negative_cursor_reads_the_last_n():
    assert ids(filled(10, 6).since(-2)) == ["5", "6"]
    assert ids(filled(10, 1).since(-5)) == ["1"]


def test_a_cursor_ahead_of_the_ring_means_a_restart_and_reads_from_the_start():
    assert ids(filled(10, 2).since(40)) == ["1", "2"]


def test_subscribers_hear_every_append_until_they_cancel():
    ring = FlowRing(2)
    heard: list[int] = []
    sub = ring.subscribe(heard.append)
    ring.append(event())
    ring.append(event())
    sub.cancel()
    sub.cancel()  # twice is harmless
    ring.append(event())
    assert heard == [1, 2]


def test_a_ring_needs_room():
    with pytest.raises(ValueError, match="at least one"):
        FlowRing(0)


@given(
    capacity=st.integers(1, 8),
    steps=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6)), max_size=20),
)
def test_a_reader_sees_each_event_once_in_order_and_counts_the_rest_as_missed(capacity, steps):
    """Any interleaving of appends and paged reads: seen + missed == appended, no repeats."""
    ring, cursor, seen, missed, appended = FlowRing(capacity), 0, [], 0, 0
    for burst, limit in steps:
        for _ in range(burst):
            appended += 1
            ring.append(event(flow_id=str(appended)))
        page = ring.since(cursor, limit)
        seen += [int(i) for i in ids(page)]
        missed += page.missed
        cursor = page.next
    while (page := ring.since(cursor, 3)).events:
        seen += [int(i) for i in ids(page)]
        missed += page.missed
        cursor = page.next
    assert seen == sorted(set(seen))
    assert len(seen) + missed == appended
