"""Local rate limiting: a token bucket per Service, refilled by the clock, answering 429 when dry.

Theory of operation (Envoy's local rate limit filter). The bucket starts full with `max_tokens`;
every `fill_interval` it gains `tokens_per_fill`, never beyond `max_tokens`; each request takes
one token or is refused with 429 and response flag `RL`. Fills are discrete, as Envoy's are, so
`max_tokens` is the burst a client may send at once and `tokens_per_fill / fill_interval` the
sustained rate. No timer refills the bucket: `try_acquire` first adds the fills that fell due since
the last one, so an idle bucket costs nothing. The limit is per waypoint process, not global: with
N waypoint workers a Service sees up to N times the rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from waypoint.resilience.clock import Clock
from waypoint.resilience.config import RateLimitConfig
from waypoint.resilience.errors import ResilienceConfigError

RATE_LIMITED_STATUS = 429
RATE_LIMITED_RESPONSE_FLAG = "RL"


@dataclass(frozen=True)
class Limited:
    """A refused request: answer `status` with a Retry-After of `retry_after` seconds."""

    retry_after: float  # until the next fill adds a token
    status: int = RATE_LIMITED_STATUS
    response_flag: str = RATE_LIMITED_RESPONSE_FLAG

    @property
    def retry_after_header(self) -> str:
        """Retry-After takes whole seconds (RFC 9110); round up so a retry finds a token."""
        return str(max(1, math.ceil(self.retry_after)))


class TokenBucket:
    """One local rate limit."""

    def __init__(self, config: RateLimitConfig, clock: Clock = time.monotonic) -> None:
        if config.max_tokens < 1 or config.tokens_per_fill < 1 or config.fill_interval <= 0:
            raise ResilienceConfigError(
                "a token bucket needs max_tokens >= 1, tokens_per_fill >= 1 and "
                f"fill_interval > 0, got {config}"
            )
        self.config = config
        self._clock = clock
        self._tokens = config.max_tokens
        self._last_fill = clock()

    @property
    def tokens(self) -> int:
        """Tokens available now (after any fills that fell due)."""
        self._refill(self._clock())
        return self._tokens

    def try_acquire(self) -> Limited | None:
        """Take a token: None lets the request through, `Limited` says how to refuse it."""
        now = self._clock()
        self._refill(now)
        if self._tokens > 0:
            self._tokens -= 1
            return None
        return Limited(retry_after=self._last_fill + self.config.fill_interval - now)

    def _refill(self, now: float) -> None:
        fills = int((now - self._last_fill) // self.config.fill_interval)
        if fills <= 0:
            return
        added = fills * self.config.tokens_per_fill
        self._tokens = min(self.config.max_tokens, self._tokens + added)
        self._last_fill += fills * self.config.fill_interval
