"""grpc_shaped: the waypoint's own answers to gRPC calls become trailers-only responses."""

from __future__ import annotations

import pytest

from waypoint.exchange import Reply, text_reply
from waypoint.grpc_local import grpc_shaped
from waypoint.messages import RequestHead, ResponseHead

CALL = RequestHead(
    "POST", "http", "web", "/demo.Echo/Say", (("content-type", "application/grpc+proto"),), "HTTP/2"
)


def fields(reply: Reply) -> dict[str, str]:
    return dict(reply.head.headers)


@pytest.mark.parametrize(
    ("status", "grpc_status"),
    [(503, "14"), (504, "4"), (403, "7"), (404, "12"), (429, "14"), (500, "2"), (400, "13")],
)
def test_a_local_error_becomes_its_grpc_status(status, grpc_status):
    shaped = grpc_shaped(CALL, text_reply(status, "why it failed"))
    assert shaped.head.status == 200
    assert fields(shaped)["grpc-status"] == grpc_status
    assert fields(shaped)["grpc-message"] == "why it failed"
    assert shaped.body == b""


def test_the_text_body_is_the_message_and_extra_headers_survive():
    reply = text_reply(429, "local rate limit exceeded", (("retry-after", "1"),))
    shaped = grpc_shaped(CALL, reply)
    assert fields(shaped)["retry-after"] == "1"
    assert fields(shaped)["content-type"] == "application/grpc"
    assert "content-length" not in fields(shaped)


def test_done_is_kept_so_telemetry_still_finishes():
    calls = []
    reply = text_reply(503, "no healthy upstream")
    reply.done = lambda n, e: calls.append((n, e))
    grpc_shaped(CALL, reply).done(0, None)
    assert calls == [(0, None)]


def test_an_upstream_response_is_left_alone():
    async def body():
        yield b""

    streamed = Reply(ResponseHead(503), chunks=body())
    assert grpc_shaped(CALL, streamed) is streamed


def test_a_reply_that_already_has_a_grpc_status_is_left_alone():
    reply = Reply(ResponseHead(200, (("grpc-status", "5"),)))
    assert grpc_shaped(CALL, reply) is reply


@pytest.mark.parametrize(
    "request_head",
    [
        RequestHead("POST", "http", "web", "/x", (("content-type", "application/json"),), "HTTP/2"),
        RequestHead("POST", "http", "web", "/x", CALL.headers, "HTTP/1.1"),
        RequestHead(
            "POST", "http", "web", "/x", (("content-type", "application/grpc-web"),), "HTTP/2"
        ),
    ],
    ids=["not-grpc", "grpc-over-http1", "grpc-web"],
)
def test_other_requests_keep_their_http_errors(request_head):
    reply = text_reply(503, "down")
    assert grpc_shaped(request_head, reply) is reply


def test_an_empty_body_still_explains():
    shaped = grpc_shaped(CALL, Reply(ResponseHead(404)))
    assert fields(shaped)["grpc-status"] == "12"
    assert "404" in fields(shaped)["grpc-message"]
