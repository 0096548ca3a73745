"""The HBONE protocol objects with no sockets: bytes in, events out (h11's ConnectionPair style)."""

from __future__ import annotations

import itertools

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, WindowUpdateFrame
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.hbone.events import (
    ConnectionClosed,
    Data,
    LocalProtocolError,
    PeerEnded,
    RemoteProtocolError,
    RequestRejected,
    Reset,
    TunnelOpened,
    TunnelRefused,
    TunnelRequested,
    WindowOpened,
)
from nodemesh.hbone.fastdata import DataFrameView
from nodemesh.hbone.gate import FrameGate, GoAway
from nodemesh.hbone.headers import REASON_HEADER, format_authority, parse_authority, tunnel_headers
from nodemesh.hbone.protocol import HboneClientConnection, HboneServerConnection, HboneSettings

MiB = 1 << 20


class Pair:
    """A client and a server wired back to back in memory; pump() moves bytes until quiet."""

    def __init__(self, settings: HboneSettings | None = None, clock=None) -> None:
        kwargs = {"clock": clock} if clock else {}
        self.client = HboneClientConnection(settings, **kwargs)
        self.server = HboneServerConnection(settings, **kwargs)
        self.pump()

    def pump(self) -> tuple[list, list]:
        """Deliver everything both ways; returns (client events, server events)."""
        client_events, server_events = [], []
        while True:
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return client_events, server_events
            server_events += self.server.receive_data(to_server)
            client_events += self.client.receive_data(to_client)

    def open(self, authority="127.0.0.1:8080", headers=None) -> int:
        sid = self.client.open_tunnel(authority, headers or {})
        _, server_events = self.pump()
        assert server_events == [TunnelRequested(sid, authority, headers or {})]
        self.server.accept(sid)
        client_events, _ = self.pump()
        assert client_events == [TunnelOpened(sid, 200)]
        return sid


def data_of(events, stream_id=None) -> bytes:
    return b"".join(
        e.data for e in events if isinstance(e, Data) and stream_id in (None, e.stream_id)
    )


def ack_all(conn, events) -> None:
    for event in events:
        if isinstance(event, Data):
            conn.acknowledge(event.stream_id, event.flow_controlled_length)


