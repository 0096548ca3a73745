"""The series nodemesh exports, read from the metric objects themselves.

Theory of operation: each component builds its metrics on a registry it is given
(`AgentMetrics`, `WaypointMetrics`, `ControllerMetrics`). Building each on a throwaway
`CollectorRegistry` and walking its metric attributes yields every metric family with its type
and label names; those expand into the sample names Prometheus scrapes (a counter `x` is
scraped as `x_total`, a histogram as `x_bucket` with `le`, `x_sum` and `x_count`). Dashboards and
their tests check queries against this catalogue, so renaming a metric or a label in the code
makes the dashboard test fail instead of leaving a panel silently empty.

`_created` samples are left out: the processes turn them off, as Istio has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from controller.metrics import ControllerMetrics
from node_agent.telemetry import AgentMetrics
from waypoint.telemetry import WaypointMetrics

# Labels Prometheus itself attaches to every scraped sample (target labels), so any query may use
# them whatever the component defines.
SCRAPE_LABELS = frozenset({"job", "instance"})


class Component(StrEnum):
    AGENT = "node agent"
    WAYPOINT = "waypoint"
    CONTROLLER = "controller"


@dataclass(frozen=True, slots=True)
class Series:
    """One scraped sample name: the labels it carries and which component exports it."""

    name: str
    labels: frozenset[str]
    component: Component
    family: str  # the metric family, e.g. "istio_requests" for "istio_requests_total"


def _metrics_of(obj: object) -> Iterable[MetricWrapperBase]:
    return (v for v in vars(obj).values() if isinstance(v, MetricWrapperBase))


def expand(metric: MetricWrapperBase, component: Component) -> list[Series]:
    """The sample names one metric object is scraped as.

    prometheus_client keeps the family name, type and label names in `_name`, `_type` and
    `_labelnames`: private, but the only place that holds label names before any child exists.
    """
    family, kind = metric._name, metric._type
    labels = frozenset(metric._labelnames) | SCRAPE_LABELS
    if kind == "counter":
        return [Series(f"{family}_total", labels, component, family)]
    if kind == "histogram":
        return [
            Series(f"{family}_bucket", labels | {"le"}, component, family),
            Series(f"{family}_sum", labels, component, family),
            Series(f"{family}_count", labels, component, family),
        ]
    if kind == "gauge":
        return [Series(family, labels, component, family)]
    raise TypeError(f"metric {family!r} has type {kind!r}; teach catalogue.expand its samples")


def build() -> Mapping[str, Series]:
    """Every series the agent, the waypoint and the controller export, by sample name."""
    found: dict[str, Series] = {}
    owners = (
        (AgentMetrics, Component.AGENT),
        (WaypointMetrics, Component.WAYPOINT),
        (ControllerMetrics, Component.CONTROLLER),
    )
    for cls, component in owners:
        for metric in _metrics_of(cls(CollectorRegistry())):
            for series in expand(metric, component):
                found[series.name] = series
    return MappingProxyType(found)
