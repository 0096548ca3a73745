"""waypoint.observer: one finish() reaches the metrics, the access log and the span ring."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from tests.unit.waypoint.records import TRACE_ID, record
from waypoint.observer import RequestObserver
from waypoint.spans import SpanRecorder
from waypoint.telemetry import HTTP_LABELS, WaypointMetrics, http_labels


def test_finish_feeds_every_output():
    registry = CollectorRegistry()
    lines: list[str] = []
    spans = SpanRecorder(4)
    observer = RequestObserver(WaypointMetrics(registry), lines.append, spans)
    returned = observer.finish(record())
    assert registry.get_sample_value("istio_requests_total", _labels_of(record())) == 1
    assert [json.loads(line)["trace_id"] for line in lines] == [TRACE_ID]
    assert spans.spans() == [returned]


def test_outputs_are_optional():
    assert RequestObserver().finish(record()) is None
    lines: list[str] = []
    RequestObserver(log_sink=lines.append).finish(record())
    assert len(lines) == 1


def _labels_of(r):
    return dict(zip(HTTP_LABELS, http_labels(r), strict=True))
