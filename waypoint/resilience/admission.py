"""Admission of one upstream attempt through a Service's circuit breaker, with the pending queue.

Theory of operation (Envoy's connection pool over `circuit_breakers`). An attempt that needs a
connection of its own (HTTP/1.1: one exchange per connection) takes a connection slot; when
`maxConnections` are all busy it waits in the pending queue instead, holding a pending slot, and
when `maxPendingRequests` are already waiting it is refused at once (503, flag `UO`). Once it has
a connection (or needs none: HTTP/2 streams share one) it takes a request slot, and when
`maxRequests` are in flight it is refused the same way. Envoy checks `max_requests` when it
attaches a stream to a connection, so a waiting request does not hold a request slot.

A freed connection slot goes straight to the oldest waiter (FIFO) and new arrivals do not overtake
waiters, so a queue that formed drains in order. Handing over is a plain call: the gate tells the
waiter through the `notify` callable the shell set on `Queued`, and a waiter that has given up
(its future was cancelled: timeout, client reset) says so by returning False, so the grant goes to
the next one instead of leaking. Everything here is sans-I/O: no event loop, no clock.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

from waypoint.resilience.circuit import CircuitBreaker, Overflow
from waypoint.resilience.lease import Lease


class Admission:
    """The slots one attempt holds until its response ends: a request and maybe a connection."""

    __slots__ = ("_connection", "_request")

    def __init__(self, request: Lease, connection: Lease | None) -> None:
        self._request, self._connection = request, connection

    def release(self) -> None:
        """Give both back (idempotent); a freed connection goes to the oldest waiter."""
        self._request.release()
        if self._connection is not None:
            self._connection.release()


# What a waiter is told: its Admission, or the Overflow that refused it after the wait. It answers
# False when it no longer wants it (it gave up meanwhile): the gate then takes the grant back.
Notify = Callable[["Admission | Overflow"], bool]


class Queued:
    """A place in the pending queue; set `notify` before control returns to the event loop."""

    __slots__ = ("_gate", "_pending", "notify")

    def __init__(self, gate: ServiceGate, pending: Lease) -> None:
        self._gate, self._pending = gate, pending
        self.notify: Notify = _nobody

    def cancel(self) -> None:
        """Leave the queue (the waiter gave up); harmless after it was served."""
        self._pending.release()
        self._gate._leave(self)

    def _served(self) -> None:
        self._pending.release()


class ServiceGate:
    """The circuit breaker of one Service and the requests queued for its connections."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self._queue: deque[Queued] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def admit(self, exclusive: bool) -> Admission | Overflow | Queued:
        """Admit one attempt now, refuse it, or queue it until a connection frees.

        `exclusive` is True when the attempt needs a connection to itself (HTTP/1.1).
        """
        connection = None
        if exclusive:
            got = self.breaker.try_connection() if not self._queue else Overflow.CONNECTIONS
            if isinstance(got, Overflow):
                pending = self.breaker.try_pending()
                if isinstance(pending, Overflow):
                    return pending
                queued = Queued(self, pending)
                self._queue.append(queued)
                return queued
            connection = self._connection_lease(got)
        return self._with_request(connection)

    def _with_request(self, connection: Lease | None) -> Admission | Overflow:
        request = self.breaker.try_request()
        if isinstance(request, Overflow):
            if connection is not None:
                connection.release()
            return request
        return Admission(request, connection)

    def _connection_lease(self, granted: Lease) -> Lease:
        """The breaker's lease, wrapped so that releasing it serves the queue."""

        def release() -> None:
            granted.release()
            self._serve()

        return Lease(release)

    def _serve(self) -> None:
        """A connection slot freed: hand slots to waiters, oldest first, while any are free."""
        while self._queue:
            got = self.breaker.try_connection()
            if isinstance(got, Overflow):
                return
            queued = self._queue.popleft()
            queued._served()
            result = self._with_request(self._connection_lease(got))
            if not queued.notify(result) and isinstance(result, Admission):
                result.release()  # serves the next waiter, if any, through _serve again
                return

    def _leave(self, queued: Queued) -> None:
        with contextlib.suppress(ValueError):  # already served
            self._queue.remove(queued)


def _nobody(result: Admission | Overflow) -> bool:
    """A waiter that never set `notify`: refuse the grant so it cannot leak."""
    return False
