"""The waypoint's HTTP/2 and gRPC request path on loopback, driven by nghttp, grpcio and raw h2.

The real HTTP/2 session, pipeline, HTTP/2 upstream pool (with its HTTP/1.1 fallback) and
telemetry, between real clients and real backends: an HTTP/1.1 server, an h2c server and a
grpcio server. Only HBONE is replaced by plain TCP (its own tests cover it).
"""

from __future__ import annotations

import asyncio
import json
import shutil

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes

from controller.model_policy import AuthorizationPolicy, Operation, Rule, TargetRef
from tests.inprocess.h2_backends import GrpcBackend, H2Backend, channel, method
from tests.inprocess.waypoint_rig import VIP, Backend, Rig, nghttp, peers, route, service

needs_nghttp = pytest.mark.skipif(shutil.which("nghttp") is None, reason="needs nghttp")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def web(backends, *, routes=(), policies=()):
    return Rig(
        [service("web", backends[:1], vip=VIP)], peers(backends), list(routes), list(policies)
    )


def call(port: int, name: str, request: bytes, *, stream: bool = False, timeout: float = 20):
    """One gRPC call through the waypoint (in a thread: grpcio's sync client blocks)."""

    def blocking():
        with channel(port) as chan:
            if stream:
                return list(chan.unary_stream(method(name))(request, timeout=timeout))
            return chan.unary_unary(method(name))(request, timeout=timeout)

    return asyncio.to_thread(blocking)


# --- nghttp, prior knowledge -------------------------------------------------------------------


@needs_nghttp
def test_nghttp_through_to_an_http1_backend(tmp_path):
    upload = tmp_path / "upload"
    upload.write_bytes(b"p" * 300_000)

    async def main():
        with Backend("v1") as v1:
            async with web([v1]) as rig:
                rc, out, err = await nghttp(rig.url + "/hello?x=1")
                assert rc == 0, err
                echo = json.loads(out)
                assert (echo["backend"], echo["path"], echo["method"]) == (
                    "v1",
                    "/hello?x=1",
                    "GET",
                )
                assert rig.h2pool.opened == 0  # the backend refused the preface: HTTP/1.1 it is
                rc, out, err = await nghttp("-d", str(upload), rig.url + "/up")
                assert rc == 0, err
                assert json.loads(out)["body"] == "p" * 300_000
                total = await rig.eventually_metric("istio_requests_total", 2, response_code="200")
                assert total == 2

    run(main())


@needs_nghttp
def test_nghttp_through_to_an_h2c_backend_keeps_trailers():
    async def main():
        async with H2Backend("h2") as backend, web([backend]) as rig:
            rc, out, err = await nghttp("-v", rig.url + "/hello")
            assert rc == 0, err
            assert "HTTP Upgrade" not in out  # prior knowledge: -u would ask for an upgrade
            assert "x-backend-trailer: done" in out  # the upstream's trailer crossed over
            body = out[out.index("{") : out.rindex("}") + 1]
            assert json.loads(body)["protocol"] == "HTTP/2"
            assert rig.h2pool.opened == 1

    run(main())


@needs_nghttp
def test_nghttp_large_download_and_upload_respect_flow_control(tmp_path):
    tmp = tmp_path

    async def main():
        async with H2Backend("h2") as backend, web([backend]) as rig:
            size = 5 * 1024 * 1024  # far beyond nghttp's 64 KiB stream window
            rc, out, err = await nghttp(rig.url + f"/bytes/{size}")
            assert rc == 0, err
            assert out == "x" * size
            upload = tmp / "upload"
            upload.write_bytes(b"u" * (3 * 1024 * 1024))  # beyond our 1 MiB stream window
            rc, out, err = await nghttp("-d", str(upload), rig.url + "/up")
            assert rc == 0, err
            assert json.loads(out)["body"] == "u" * (3 * 1024 * 1024)

    run(main())


@needs_nghttp
def test_a_body_over_the_buffer_limit_gets_413_without_stalling(tmp_path):
    async def main():
        async with H2Backend("h2") as backend, web([backend]) as rig:
            upload = tmp_path / "upload"
            upload.write_bytes(b"u" * (9 * 1024 * 1024))  # the buffer holds 8 MiB
            _, out, _ = await nghttp("-v", "-d", str(upload), rig.url + "/up")
            assert ":status: 413" in out, out[-2000:]
            assert backend.count == 0

    run(main())


# --- gRPC ---------------------------------------------------------------------------------------


def test_grpc_unary_error_and_streaming_calls_and_their_metrics():
    async def main():
        with GrpcBackend("g1", messages=7) as backend:
            async with web([backend]) as rig:
                assert await call(rig.port, "Say", b"you") == b"g1 says hello to you"
                with pytest.raises(grpc.RpcError) as failed:
                    await call(rig.port, "Missing", b"thing")
                assert failed.value.code() == grpc.StatusCode.NOT_FOUND
                assert failed.value.details() == "no such thing: thing"
                got = await call(rig.port, "Count", b"n", stream=True)
                assert got == [f"n-{i}".encode() for i in range(7)]
                total = "istio_requests_total"
                assert await rig.eventually_metric(total, 2, grpc_response_status="0") == 2
                assert await rig.eventually_metric(total, 1, grpc_response_status="5") == 1
                assert rig.metric(total, request_protocol="grpc") == 3
                assert rig.h2pool.opened == 1  # one multiplexed connection carried all three

    run(main())


