"""When a component sends its flow events to the controller, and which: a cursor over its ring.

Theory of operation: the component's own `FlowRing` is the send queue. It is already bounded,
already drops the oldest event when full, and already says how many a reader missed, so the
reporter adds no second buffer and the datapath pays nothing for it beyond a wake-up flag: the
reporter keeps one cursor (the last sequence number handed to the controller) and reads the ring
behind it. While the controller is away the cursor stands still and the ring overwrites what it
must; the next batch carries the count of events lost that way (`dropped`), so both the
component's metric and the relay's per-sender counters show the loss.

A batch is due when `max_batch` events wait, or when the oldest waiting event has waited
`max_delay` seconds (Hubble batches the same way): few large messages under load, and still at
most `max_delay` of delay on a quiet node. `noted` is called from the ring's append callback, so
it only records a time. Delivery is at most once: a batch taken and then lost with its
connection is counted as dropped by the caller, never sent twice.

Sans-I/O: time comes in as an argument; the I/O shell is `nodemesh.flows.relay_client`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodemesh.flows.event import FlowEvent
from nodemesh.flows.ring import FlowRing

MAX_BATCH = 256  # events per message
MAX_DELAY = 0.1  # seconds an event may wait for its batch to fill


@dataclass(frozen=True)
class Batch:
    """Events to send now, oldest first, and how many the ring overwrote before this batch."""

    events: tuple[FlowEvent, ...]
    dropped: int


class BatchCursor:
    """The reporter's place in `ring`: what is still to send and when it is due."""

    def __init__(
        self, ring: FlowRing, *, max_batch: int = MAX_BATCH, max_delay: float = MAX_DELAY
    ) -> None:
        if max_batch < 1 or max_delay < 0:
            raise ValueError(
                f"a flow batch needs max_batch >= 1 and max_delay >= 0, not {max_batch}, "
                f"{max_delay}"
            )
        self.ring, self.max_batch, self.max_delay = ring, max_batch, max_delay
        self.sent = 0  # sequence number of the last event taken: everything recorded is due
        self._waiting_since: float | None = None  # when the oldest unsent event was noted

    @property
    def pending(self) -> int:
        """Events after the cursor, the ones the ring overwrote included."""
        return self.ring.last - self.sent if self.ring.last >= self.sent else self.ring.last

    def noted(self, now: float) -> None:
        """The ring has a new event (called on append): start its batch's clock if none runs."""
        if self._waiting_since is None:
            self._waiting_since = now

    def due_in(self, now: float) -> float | None:
        """Seconds until the next batch is due (0: now); None when nothing waits."""
        if self.pending == 0:
            self._waiting_since = None
            return None
        if self.pending >= self.max_batch:
            return 0.0
        since = self._waiting_since if self._waiting_since is not None else now
        self._waiting_since = since
        return max(since + self.max_delay - now, 0.0)

    def take(self) -> Batch:
        """Up to `max_batch` events after the cursor; the cursor moves past them."""
        page = self.ring.since(self.sent, self.max_batch)
        self.sent = page.next
        if not self.pending:  # what is left has waited since before: it stays due
            self._waiting_since = None
        return Batch(tuple(event for _, event in page.events), page.missed)
