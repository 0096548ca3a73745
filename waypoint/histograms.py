"""Labelled Prometheus histograms counted in plain Python, exposed through a custom collector.

Theory of operation: prometheus_client's `Histogram.observe` walks the bucket bounds in Python
and takes a lock per bucket and per sum, and the waypoint observes three histograms for every
request: that was a measurable share of the request path. Here one observation is a binary
search (`bisect`), one list increment and one float addition, all on the event loop's thread.
The scrape runs on the metrics server's thread and reads copies (`collect`), so it never sees a
dict or list change size under it; like prometheus_client's own histogram, a scrape racing an
observation may see the bucket before the sum moves, never a torn count.

What a scraper sees is unchanged: the same family name, type (histogram), label names, bucket
bounds (`le`, written by prometheus_client's own float formatting), `_bucket` counts cumulative
with `+Inf` equal to `_count`, and `_sum`. Bucket placement is prometheus_client's: a value
lands in the first bucket whose bound is >= the value; NaN is added to the sum only.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString


class HistogramSeries:
    """One label set's buckets (not cumulative) and sum; `observe` is the per-request call."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds  # ends in +Inf, so every non-NaN value has a bucket
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        index = bisect_left(self._bounds, amount)
        if amount == amount:  # NaN compares unequal to itself: no bucket takes it
            self.counts[index] += 1
        self.sum += amount


class LabelledHistogram:
    """A histogram family with label names, registered on `registry` as a collector."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if list(bounds) != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"histogram {name} buckets must be strictly increasing: {buckets}")
        if not bounds or bounds[-1] != math.inf:
            bounds = (*bounds, math.inf)
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.bounds = bounds
        self._le = [floatToGoString(b) for b in bounds]
        self._series: dict[tuple[str, ...], HistogramSeries] = {}
        registry.register(self)

    def labels(self, *values: str) -> HistogramSeries:
        """The series of one label set, created at zero on first use."""
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"{self.name} takes {len(self.labelnames)} label values "
                f"({', '.join(self.labelnames)}), got {len(values)}"
            )
        found = self._series.get(values)
        if found is None:
            found = self._series[values] = HistogramSeries(self.bounds)
        return found

    def describe(self) -> list[HistogramMetricFamily]:
        """The family's name, type and label names, without samples (registration, catalogue)."""
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            counts, total = list(series.counts), series.sum
            cumulative, buckets = 0, []
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(values), buckets, total)
        yield family
