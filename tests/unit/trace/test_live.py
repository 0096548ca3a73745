"""live_trace's sequence with fake seams: cursor first, probe, then polls until complete."""

from nodemesh.trace import Component, Verdict
from nodemesh.trace.live import LivePlan, live_trace
from nodemesh.trace.live_probe import Marks
from nodemesh.trace.probe import HttpProbe, Target
from tests.unit.flows.events import T0
from tests.unit.trace.live_events import ALL, PORT, TRACE_ID

MARKS = Marks(PORT, TRACE_ID, "00f067aa0ba902b7")
PLAN = LivePlan("shop", "client", Target("10.96.0.10", 80, "Service shop/web"), HttpProbe(), MARKS)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Flows:
    def __init__(self, rounds) -> None:
        self.rounds, self.calls = list(rounds), []

    def start(self):
        self.calls.append("start")
        return []

    def next(self):
        self.calls.append("next")
        return self.rounds.pop(0) if self.rounds else []


def test_probe_runs_after_the_cursors_and_collection_stops_when_complete():
    clock, flows, ran = Clock(), Flows([ALL[:2], ALL[2:]]), []

    def run(argv, timeout):
        ran.append((list(flows.calls), argv))
        return 0, "200 0.010", ""

    trace = live_trace(PLAN, run=run, flows=flows, clock=clock, sleep=clock.sleep)
    assert ran[0][0] == ["start"] and f"traceparent: {MARKS.traceparent}" in ran[0][1]
    assert flows.calls == ["start", "next", "next"]
    assert trace.verdict is Verdict.FORWARDED and trace.stopped_at.component is Component.DELIVERY
    assert trace.destination == "Service shop/web (10.96.0.10:80)"


def test_collection_is_bounded_when_events_never_come():
    clock, flows = Clock(), Flows([])
    trace = live_trace(
        PLAN,
        run=lambda argv, t: (0, "200 0.010", ""),
        flows=flows,
        clock=clock,
        sleep=clock.sleep,
        collect_for=1.0,
        interval=0.25,
    )
    assert flows.calls.count("next") == 5
    assert trace.hops[0].decision == "not captured"
