"""What one finished request produced: the single input of the waypoint's metrics, log and spans.

The proxy core fills one `RequestRecord` as a request moves through the layers (authorization,
route, retries, upstream) and hands it over once, when the response is complete or the request
is abandoned. Metrics, the access log and the span recorder each read the same frozen record, so
the three can never disagree about a request (its status, its flags, its duration), and none of
them needs to know about codecs, sockets or the event loop.

Derived facts live here too, because every consumer needs the same answer:

- `request_protocol`: "grpc" when the request's content-type is application/grpc (also
  "application/grpc+proto", "application/grpc;..."), else "http", as Envoy decides.
- `grpc_status`: Envoy's order (`Grpc::Common::getGrpcStatus`): the `grpc-status` trailer, else
  the header (a trailers-only response), else the HTTP status mapped as gRPC's
  http-grpc-status-mapping.md says. A value that is not a code 0..16 counts as UNKNOWN (2), so
  the metric label has at most 17 values. Non-gRPC requests have no gRPC status.
- `response_code`: the status sent to the client, 0 when the client got no response head
  (Envoy's convention: the client went away or the connection failed first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from nodemesh.telemetry import (
    ResponseFlag,
    SecurityPolicy,
    ServiceLike,
    WorkloadLike,
    response_flags,
)
from waypoint.messages import Headers, Peer, RequestHead, ResponseHead
from waypoint.tracing import TraceContext

GRPC_UNKNOWN = 2
GRPC_MAX_CODE = 16  # UNAUTHENTICATED, the last of gRPC's codes
# gRPC's doc/http-grpc-status-mapping.md; every other HTTP status maps to UNKNOWN.
_HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


class RequestProtocol(StrEnum):
    HTTP = "http"
    GRPC = "grpc"


def request_protocol(head: RequestHead) -> RequestProtocol:
    """gRPC when content-type is application/grpc or a subtype of it, else HTTP."""
    content_type = (head.header("content-type") or "").lower()
    base = content_type.split(";", 1)[0].strip()
    if base == "application/grpc" or base.startswith("application/grpc+"):
        return RequestProtocol.GRPC
    return RequestProtocol.HTTP


def _grpc_code(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or int(value) > GRPC_MAX_CODE:
        return GRPC_UNKNOWN  # present but not a code: the call failed in a way we cannot name
    return int(value)


def grpc_status(response: ResponseHead | None, trailers: Headers = ()) -> int | None:
    """The call's gRPC status: trailer, else header, else mapped from the HTTP status.

    None when there is no response at all: the client got nothing to take a status from.
    """
    from_trailers = _grpc_code(next((v for k, v in trailers if k == "grpc-status"), None))
    if from_trailers is not None:
        return from_trailers
    if response is None:
        return None
    from_headers = _grpc_code(next((v for k, v in response.headers if k == "grpc-status"), None))
    if from_headers is not None:
        return from_headers
    return _HTTP_TO_GRPC.get(response.status, GRPC_UNKNOWN)


class _computed_once:
    """A property computed on first read and then kept in the instance dict.

    functools.cached_property would do, but in Python 3.11 it takes a lock on every first read,
    which costs more than the values it saves recomputing; a record is built and read by one
    task, so no lock is needed. It writes to `__dict__` directly, so frozen records stay frozen.
    """

    def __init__(self, compute: Callable[[RequestRecord], Any]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, record: RequestRecord | None, owner: type | None = None) -> Any:
        if record is None:
            return self
        value = record.__dict__[self.name] = self.compute(record)
        return value


class AuthzLike(Protocol):
    """What telemetry reads from an authorization verdict (nodemesh.authz's Decision has it)."""

    @property
    def allowed(self) -> bool: ...

    @property
    def policy(self) -> str | None: ...

    @property
    def rule(self) -> int | None: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class AuthzOutcome:
    """A minimal AuthzLike, for callers (and tests) without a full authorization decision."""

    allowed: bool
    policy: str | None = None  # "<namespace>/<name>" of the deciding AuthorizationPolicy
    rule: int | None = None  # index of the matching rule in that policy, if one matched
    reason: str = ""  # one line for the operator: why it was allowed or denied


def authz_decision(authz: AuthzLike) -> str:
    """The verdict as logs and span attributes spell it: "allow" or "deny"."""
    return "allow" if authz.allowed else "deny"


@dataclass(frozen=True)
class RequestRecord:
    """Everything one request produced, from its head's arrival to its response's last byte.

    The derived facts (protocol, gRPC status, flags label) are cached on first read: metrics,
    the access log and the span each ask for them, and recomputing them (header scans, a sort)
    three to six times per request was a measurable share of the waypoint's CPU per request.
    """

    peer: Peer  # who sent it to the waypoint, as HBONE proved it
    request: RequestHead  # the request as it arrived (before any rewrite)
    response: ResponseHead | None  # what the client got; None: no response head was sent
    start_time: float  # Unix time (wall clock) the request head arrived: logs and spans
    duration: float  # seconds from the head's arrival to the last response byte (monotonic)
    trailers: Headers = ()  # response trailers as sent (gRPC puts its status here)
    source: WorkloadLike | None = None  # the calling workload, when the model knows its address
    destination: WorkloadLike | None = None  # the endpoint the final attempt went to
    service: ServiceLike | None = None  # the Service the request was addressed to
    destination_principal: str | None = None  # SPIFFE ID the upstream proved, if mutual TLS
    request_header_bytes: int = 0  # size of the request head as received
    request_body_bytes: int = 0  # request body bytes received from the client
    response_header_bytes: int = 0  # size of the response head as sent
    response_body_bytes: int = 0  # response body bytes sent to the client
    upstream_duration: float | None = None  # seconds, upstream request sent -> response head
    flags: frozenset[ResponseFlag] = frozenset()  # how it ended, "-" when empty
    retries: int = 0  # attempts after the first
    upstream_address: tuple[str, int] | None = None  # endpoint address of the final attempt
    upstream_tunnel: str | None = None  # HBONE tunnel key of the final attempt (None: plain TCP)
    upstream_cluster: str | None = None  # Istio's "outbound|80||web.shop.svc.cluster.local"
    route_name: str | None = None  # "<namespace>/<HTTPRoute>[/<rule name or index>]"
    request_id: str | None = None  # x-request-id as sent upstream (tracing.Propagation)
    trace: TraceContext | None = None  # the waypoint's own span context
    parent_span_id: str | None = None  # the client's span, when it sent a valid traceparent
    authz: AuthzLike | None = None  # None: no policy applies to the destination

    @property
    def response_code(self) -> int:
        return self.response.status if self.response is not None else 0

    @property
    def end_time(self) -> float:
        return self.start_time + self.duration

    @_computed_once
    def protocol(self) -> RequestProtocol:
        return request_protocol(self.request)

    @_computed_once
    def flags_label(self) -> str:
        """`flags` as Envoy spells them ("-" for none, else "UF,URX"), for every output."""
        return response_flags(self.flags) if self.flags else ResponseFlag.NONE.value

    @_computed_once
    def grpc_status(self) -> int | None:
        """The gRPC status for a gRPC request (see module docs); None for plain HTTP."""
        if self.protocol is not RequestProtocol.GRPC:
            return None
        return grpc_status(self.response, self.trailers)

    @property
    def security_policy(self) -> SecurityPolicy:
        """mutual_tls when the client proved an identity over HBONE, else none."""
        return SecurityPolicy.MUTUAL_TLS if self.peer.identity else SecurityPolicy.NONE

    @property
    def request_bytes(self) -> int:
        """Head plus body, as Istio's istio_request_bytes counts (Envoy's request total size)."""
        return self.request_header_bytes + self.request_body_bytes

    @property
    def response_bytes(self) -> int:
        return self.response_header_bytes + self.response_body_bytes
