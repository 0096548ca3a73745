"""Golden signals per service from the mesh's Istio metrics: what `meshctl dashboard` shows.

Theory of operation. Each signal is one PromQL instant query grouped by `destination_service`
(`QUERIES`); the arithmetic that joins them (success ratio, open connections, bytes in both
directions) is done here in Python, from the parsed query results, rather than in PromQL. PromQL's
binary operators drop a service that one side has no series for (a service with requests but no
5xx yet, connections opened but none closed), which would hide exactly the services a person
is looking at; joining by label in Python keeps every service and leaves a missing side at zero.

- HTTP signals come from the waypoint's `istio_requests_total` and
  `istio_request_duration_milliseconds` (`reporter="waypoint"`: the only L7 reporter here).
  Success rate is Istio's: responses other than 5xx over all responses.
- TCP signals come from the destination agent (`reporter="destination"`), so a connection that
  both agents see is counted once.

`collect` takes the query function as a parameter (nodemesh.local.prometheus.query bound to a
cluster, or a fake in tests), so this module does no I/O of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

SERVICE_LABEL = "destination_service"
DEFAULT_WINDOW = "1m"
_HTTP = 'reporter="waypoint"'
_TCP = 'reporter="destination"'


def _by_service(expr: str) -> str:
    return f"sum by ({SERVICE_LABEL}) ({expr})"


def _quantile(q: float) -> str:
    """The q-quantile of request latency per service, from the waypoint's histogram."""
    return (
        f"histogram_quantile({q}, sum by ({SERVICE_LABEL}, le) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{_HTTP}}}[{{w}}])))"
    )


QUERIES: dict[str, str] = {
    "requests": _by_service(f"rate(istio_requests_total{{{_HTTP}}}[{{w}}])"),
    "errors": _by_service(f'rate(istio_requests_total{{{_HTTP},response_code=~"5.."}}[{{w}}])'),
    "p50": _quantile(0.5),
    "p90": _quantile(0.9),
    "p99": _quantile(0.99),
    "opened_rate": _by_service(f"rate(istio_tcp_connections_opened_total{{{_TCP}}}[{{w}}])"),
    "opened": _by_service(f"istio_tcp_connections_opened_total{{{_TCP}}}"),
    "closed": _by_service(f"istio_tcp_connections_closed_total{{{_TCP}}}"),
    "sent": _by_service(f"rate(istio_tcp_sent_bytes_total{{{_TCP}}}[{{w}}])"),
    "received": _by_service(f"rate(istio_tcp_received_bytes_total{{{_TCP}}}[{{w}}])"),
}


def queries(window: str = DEFAULT_WINDOW) -> dict[str, str]:
    """QUERIES with the rate window filled in (e.g. "1m"; at least twice the scrape interval)."""
    return {name: q.replace("{w}", window) for name, q in QUERIES.items()}


@dataclass(frozen=True)
class ServiceSignals:
    """One service's signals; None where there is nothing to compute from (no requests yet)."""

    service: str
    requests_per_second: float
    success_rate: float | None  # 0..1
    p99_ms: float | None
    tcp_opened_per_second: float
    tcp_open_connections: float
    tcp_bytes_per_second: float  # both directions
    p50_ms: float | None = None
    p90_ms: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


class QueryResultError(ValueError):
    """A query result is not the instant vector the golden signals are computed from."""


def vector(data: Mapping) -> dict[str, float]:
    """{service: value} from the `data` of an instant query; NaN (no samples) is left out."""
    if data.get("resultType") != "vector":
        raise QueryResultError(
            f"expected an instant vector, got {data.get('resultType')!r}: "
            "the golden-signal queries must be instant queries grouped by service"
        )
    values = {}
    for sample in data.get("result", []):
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[sample["metric"].get(SERVICE_LABEL, "")] = value
    return values


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else max(0.0, min(1.0, 1.0 - part / whole))


def combine(results: Mapping[str, dict[str, float]]) -> list[ServiceSignals]:
    """Join per-signal vectors by service (a missing side counts 0); sorted by service."""
    services = sorted({s for values in results.values() for s in values})
    get = {name: results.get(name, {}) for name in QUERIES}
    rows = []
    for svc in services:
        requests = get["requests"].get(svc, 0.0)
        rows.append(
            ServiceSignals(
                service=svc,
                requests_per_second=requests,
                success_rate=_ratio(get["errors"].get(svc, 0.0), requests),
                p99_ms=get["p99"].get(svc),
                tcp_opened_per_second=get["opened_rate"].get(svc, 0.0),
                tcp_open_connections=max(
                    0.0, get["opened"].get(svc, 0.0) - get["closed"].get(svc, 0.0)
                ),
                tcp_bytes_per_second=get["sent"].get(svc, 0.0) + get["received"].get(svc, 0.0),
                p50_ms=get["p50"].get(svc),
                p90_ms=get["p90"].get(svc),
            )
        )
    return rows


def collect(query: Callable[[str], Mapping], window: str = DEFAULT_WINDOW) -> list[ServiceSignals]:
    """Run every golden-signal query through `query` (PromQL → API `data`) and combine them."""
    return combine({name: vector(query(q)) for name, q in queries(window).items()})
