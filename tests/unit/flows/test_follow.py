"""Following many rings: per-source cursors, "now" vs history, merging by time, one line each."""

from __future__ import annotations

from nodemesh.flows import FlowFilter, FlowRing, FlowVerdict, Follower, line, merge, tail
from tests.unit.flows.events import T0, event


def answer(ring: FlowRing, path: str) -> dict:
    """What the admin route answers for `path` (the query part parsed the simple way)."""
    query = dict(p.split("=") for p in path.split("?", 1)[1].split("&"))
    return ring.since(int(query["since"]), int(query["limit"])).to_dict()


def test_following_from_now_skips_history_then_sees_only_new_events():
    ring = FlowRing(10)
    ring.append(event(flow_id="old"))
    follower = Follower(history=False)
    assert follower.receive("a", answer(ring, follower.path("a"))) == []
    ring.append(event(flow_id="new"))
    got = follower.receive("a", answer(ring, follower.path("a")))
    assert [e.flow_id for e in got] == ["new"]
    assert follower.receive("a", answer(ring, follower.path("a"))) == []


def test_history_reads_each_ring_from_its_start():
    ring = FlowRing(10)
    ring.append(event(flow_id="old"))
    follower = Follower(history=True)
    assert [e.flow_id for e in follower.receive("a", answer(ring, follower.path("a")))] == ["old"]


def test_a_source_joining_after_the_first_round_is_read_whole():
    late = FlowRing(10)
    late.append(event(flow_id="first request through a new waypoint"))
    follower = Follower(history=False)
    follower.started = True
    assert len(follower.receive("late", answer(late, follower.path("late")))) == 1


def test_cursors_are_per_source_and_losses_are_counted():
    small, big = FlowRing(1), FlowRing(10)
    follower = Follower(history=True)
    for ring in (small, big):
        ring.append(event())
        ring.append(event())
    follower.receive("small", answer(small, follower.path("small")))
    follower.receive("big", answer(big, follower.path("big")))
    assert follower.cursors == {"small": 2, "big": 2}
    assert follower.missed == {"small": 1, "big": 0}
    assert "since=2" in follower.path("small")


def test_merge_orders_by_time_across_sources_and_filters():
    a = [event(time=T0 + 2, flow_id="a2"), event(time=T0, flow_id="a0")]
    b = [event(time=T0 + 1, flow_id="b1", verdict=FlowVerdict.DENIED)]
    assert [e.flow_id for e in merge([a, b], FlowFilter())] == ["a0", "b1", "a2"]
    assert [e.flow_id for e in merge([a, b], FlowFilter.parse(verdict="DENIED"))] == ["b1"]


def test_tail_keeps_the_last_n():
    events = [event(flow_id=str(i)) for i in range(5)]
    assert [e.flow_id for e in tail(events, 2)] == ["3", "4"]
    assert tail(events, 0) == [] and tail(events, None) == events


def test_a_line_names_both_sides_the_request_and_who_denied():
    text = line(
        event(
            time=1_700_000_000.25,
            verdict=FlowVerdict.DENIED,
            policy="shop/web-public",
            rule=0,
            reason="no ALLOW rule matched",
        )
    )
    assert text.startswith("22:13:20.250 ")
    assert "shop/client → shop/web-v1" in text and "GET /public 200 12.5ms" in text
    assert "DENIED by shop/web-public rule 0" in text and "(no ALLOW rule matched)" in text
