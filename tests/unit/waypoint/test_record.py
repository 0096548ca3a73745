"""waypoint.record: request protocol, gRPC status (trailers, headers, HTTP), derived facts."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from nodemesh.telemetry import ResponseFlag, SecurityPolicy, response_flags
from tests.unit.waypoint.records import T0, grpc_head, head, record
from waypoint.messages import Peer, ResponseHead
from waypoint.record import RequestProtocol, grpc_status, request_protocol


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/grpc", "grpc"),
        ("application/grpc+proto", "grpc"),
        ("Application/GRPC; charset=utf-8", "grpc"),
        ("application/grpc-web", "http"),  # gRPC-Web is a different wire format
        ("application/json", "http"),
        (None, "http"),
    ],
)
def test_request_protocol(content_type, expected):
    headers = () if content_type is None else (("content-type", content_type),)
    assert request_protocol(head(headers=headers)) == expected


def test_grpc_status_prefers_trailers_over_headers():
    response = ResponseHead(200, (("grpc-status", "5"),))
    assert grpc_status(response, (("grpc-status", "0"),)) == 0


def test_grpc_status_from_headers_for_a_trailers_only_response():
    assert grpc_status(ResponseHead(200, (("grpc-status", "7"),))) == 7


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, 13), (401, 16), (403, 7), (404, 12), (429, 14), (502, 14), (503, 14), (504, 14)],
)
def test_grpc_status_mapped_from_http_when_absent(status, expected):
    assert grpc_status(ResponseHead(status)) == expected


def test_grpc_status_absent_on_a_200_is_unknown():
    assert grpc_status(ResponseHead(200)) == 2


def test_no_response_means_no_grpc_status():
    assert grpc_status(None) is None


@pytest.mark.parametrize("bad", ["", "17", "-1", "abc", "1.0", "٣"])
def test_grpc_status_that_is_not_a_code_counts_as_unknown(bad):
    assert grpc_status(ResponseHead(200), (("grpc-status", bad),)) == 2


def test_grpc_status_is_none_for_plain_http_even_with_the_header():
    r = record(response=ResponseHead(200, (("grpc-status", "3"),)))
    assert r.protocol is RequestProtocol.HTTP
    assert r.grpc_status is None


def test_grpc_record_reads_its_trailers():
    r = record(request=grpc_head(), trailers=(("grpc-status", "14"),))
    assert (r.protocol, r.grpc_status) == (RequestProtocol.GRPC, 14)


def test_response_code_is_zero_without_a_response():
    assert record(response=None).response_code == 0
    assert record(response=ResponseHead(503)).response_code == 503


def test_derived_sizes_times_and_security():
    r = record(start_time=T0, duration=1.5)
    assert r.end_time == T0 + 1.5
    assert (r.request_bytes, r.response_bytes) == (100, 1500)
    assert r.security_policy is SecurityPolicy.MUTUAL_TLS
    plaintext = record(peer=Peer(None, ("198.18.1.2", 1), ("198.18.128.20", 80)))
    assert plaintext.security_policy is SecurityPolicy.NONE


@pytest.mark.parametrize(
    "flags",
    [
        frozenset(),
        frozenset({ResponseFlag.NONE}),
        frozenset({ResponseFlag.UPSTREAM_TIMEOUT, ResponseFlag.RETRY_LIMIT_EXCEEDED}),
        frozenset({ResponseFlag.DENY}),
    ],
)
def test_flags_label_is_envoys_spelling(flags):
    assert record(flags=flags).flags_label == response_flags(flags)


def test_derived_facts_are_computed_once_and_the_record_stays_frozen():
    r = record(request=grpc_head(), response=ResponseHead(200, (("grpc-status", "5"),)))
    assert (r.protocol, r.grpc_status) == (RequestProtocol.GRPC, 5)
    assert r.__dict__["grpc_status"] == 5  # kept after the first read
    with pytest.raises(FrozenInstanceError):
        r.flags = frozenset()  # type: ignore[misc]
