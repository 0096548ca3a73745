"""Properties over whole byte streams (hypothesis): splits, prefixes, round trips and fuzz.

Valid pipelined request streams are encoded here by a deliberately naive encoder, independent
of the code under test, so the parser is checked against what the bytes mean, not against its
own serializer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from waypoint.http1 import (
    ClientConnection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    NeedData,
    Paused,
    RemoteProtocolError,
    Request,
    Response,
    ServerConnection,
    State,
)

from .helpers import normalize, respond

TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VALUE_BYTES = [b"\t", *(bytes([b]) for b in range(0x20, 0x7F)), b"\x80", b"\xc3", b"\xff"]
PATH_ALPHABET = "abcxyz0123456789-._~!$&'()*+,;=:@/%?"
FRAMING_NAMES = {
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"expect",
    b"upgrade",
}

tokens = st.text(TOKEN_ALPHABET, min_size=1, max_size=8).map(str.encode)
field_values = st.lists(st.sampled_from(VALUE_BYTES), max_size=12).map(
    lambda parts: b"".join(parts).strip(b" \t")
)
fields = st.lists(
    st.tuples(tokens, field_values).filter(lambda f: f[0].lower() not in FRAMING_NAMES),
    max_size=4,
)


@dataclass
class Spec:
    """One request: what to encode and the events it must come back as."""

    method: bytes
    target: bytes
    headers: list
    body: bytes
    framing: str
    chunks: list
    extensions: list
    trailers: list

    def encode(self) -> bytes:
        head = [self.method + b" " + self.target + b" HTTP/1.1", b"Host: svc.test"]
        head += [name + b":  " + value + b" " for name, value in self.headers]
        if self.framing == "length":
            head.append(b"Content-Length: %d" % len(self.body))
        elif self.framing == "chunked":
            head.append(b"Transfer-Encoding: chunked")
        out = b"\r\n".join(head) + b"\r\n\r\n"
        if self.framing == "length":
            return out + self.body
        if self.framing == "chunked":
            return out + self._chunked_body()
        return out

    def _chunked_body(self) -> bytes:
        out, rest = b"", self.body
        for size, extension in zip(self.chunks, self.extensions, strict=False):
            piece, rest = rest[:size], rest[size:]
            if piece:
                out += b"%X%s\r\n%s\r\n" % (len(piece), extension, piece)
        if rest:
            out += b"%x\r\n%s\r\n" % (len(rest), rest)
        trailers = b"".join(name + b": " + value + b"\r\n" for name, value in self.trailers)
        return out + b"0\r\n" + trailers + b"\r\n"

    def events(self) -> list:
        headers = [(b"host", b"svc.test")]
        headers += [(name.lower(), value) for name, value in self.headers]
        if self.framing == "length":
            headers.append((b"content-length", b"%d" % len(self.body)))
        elif self.framing == "chunked":
            headers.append((b"transfer-encoding", b"chunked"))
        out = [Request(self.method, self.target, b"1.1", headers)]
        if self.body:
            out.append(Data(self.body))
        trailers = [(n.lower(), v) for n, v in self.trailers] if self.framing == "chunked" else []
        return [*out, EndOfMessage(trailers)]


extensions = st.sampled_from([b"", b";a", b";a=b", b';name="quoted \\" value"'])


@st.composite
def specs(draw) -> Spec:
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b"" if framing == "none" else draw(st.binary(max_size=40))
    chunks = draw(st.lists(st.integers(1, 16), max_size=4))
    return Spec(
        method=draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"X-CUSTOM"])),
        target=b"/" + draw(st.text(PATH_ALPHABET, max_size=12)).encode(),
        headers=draw(fields),
        body=body,
        framing=framing,
        chunks=chunks,
        extensions=[draw(extensions) for _ in chunks],
        trailers=draw(fields) if framing == "chunked" else [],
    )


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def drive(pieces: list[bytes]) -> list:
    """Feed pieces to a server that answers each complete request; every event it reports."""
    server = ServerConnection()
    events: list = []
    for piece in [*pieces, b""]:
        new = server.receive_data(piece)
        events += new
        while new[-1] == Paused() and server.our_state is State.SEND_RESPONSE:
            respond(server)
            new = server.next_events()
            events += new
    return events


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(specs(), min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_of_a_pipelined_stream_yields_the_same_events(requests, cuts):
    stream = b"".join(spec.encode() for spec in requests)
    expected = [event for spec in requests for event in spec.events()] + [ConnectionClosed()]
    assert normalize(drive([stream])) == expected
    assert normalize(drive(splits(stream, cuts))) == expected
    assert normalize(drive([stream[i : i + 1] for i in range(len(stream))])) == expected


@settings(max_examples=60)
@given(st.lists(specs(), min_size=1, max_size=2))
def test_every_prefix_of_a_valid_stream_parses_without_error(requests):
    stream = b"".join(spec.encode() for spec in requests)
    for end in range(1, len(stream) + 1):
        events = ServerConnection().receive_data(stream[:end])
        assert isinstance(events[-1], NeedData | Paused)


@settings(max_examples=100)
@given(specs())
def test_what_the_client_sends_the_server_reads_back(spec):
    client, server = ClientConnection(), ServerConnection()
    expected = spec.events()
    request = expected[0]
    wire = client.send(request)
    for event in expected[1:]:
        wire += client.send(event)
    assert normalize(server.receive_data(wire)) == expected


@settings(max_examples=100)
@given(
    st.sampled_from([200, 201, 404, 500]),
    fields,
    st.binary(max_size=40),
    st.sampled_from(["length", "chunked"]),
    st.lists(st.integers(0, 10_000), max_size=6),
)
def test_what_the_server_sends_the_client_reads_back_in_any_split(
    status, headers, content, framing, cuts
):
    server, client = ServerConnection(), ClientConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    client.send(Request(b"GET", b"/", b"1.1", [(b"host", b"a")]))
    client.send(EndOfMessage())
    if framing == "length":
        headers = [*headers, (b"content-length", b"%d" % len(content))]
    wire = server.send(Response(status, b"", b"1.1", headers))
    wire += server.send(Data(content)) + server.send(EndOfMessage())
    events: list = []
    for piece in splits(wire, cuts):
        events += client.receive_data(piece)
    received = normalize(events)
    assert received[0].status == status
    assert b"".join(e.data for e in received if isinstance(e, Data)) == content
    assert received[-1] == EndOfMessage()
    assert client.our_state is State.IDLE


def _feed_all(connection, pieces: list[bytes]) -> None:
    try:
        for piece in pieces:
            events = connection.receive_data(piece)
            if events[-1] == Paused() and connection.our_state is State.SEND_RESPONSE:
                respond(connection)
                connection.next_events()
    except RemoteProtocolError as error:
        assert 400 <= error.status_hint <= 505
        assert str(error)


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=8))
@example([b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nab"])
def test_random_bytes_only_ever_raise_remote_protocol_error(pieces):
    _feed_all(ServerConnection(), [*pieces, b""])


@settings(max_examples=300)
@given(specs(), st.integers(0, 10_000), st.binary(min_size=1, max_size=4), st.booleans())
def test_mutated_valid_requests_only_ever_raise_remote_protocol_error(spec, at, junk, replace):
    stream = spec.encode()
    at %= len(stream)
    mutated = stream[:at] + junk + stream[at + (len(junk) if replace else 0) :]
    _feed_all(ServerConnection(), [mutated, b""])


@settings(max_examples=200)
@given(
    st.sampled_from([b"GET", b"HEAD", b"CONNECT"]),
    st.lists(st.binary(min_size=1, max_size=64), max_size=6),
)
def test_random_responses_only_ever_raise_remote_protocol_error_with_502(method, pieces):
    target = b"a:1" if method == b"CONNECT" else b"/"
    client = ClientConnection()
    client.send(Request(method, target, b"1.1", [(b"host", b"a:1")]))
    client.send(EndOfMessage())
    try:
        for piece in [b"HTTP/1.1 ", *pieces, b""]:
            client.receive_data(piece)
            if client.our_state is State.SWITCHED:
                return
    except RemoteProtocolError as error:
        assert error.status_hint == 502
