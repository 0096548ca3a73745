"""Resilience for the waypoint: retries, circuit breaking, outlier ejection, faults, rate limits.

Theory of operation. Each concern is one small, sans-I/O object that the waypoint's request path
consults at a fixed point and that never sleeps, schedules or touches a socket; the asyncio shell
does the waiting and the sending. For one request to a Service, in order:

1. `ratelimit.TokenBucket.try_acquire()` (per Service, per waypoint process): `Limited` means answer
   429 with `Retry-After` and response flag `RL`; nothing goes upstream.
2. `fault.FaultInjector.decide()`: hold the request for `delay` seconds (flag `DI`), then answer
   with the injected abort status (flag `FI`) instead of forwarding it, if one was drawn.
3. `retry.RetryBudget.start_request()` for the request's whole life, and per attempt:
   `admission.ServiceGate.admit()` over the `circuit.CircuitBreaker` (connection, pending slot,
   request; an `Overflow` is a 503 with flag `UO`), endpoint choice skipping
   `outlier.OutlierDetector.is_ejected()` endpoints, and the attempt's `outcome.Outcome` reported
   to `OutlierDetector.record()`.
4. If `retry.RetryPolicy.should_retry(attempt, outcome)` and `RetryBudget.try_retry()` grants a
   lease, wait `RetryPolicy.backoff(attempt)` seconds and go again; else answer with what the last
   attempt produced (flag `UO` if the budget refused the retry, `URX` if
   `RetryPolicy.exhausted(attempt, outcome)`).

Configuration comes from validated, normalized manifests (`config.py`): a TrafficPolicy per Service,
and an HTTPRoute rule's `retry` and `timeouts`, which win for their route. Time is a monotonic
clock in seconds and randomness a `random.Random`, both injected, so every decision is repeatable
in tests and nothing here holds global state.
"""