def raw_client() -> h2.connection.H2Connection:
    """A plain h2 client, free to send what an HBONE client never would."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn


# --- opening tunnels ---------------------------------------------------------------------------


def test_connect_carries_authority_and_ztunnel_headers_and_bytes_flow_both_ways():
    pair = Pair()
    headers = tunnel_headers("10.1.2.3", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    sid = pair.open("127.0.0.1:8080", headers)
    assert headers["forwarded"] == "for=10.1.2.3"
    assert pair.client.send(sid, b"ping") == 4
    _, server_events = pair.pump()
    assert data_of(server_events) == b"ping"
    assert pair.server.send(sid, b"pong") == 4
    client_events, _ = pair.pump()
    assert data_of(client_events) == b"pong"


def test_ipv6_destination_and_source():
    pair = Pair()
    headers = tunnel_headers("fd00::1")
    assert headers == {"forwarded": 'for="[fd00::1]"'}
    pair.open(format_authority("::1", 443), headers)


@pytest.mark.parametrize(
    "authority",
    ["example.com:80", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "::1:443", ":80", "1.2.3:4"],
)
def test_a_connect_whose_authority_is_not_ip_port_gets_400(authority):
    with pytest.raises(ValueError):
        parse_authority(authority)
    with pytest.raises(LocalProtocolError):
        HboneClientConnection().open_tunnel(authority)
    server, raw = HboneServerConnection(), raw_client()
    raw.send_headers(1, [(":method", "CONNECT"), (":authority", authority)])
    events = server.receive_data(raw.data_to_send())
    [rejected] = [e for e in events if isinstance(e, RequestRejected)]
    assert rejected.status == 400 and "authority" in rejected.reason
    answer = raw.receive_data(server.data_to_send())
    response = next(e for e in answer if isinstance(e, h2.events.ResponseReceived))
    assert (b":status", b"400") in response.headers


def test_a_request_other_than_connect_gets_405_with_a_reason():
    server, raw = HboneServerConnection(), raw_client()
    raw.send_headers(
        1,
        [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "a:1")],
        end_stream=True,
    )
    events = server.receive_data(raw.data_to_send())
    assert events[-1] == RequestRejected(1, 405, "HBONE carries only CONNECT tunnels, not GET")
    answer = raw.receive_data(server.data_to_send())
    response = next(e for e in answer if isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[REASON_HEADER.encode()].startswith(b"HBONE carries only")
    assert server.live_streams == 0


def test_a_refusal_reaches_the_client_with_its_reason_and_frees_the_stream():
    pair = Pair()
    sid = pair.client.open_tunnel("127.0.0.1:80")
    pair.pump()
    pair.server.refuse(sid, 403, "denied by AuthorizationPolicy shop/deny-all\r\n")
    client_events, server_events = pair.pump()
    assert client_events == [
        TunnelRefused(sid, 403, "denied by AuthorizationPolicy shop/deny-all??")
    ]
    assert server_events == []  # the client's answering RST is not a Reset event nor abuse
    assert pair.client.live_streams == pair.server.live_streams == 0
    assert pair.client.available_streams == 100


def test_caller_mistakes_are_local_errors():
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        pair.client.send(1, b"x")  # never opened
    with pytest.raises(LocalProtocolError):
        pair.client.open_tunnel("127.0.0.1:80", {":path": "/"})
    sid = pair.open()
    pair.client.end(sid)
    with pytest.raises(LocalProtocolError):
        pair.client.send(sid, b"late")
    with pytest.raises(LocalProtocolError):
        pair.server.accept(sid)  # answered already


def test_the_client_respects_the_stream_limit_it_learned():
    pair = Pair(HboneSettings(max_concurrent_streams=3))
    for _ in range(3):
        pair.client.open_tunnel("127.0.0.1:80")
    assert pair.client.available_streams == 0
    with pytest.raises(LocalProtocolError, match="another connection"):
        pair.client.open_tunnel("127.0.0.1:80")


# --- flow control ------------------------------------------------------------------------------


def test_the_sender_stops_at_the_stream_window_and_resumes_on_acknowledge():
    pair = Pair()
    sid = pair.open()
    payload = bytes(range(256)) * (40 * 1024)  # 10 MiB
    sent = pair.client.send(sid, payload)
    assert sent == 4 * MiB  # the stream window; the rest waits
    _, server_events = pair.pump()
    assert pair.client.send(sid, payload[sent:]) == 0  # nothing acknowledged: nothing more
    assert sum(e.flow_controlled_length for e in server_events if isinstance(e, Data)) == sent
    assert max(len(e.data) for e in server_events if isinstance(e, Data)) == MiB  # big frames
    received = data_of(server_events)
    while sent < len(payload):
        ack_all(pair.server, server_events)  # the shell wrote them onward
        client_events, _ = pair.pump()
        assert WindowOpened(sid) in client_events
        more = pair.client.send(sid, payload[sent:])
        assert 0 < more <= 4 * MiB
        sent += more
        _, server_events = pair.pump()
        received += data_of(server_events)
    assert received == payload


def test_unacknowledged_data_holds_the_connection_window_across_tunnels():
    pair = Pair()
    sids = [pair.open() for _ in range(5)]
    chunk = b"x" * (4 * MiB)
    assert [pair.client.send(sid, chunk) for sid in sids] == [4 * MiB] * 4 + [0]
    _, server_events = pair.pump()
    ack_all(pair.server, [e for e in server_events if e.stream_id == sids[0]])
    pair.pump()
    assert pair.client.send(sids[4], chunk) > 0  # the connection window came back


def test_data_nobody_will_read_is_credited_back_at_once():
    pair = Pair()
    sid = pair.open()
    pair.client.send(sid, b"y" * MiB)
    pair.server.reset(sid)
    pair.pump()  # the server drops the in-flight MiB but must return it to the connection
    sid2 = pair.open()
    assert pair.client.send_window(sid2) == 4 * MiB


# --- ending tunnels ----------------------------------------------------------------------------


def test_half_close_both_ways():
    pair = Pair()
    sid = pair.open()
    pair.client.send(sid, b"request")
    pair.client.end(sid)
    _, server_events = pair.pump()
    assert server_events[-2:] == [Data(sid, b"request", 7), PeerEnded(sid)]
    assert pair.server.send(sid, b"response after the client's FIN") > 0
    pair.server.end(sid)
    client_events, _ = pair.pump()
    assert data_of(client_events) == b"response after the client's FIN"
    assert client_events[-1] == PeerEnded(sid)
    assert pair.client.live_streams == pair.server.live_streams == 0
    assert pair.client.available_streams == 100


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_reset_reaches_the_other_side(side):
    pair = Pair()
    sid = pair.open()
    getattr(pair, side).reset(sid, ErrorCodes.CONNECT_ERROR)
    client_events, server_events = pair.pump()
    other = server_events if side == "client" else client_events
    assert other == [Reset(sid, ErrorCodes.CONNECT_ERROR, remote=True)]
    with pytest.raises(LocalProtocolError):
        (pair.server if side == "client" else pair.client).send(sid, b"x")


def test_graceful_drain_lets_tunnels_in_flight_finish_and_refuses_later_ones():
    pair = Pair()
    sid = pair.open()
    late = pair.client.open_tunnel("127.0.0.1:80")  # crosses the GOAWAY on the wire
    pair.server.start_drain("agent restarting")
    drained_to = pair.server.data_to_send()
    client_events = pair.client.receive_data(drained_to)
    assert client_events[-2:] == [
        ConnectionClosed(0, "agent restarting", sid),
        Reset(late, ErrorCodes.REFUSED_STREAM, remote=True),
    ]
    assert pair.client.available_streams == 0
    _, server_events = pair.pump()
    assert not any(isinstance(e, TunnelRequested) for e in server_events)
    assert pair.client.send(sid, b"still flowing") == 13
    pair.client.end(sid)
    _, server_events = pair.pump()
    assert data_of(server_events) == b"still flowing"
    pair.server.send(sid, b"and back")
    pair.server.end(sid)
    client_events, _ = pair.pump()
    assert data_of(client_events) == b"and back" and client_events[-1] == PeerEnded(sid)


# --- misbehaving peers -------------------------------------------------------------------------


def test_rapid_reset_ends_the_connection_with_enhance_your_calm():
    pair = Pair(HboneSettings(max_resets_per_second=50), clock=lambda: 100.0)
    with pytest.raises(RemoteProtocolError) as caught:
        for _ in range(60):
            sid = pair.client.open_tunnel("127.0.0.1:80")
            pair.client.reset(sid)
            pair.server.receive_data(pair.client.data_to_send())
    assert caught.value.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert "rapid-reset" in str(caught.value)
    client_events = pair.client.receive_data(pair.server.data_to_send())
    assert isinstance(client_events[-1], ConnectionClosed)
    assert client_events[-1].error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_resets_spread_over_time_are_not_abuse():
    now = [0.0]
    pair = Pair(HboneSettings(max_resets_per_second=10), clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.2
        sid = pair.client.open_tunnel("127.0.0.1:80")
        pair.client.reset(sid)
        pair.pump()


def raw_frame(kind: int, stream_id: int, payload: bytes, flags: int = 0, length=None) -> bytes:
    """Any frame, valid or not: hyperframe refuses to build the invalid ones we need."""
    size = len(payload) if length is None else length
    return size.to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


def _preface_and_settings() -> bytes:
    return HboneClientConnection().data_to_send()


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (raw_frame(0x0, 0, b"on stream zero"), ErrorCodes.PROTOCOL_ERROR),
        (raw_frame(0x7, 1, bytes(8)), ErrorCodes.PROTOCOL_ERROR),
        (raw_frame(0x7, 0, b"1234"), ErrorCodes.FRAME_SIZE_ERROR),
        (raw_frame(0x0, 1, b"z" * 16, length=2 * MiB), ErrorCodes.FRAME_SIZE_ERROR),
        (WindowUpdateFrame(0, window_increment=2**31 - 1).serialize(), "FLOW_CONTROL"),
        (HeadersFrame(2, data=b"\x82", flags=["END_HEADERS"]).serialize(), 1),
    ],
    ids=["data-on-0", "goaway-on-1", "short-goaway", "huge-frame", "window-overflow", "even-id"],
)
def test_malformed_frames_raise_remote_errors_and_answer_with_goaway(bad, code):
    server = HboneServerConnection()
    with pytest.raises(RemoteProtocolError) as caught:
        server.receive_data(_preface_and_settings() + bad)
    if code != "FLOW_CONTROL":
        assert caught.value.error_code == code
    client = HboneClientConnection()
    client.receive_data(server.data_to_send())  # the server's GOAWAY says why
    assert client.peer_goaway is not None and client.peer_goaway.error_code != 0
    assert server.receive_data(b"anything more") == []  # nothing is read after the end


def test_a_wrong_preface_is_a_remote_error():
    with pytest.raises(RemoteProtocolError):
        HboneServerConnection().receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


# --- parsing is independent of how the bytes were cut ------------------------------------------


def _recorded_client_bytes() -> bytes:
    client = HboneClientConnection()
    client.open_tunnel("127.0.0.1:9000", tunnel_headers("10.0.0.7", "00-" + "a" * 32 + "-01"))
    return client.data_to_send()


def _events_of(chunks) -> list:
    server = HboneServerConnection()
    return [e for chunk in chunks for e in server.receive_data(chunk)]


def test_every_prefix_of_preface_and_headers_yields_the_same_events():
    recorded = _recorded_client_bytes()
    whole = _events_of([recorded])
    assert isinstance(whole[-1], TunnelRequested)
    assert _events_of([recorded[i : i + 1] for i in range(len(recorded))]) == whole
    for cut in range(len(recorded) + 1):
        assert _events_of([recorded[:cut], recorded[cut:]]) == whole, cut


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_cutting_of_a_whole_exchange_yields_the_same_events(cuts):
    pair_bytes = bytearray(_recorded_client_bytes())
    pair_bytes += DataFrame(1, data=b"d" * 300, flags=["END_STREAM"]).serialize()
    pair_bytes += GoAwayFrame(0, last_stream_id=0, additional_data=b"bye").serialize()
    whole = _events_of([bytes(pair_bytes)])
    assert isinstance(whole[-1], ConnectionClosed) and whole[-1].reason == "bye"
    points = sorted({0, len(pair_bytes), *(c % (len(pair_bytes) + 1) for c in cuts)})
    chunks = [bytes(pair_bytes[a:b]) for a, b in itertools.pairwise(points)]
    assert _events_of(chunks) == whole


def test_the_gate_passes_frames_through_and_takes_goaway_out():
    gate = FrameGate(server=False, max_frame_size=1 << 14)
    data = DataFrame(1, data=b"abc").serialize()
    goaway = GoAwayFrame(0, last_stream_id=5, error_code=0, additional_data=b"bye").serialize()
    pieces = gate.split(data + goaway + data)
    assert [bytes(p) if not isinstance(p, GoAway) else p for p in pieces] == [
        data,
        GoAway(5, 0, b"bye"),
        data,
    ]


def test_the_gate_hands_out_whole_data_frames_when_asked():
    gate = FrameGate(server=False, max_frame_size=1 << 14, data_frames=True)
    data = DataFrame(1, data=b"abc").serialize()
    goaway = GoAwayFrame(0, last_stream_id=5, error_code=0, additional_data=b"bye").serialize()
    pieces = gate.split(data + goaway + data + data[:10])
    whole = [p for p in pieces if isinstance(p, DataFrameView)]
    assert [(p.stream_id, bytes(p.raw), bytes(p.payload)) for p in whole] == [(1, data, b"abc")] * 2
    assert pieces[1] == GoAway(5, 0, b"bye")
    assert bytes(pieces[3]) == data[:10]  # a cut frame passes through as bytes, for h2


def test_a_goaway_inside_a_header_block_goes_to_h2_which_rejects_it():
    server = HboneServerConnection()
    start = HeadersFrame(1, data=b"\x82")  # no END_HEADERS: a CONTINUATION must follow
    with pytest.raises(RemoteProtocolError):
        server.receive_data(
            _preface_and_settings() + start.serialize() + GoAwayFrame(0).serialize()
        )


def test_the_fast_frame_repr_prints_exactly_what_hyperframe_prints():
    """install_fast_frame_repr may only change speed, never a log line."""
    import hyperframe.frame

    from nodemesh.hbone.gate import _raw_data_repr

    original = hyperframe.frame._raw_data_repr
    assert original is not _raw_data_repr  # importing the package patched nothing
    for n in range(30):
        data = bytes(range(n))
        assert _raw_data_repr(data) == original(data)
    assert _raw_data_repr(None) == original(None)
