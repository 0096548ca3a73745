import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from nodemesh.dashboards.catalogue import SCRAPE_LABELS, Component, build, expand


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


def test_catalogue_holds_every_component_metric_with_its_labels():
    series = build()
    assert series["istio_requests_total"].component is Component.WAYPOINT
    assert {"response_code", "response_flags", "reporter"} <= series["istio_requests_total"].labels
    assert "le" in series["istio_request_duration_milliseconds_bucket"].labels
    assert series["istio_tcp_connections_opened_total"].component is Component.AGENT
    assert (
        series["nodemesh_agent_certificate_expiry_timestamp_seconds"].labels
        == {"identity"} | SCRAPE_LABELS
    )
    assert series["pilot_xds_pushes_total"].component is Component.CONTROLLER
    assert "istio_requests" not in series  # the family name is not a scraped sample
