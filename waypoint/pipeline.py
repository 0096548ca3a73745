"""The waypoint's request path: one function from a decoded request to the reply, layer by layer.

In order, as Envoy's HTTP filter chain would run them for an Istio waypoint:
1. normalize the path (one spelling for authorization and routing; 400 if it cannot be made safe);
2. authorize (AuthorizationPolicy with HTTP attributes; 403 naming the policy and rule);
3. route (HTTPRoute matches, filters, weighted backends; 404 when nothing matches);
4. resilience for the chosen backend Service (local rate limit → 429; fault injection);
5. attempts: pick an endpoint (outlier-ejected ones skipped), send, judge the outcome, retry
   with back-off within the retry policy and budget; time out the whole at the route's
   `timeouts.request` (504) and each attempt at `backendRequest` / perTryTimeout;
6. stream the response back, with ResponseHeaderModifier filters applied, and finish telemetry
   (metrics, access log, span) once the session has written the last byte.
Each layer's decision is a pure object from `waypoint.routing`, `waypoint.resilience`,
`waypoint.authz`; this module sequences them and does the waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from controller.model import PeerWorkload, Service
from nodemesh.hbone import baggage
from nodemesh.identity import SpiffeId
from nodemesh.telemetry import ResponseFlag
from waypoint.authz import (
    PathError,
    authorize_request,
    deny_response,
    normalize_path,
)
from waypoint.exchange import Downstream, Reply, text_reply
from waypoint.grpc_local import grpc_shaped
from waypoint.h1_upstream import (
    CONNECT_TRACEPARENT,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
)
from waypoint.h2_pool import Upstreams
from waypoint.messages import RequestHead, ResponseHead
from waypoint.observer import RequestObserver
from waypoint.record import RequestRecord
from waypoint.resilience.admission import Admission, Queued, ServiceGate
from waypoint.resilience.circuit import OVERFLOW_STATUS, Overflow
from waypoint.resilience.outcome import Failure, Outcome
from waypoint.resilience.retry import RetryDenied, RetryPolicy
from waypoint.routing import Forward
from waypoint.routing import Reply as RouteReply
from waypoint.services import Backends
from waypoint.state import WaypointConfig, WaypointState
from waypoint.tracing import IdGenerator, Propagation, Propagator

log = logging.getLogger("nodemesh.waypoint")


@dataclass
class Trip:
    """What one request accumulates on its way through, for telemetry."""

    req: Downstream
    start_wall: float
    start: float
    flags: set[ResponseFlag] = field(default_factory=set)
    service: Service | None = None
    destination: PeerWorkload | None = None
    upstream: tuple[str, int] | None = None
    upstream_tunnel: str | None = None  # the HBONE tunnel of the final attempt, by its key
    route_name: str | None = None
    retries: int = 0
    authz: object | None = None
    upstream_duration: float | None = None
    response_head_bytes: int = 0
    trace: Propagation | None = None  # the waypoint's span, its parent, x-request-id
    # The circuit-breaker slots of the attempt whose response is being relayed; released when
    # the upstream response ends, and at the latest when the reply is done (every path).
    admission: Admission | None = None


class Proxy:
    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        config: WaypointConfig,
        pool: UpstreamPool,
        observer: RequestObserver,
        rng: random.Random | None = None,
        upstream_for: Callable[[str], Upstreams] | None = None,
    ) -> None:
        self.name, self.namespace = name, namespace
        self.config, self.pool, self.observer = config, pool, observer
        # The downstream protocol picks the upstream pool (HTTP/2 in, HTTP/2 out: see h2_pool).
        self.upstream_for = upstream_for or (lambda protocol: pool)
        self.rng = rng or random.Random()
        self.propagator = Propagator(IdGenerator())
        self.backends = Backends(self.rng, lambda: asyncio.get_running_loop().time())

    async def handle(self, req: Downstream) -> Reply:
        loop = asyncio.get_running_loop()
        trip = Trip(req, time.time(), loop.time())
        trip.trace = self.propagator.propagate(req.head)
        try:
            reply = await self._handle(trip, self.config.state)
        except Exception as exc:  # a bug must cost one request, never the connection's others
            log.exception("request %s %s failed in the waypoint", req.head.method, req.head.path)
            reply = text_reply(500, f"waypoint error: {type(exc).__name__}")
        return self._observed(trip, grpc_shaped(req.head, reply))

    # -- the layers ----------------------------------------------------------------------------
    async def _handle(self, trip: Trip, state: WaypointState) -> Reply:
        req = trip.req
        service, port = _addressed(state, req.destination)
        if service is None:
            trip.flags.add(ResponseFlag.NO_ROUTE)
            return text_reply(
                404, f"waypoint {self.namespace}/{self.name} serves no Service at {req.destination}"
            )
        trip.service = service
        try:
            path = normalize_path(req.head.path)
        except PathError as error:
            return text_reply(400, str(error))
        decision = authorize_request(
            req.head, req.peer, service, state.policies, waypoint=self.name, path=path
        )
        trip.authz = decision
        if not decision.allowed:
            trip.flags.add(ResponseFlag.DENY)
            status, headers, body = deny_response(decision)
            return Reply(ResponseHead(status=status, headers=headers), body=body)
        _, mark, query = req.head.path.partition("?")  # normalize_target, without normalizing twice
        head = _with_path(req.head, path + mark + query)
        table = state.routes.get(service.namespace, service.name, port) if state.routes else None
        client_ns = _namespace_of(req.peer.identity) if req.peer.identity else None
        routed = _with_path(head, path + _query(head.path))
        match = table.match(routed, client_ns) if table else None
        if match is None:
            trip.flags.add(ResponseFlag.NO_ROUTE)
            return text_reply(404, f"no HTTPRoute rule of {service.key}:{port} matches")
        trip.route_name = str(match.route) if match.route else None
        outcome = match.decide(head, self.rng)
        if isinstance(outcome, RouteReply):
            return Reply(outcome.response, body=b"")
        return await self._forward(trip, state, outcome, match)

    async def _forward(self, trip: Trip, state: WaypointState, fwd: Forward, match) -> Reply:
        key = f"{fwd.target.namespace}/{fwd.target.name}"
        backend = state.services.get(key)
        if backend is None:
            trip.flags.add(ResponseFlag.NO_HEALTHY_UPSTREAM)
            return text_reply(500, f"backend Service {key} is unknown to this waypoint")
        guard = self.backends.resilience(backend, state)
        limited = guard.rate_limited()
        if limited is not None:
            trip.flags.add(ResponseFlag.RATE_LIMITED)
            return text_reply(429, "local rate limit exceeded", limited)
        fault = guard.fault()
        if fault.delay > 0:
            trip.flags.add(ResponseFlag.DELAY_INJECTED)
            await asyncio.sleep(fault.delay)
        if fault.abort is not None:
            trip.flags.add(ResponseFlag.FAULT_INJECTED)
            return text_reply(fault.abort.http_status or 503, "fault filter abort")
        timeout = fwd.timeouts.request_ms / 1000 if fwd.timeouts.request_ms else None
        try:
            async with _deadline(timeout):
                return await self._attempts(trip, state, fwd, match, backend, guard)
        except TimeoutError:
            trip.flags.add(ResponseFlag.UPSTREAM_TIMEOUT)
            return text_reply(504, "upstream request timeout")

    async def _attempts(self, trip, state, fwd: Forward, match, backend, guard) -> Reply:
        policy = RetryPolicy(guard.retry_config(match), self.rng)
        balancer = self.backends.balancer(state, backend, fwd.target.port)
        attempt, last, retry_lease = 0, None, None
        with guard.budget.start_request(), _released(lambda: retry_lease):
            while True:
                attempt += 1
                endpoint = balancer.pick(fwd.head)
                if endpoint is None:
                    trip.flags.add(ResponseFlag.NO_HEALTHY_UPSTREAM)
                    return text_reply(503, f"no healthy upstream for {fwd.target}")
                response = None
                try:
                    if guard.gate is not None:
                        admitted = await _admit(guard.gate, trip.req.head.protocol)
                        if type(admitted) is not Admission:
                            return _overflowed(trip, fwd, admitted)
                        trip.admission = admitted
                    trip.upstream, trip.destination = endpoint.address, endpoint.peer
                    outcome, response, upstream = await self._try(trip, fwd, endpoint, policy)
                finally:
                    if retry_lease is not None:  # a retry counts against the budget while it runs
                        retry_lease.release()
                        retry_lease = None
                    if trip.admission is not None and response is None:  # no response to relay
                        trip.admission.release()
                guard.outlier.record(endpoint.key, outcome)
                if policy.should_retry(attempt, outcome):
                    granted = guard.budget.try_retry()
                    if not isinstance(granted, RetryDenied):
                        retry_lease = granted
                    else:  # Envoy: a retry refused by the budget or maxRetries is an overflow
                        trip.flags.add(ResponseFlag.UPSTREAM_OVERFLOW)
                elif attempt > 1 and policy.exhausted(attempt, outcome):  # only after a retry
                    trip.flags.add(ResponseFlag.RETRY_LIMIT_EXCEEDED)
                if retry_lease is None:
                    if response is not None:
                        return self._relay(trip, fwd, upstream, response)
                    return self._failed(trip, outcome, last)
                if response is not None:
                    self.upstream_for(trip.req.head.protocol).discard(upstream)
                    if trip.admission is not None:
                        trip.admission.release()
                last = outcome
                trip.retries += 1
                await asyncio.sleep(policy.backoff(attempt))

    async def _try(self, trip: Trip, fwd: Forward, endpoint, policy: RetryPolicy):
        loop = asyncio.get_running_loop()
        sent = loop.time()
        upstream = None
        pool = self.upstream_for(trip.req.head.protocol)
        try:
            async with _deadline(_per_try(fwd, policy)):
                head = fwd.head.with_headers(_upstream_headers(fwd.head, trip))
                opening = CONNECT_TRACEPARENT.set(head.header("traceparent"))
                try:
                    upstream = await pool.acquire(endpoint.address)
                finally:
                    CONNECT_TRACEPARENT.reset(opening)
                trip.upstream_tunnel = getattr(upstream, "tunnel", None)
                response = await upstream.send(head, trip.req.body, trip.req.upgrade)
        except TimeoutError:
            if upstream is not None:
                pool.discard(upstream)
            trip.flags.add(ResponseFlag.UPSTREAM_TIMEOUT)
            return Outcome.failed(Failure.TIMEOUT), None, None
        except UpstreamError as exc:
            log.info("attempt to %s failed: %s", endpoint.address, exc)
            if exc.connect:
                trip.flags.add(ResponseFlag.UPSTREAM_CONNECT_FAILURE)
                return Outcome.failed(Failure.CONNECT_FAILURE), None, None
            if upstream is not None:
                pool.discard(upstream)
            trip.flags.add(ResponseFlag.UPSTREAM_TERMINATED)
            return Outcome.failed(Failure.RESET), None, None
        trip.upstream_duration = loop.time() - sent
        trip.flags.discard(ResponseFlag.UPSTREAM_TIMEOUT)
        return Outcome.response(response.head.status, _grpc(response)), response, upstream

    def _relay(self, trip: Trip, fwd: Forward, upstream, response: UpstreamResponse) -> Reply:
        trip.response_head_bytes = response.head_bytes
        head = fwd.filter_response(response.head)
        if response.upgraded is not None:
            return Reply(head, upgraded=response.upgraded)
        pool = self.upstream_for(trip.req.head.protocol)
        if getattr(response, "body", None) is not None:  # all of it came with the head
            pool.release(upstream)
            if trip.admission is not None:
                trip.admission.release()
            trailers = tuple(upstream.trailers)
            return Reply(head, body=response.body, trailers=lambda: trailers)
        return Reply(
            head,
            chunks=self._chunks(pool, upstream, response.chunks, trip.admission),
            trailers=lambda: tuple(upstream.trailers),
        )

    async def _chunks(
        self, pool, upstream, chunks: AsyncIterator[bytes], admission: Admission | None
    ) -> AsyncIterator[bytes]:
        done = False
        try:
            async for chunk in chunks:
                yield chunk
            done = True
        finally:
            if admission is not None:  # the upstream response ended: its slots are free
                admission.release()
            if done:
                pool.release(upstream)
            else:
                pool.discard(upstream)

    def _failed(self, trip: Trip, outcome: Outcome, last) -> Reply:
        if outcome.failure is Failure.TIMEOUT:
            return text_reply(504, "upstream request timeout")
        what = "connect failure" if outcome.failure is Failure.CONNECT_FAILURE else "reset"
        return text_reply(503, f"upstream {what} ({trip.upstream[0]}:{trip.upstream[1]})")

    # -- telemetry -----------------------------------------------------------------------------
    def _observed(self, trip: Trip, reply: Reply) -> Reply:
        inner = reply.done
        state = self.config.state
        source = state.peer_by_address.get(trip.req.peer.address[0]) or _baggage_source(
            trip.req.peer
        )

        def done(sent: int, error: BaseException | None) -> None:
            inner(sent, error)
            if trip.admission is not None:  # an upgrade, or a stream the session abandoned
                trip.admission.release()
            if error is not None:
                trip.flags.add(ResponseFlag.DOWNSTREAM_TERMINATED)
            loop_now = asyncio.get_event_loop().time()
            self.observer.finish(
                RequestRecord(
                    peer=trip.req.peer,
                    request=trip.req.head,
                    response=reply.head,
                    start_time=trip.start_wall,
                    duration=loop_now - trip.start,
                    trailers=tuple(reply.trailers()) if error is None else (),
                    source=source,
                    destination=trip.destination,
                    service=trip.service,
                    destination_principal=trip.destination.identity if trip.destination else None,
                    request_header_bytes=trip.req.head_bytes,
                    request_body_bytes=len(trip.req.body),
                    response_header_bytes=trip.response_head_bytes,
                    response_body_bytes=sent,
                    upstream_duration=trip.upstream_duration,
                    flags=frozenset(trip.flags),
                    retries=trip.retries,
                    upstream_address=trip.upstream,
                    upstream_tunnel=trip.upstream_tunnel,
                    route_name=trip.route_name,
                    authz=trip.authz,
                    request_id=trip.trace.request_id if trip.trace else None,
                    trace=trip.trace.context if trip.trace else None,
                    parent_span_id=trip.trace.parent_span_id if trip.trace else None,
                )
            )

        reply.done = done
        return reply


async def _admit(gate: ServiceGate, protocol: str) -> Admission | Overflow:
    """The circuit breaker's answer for one attempt, waiting in its pending queue if it says so.

    HTTP/1.1 holds a connection per exchange, so only it takes connection slots; HTTP/2 streams
    share connections (`h2_pool`), and `maxRequests` is what limits them."""
    admitted = gate.admit(exclusive=protocol != "HTTP/2")
    if type(admitted) is not Queued:
        return admitted
    waiter = asyncio.get_running_loop().create_future()

    def notify(result: Admission | Overflow) -> bool:
        if waiter.done():  # gave up meanwhile (timeout, client reset): not ours to take
            return False
        waiter.set_result(result)
        return True

    admitted.notify = notify
    try:
        return await waiter
    except BaseException:
        if waiter.done() and not waiter.cancelled() and type(waiter.result()) is Admission:
            waiter.result().release()  # granted just as we were cancelled
        raise
    finally:
        admitted.cancel()


def _overflowed(trip: Trip, fwd: Forward, overflow: Overflow) -> Reply:
    """503 `UO`: the Service's circuit breaker refused, so nothing went upstream."""
    trip.flags.add(ResponseFlag.UPSTREAM_OVERFLOW)
    return text_reply(OVERFLOW_STATUS, f"{fwd.target.namespace}/{fwd.target.name}: {overflow.hint}")


