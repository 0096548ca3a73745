"""One call per finished request feeds every telemetry output: metrics, access log, span ring.

The proxy core builds a `RequestRecord` and calls `RequestObserver.finish(record)`; this is the
one place that knows which outputs exist, so adding an exporter later touches nothing else. The
log sink is a plain callable (a logger's method, a list's append in tests), so this module does
no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from waypoint.accesslog import access_log_line
from waypoint.record import RequestRecord
from waypoint.spans import Span, SpanRecorder
from waypoint.telemetry import WaypointMetrics


class RequestObserver:
    """Metrics, access log and spans for finished requests; any output may be left out (None)."""

    def __init__(
        self,
        metrics: WaypointMetrics | None = None,
        log_sink: Callable[[str], None] | None = None,
        spans: SpanRecorder | None = None,
    ) -> None:
        self.metrics = metrics
        self.log_sink = log_sink
        self.spans = spans

    def finish(self, record: RequestRecord) -> Span | None:
        """Count, log and trace one request; returns its span when one was recorded."""
        if self.metrics is not None:
            self.metrics.record(record)
        if self.log_sink is not None:
            self.log_sink(access_log_line(record))
        return self.spans.record(record) if self.spans is not None else None
