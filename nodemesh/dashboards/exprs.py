"""PromQL builders for the shapes every dashboard repeats: summed rates, ratios, quantiles.

Why builders and not literal strings: the success-rate and quantile shapes are easy to get
subtly wrong by hand (a ratio whose two sides group differently, a quantile that forgets `le`);
written once here they are right everywhere. Matchers are passed as written PromQL
(`'reporter="waypoint"'`), so regex and negative matchers need no extra API.
"""

from __future__ import annotations

from collections.abc import Sequence

RATE_WINDOW = "$__rate_interval"
REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
NOT_5XX = 'response_code!~"5.."'
WAYPOINT = 'reporter="waypoint"'  # nodemesh reports L7 only from waypoints
DESTINATION = 'reporter="destination"'  # the server's agent: one count per TCP connection
SOURCE = 'reporter="source"'  # the client's agent: sees traffic to destinations outside the mesh


def selector(metric: str, matchers: Sequence[str] = ()) -> str:
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def _agg(op: str, inner: str, by: Sequence[str]) -> str:
    return f"{op} by ({', '.join(by)}) ({inner})" if by else f"{op}({inner})"


def rate_sum(metric: str, matchers: Sequence[str] = (), by: Sequence[str] = ()) -> str:
    """Per-second rate of a counter, summed over every label but `by`."""
    return _agg("sum", f"rate({selector(metric, matchers)}[{RATE_WINDOW}])", by)


def success_ratio(matchers: Sequence[str] = (), by: Sequence[str] = ()) -> str:
    """Share of requests that were not 5xx: Istio's definition of success."""
    ok = rate_sum(REQUESTS, [*matchers, NOT_5XX], by)
    return f"{ok} / {rate_sum(REQUESTS, matchers, by)}"


def quantile(q: float, bucket: str, matchers: Sequence[str] = (), by: Sequence[str] = ()) -> str:
    """The q-quantile of a histogram over the rate window, per `by` group."""
    inner = rate_sum(bucket, matchers, [*by, "le"])
    return f"histogram_quantile({q}, {inner})"


def or_zero(expr: str) -> str:
    """`expr`, or 0 when it has no series: for counts of rare events (denials, rejects), where
    "No data" would hide the good news that there were none."""
    return f"({expr}) or vector(0)"
