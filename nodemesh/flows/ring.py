"""A bounded ring of flow events with monotonic sequence numbers, read by cursor.

Theory of operation: a component appends every event it records; the ring keeps the newest
`capacity` and forgets the rest, so memory is bounded whatever the traffic (Hubble's ring, at a
smaller scale). Each event gets the next sequence number, starting at 1, never reused. A reader
keeps one number, the last sequence it has seen, and asks `since(seq, limit)` for what came
after it; the answer says how many events the reader missed because the ring overwrote them, so
a slow reader learns it lost events instead of silently skipping them.

Waiting is the I/O shell's business (this module imports no asyncio): `subscribe(callback)`
registers a plain function called with each new sequence number, so a long-poll handler can set
its own `asyncio.Event` from it and unsubscribe when done. Callbacks run synchronously inside
`append`, in the recording component's thread, so they must only flag, never block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nodemesh.flows.event import FlowEvent

DEFAULT_CAPACITY = 4096  # per component: minutes of a busy node, little memory


@dataclass(frozen=True)
class Page:
    """What `since` returns: events after the cursor, the cursor to pass next, and the loss."""

    events: tuple[tuple[int, FlowEvent], ...]  # (sequence, event), oldest first
    next: int  # pass this as `seq` next time
    missed: int  # events after the cursor the ring no longer holds

    def to_dict(self) -> dict:
        rows = [{"seq": seq, **event.to_dict()} for seq, event in self.events]
        return {"next": self.next, "missed": self.missed, "events": rows}


class Subscription:
    """A handle on one registered callback; `cancel()` removes it (twice is harmless)."""

    def __init__(self, ring: FlowRing, callback: Callable[[int], None]) -> None:
        self._ring, self.callback = ring, callback

    def cancel(self) -> None:
        self._ring._unsubscribe(self)


class FlowRing:
    """The newest `capacity` events, numbered 1, 2, 3, ... in the order they were appended."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a flow ring needs room for at least one event, not {capacity}")
        self.capacity = capacity
        self._events: deque[FlowEvent] = deque(maxlen=capacity)
        self._last = 0  # sequence number of the newest event; 0 before the first
        self._subscribers: list[Subscription] = []

    @property
    def last(self) -> int:
        """The newest sequence number (0 when empty): a reader starting "now" passes this."""
        return self._last

    @property
    def first(self) -> int:
        """The oldest sequence number still held (last + 1 when empty)."""
        return self._last - len(self._events) + 1

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event: FlowEvent) -> int:
        """Keep `event` (dropping the oldest when full), wake subscribers; its sequence number."""
        self._events.append(event)
        self._last += 1
        for sub in list(self._subscribers):
            sub.callback(self._last)
        return self._last

    def since(self, seq: int, limit: int | None = None) -> Page:
        """Events with a sequence number above `seq`, oldest first, at most `limit` of them.

        A negative `seq` counts back from the newest (`-10`: the last ten), so a reader can ask
        for "the last N" without knowing the current number. A `seq` above the newest number
        means the component restarted since the reader last asked: it reads from the start.
        """
        if seq > self._last:
            seq = 0
        if seq < 0:
            seq = max(self._last + seq, 0)
        start = max(seq + 1, self.first)
        missed = start - (seq + 1)
        stop = self._last if limit is None else min(self._last, start + max(limit, 0) - 1)
        offset = start - self.first
        held = [self._events[offset + i] for i in range(stop - start + 1)]
        events = tuple(zip(range(start, stop + 1), held, strict=True))
        return Page(events, next=max(stop, seq), missed=missed)

    def subscribe(self, callback: Callable[[int], None]) -> Subscription:
        """Call `callback(seq)` on every append until the subscription is cancelled."""
        sub = Subscription(self, callback)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
