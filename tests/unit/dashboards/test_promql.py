import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.dashboards.promql import (
    AGGREGATIONS,
    GROUPING,
    WORDS,
    Matcher,
    PromQLError,
    Selector,
    analyze,
    tokenize,
)


def test_selectors_matchers_and_grouping():
    a = analyze(
        "histogram_quantile(0.99, sum by (destination_service, le) "
        '(rate(istio_request_duration_milliseconds_bucket{reporter="waypoint",'
        'response_code!~"5.."}[$__rate_interval])))'
    )
    assert a.selectors == (
        Selector(
            "istio_request_duration_milliseconds_bucket",
            (Matcher("reporter", "=", "waypoint"), Matcher("response_code", "!~", "5..")),
        ),
    )
    assert a.grouping == {"destination_service", "le"}


def test_binary_expression_keywords_and_trailing_by():
    a = analyze("sum(rate(a_total[5m])) by (x) / on (x) group_left (y) b or vector(0) offset 1h")
    assert [s.metric for s in a.selectors] == ["a_total", "b"]
    assert a.grouping == {"x", "y"}


def test_subquery_and_variables_in_ranges():
    a = analyze('max_over_time(timestamp(up{job=~"$job"})[${range}:1m])')
    assert a.metrics == {"up"}
    assert a.selectors[0].matchers == (Matcher("job", "=~", "$job"),)


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ('{__name__="x"}', "metric name"),
        ("sume(x)", "unknown function"),
        ('x{a="b"', "unclosed selector"),
        ("x{a=b}", "label="),
        ('x{a="b}', "unexpected"),
        ("sum by (a", "unclosed label list"),
        ("sum by (a, 3) (x)", "label name"),
        ("rate(x[five])", "range"),
        ("rate(x[5m:five])", "range"),
        ("x ? y", "unexpected"),
    ],
)
def test_unreadable_queries_say_why(query, why):
    with pytest.raises(PromQLError, match=why):
        analyze(query)


def test_tokens_keep_positions():
    tokens = tokenize('rate(x{a="b"}[1m])')
    assert [(t.kind, t.text) for t in tokens][:3] == [
        ("ident", "rate"),
        ("op", "("),
        ("ident", "x"),
    ]
    assert tokens[-2].kind == "range" and tokens[-2].pos == 13


KEYWORDS = AGGREGATIONS | GROUPING | WORDS  # reserved in PromQL: never a metric name
names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
values = st.text(st.characters(codec="ascii", exclude_characters='"\\'), max_size=8)
matchers = st.lists(st.tuples(names, st.sampled_from(["=", "!=", "=~", "!~"]), values), max_size=4)


@given(names, matchers, st.sampled_from(["", " "]))
def test_any_selector_is_recovered_exactly(metric, found, space):
    body = f",{space}".join(f'{label}{space}{op}{space}"{value}"' for label, op, value in found)
    query = f"rate({metric}{{{body}}}[5m])" if found else f"rate({metric}[5m])"
    assert analyze(query).selectors == (Selector(metric, tuple(Matcher(*m) for m in found)),)


QUERY = (
    'sum by (destination_service) (rate(istio_requests_total{reporter="waypoint",'
    'response_code!~"5.."}[$__rate_interval])) / sum by (destination_service) '
    '(rate(istio_requests_total{reporter="waypoint"}[$__rate_interval]))'
)


FULL = analyze(QUERY)
IDENTS = {t.text for t in tokenize(QUERY) if t.kind == "ident"}


@pytest.mark.parametrize("cut", range(len(QUERY) + 1))
def test_every_prefix_reads_or_fails_cleanly(cut):
    """A cut query either fails with PromQLError or reads as part of what the whole one reads."""
    try:
        a = analyze(QUERY[:cut])
    except PromQLError:
        return
    whole_matchers = {m for s in FULL.selectors for m in s.matchers}
    for selector in a.selectors:
        assert any(name.startswith(selector.metric) for name in IDENTS)
        assert set(selector.matchers) <= whole_matchers


@given(st.text(max_size=40))
def test_arbitrary_text_only_ever_raises_promql_error(text):
    with contextlib.suppress(PromQLError):
        analyze(text)
