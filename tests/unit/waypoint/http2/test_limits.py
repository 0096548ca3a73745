"""The limits and the sliding-window counters that enforce them."""

from __future__ import annotations

import pytest

from tests.unit.waypoint.http2.helpers import Clock
from waypoint.http2.limits import Http2Limits, SlidingWindow


def test_a_sliding_window_counts_only_recent_events():
    clock = Clock()
    window = SlidingWindow(limit=3, window=1.0, clock=clock)
    assert [window.hit() for _ in range(3)] == [False, False, False]
    assert window.hit()  # the fourth within one second
    clock.now = 1.0  # all four are exactly one window old: gone
    assert not window.hit()
    assert window.count == 1


def test_a_sliding_window_remembers_at_most_limit_plus_one_events():
    clock = Clock()
    window = SlidingWindow(limit=5, window=1e9, clock=clock)
    for _ in range(10_000):
        window.hit()
    assert window.count == 6


def test_clear_forgets_what_was_counted():
    window = SlidingWindow(limit=1, window=10.0, clock=Clock())
    window.hit()
    window.clear()
    assert not window.hit()


def test_defaults_follow_envoy_and_istio():
    limits = Http2Limits()
    assert limits.max_concurrent_streams == 100
    assert limits.max_header_list_size == 60 * 1024
    assert (limits.stream_window, limits.connection_window) == (1 << 20, 16 << 20)
    assert limits.max_header_block > limits.max_header_list_size


@pytest.mark.parametrize(
    "bad",
    [
        {"stream_window": 1000},
        {"connection_window": 2**31},
        {"max_frame_size": 1000},
        {"max_frame_size": 2**24},
        {"max_concurrent_streams": 0},
        {"max_send_buffer": 0},
    ],
)
def test_impossible_limits_are_refused_with_the_range(bad):
    with pytest.raises(ValueError, match="must be"):
        Http2Limits(**bad)
