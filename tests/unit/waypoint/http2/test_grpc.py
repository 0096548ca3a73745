"""gRPC helpers: recognising a call, reading its outcome, building the proxy's own replies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypoint.http2.grpc import (
    GrpcStatus,
    call_status,
    encode_message,
    error_response,
    grpc_message,
    grpc_status,
    grpc_timeout,
    is_grpc,
    is_grpc_request,
    local_reply,
    status_from_http,
)
from waypoint.messages import RequestHead, ResponseHead


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/grpc", True),
        ("application/grpc+proto", True),
        ("application/grpc+json", True),
        ("application/grpc; charset=utf-8", True),
        ("Application/GRPC", True),
        ("application/grpc-web", False),
        ("application/grpc-web-text+proto", False),
        ("application/grpcx", False),
        ("application/json", False),
        (None, False),
    ],
)
def test_is_grpc(content_type, expected):
    assert is_grpc(content_type) is expected


def test_a_grpc_request_is_known_by_its_content_type():
    head = RequestHead("POST", "http", "a", "/pkg.Svc/M", (("content-type", "application/grpc"),))
    assert is_grpc_request(head)
    assert not is_grpc_request(RequestHead("POST", "http", "a", "/"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", GrpcStatus.OK),
        ("14", GrpcStatus.UNAVAILABLE),
        ("16", GrpcStatus.UNAUTHENTICATED),
        ("17", GrpcStatus.UNKNOWN),  # not a known code
        ("abc", GrpcStatus.UNKNOWN),
        ("-1", GrpcStatus.UNKNOWN),
    ],
)
def test_grpc_status_reads_known_codes_and_treats_others_as_unknown(value, expected):
    assert grpc_status((("grpc-status", value),)) is expected


def test_absent_grpc_status_is_none():
    assert grpc_status((("content-type", "application/grpc"),)) is None


@pytest.mark.parametrize(
    ("http", "grpc"),
    [
        (400, GrpcStatus.INTERNAL),
        (401, GrpcStatus.UNAUTHENTICATED),
        (403, GrpcStatus.PERMISSION_DENIED),
        (404, GrpcStatus.UNIMPLEMENTED),
        (429, GrpcStatus.UNAVAILABLE),
        (502, GrpcStatus.UNAVAILABLE),
        (503, GrpcStatus.UNAVAILABLE),
        (504, GrpcStatus.UNAVAILABLE),
        (500, GrpcStatus.UNKNOWN),
        (418, GrpcStatus.UNKNOWN),
    ],
)
def test_http_status_maps_as_grpcs_mapping_table_says(http, grpc):
    assert status_from_http(http) is grpc


def test_the_outcome_of_a_call():
    grpc = (("content-type", "application/grpc"),)
    assert call_status(ResponseHead(200, grpc), (("grpc-status", "0"),)) is GrpcStatus.OK
    trailers_only = ResponseHead(200, (*grpc, ("grpc-status", "7")))
    assert call_status(trailers_only) is GrpcStatus.PERMISSION_DENIED
    assert call_status(ResponseHead(503)) is GrpcStatus.UNAVAILABLE  # a non-gRPC intermediary
    assert call_status(ResponseHead(200, grpc)) is GrpcStatus.UNKNOWN  # ended without a status
    # grpc-status wins over the HTTP status
    assert call_status(ResponseHead(503, (("grpc-status", "8"),))) is GrpcStatus.RESOURCE_EXHAUSTED


def test_the_proxys_own_errors_become_trailers_only_grpc_responses():
    unavailable = local_reply(503, "no healthy upstream")
    assert unavailable == ResponseHead(
        200,
        (
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
            ("grpc-message", "no healthy upstream"),
        ),
    )
    timeout = local_reply(504, "upstream request timeout")
    assert call_status(timeout) is GrpcStatus.DEADLINE_EXCEEDED
    assert call_status(local_reply(403, "RBAC: access denied")) is GrpcStatus.PERMISSION_DENIED
    assert call_status(local_reply(404, "no route")) is GrpcStatus.UNIMPLEMENTED
    assert call_status(local_reply(500, "bug")) is GrpcStatus.UNKNOWN


def test_an_error_response_without_a_message_has_no_grpc_message():
    head = error_response(GrpcStatus.CANCELLED)
    assert grpc_status(head.headers) is GrpcStatus.CANCELLED
    assert "grpc-message" not in dict(head.headers)


def test_grpc_message_is_percent_encoded_and_bounded():
    assert encode_message("50% off: naïve\r\n") == "50%25 off: na%C3%AFve%0D%0A"
    head = error_response(GrpcStatus.INTERNAL, "x" * 5000)
    assert len(dict(head.headers)["grpc-message"]) == 1024


@given(st.text(max_size=200))
def test_grpc_message_round_trips(message):
    encoded = encode_message(message)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert grpc_message((("grpc-message", encoded),)) == message


def test_a_malformed_escape_in_grpc_message_is_kept():
    assert grpc_message((("grpc-message", "100%zz"),)) == "100%zz"
    assert grpc_message(()) == ""


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1S", 1.0), ("100m", 0.1), ("2M", 120.0), ("1H", 3600.0), ("5u", 5e-6), ("7n", 7e-9)],
)
def test_grpc_timeout(value, seconds):
    assert grpc_timeout((("grpc-timeout", value),)) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "S", "1s", "123456789S", "1.5S", "-1S"])
def test_a_malformed_grpc_timeout_is_ignored(value):
    assert grpc_timeout((("grpc-timeout", value),)) is None
