"""Circuit breaking on the waypoint's request path: overflow is a local 503 `UO`, then recovery.

The backend holds every request until the test opens its gate, so "in flight" is a fact the test
controls, not a race against a sleep: the requests beyond the TrafficPolicy's `connectionPool`
limits must be answered 503 with flag `UO` while the admitted ones are still held, must never
reach the backend, and once the held ones finish the Service must take requests again (no slot
leaked on any path).
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from tests.inprocess.waypoint_rig import VIP, Backend, Rig, nghttp, peers, service
from waypoint.resilience.config import traffic_policy_from_spec


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def rig_for(backend, pool: dict | None = None, **spec) -> Rig:
    if pool is not None:
        spec["connectionPool"] = pool
    policy = traffic_policy_from_spec({"targetRefs": [], **spec})
    return Rig([service("web", [backend], vip=VIP)], peers([backend]), traffic={"shop/web": policy})


async def get(rig: Rig) -> tuple[int, str]:
    """One HTTP/1.1 request on its own connection: (status, the name of the backend that
    answered 200, or else the body: the waypoint's own reason for a local reply)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n")
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["backend"] if status == 200 else body.decode()


def breaker(rig: Rig):
    return rig.proxy.backends.resilience(rig.config.state.services["shop/web"], rig.config.state)


async def fill_the_queue(rig: Rig, backend: Backend):
    """Under maxConnections 1 and maxPendingRequests 1: one request held at the backend on the
    only connection, one queued for it. Returns (the Service's gate, first, queued)."""
    gate = breaker(rig).gate
    first = asyncio.ensure_future(get(rig))
    await backend.until_count(1)
    queued = asyncio.ensure_future(get(rig))
    while gate.waiting < 1:
        await asyncio.sleep(0.01)
    return gate, first, queued


def test_max_requests_overflow_is_503_uo_without_reaching_the_backend_then_recovers():
    async def main():
        with Backend("web", held=True) as backend:
            async with rig_for(backend, {"maxRequests": 2}) as rig:
                held = [asyncio.ensure_future(get(rig)) for _ in range(2)]
                await backend.until_count(2)

                refused = await asyncio.gather(*(get(rig) for _ in range(3)))

                assert [status for status, _ in refused] == [503, 503, 503]
                assert all("connectionPool.maxRequests" in body for _, body in refused)
                assert backend.count == 2  # overflow never goes upstream
                backend.gate.set()
                assert [status for status, _ in await asyncio.gather(*held)] == [200, 200]
                assert await get(rig) == (200, "web")  # recovered: no slot leaked
                assert await get(rig) == (200, "web")
                uo = await rig.eventually_metric(
                    "istio_requests_total", 3, response_code="503", response_flags="UO"
                )
                assert uo == 3
                assert rig.metric("istio_requests_total", response_code="200") == 4
                assert breaker(rig).gate.breaker.active_requests == 0

    run(main())


def test_busy_connections_queue_up_to_max_pending_and_the_rest_overflow():
    async def main():
        with Backend("web", held=True) as backend:
            pool = {"maxConnections": 1, "maxPendingRequests": 1}
            async with rig_for(backend, pool) as rig:
                gate, first, queued = await fill_the_queue(rig, backend)

                status, body = await get(rig)

                assert status == 503 and "connectionPool.maxPendingRequests" in body
                assert backend.count == 1  # the queued one waits for the connection
                backend.gate.set()
                assert [(await first)[0], (await queued)[0]] == [200, 200]
                assert backend.count == 2
                assert (
                    await rig.eventually_metric("istio_requests_total", 1, response_flags="UO") == 1
                )
                assert (gate.breaker.active_connections, gate.breaker.pending_requests) == (0, 0)

    run(main())


def test_a_client_that_gives_up_while_queued_leaks_no_slot():
    async def main():
        with Backend("web", held=True) as backend:
            pool = {"maxConnections": 1, "maxPendingRequests": 1}
            async with rig_for(backend, pool) as rig:
                gate, first, gone = await fill_the_queue(rig, backend)
                gone.cancel()  # closes its connection: the waypoint's session ends the request
                backend.gate.set()

                assert (await first)[0] == 200
                assert await get(rig) == (200, "web")
                while gate.breaker.active_requests or gate.waiting:
                    await asyncio.sleep(0.01)
                assert gate.breaker.pending_requests == 0

    run(main())


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="needs nghttp")
def test_http2_streams_overflow_max_requests_too():
    async def main():
        with Backend("web", held=True) as backend:
            async with rig_for(backend, {"maxRequests": 1}) as rig:
                held = asyncio.ensure_future(get(rig))
                await backend.until_count(1)

                rc, out, err = await nghttp("-v", rig.url + "/")

                assert rc == 0, err
                assert ":status: 503" in out and "connectionPool.maxRequests" in out
                backend.gate.set()
                assert (await held)[0] == 200
                uo = await rig.eventually_metric("istio_requests_total", 1, response_flags="UO")
                assert uo == 1
                assert breaker(rig).gate.breaker.active_requests == 0

    run(main())


def test_a_retriable_status_passed_through_after_the_last_retry_is_urx():
    async def main():
        with Backend("web", fail_every=1) as backend:  # every answer is a 503
            retries = {
                "attempts": 2,
                "retryOn": ["retriable-status-codes"],
                "retriableStatusCodes": [503],
                "backoff": {"baseInterval": "1ms", "maxInterval": "2ms"},
            }
            async with rig_for(backend, retries=retries) as rig:
                assert (await get(rig))[0] == 503
                assert backend.count == 3  # the original and both retries
                urx = await rig.eventually_metric(
                    "istio_requests_total", 1, response_code="503", response_flags="URX"
                )
                assert urx == 1

    run(main())


def test_a_retry_refused_by_max_retries_is_an_overflow_not_urx():
    async def main():
        with Backend("web", fail_every=1) as backend:
            async with rig_for(backend, {"maxRetries": 0}) as rig:
                assert (await get(rig))[0] == 503
                assert backend.count == 1  # Envoy: upstream_rq_retry_overflow, no retry
                uo = await rig.eventually_metric(
                    "istio_requests_total", 1, response_code="503", response_flags="UO"
                )
                assert uo == 1

    run(main())
