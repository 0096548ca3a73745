"""Capture events: what the eBPF hooks decided about each connection, as flow events.

Theory of operation. connect4/connect6 (outbound) and sk_lookup (inbound) write one
`nodemesh_event_v2` per decision into the ring buffer `nodemesh_events_v2` (bpf/README.md,
"Capture events"). The agent reads it without a thread and without polling: the ring's epoll fd
sits in the event loop (`loop.add_reader`), and when it turns readable `ring_buffer__consume`
hands every waiting record to a ctypes callback (node_agent.libbpf.RingBuffer), which decodes it
(node_agent.bpf_types.CaptureEvent).

Joining an outbound capture with its connection. connect4 runs before the kernel has chosen the
source port, so its event carries the client socket's cookie instead; sock_ops copies that cookie
into the original-destination record, and the agent gets it back when it accepts the connection
(`original_destination` → `CaptureProgram.take_original`), together with the client's port. When
the connection record opens, `nodemesh.flows.agent.AgentFlows` asks `claim(record)` for the
capture of (pod, client port): the event is written at point "captured" with the connection's
own flow_id, right before its source-agent event, so `meshctl trace` puts it on the same flow.
The record is always in the ring by then (connect4 writes it before the SYN leaves), so `claim`
consumes the ring first instead of waiting.

Joining an inbound capture. sk_lookup runs on the SYN and knows the client's address, port
included; the agent's plaintext handler (node_agent.pod) accepts the connection on 15006 and
records the same address as its source. So an inbound capture is held by (pod, client address)
and claimed by the inbound record that opens with that key, written right before the
destination-agent event. Over HBONE (15008) sk_lookup passes the tunnel's TCP connection, one for
many streams, and the records carry the client's IP only (port 0): nothing to join, no claim.

A capture nobody claims within `JOIN_WAIT` (the agent's listener was gone, the client gave up)
is written alone, with a flow_id of its own. Passed connections are written at once: the agent
never accepts them.

Time. The hooks stamp `bpf_ktime_get_boot_ns()` (CLOCK_BOOTTIME: unlike CLOCK_MONOTONIC it keeps
counting through a suspend, so one offset maps it to Unix time for the machine's whole life).
`boot_offset()` is Unix time minus CLOCK_BOOTTIME, measured once per batch of records so a
stepped wall clock is followed; `to_unix` adds it.

`CaptureJoin` is the sans-I/O part (captures and accepts in, flow-ready captures out);
`CaptureEvents` is the agent's I/O shell around it and a `CaptureProgram`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from node_agent import bpf_types as bt
from node_agent.capture import CaptureProgram

log = logging.getLogger("nodemesh.agent.capture")
JOIN_WAIT = 2.0  # seconds an outbound capture waits for the agent to accept its connection
MAX_HELD = 4096  # captures (and accepts) held for joining; the oldest go first beyond it


def boot_offset(
    wall: Callable[[], float] = time.time,
    boot: Callable[[], float] = lambda: time.clock_gettime(time.CLOCK_BOOTTIME),
) -> float:
    """Unix time minus CLOCK_BOOTTIME, now (seconds): add it to a boot-clock reading."""
    return wall() - boot()


def to_unix(boot_ns: int, offset: float) -> float:
    """A `bpf_ktime_get_boot_ns()` stamp as Unix time, given `boot_offset()`."""
    return boot_ns / 1e9 + offset


@dataclass(frozen=True)
class Capture:
    """One hook decision, as nodemesh.flows.agent reads it (by attribute: it imports no
    node_agent). Addresses are (ip, port); an outbound `source` port is 0 unless bound."""

    time: float  # Unix time
    direction: str  # "outbound" | "inbound"
    captured: bool
    reason: str  # Reason.label: "redirected", "agent-mark", "excluded", ...
    explanation: str  # what the reason means, for the operator
    hook: str  # "connect4", "connect6", "sk_lookup"
    pod_id: str | None
    source: tuple[str, int]
    original_destination: tuple[str, int]
    listener: tuple[str, int] | None  # where a captured connection went
    socket_cookie: int

    @classmethod
    def of(cls, event: bt.CaptureEvent, offset: float) -> Capture:
        return cls(
            time=to_unix(event.time_ns, offset),
            direction="outbound" if event.direction is bt.Direction.OUTBOUND else "inbound",
            captured=event.captured,
            reason=event.reason.label,
            explanation=bt.REASON_TEXT[event.reason],
            hook=event.hook.name.lower(),
            pod_id=event.pod_id,
            source=event.src,
            original_destination=event.original_dst,
            listener=event.listener,
            socket_cookie=event.socket_cookie,
        )


class CaptureJoin:
    """Holds captured connections until their record claims them (see the module docstring).

    `add` returns what is to be written alone right away; `accepted` notes an outbound
    connection's socket cookie; `claim` hands over the capture of an outbound (pod, client port)
    once, `claim_inbound` that of an inbound (pod, client address); `expired` returns the
    captures that waited longer than `wait` seconds."""

    def __init__(self, wait: float = JOIN_WAIT, limit: int = MAX_HELD) -> None:
        self.wait, self.limit = wait, limit
        # Outbound by socket cookie, inbound by (pod, client address): one queue, oldest first.
        self._held: OrderedDict[Hashable, tuple[float, Capture]] = OrderedDict()
        self._accepted: OrderedDict[tuple[str | None, int], int] = OrderedDict()

    def add(self, capture: Capture, now: float) -> list[Capture]:
        key = _join_key(capture)
        if key is None:
            return [capture]
        # The same key again (a client port reused after TIME_WAIT): the older one goes alone.
        earlier = self._held.pop(key, None)
        self._held[key] = (now, capture)
        alone = [earlier] if earlier is not None else []
        return [c for _, c in alone + _trim(self._held, self.limit)]

    def accepted(self, pod_id: str | None, client_port: int, socket_cookie: int) -> None:
        self._accepted[(pod_id, client_port)] = socket_cookie
        _trim(self._accepted, self.limit)  # an accept whose record never opened

    def claim(self, pod_id: str | None, client_port: int) -> Capture | None:
        cookie = self._accepted.pop((pod_id, client_port), None)
        held = self._held.pop(cookie, None) if cookie is not None else None
        return held[1] if held is not None else None

    def claim_inbound(self, pod_id: str | None, client: tuple[str, int]) -> Capture | None:
        held = self._held.pop(("inbound", pod_id, tuple(client)), None)
        return held[1] if held is not None else None

    def claim_record(self, record: Any) -> Capture | None:
        """`claim` or `claim_inbound` for a ConnectionRecord (read by attribute): outbound by
        the source pod and client port, inbound by the destination pod and client address."""
        client = tuple(record.source_address)
        if _outbound(record):
            return self.claim(_uid(record.source), client[1])
        return self.claim_inbound(_uid(record.destination), client)

    def expired(self, now: float) -> list[Capture]:
        out = []
        while self._held:
            cookie, (since, capture) = next(iter(self._held.items()))
            if now - since < self.wait:
                break
            del self._held[cookie]
            out.append(capture)
        return out

    def __len__(self) -> int:
        return len(self._held)


def _join_key(capture: Capture) -> Hashable | None:
    """What a capture's connection record will claim it by; None: nothing will, write it now."""
    if not capture.captured:
        return None
    if capture.direction == "outbound":
        return capture.socket_cookie or None
    return ("inbound", capture.pod_id, capture.source)


