"""`meshctl trace FROM TO` without `--explain`: send a real probe and read its path back.

Theory of operation, in four steps, each behind a seam so the sequence is tested without pods:

1. `FlowReader.start` notes every component's flow cursor (and keeps its recent events, for a
   waypoint's reused upstream connection, see `nodemesh.trace.live_match`);
2. `Runner` runs the probe command (`nodemesh.trace.live_probe`) in FROM's pod, bounded by
   a timeout; the probe carries marks (local port, trace id) chosen before it is sent;
3. `FlowReader.next` is polled every `interval` until the probe's events are complete (the far
   end reported, or a component refused) or `collect_for` seconds have passed;
4. the matched events become a `Trace` (`nodemesh.trace.live_hops`), mode "live".

Time comes from injected clocks: `clock` is Unix time (the events' timescale), `sleep` waits.
The local cluster's reader and runner live in `nodemesh.trace.live_local`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from nodemesh.flows.event import FlowEvent
from nodemesh.trace.hops import Trace
from nodemesh.trace.live_hops import Context, build_trace, capture_of
from nodemesh.trace.live_match import Observed, ProbeKey, match
from nodemesh.trace.live_probe import Marks, probe_argv, read_result
from nodemesh.trace.probe import HttpProbe, Target

COLLECT_FOR = 3.0  # seconds to wait for the probe's events after it finished
INTERVAL = 0.2  # seconds between polls of every component
PROBE_TIMEOUT = 5.0  # seconds the probe itself may take


class Runner(Protocol):
    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Run `argv` in FROM's pod; (exit code, stdout, stderr)."""


class FlowReader(Protocol):
    def start(self) -> list[FlowEvent]:
        """Record every component's cursor; the events they hold already (recent history)."""

    def next(self) -> list[FlowEvent]:
        """Events recorded since the previous call, from every component."""


@dataclass(frozen=True)
class LivePlan:
    """One probe: from which pod, to which address, what to send, and how it is marked."""

    namespace: str  # FROM's
    name: str
    target: Target
    http: HttpProbe | None
    marks: Marks
    timeout: float = PROBE_TIMEOUT


def live_trace(
    plan: LivePlan,
    *,
    run: Runner,
    flows: FlowReader,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    collect_for: float = COLLECT_FOR,
    interval: float = INTERVAL,
) -> Trace:
    """Send the probe, collect its events, and build the live trace (see module docstring)."""
    history = flows.start()
    start = clock()
    http = plan.http
    code, out, err = run(
        probe_argv(plan.target.ip, plan.target.port, http, plan.marks, plan.timeout),
        plan.timeout + 2.0,
    )
    result = read_result(http is not None, code, out, err)
    key = ProbeKey(
        plan.namespace,
        plan.name,
        plan.marks.local_port,
        plan.marks.trace_id if http is not None else None,
        start,
        clock(),
    )
    observed, events = _collect(flows, key, history, clock, sleep, collect_for, interval)
    request = f"{http.method} {http.path}" if http else None
    target = plan.target
    ctx = Context(
        source=f"{plan.namespace}/{plan.name}",
        destination=f"{target.label} ({target.ip}:{target.port})",
        request=request,
        start=start,
        local_port=plan.marks.local_port,
    )
    return build_trace(observed, result, ctx, capture_of(events, observed))


def _collect(
    flows, key, history, clock, sleep, collect_for, interval
) -> tuple[Observed, list[FlowEvent]]:
    """Poll until the probe's events are complete or `collect_for` has passed; the match and
    every event read. Every poll matches against `history` too: on a reused tunnel the
    destination decision is only there, so without it the match could never be complete and
    the trace would wait out the whole window."""
    events: list[FlowEvent] = []
    deadline = clock() + collect_for
    while True:
        events += flows.next()
        observed = match(events, key, history)
        if observed.complete or clock() >= deadline:
            return observed, events
        sleep(interval)