class _released:
    """Release whatever lease `current()` holds when the block ends (timeouts cancel it)."""

    def __init__(self, current) -> None:
        self.current = current

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        lease = self.current()
        if lease is not None:
            lease.release()


@functools.lru_cache(maxsize=4096)
def _namespace_of(identity: str) -> str:
    """The namespace of a SPIFFE ID (memoized: a waypoint sees few distinct clients)."""
    return SpiffeId.parse(identity).namespace


def _baggage_source(peer) -> baggage.SourceWorkload | None:
    """The client workload as its agent described it, if its certificate agrees on the namespace."""
    namespace = _namespace_of(peer.identity) if peer.identity else None
    return baggage.decode(peer.extra.get("baggage"), namespace)


def _addressed(state: WaypointState, destination: tuple[str, int]) -> tuple[Service | None, int]:
    ip, port = destination
    service = state.service_by_vip.get(ip)
    return service, port


def _with_path(head: RequestHead, path: str) -> RequestHead:
    """`head` with `path`; the same object when it already has it (the common case), since
    dataclasses.replace costs as much as the rest of routing."""
    return head if head.path == path else replace(head, path=path)


def _query(target: str) -> str:
    return "?" + target.split("?", 1)[1] if "?" in target else ""


_NO_DEADLINE = contextlib.nullcontext()  # stateless, so one serves every request


