"""`Outcome`: how one upstream attempt ended, as retry and outlier detection need to know it.

Both decide on the same facts, so the proxy describes an attempt once: the response's HTTP status
(and its `grpc-status`, from headers or trailers, for gRPC), or the way it failed before a response
head arrived. The failure kinds follow Envoy's stream reset reasons, since Envoy's retry-on
conditions are defined over them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Failure(enum.Enum):
    """Why an attempt produced no response head."""

    # No connection: refused, unreachable, TLS/HBONE handshake failed, connect timeout.
    CONNECT_FAILURE = "connect-failure"
    # Connected, then the peer disconnected or reset before the response head.
    RESET = "reset"
    # HTTP/2 RST_STREAM with REFUSED_STREAM: the peer did not process it, so a retry is safe.
    REFUSED_STREAM = "refused-stream"
    # The per-try timeout fired first.
    TIMEOUT = "timeout"
    # The waypoint's own circuit breaker refused the attempt (flag UO): never retried.
    OVERFLOW = "overflow"


@dataclass(frozen=True)
class Outcome:
    """The end of one attempt: a `status` (with `grpc_status` for gRPC), or a `failure`."""

    status: int | None = None
    grpc_status: int | None = None
    failure: Failure | None = None

    def __post_init__(self) -> None:
        if (self.status is None) == (self.failure is None):
            raise ValueError("an Outcome has either a status or a failure, not both or neither")

    @classmethod
    def response(cls, status: int, grpc_status: int | None = None) -> Outcome:
        return cls(status=status, grpc_status=grpc_status)

    @classmethod
    def failed(cls, failure: Failure) -> Outcome:
        return cls(failure=failure)

    @property
    def is_5xx(self) -> bool:
        """A 5xx response, or no response at all (the client will see a 5xx from us)."""
        if self.failure is not None:
            return self.failure is not Failure.OVERFLOW
        return self.status is not None and 500 <= self.status <= 599

    @property
    def is_gateway_error(self) -> bool:
        """502, 503, 504, or no response at all: the upstream, not the application, failed."""
        if self.failure is not None:
            return self.failure is not Failure.OVERFLOW
        return self.status in (502, 503, 504)
