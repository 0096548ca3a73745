"""ServiceGate: one attempt's way through the circuit breaker, with the FIFO pending queue."""

from __future__ import annotations

from waypoint.resilience.admission import Admission, Queued, ServiceGate
from waypoint.resilience.circuit import CircuitBreaker, Overflow
from waypoint.resilience.config import ConnectionPoolConfig


def gate(**limits: int) -> ServiceGate:
    return ServiceGate(CircuitBreaker(ConnectionPoolConfig(**limits)))


class Waiter:
    """Records what the gate hands a queued attempt; `wants=False` is one that gave up."""

    def __init__(self, queued: Admission | Overflow | Queued, wants: bool = True) -> None:
        assert isinstance(queued, Queued), queued
        self.queued, self.wants = queued, wants
        self.got: list[Admission | Overflow] = []
        queued.notify = self.notify

    def notify(self, result: Admission | Overflow) -> bool:
        self.got.append(result)
        return self.wants


def test_max_requests_admits_up_to_the_limit_then_overflows():
    g = gate(max_requests=2)
    first, second = g.admit(exclusive=False), g.admit(exclusive=False)

    third = g.admit(exclusive=False)

    assert isinstance(first, Admission) and isinstance(second, Admission)
    assert third is Overflow.REQUESTS
    first.release()
    assert isinstance(g.admit(exclusive=False), Admission)


def test_release_is_idempotent():
    g = gate(max_requests=1)
    admission = g.admit(exclusive=False)
    assert isinstance(admission, Admission)

    admission.release()
    admission.release()

    assert g.breaker.active_requests == 0
    assert isinstance(g.admit(exclusive=False), Admission)
    assert g.admit(exclusive=False) is Overflow.REQUESTS


def test_shared_connections_take_no_connection_slot():
    g = gate(max_connections=1, max_pending_requests=0)

    streams = [g.admit(exclusive=False) for _ in range(5)]

    assert all(isinstance(s, Admission) for s in streams)
    assert g.breaker.active_connections == 0


def test_busy_connections_queue_the_attempt_and_a_full_queue_overflows():
    g = gate(max_connections=1, max_pending_requests=1)
    assert isinstance(g.admit(exclusive=True), Admission)

    queued = g.admit(exclusive=True)
    refused = g.admit(exclusive=True)

    assert isinstance(queued, Queued)
    assert refused is Overflow.PENDING
    assert g.breaker.pending_requests == 1


def test_zero_pending_refuses_at_once_when_connections_are_busy():
    g = gate(max_connections=1, max_pending_requests=0)
    assert isinstance(g.admit(exclusive=True), Admission)

    assert g.admit(exclusive=True) is Overflow.PENDING


def test_a_freed_connection_goes_to_the_oldest_waiter():
    g = gate(max_connections=1)
    holder = g.admit(exclusive=True)
    assert isinstance(holder, Admission)
    first, second = Waiter(g.admit(exclusive=True)), Waiter(g.admit(exclusive=True))

    holder.release()

    assert len(first.got) == 1 and isinstance(first.got[0], Admission)
    assert second.got == []
    assert g.breaker.active_connections == 1 and g.breaker.pending_requests == 1
    first.got[0].release()
    assert len(second.got) == 1 and isinstance(second.got[0], Admission)
    assert g.breaker.pending_requests == 0 and g.waiting == 0


def test_new_arrivals_do_not_overtake_waiters():
    g = gate(max_connections=2)
    a, b = g.admit(exclusive=True), g.admit(exclusive=True)
    assert isinstance(a, Admission) and isinstance(b, Admission)
    waiter = Waiter(g.admit(exclusive=True))
    a.release()  # goes to the waiter, not to whoever asks next

    late = g.admit(exclusive=True)

    assert len(waiter.got) == 1 and isinstance(waiter.got[0], Admission)
    assert isinstance(late, Queued)


def test_a_waiter_that_gave_up_passes_the_grant_on():
    g = gate(max_connections=1)
    holder = g.admit(exclusive=True)
    assert isinstance(holder, Admission)
    gone, next_one = Waiter(g.admit(exclusive=True), wants=False), Waiter(g.admit(exclusive=True))

    holder.release()

    assert len(gone.got) == 1  # offered, refused...
    assert len(next_one.got) == 1 and isinstance(next_one.got[0], Admission)  # ...and passed on
    assert g.breaker.active_connections == 1 and g.breaker.active_requests == 1


def test_cancelled_waiter_leaves_the_queue_and_frees_its_pending_slot():
    g = gate(max_connections=1, max_pending_requests=1)
    holder = g.admit(exclusive=True)
    assert isinstance(holder, Admission)
    waiter = Waiter(g.admit(exclusive=True))

    waiter.queued.cancel()
    waiter.queued.cancel()  # idempotent

    assert g.waiting == 0 and g.breaker.pending_requests == 0
    holder.release()
    assert waiter.got == []
    assert g.breaker.active_connections == 0


def test_a_waiter_with_no_notify_cannot_leak_the_grant():
    g = gate(max_connections=1)
    holder = g.admit(exclusive=True)
    assert isinstance(holder, Admission)
    assert isinstance(g.admit(exclusive=True), Queued)  # the shell never set notify

    holder.release()

    assert g.breaker.active_connections == 0 and g.breaker.active_requests == 0


def test_request_overflow_gives_the_connection_slot_back():
    g = gate(max_connections=1, max_requests=1)
    stream = g.admit(exclusive=False)
    assert isinstance(stream, Admission)

    refused = g.admit(exclusive=True)  # a free connection, but no request slot

    assert refused is Overflow.REQUESTS
    assert g.breaker.active_connections == 0


def test_a_release_frees_the_request_slot_its_waiter_needs():
    g = gate(max_connections=1, max_requests=2)
    holder, stream = g.admit(exclusive=True), g.admit(exclusive=False)
    assert isinstance(holder, Admission) and isinstance(stream, Admission)
    waiter = Waiter(g.admit(exclusive=True))
    assert g.admit(exclusive=False) is Overflow.REQUESTS  # requests are at the limit

    holder.release()  # its request slot first, then its connection: the waiter gets both

    assert len(waiter.got) == 1 and isinstance(waiter.got[0], Admission)
    assert g.breaker.active_requests == 2 and g.waiting == 0


def test_every_slot_returns_after_a_burst():
    g = gate(max_connections=2, max_pending_requests=3, max_requests=4)
    held = [g.admit(exclusive=True) for _ in range(2)]
    waiters = [Waiter(g.admit(exclusive=True)) for _ in range(3)]
    assert g.admit(exclusive=True) is Overflow.PENDING

    for admission in held:
        assert isinstance(admission, Admission)
        admission.release()
    while any(w.got and isinstance(w.got[-1], Admission) for w in waiters):
        for w in waiters:
            if w.got and isinstance(w.got[-1], Admission):
                w.got.pop().release()

    assert (g.breaker.active_connections, g.breaker.pending_requests) == (0, 0)
    assert (g.breaker.active_requests, g.waiting) == (0, 0)