def test_many_concurrent_grpc_calls_share_one_upstream_connection():
    async def main():
        with GrpcBackend("g1") as backend:
            async with web([backend]) as rig:
                calls = [call(rig.port, "Say", str(i).encode()) for i in range(40)]
                answers = await asyncio.gather(*calls)
                assert answers == [f"g1 says hello to {i}".encode() for i in range(40)]
                assert rig.h2pool.opened == 1

    run(main())


def test_a_cancelled_grpc_call_cancels_the_upstream_call():
    async def main():
        with GrpcBackend("g1") as backend:
            async with web([backend]) as rig:
                with channel(rig.port) as chan:
                    future = chan.unary_unary(method("Hang")).future(b"", timeout=30)
                    assert await asyncio.to_thread(backend.hanging.wait, 20)
                    future.cancel()  # RST_STREAM(CANCEL) to the waypoint ...
                    # ... which resets its upstream stream: the server sees the call end
                    assert await asyncio.to_thread(backend.cancelled.wait, 20)
                assert await call(rig.port, "Say", b"again") == b"g1 says hello to again"

    run(main())


def _deny_all() -> AuthorizationPolicy:
    return AuthorizationPolicy(
        name="deny-echo",
        namespace="shop",
        selector=None,
        target_refs=(TargetRef("", "Service", "web", "shop"),),
        action="DENY",
        rules=(Rule(sources=(), operations=(Operation(paths=("/demo.Echo/*",)),), conditions=()),),
        is_root=False,
        needs_l7=True,
    )


def test_local_errors_reach_grpc_clients_as_grpc_statuses():
    async def main():
        with GrpcBackend("g1") as backend:
            async with web([backend], policies=[_deny_all()]) as rig:
                with pytest.raises(grpc.RpcError) as denied:
                    await call(rig.port, "Say", b"x")
                assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "deny-echo" in denied.value.details()
        with GrpcBackend("gone") as gone:
            rig = web([gone])
        async with rig:  # the backend is stopped: its port refuses connections
            with pytest.raises(grpc.RpcError) as down:
                await call(rig.port, "Say", b"x")
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "connect failure" in down.value.details()
            n = await rig.eventually_metric("istio_requests_total", 1, grpc_response_status="14")
            assert n == 1

    run(main())


def test_a_route_timeout_is_deadline_exceeded_for_grpc():
    async def main():
        rules = [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {
                        "group": "",
                        "kind": "Service",
                        "name": "web",
                        "namespace": "shop",
                        "port": 80,
                        "weight": 1,
                    }
                ],
                "filters": [],
                "timeouts": {"request": "200ms"},
            }
        ]
        with GrpcBackend("g1") as backend:
            async with web([backend], routes=[route("timeout", rules)]) as rig:
                with pytest.raises(grpc.RpcError) as late:
                    await call(rig.port, "Hang", b"")
                assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert "timeout" in late.value.details()
                assert await asyncio.to_thread(backend.cancelled.wait, 20)  # upstream reset too

    run(main())


# --- abuse --------------------------------------------------------------------------------------


async def _rapid_reset(port: int, streams: int) -> list:
    """Open and reset `streams` requests as fast as possible; the events the client got."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    get = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "web")]
    for _ in range(streams // 10):  # ten requests, then their ten resets, in separate writes
        ids = []
        for _ in range(10):
            ids.append(client.get_next_available_stream_id())
            client.send_headers(ids[-1], get, end_stream=True)
        writer.write(client.data_to_send())
        for sid in ids:
            client.reset_stream(sid)
        writer.write(client.data_to_send())
    events = []
    try:
        while data := await asyncio.wait_for(reader.read(65536), 20):
            events += client.receive_data(data)
            writer.write(client.data_to_send())
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                break
    except (ConnectionError, h2.exceptions.ProtocolError):
        pass
    writer.close()
    return events


def test_rapid_reset_gets_goaway_and_other_connections_keep_working():
    async def main():
        with GrpcBackend("g1") as backend:
            async with web([backend]) as rig:
                with channel(rig.port) as chan:  # a well-behaved client, connected before
                    say = chan.unary_unary(method("Say"))
                    assert await asyncio.to_thread(say, b"before", timeout=20)
                    events = await _rapid_reset(rig.port, 400)
                    ended = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
                    assert ended and ended[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM
                    answer = await asyncio.to_thread(say, b"after", timeout=20)
                    assert answer == b"g1 says hello to after"  # the earlier client still served
                assert await call(rig.port, "Say", b"new") == b"g1 says hello to new"

    run(main())
