"""live_trace's collection loop on a reused tunnel: it stops as soon as every hop is found.

A waypoint that reuses an upstream tunnel leaves the destination decision in the history
(`FlowReader.start`), recorded when the tunnel opened, not among the events read after the probe.
The collector must match against that history on every poll, or it can never see the probe as
complete and polls until `collect_for` runs out. Polls are counted with a fake reader; nothing
is timed.
"""

from __future__ import annotations

from dataclasses import replace

from nodemesh.trace import Component, Verdict
from nodemesh.trace.live import live_trace
from tests.unit.flows.events import T0
from tests.unit.trace.live_events import DELIVERED, DESTINATION, SOURCE, TUNNEL, WAYPOINT
from tests.unit.trace.test_live import PLAN, Clock

OURS = "198.18.2.9:41234>198.18.2.7:15008#1"
EARLIER_TP = f"00-{'a' * 32}-00f067aa0ba902b7-01"
OPENED = replace(DESTINATION, time=T0 - 30, flow_id="node2/1", tunnel=OURS, traceparent=EARLIER_TP)
WAYPOINT_ON_OURS = replace(WAYPOINT, tunnel=OURS)
COLLECT_FOR, INTERVAL = 3.0, 0.25  # at most 13 polls


class Flows:
    """A FlowReader holding `history` from before the probe, then one round per poll."""

    def __init__(self, history, rounds) -> None:
        self.history, self.rounds, self.polls = list(history), list(rounds), 0

    def start(self):
        return list(self.history)

    def next(self):
        self.polls += 1
        return self.rounds.pop(0) if self.rounds else []


def trace_with(flows: Flows):
    clock = Clock()
    return live_trace(
        PLAN,
        run=lambda argv, timeout: (0, "200 0.010", ""),
        flows=flows,
        clock=clock,
        sleep=clock.sleep,
        collect_for=COLLECT_FOR,
        interval=INTERVAL,
    )


def destination_hop(trace):
    return next(h for h in trace.hops if h.component is Component.DESTINATION_AGENT)


def test_a_reused_tunnel_stops_collecting_once_the_source_agent_has_reported():
    flows = Flows([OPENED], [[SOURCE, WAYPOINT_ON_OURS], [TUNNEL]])
    trace = trace_with(flows)
    assert flows.polls == 2  # not one more: the decision came from the history
    assert trace.verdict is Verdict.FORWARDED
    assert "reused for this request" in destination_hop(trace).reason


def test_a_reused_tunnel_still_waits_for_the_source_agents_tunnel_event():
    flows = Flows([OPENED], [[SOURCE], [WAYPOINT_ON_OURS], [], [TUNNEL]])
    trace_with(flows)
    assert flows.polls == 4


def test_a_tunnel_opened_for_the_probe_is_unaffected_by_the_history():
    ours = replace(OPENED, time=T0 + 0.02, flow_id="node2/3", traceparent=None)
    delivered = replace(DELIVERED, flow_id="node2/3", tunnel=OURS)
    flows = Flows([], [[SOURCE, WAYPOINT_ON_OURS, ours], [TUNNEL, delivered]])
    trace = trace_with(flows)
    assert flows.polls == 2
    assert trace.stopped_at.component is Component.DELIVERY


def test_with_no_decision_anywhere_collection_runs_to_its_bound():
    flows = Flows([], [[SOURCE, WAYPOINT_ON_OURS, TUNNEL]])
    trace_with(flows)
    assert flows.polls == round(COLLECT_FOR / INTERVAL) + 1
