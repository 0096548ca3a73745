"""Fault injection: delay or fail a configured share of requests, to rehearse failure on purpose.

Theory of operation (Istio's HTTPFaultInjection, Envoy's fault filter). For each request, one
draw decides the delay and an independent draw the abort, each against its percentage; a request
may get both (held for the delay, then answered with the abort). The decision is a value the shell
acts on (sleep, then answer instead of forwarding), so this module never waits. Percentages take
decimals: 0.1 faults one request in a thousand. Only configuration decides; a request header
cannot ask for a fault, so a client cannot use it to make the mesh misbehave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from waypoint.resilience.config import AbortFault, FaultConfig

DELAY_RESPONSE_FLAG = "DI"  # Envoy: the request was delayed by fault injection
ABORT_RESPONSE_FLAG = "FI"  # Envoy: the request was aborted by fault injection


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request; the default is nothing."""

    delay: float = 0.0  # seconds to hold the request before going on
    abort: AbortFault | None = None  # answer with this instead of forwarding

    @property
    def response_flags(self) -> tuple[str, ...]:
        flags = (DELAY_RESPONSE_FLAG,) if self.delay > 0 else ()
        return flags + ((ABORT_RESPONSE_FLAG,) if self.abort is not None else ())


NO_FAULT = FaultDecision()


def drawn(percentage: float, rng: random.Random) -> bool:
    """True for `percentage` % of draws: 0 never, 100 always (random() is below 1)."""
    return rng.random() * 100 < percentage


class FaultInjector:
    """Fault decisions for the requests of one Service (or route)."""

    def __init__(self, config: FaultConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()

    def decide(self) -> FaultDecision:
        delay, abort = self.config.delay, self.config.abort
        delay_seconds = delay.delay if delay and drawn(delay.percentage, self._rng) else 0.0
        aborted = abort if abort and drawn(abort.percentage, self._rng) else None
        if not delay_seconds and aborted is None:
            return NO_FAULT
        return FaultDecision(delay_seconds, aborted)
