import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.core import CounterMetricFamily

from controller.flows_relay import RefusalReason, SourceKind
from node_agent.bpf_types import Reason
from node_agent.telemetry import AgentMetrics
from nodemesh.dashboards.catalogue import OWNERS, SCRAPE_LABELS, Component, build, expand
from nodemesh.flows.relay_client import DropReason

AGENT, WAYPOINT, CONTROLLER = (frozenset({c}) for c in Component)
REPORT_DROPPED = "nodemesh_flow_events_report_dropped_total"
CAPTURE_DECISIONS = "nodemesh_agent_capture_decisions_total"


def test_counter_is_scraped_with_total_once():
    c = Counter("x_requests_total", "h", ["code"], registry=CollectorRegistry())
    [series] = expand(c, Component.AGENT)
    assert series.name == "x_requests_total"
    assert series.labels == {"code"} | SCRAPE_LABELS


def test_histogram_has_bucket_sum_count_and_only_bucket_has_le():
    h = Histogram("x_ms", "h", ["a"], registry=CollectorRegistry())
    by_name = {s.name: s for s in expand(h, Component.WAYPOINT)}
    assert set(by_name) == {"x_ms_bucket", "x_ms_sum", "x_ms_count"}
    assert "le" in by_name["x_ms_bucket"].labels
    assert "le" not in by_name["x_ms_sum"].labels


def test_gauge_keeps_its_name():
    g = Gauge("x_open", "h", registry=CollectorRegistry())
    assert [s.name for s in expand(g, Component.CONTROLLER)] == ["x_open"]


def test_unknown_type_is_refused_with_the_metric_named():
    s = Summary("x_latency", "h", registry=CollectorRegistry())
    with pytest.raises(TypeError, match="x_latency"):
        expand(s, Component.AGENT)


class _Described:
    """A custom collector that names its families; collect() would read live state."""

    def describe(self):
        return [CounterMetricFamily("x_decisions", "h", labels=["reason"])]

    def collect(self):
        raise AssertionError("the catalogue must not collect")


class _Holder:
    def __init__(self, registry):
        self.opened = Counter("x_opened_total", "h", ["peer"], registry=registry)
        self.collector = _Described()
        self.registry = registry  # neither a metric nor a collector: skipped


class _Other:
    def __init__(self, registry):
        self.opened = Counter("x_opened_total", "h", ["pod"], registry=registry)


def test_described_families_are_catalogued_without_collecting():
    series = build({Component.AGENT: (_Holder,)})
    assert series["x_decisions_total"].labels == {"reason"} | SCRAPE_LABELS
    assert set(series) == {"x_decisions_total", "x_opened_total"}


def test_a_series_of_two_components_is_one_entry_and_must_agree_on_labels():
    shared = build({Component.AGENT: (_Holder,), Component.WAYPOINT: (_Holder,)})
    assert shared["x_opened_total"].components == AGENT | WAYPOINT
    with pytest.raises(ValueError, match=r"x_opened_total.*one label set"):
        build({Component.AGENT: (_Holder,), Component.WAYPOINT: (_Other,)})


def test_catalogue_holds_every_component_metric_with_its_labels():
    series = build()
    assert series["istio_requests_total"].components == WAYPOINT
    assert {"response_code", "response_flags", "reporter"} <= series["istio_requests_total"].labels
    assert "le" in series["istio_request_duration_milliseconds_bucket"].labels
    assert series["istio_tcp_connections_opened_total"].components == AGENT
    assert (
        series["nodemesh_agent_certificate_expiry_timestamp_seconds"].labels
        == {"identity"} | SCRAPE_LABELS
    )
    assert series["pilot_xds_pushes_total"].components == CONTROLLER
    assert "istio_requests" not in series  # the family name is not a scraped sample


def test_catalogue_holds_the_flow_reporter_and_the_capture_collector():
    series = build()
    assert series["nodemesh_flow_events_reported_total"].components == AGENT | WAYPOINT
    assert series["nodemesh_flow_relay_connected"].components == AGENT | WAYPOINT
    assert series["nodemesh_agent_capture_decisions_total"].labels == (
        {"decision", "reason"} | SCRAPE_LABELS
    )
    assert series["nodemesh_agent_capture_event_drops_total"].components == AGENT
    assert series["nodemesh_flow_events_refused_total"].components == CONTROLLER


def _component_registry(component: Component) -> CollectorRegistry:
    registry = CollectorRegistry()
    holders = [holder(registry) for holder in OWNERS[component]]
    if component is Component.AGENT:
        agent = next(h for h in holders if isinstance(h, AgentMetrics))
        agent.watch_capture(lambda: dict.fromkeys(Reason, 0), lambda: 0)
    return registry


def test_flow_and_capture_series_exist_at_zero_before_any_event():
    """Dashboards rate() these series: each must be scraped at 0 before its first event."""
    agent, controller = (_component_registry(c) for c in (Component.AGENT, Component.CONTROLLER))
    for reason in DropReason:
        assert agent.get_sample_value(REPORT_DROPPED, {"reason": reason}) == 0
    for reason in Reason:
        decision = "captured" if reason.captured else "passed"
        labels = {"decision": decision, "reason": reason.label}
        assert agent.get_sample_value(CAPTURE_DECISIONS, labels) == 0
    assert agent.get_sample_value("nodemesh_agent_capture_event_drops_total") == 0
    for kind in (SourceKind.AGENT, SourceKind.WAYPOINT):
        for name in ("nodemesh_flow_events_relayed_total", "nodemesh_flow_reporters"):
            assert controller.get_sample_value(name, {"source_kind": kind}) == 0
    for kind in SourceKind:
        for reason in RefusalReason:
            labels = {"source_kind": kind, "reason": reason}
            assert controller.get_sample_value("nodemesh_flow_events_refused_total", labels) == 0


def test_capture_series_wait_for_the_capture_programs():
    registry = CollectorRegistry()
    AgentMetrics(registry)
    assert registry.get_sample_value("nodemesh_agent_capture_event_drops_total") is None
