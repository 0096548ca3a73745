"""The frame gate's own bounds, fed from frame headers at any read boundary."""

from __future__ import annotations

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from waypoint.http2.events import RemoteProtocolError
from waypoint.http2.frames import GoAway, Http2FrameGate


def gate(max_header_block: int = 100) -> Http2FrameGate:
    return Http2FrameGate(server=False, max_frame_size=16_384, max_header_block=max_header_block)


def header_block(sizes: list[int], end: bool = True) -> bytes:
    frames = [HeadersFrame(1, data=b"h" * sizes[0])]
    frames += [ContinuationFrame(1, data=b"c" * size) for size in sizes[1:]]
    if end:
        frames[-1].flags.add("END_HEADERS")
    return b"".join(f.serialize() for f in frames)


def feed(g: Http2FrameGate, wire: bytes, cuts: list[int]) -> list:
    out, start = [], 0
    for cut in [*sorted({min(c, len(wire)) for c in cuts}), len(wire)]:
        out += g.split(wire[start:cut])
        start = cut
    return out


@settings(deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_a_header_block_over_the_bound_is_refused_at_any_read_boundary(cuts):
    wire = header_block([40, 40, 40], end=False)  # 120 bytes > 100
    with pytest.raises(RemoteProtocolError) as raised:
        feed(gate(), wire, cuts)
    assert raised.value.error_code == ErrorCodes.ENHANCE_YOUR_CALM


@settings(deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_header_blocks_under_the_bound_pass_and_the_count_restarts_per_block(cuts):
    wire = header_block([30, 30, 30]) + DataFrame(1, data=b"d" * 50).serialize()
    wire += header_block([90])  # a second block (trailers): counted from zero
    wire += GoAwayFrame(0, last_stream_id=1, error_code=0).serialize()
    out = feed(gate(), wire, cuts)
    passed = b"".join(bytes(p) for p in out if not isinstance(p, GoAway))
    assert passed == wire[: -len(GoAwayFrame(0).serialize())]
    assert [p for p in out if isinstance(p, GoAway)] == [GoAway(1, 0, b"")]


def test_a_settings_frame_with_more_than_32_entries_is_refused():
    g = gate()
    ok = (32 * 6).to_bytes(3, "big") + b"\x04\x00" + bytes(4) + bytes(32 * 6)
    assert g.split(ok)
    with pytest.raises(RemoteProtocolError, match="33 entries"):
        g.split((33 * 6).to_bytes(3, "big") + b"\x04\x00" + bytes(4))
