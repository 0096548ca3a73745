"""waypoint.histograms: the same exposition as prometheus_client's own Histogram.

Each test feeds the same observations to a `LabelledHistogram` and to prometheus_client's
`Histogram` on separate registries and compares what a scraper would read back, so bucket
placement (boundaries included), cumulation, `_count`, `_sum` and the `le` spelling are checked
against the reference implementation rather than against numbers written here.
"""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from waypoint.histograms import LabelledHistogram

BUCKETS = (0.5, 1, 5, 10, 25)
LABELS = ("code", "flags")


def scraped(registry: CollectorRegistry) -> list[tuple[str, dict, float]]:
    text = generate_latest(registry).decode()
    return sorted(
        (s.name, sorted(s.labels.items()), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    )


def both(observations: list[tuple[tuple[str, str], float]]):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LabelledHistogram("h_ms", "doc", LABELS, BUCKETS, ours)
    reference = Histogram("h_ms", "doc", LABELS, registry=theirs, buckets=BUCKETS)
    for labels, value in observations:
        mine.labels(*labels).observe(value)
        reference.labels(*labels).observe(value)
    return scraped(ours), scraped(theirs)


def test_matches_prometheus_client_on_boundaries_and_overflow():
    values = [0.0, 0.5, 0.50001, 1, 4.9, 5, 10, 25, 25.1, 1e9, -3]
    ours, theirs = both([(("200", "-"), v) for v in values])
    assert ours == theirs
    assert ("h_ms_count", [("code", "200"), ("flags", "-")], float(len(values))) in ours


def test_label_sets_are_separate_series():
    ours, theirs = both([(("200", "-"), 3), (("503", "UF"), 30), (("200", "-"), 7)])
    assert ours == theirs
    assert {dict(s[1])["code"] for s in ours} == {"200", "503"}


def test_nan_goes_to_the_sum_only_as_in_prometheus_client():
    ours, theirs = both([(("200", "-"), math.nan), (("200", "-"), 1)])
    counts = [v for name, _, v in ours if name == "h_ms_count"]
    assert counts == [1.0]
    assert [s for s in ours if s[0] != "h_ms_sum"] == [s for s in theirs if s[0] != "h_ms_sum"]


def test_describe_names_the_family_before_any_sample():
    registry = CollectorRegistry()
    histogram = LabelledHistogram("h_ms", "doc", LABELS, BUCKETS, registry)
    [family] = histogram.describe()
    assert (family.name, family.type, family._labelnames) == ("h_ms", "histogram", LABELS)
    assert scraped(registry) == []


def test_wrong_label_count_and_unsorted_buckets_are_refused():
    histogram = LabelledHistogram("h_ms", "doc", LABELS, BUCKETS, CollectorRegistry())
    with pytest.raises(ValueError, match="2 label values"):
        histogram.labels("200")
    with pytest.raises(ValueError, match="strictly increasing"):
        LabelledHistogram("g_ms", "doc", LABELS, (5, 1), CollectorRegistry())