def _deadline(seconds: float | None):
    """`asyncio.timeout(seconds)`, or a no-op when there is none: entering and leaving an
    unarmed asyncio Timeout still costs microseconds, twice per request with no timeouts set."""
    return _NO_DEADLINE if seconds is None else asyncio.timeout(seconds)


def _per_try(fwd: Forward, policy: RetryPolicy) -> float | None:
    backend = fwd.timeouts.backend_request_ms / 1000 if fwd.timeouts.backend_request_ms else None
    return backend or policy.per_try_timeout


_REPLACED = frozenset({"x-forwarded-client-cert", "traceparent", "tracestate", "x-request-id"})


def _upstream_headers(head, trip: Trip):
    """End-to-end headers, with the trace context and request id this waypoint decided, and the
    client's verified identity (Envoy's x-forwarded-client-cert; a client-sent one is dropped)."""
    peer = trip.req.peer
    kept = [(k, v) for k, v in head.headers if k not in _REPLACED]
    if trip.trace is not None:
        kept.extend(trip.trace.upstream_headers())
    if peer.identity:
        kept.append(("x-forwarded-client-cert", f"URI={peer.identity}"))
    return tuple(kept)


def _grpc(response: UpstreamResponse) -> int | None:
    value = next((v for k, v in response.head.headers if k == "grpc-status"), None)
    return int(value) if value is not None and value.isdigit() else None


Clock = Callable[[], float]
