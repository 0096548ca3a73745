"""TokenBucket: starts full, discrete lazy refills by the clock, 429 with Retry-After when dry."""

from __future__ import annotations

import pytest

from waypoint.resilience.config import RateLimitConfig
from waypoint.resilience.errors import ResilienceConfigError
from waypoint.resilience.ratelimit import Limited, TokenBucket


def bucket(clock, max_tokens=3, tokens_per_fill=1, fill_interval=1.0):
    return TokenBucket(RateLimitConfig(max_tokens, tokens_per_fill, fill_interval), clock)


def test_starts_full_then_limits_with_429(clock):
    limiter = bucket(clock)

    results = [limiter.try_acquire() for _ in range(4)]

    assert results[:3] == [None, None, None]
    assert results[3] == Limited(retry_after=1.0)
    assert results[3].status == 429
    assert results[3].response_flag == "RL"


def test_refills_in_discrete_steps(clock):
    limiter = bucket(clock, max_tokens=5, tokens_per_fill=2, fill_interval=1.0)
    for _ in range(5):
        limiter.try_acquire()

    clock.advance(0.999)
    assert limiter.tokens == 0
    clock.advance(0.001)
    assert limiter.tokens == 2
    clock.advance(1.5)
    assert limiter.tokens == 4


def test_refill_never_exceeds_max_tokens(clock):
    limiter = bucket(clock, max_tokens=3, tokens_per_fill=2)
    limiter.try_acquire()

    clock.advance(3600)

    assert limiter.tokens == 3


def test_retry_after_counts_down_to_the_next_fill(clock):
    limiter = bucket(clock, max_tokens=1, fill_interval=2.0)
    limiter.try_acquire()
    clock.advance(0.5)

    limited = limiter.try_acquire()

    assert isinstance(limited, Limited)
    assert limited.retry_after == pytest.approx(1.5)
    assert limited.retry_after_header == "2"


def test_fill_phase_is_kept_across_lazy_refills(clock):
    limiter = bucket(clock, max_tokens=1, fill_interval=1.0)
    limiter.try_acquire()

    clock.advance(1.7)  # one fill at 1.0; the next is due at 2.0, not 2.7
    assert limiter.try_acquire() is None
    limited = limiter.try_acquire()

    assert isinstance(limited, Limited)
    assert limited.retry_after == pytest.approx(0.3)


@pytest.mark.parametrize(("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2")])
def test_retry_after_header_rounds_up_to_whole_seconds(seconds, header):
    assert Limited(retry_after=seconds).retry_after_header == header


def test_sustained_rate_matches_the_configuration(clock):
    limiter = bucket(clock, max_tokens=10, tokens_per_fill=10, fill_interval=1.0)
    allowed = 0

    for _ in range(160):  # 16 requests a second for 10 s (exact binary steps) against 10/s
        allowed += limiter.try_acquire() is None
        clock.advance(1 / 16)

    assert allowed == 10 + 9 * 10  # the initial burst, then a fill at each of seconds 1 to 9


@pytest.mark.parametrize(
    "config",
    [RateLimitConfig(0, 1, 1.0), RateLimitConfig(1, 0, 1.0), RateLimitConfig(1, 1, 0.0)],
)
def test_impossible_buckets_are_refused(config, clock):
    with pytest.raises(ResilienceConfigError):
        TokenBucket(config, clock)
