"""HTTP/2 abuse ends the abusive connection only: rapid reset, floods, oversized header blocks."""

from __future__ import annotations

import h2.events
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame

from tests.unit.waypoint.http2.helpers import GET, ServerPair, of_type
from waypoint.http2 import (
    ConnectionTerminated,
    Http2Limits,
    RequestReceived,
    StreamReset,
)
from waypoint.messages import ResponseHead

CALM = ErrorCodes.ENHANCE_YOUR_CALM


def open_and_reset(pair: ServerPair, *, same_batch: bool = True) -> list:
    """The rapid-reset move: open a stream, cancel it at once. Returns the server's events."""
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_headers(sid, GET)
    events = [] if same_batch else pair.pump()[0]
    pair.client.reset_stream(sid, ErrorCodes.CANCEL)
    return events + pair.pump()[0]


def goaway_heard(pair: ServerPair) -> h2.events.ConnectionTerminated:
    [goaway] = of_type(pair.heard, h2.events.ConnectionTerminated)
    return goaway


# --- rapid reset (CVE-2023-44487) -------------------------------------------------------------


def test_rapid_reset_ends_the_connection_with_enhance_your_calm():
    pair = ServerPair(Http2Limits(max_resets=10, reset_window=30.0))
    for _ in range(10):
        assert open_and_reset(pair) == []  # opened and reset in one batch: the shell never knows
    assert not pair.server.closed
    [ended] = open_and_reset(pair)
    assert ended == ConnectionTerminated(CALM, ended.reason, 21, remote=False)
    assert "rapid-reset" in ended.reason
    assert goaway_heard(pair).error_code == CALM
    assert pair.server.closed


def test_resets_spread_wider_than_the_window_are_tolerated():
    pair = ServerPair(Http2Limits(max_resets=3, reset_window=1.0))
    for _ in range(30):
        pair.clock.now += 0.5  # two per second: at most 2 inside any 1 s window
        open_and_reset(pair)
    assert not pair.server.closed
    pair.clock.now += 1.0  # the window is empty again
    for _ in range(3):
        open_and_reset(pair)
    assert not pair.server.closed
    open_and_reset(pair)  # the fourth within one second
    assert pair.server.closed and goaway_heard(pair).error_code == CALM


def test_a_reset_in_a_later_batch_reaches_the_shell_and_still_counts():
    pair = ServerPair(Http2Limits(max_resets=2))
    events = open_and_reset(pair, same_batch=False)
    assert [type(e) for e in events] == [RequestReceived, StreamReset]
    assert events[1].remote and events[1].error_code == ErrorCodes.CANCEL
    open_and_reset(pair, same_batch=False)
    assert not pair.server.closed
    assert isinstance(open_and_reset(pair, same_batch=False)[-1], ConnectionTerminated)


def test_resets_after_the_response_ended_do_not_count():
    pair = ServerPair(Http2Limits(max_resets=3))
    for _ in range(20):
        sid, _ = pair.request(end_stream=False)  # still uploading ...
        pair.server.send_response(sid, ResponseHead(200), end_stream=True)
        pair.pump()
        pair.client.reset_stream(sid, ErrorCodes.NO_ERROR)  # ... stops once answered (RFC 9113 8.1)
        events, _ = pair.pump()
        assert events == [StreamReset(sid, ErrorCodes.NO_ERROR, remote=True)]
    assert not pair.server.closed
    assert pair.server.live_streams == 0


def test_malformed_requests_count_as_resets():
    pair = ServerPair(Http2Limits(max_resets=3), validate=False)
    for _ in range(3):
        pair.request([*GET, ("Upper", "x")])
    assert not pair.server.closed
    _, events = pair.request([*GET, ("Upper", "x")])
    assert events[-1].error_code == CALM


# --- control-frame floods (CVE-2019-9512, -9515, -9518) ---------------------------------------


def answered_pair(limit: int) -> tuple[ServerPair, int]:
    """A pair whose server just sent something useful (which clears the flood count)."""
    pair = ServerPair(Http2Limits(max_control_frames=limit))
    sid, _ = pair.request(end_stream=False)
    pair.server.send_response(sid, ResponseHead(200))
    pair.pump()
    return pair, sid