def _trim(held: OrderedDict, limit: int) -> list:
    """Drop the oldest entries beyond `limit`; their values."""
    dropped = []
    while len(held) > limit:
        dropped.append(held.popitem(last=False)[1])
    return dropped


class CaptureEvents:
    """The agent's reader of a `CaptureProgram`'s events, inside its event loop.

    `write(capture, workload)` writes a capture alone (nodemesh.flows.agent.AgentFlows.capture);
    `workload_of(pod_id)` names the pod's workload for it (None for a pod already gone)."""

    def __init__(
        self,
        program: CaptureProgram,
        write: Callable[[Capture, Any], None],
        workload_of: Callable[[str], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        join: CaptureJoin | None = None,
    ) -> None:
        self.program, self._write, self._workload_of = program, write, workload_of
        self._clock = clock
        self.join = join if join is not None else CaptureJoin()
        self.counts: dict[str, int] = {}  # events read, by reason label (drops are the map's)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read events whenever the ring has some (the loop watches its epoll fd)."""
        self._loop, self._fd = loop, self.program.events_fd()
        loop.add_reader(self._fd, self.pump)

    def stop(self) -> None:
        """Stop reading and write what is still held (before the program closes)."""
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._emit(self.join.expired(float("inf")))

    def original_destination(self, accepted) -> tuple[str, int]:
        """`CaptureProgram.original_destination`, remembering the join key on the way."""
        original = self.program.take_original(accepted)
        self.join.accepted(original.pod_id, original.client[1], original.socket_cookie)
        return original.destination

    def claim(self, record: Any) -> Capture | None:
        """The capture of a ConnectionRecord's connection, if the hooks wrote one. Its event is
        in the ring already: connect4 and sk_lookup write it before the handshake completes."""
        if not (_outbound(record) or record.source_address[1]):
            return None  # inbound over HBONE: no client port, no capture of this connection
        self.pump()
        return self.join.claim_record(record)

    def pump(self) -> None:
        """Read every waiting record; write what needs no join; schedule the expiry check.
        Never raises into the loop: a record that cannot be decoded is logged and skipped (the
        ones before it are read on the next call)."""
        try:
            events = self.program.consume_events()
        except Exception:
            log.exception("skipped a capture event that could not be read")
            events = []
        offset, now = boot_offset(), self._clock()
        ready: list[Capture] = []
        for event in events:
            self.counts[event.reason.label] = self.counts.get(event.reason.label, 0) + 1
            ready += self.join.add(Capture.of(event, offset), now)
        ready += self.join.expired(now)
        self._emit(ready)
        if len(self.join) and self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.join.wait, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self.pump()

    def _emit(self, captures: list[Capture]) -> None:
        for capture in captures:
            workload = self._workload_of(capture.pod_id) if capture.pod_id else None
            self._write(capture, workload)


def _uid(workload: Any) -> str | None:
    """The pod id captures name (a workload's uid), None for no workload."""
    return getattr(workload, "uid", None)


def _outbound(record: Any) -> bool:
    return getattr(record.direction, "value", record.direction) == "outbound"
