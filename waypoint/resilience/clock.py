"""The clock every time-dependent primitive is given: monotonic seconds as a float.

Monotonic because wall-clock jumps (NTP, suspend) must neither eject an endpoint for an hour nor
refill a token bucket at once. Primitives take the clock as a constructor argument, defaulting to
`time.monotonic`; the asyncio shell may pass `loop.time` and tests a fake they advance by hand.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