def test_a_ping_flood_ends_the_connection():
    pair, _ = answered_pair(5)
    for n in range(5):
        pair.client.ping(n.to_bytes(8, "big"))
        pair.pump()
    assert not pair.server.closed
    pair.client.ping(b"one more")
    [ended] = pair.pump()[0]
    assert ended.error_code == CALM and "PING" in ended.reason
    assert goaway_heard(pair).error_code == CALM


def test_pings_between_useful_frames_never_trip_the_limit():
    pair, sid = answered_pair(5)
    for n in range(50):  # like gRPC's BDP pings during a download
        pair.client.ping(n.to_bytes(8, "big"))
        pair.client.ping(b"keepaliv")
        pair.pump()
        pair.server.send_data(sid, b"chunk")
        pair.pump()
    assert not pair.server.closed


def test_a_settings_flood_ends_the_connection():
    pair, _ = answered_pair(5)
    for _ in range(6):
        pair.client.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
        events, _ = pair.pump()
    assert events[-1].error_code == CALM and "SETTINGS" in events[-1].reason


def test_an_empty_data_flood_ends_the_connection():
    pair, sid = answered_pair(5)
    for _ in range(6):
        pair.client.send_data(sid, b"")
        events, _ = pair.pump()
    assert events[-1].error_code == CALM and "empty DATA" in events[-1].reason


def test_a_settings_frame_with_too_many_entries_ends_the_connection():
    pair = ServerPair()
    entries = b"".join(
        (0x2).to_bytes(2, "big") + (0).to_bytes(4, "big") for _ in range(33)
    )  # 33 × ENABLE_PUSH=0
    frame = len(entries).to_bytes(3, "big") + b"\x04\x00" + (0).to_bytes(4, "big") + entries
    [ended] = pair.server.receive_data(frame)
    assert ended.error_code == CALM and "33 entries" in ended.reason


# --- header blocks -----------------------------------------------------------------------------


def test_a_header_list_under_the_limit_passes():
    pair = ServerPair()
    _, events = pair.request([*GET, ("x-big", "a" * 50_000)])
    assert len(events[0].head.header("x-big")) == 50_000


def test_an_oversized_header_list_ends_the_connection_with_enhance_your_calm():
    """HPACK state is lost when h2 stops decoding mid-block, so this cannot be a stream error."""
    pair = ServerPair()
    pair.request(end_stream=False)  # another stream goes down with it
    _, events = pair.request([*GET, ("x-big", "a" * 70_000)])
    [ended] = events
    assert ended.error_code == CALM and not ended.remote
    assert goaway_heard(pair).error_code == CALM


def continuation_flood(frames: int, size: int) -> bytes:
    """HEADERS without END_HEADERS, then CONTINUATION frames that never end the block."""
    first = HeadersFrame(1, data=b"\x82")  # :method GET, indexed
    wire = first.serialize()
    for _ in range(frames):
        wire += ContinuationFrame(1, data=b"\x00" * size).serialize()
    return wire


def test_a_continuation_flood_is_cut_at_the_header_block_bound():
    limits = Http2Limits()
    pair = ServerPair(limits)
    wire = continuation_flood(frames=64, size=16_384)  # what h2 alone would buffer: 1 MiB
    events = []
    for offset in range(0, len(wire), 16_393):
        events += pair.server.receive_data(wire[offset : offset + 16_393])
        if events:
            break
    [ended] = events
    assert ended.error_code == CALM and "header block" in ended.reason
    assert offset < limits.max_header_block + 16_393  # cut from frame headers, not after 1 MiB


def test_h2_itself_caps_a_header_block_at_64_continuation_frames():
    """Tiny CONTINUATION frames stay under the byte bound; h2's frame count cuts them off."""
    pair = ServerPair()
    [ended] = pair.server.receive_data(continuation_flood(frames=65, size=1))
    assert ended.error_code == ErrorCodes.PROTOCOL_ERROR
    assert "continuation" in ended.reason.lower()
