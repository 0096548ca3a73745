"""The series nodemesh exports, read from the metric objects themselves.

Theory of operation: each component builds its metrics on a registry it is given, from one or
more metric holders (`OWNERS`: the agent's `AgentMetrics` and the waypoint's `WaypointMetrics`,
both beside the flow reporter's `ReporterMetrics`; the controller's `ControllerMetrics`).
Building each holder on a throwaway `CollectorRegistry` and walking its attributes yields every
metric family with its type and label names: a metric object directly, a custom collector (such
as the agent's eBPF counters, read from maps at scrape time) through the families its
`describe()` names. Those expand into the sample names Prometheus scrapes (a counter `x` is
scraped as `x_total`, a histogram as `x_bucket` with `le`, `x_sum` and `x_count`). Dashboards and
their tests check queries against this catalogue, so renaming a metric or a label in the code
makes the dashboard test fail instead of leaving a panel silently empty.

A series exported by several components (the flow reporter's) is one entry with every component.

`_created` samples are left out: the processes turn them off, as Istio has none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from controller.metrics import ControllerMetrics
from node_agent.telemetry import AgentMetrics
from nodemesh.flows.relay_client import ReporterMetrics
from waypoint.telemetry import WaypointMetrics

# Labels Prometheus itself attaches to every scraped sample (target labels), so any query may use
# them whatever the component defines.
SCRAPE_LABELS = frozenset({"job", "instance"})


class Component(StrEnum):
    AGENT = "node agent"
    WAYPOINT = "waypoint"
    CONTROLLER = "controller"


# The metric holders each component builds on its registry (node_agent/agent.py,
# waypoint/app.py, controller/): a holder added there without a line here is not catalogued.
OWNERS: Mapping[Component, Sequence[Callable[[CollectorRegistry], object]]] = MappingProxyType(
    {
        Component.AGENT: (AgentMetrics, ReporterMetrics),
        Component.WAYPOINT: (WaypointMetrics, ReporterMetrics),
        Component.CONTROLLER: (ControllerMetrics,),
    }
)


@dataclass(frozen=True, slots=True)
class Series:
    """One scraped sample name: the labels it carries and which components export it."""

    name: str
    labels: frozenset[str]
    components: frozenset[Component]
    family: str  # the metric family, e.g. "istio_requests" for "istio_requests_total"


def expand(metric: MetricWrapperBase | Metric, component: Component) -> list[Series]:
    """The sample names one metric object, or one family a collector describes, is scraped as.

    prometheus_client keeps a metric object's family name, type and label names in `_name`,
    `_type` and `_labelnames`, and a described family's label names (`CounterMetricFamily(...,
    labels=)`) in `_labelnames`: private, but the only place that holds label names before any
    sample exists.
    """
    if isinstance(metric, MetricWrapperBase):
        family, kind = metric._name, metric._type
    else:
        family, kind = metric.name, metric.type
    labels = frozenset(getattr(metric, "_labelnames", ())) | SCRAPE_LABELS
    components = frozenset({component})
    if kind == "counter":
        return [Series(f"{family}_total", labels, components, family)]
    if kind == "histogram":
        return [
            Series(f"{family}_bucket", labels | {"le"}, components, family),
            Series(f"{family}_sum", labels, components, family),
            Series(f"{family}_count", labels, components, family),
        ]
    if kind == "gauge":
        return [Series(family, labels, components, family)]
    raise TypeError(f"metric {family!r} has type {kind!r}; teach catalogue.expand its samples")


def families_of(holder: object) -> Iterable[MetricWrapperBase | Metric]:
    """The metric objects among `holder`'s attributes, and the families its collectors describe.

    A custom collector must name its families in `describe()` (prometheus_client's hook for
    checking names at registration) to be catalogued: `collect()` may read live state.
    """
    for value in vars(holder).values():
        if isinstance(value, MetricWrapperBase):
            yield value
        elif callable(describe := getattr(value, "describe", None)):
            yield from describe()


def build(owners: Mapping[Component, Sequence[Callable]] = OWNERS) -> Mapping[str, Series]:
    """Every series the agent, the waypoint and the controller export, by sample name."""
    found: dict[str, Series] = {}
    for component, holders in owners.items():
        for holder in holders:
            for metric in families_of(holder(CollectorRegistry())):
                for series in expand(metric, component):
                    found[series.name] = _merge(found.get(series.name), series)
    return MappingProxyType(found)


def _merge(known: Series | None, new: Series) -> Series:
    """One entry for a series two components export; they must agree on its labels."""
    if known is None:
        return new
    if known.labels != new.labels:
        raise ValueError(
            f"{new.name} has labels {sorted(known.labels)} in {sorted(known.components)} but "
            f"{sorted(new.labels)} in {sorted(new.components)}: give the series one label set"
        )
    return replace(known, components=known.components | new.components)
