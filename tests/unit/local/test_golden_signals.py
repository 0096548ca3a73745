"""Golden signals: PromQL per signal, joined by service in Python from parsed query results."""

from __future__ import annotations

import math

import pytest

from nodemesh.local.golden_signals import (
    QUERIES,
    QueryResultError,
    collect,
    combine,
    queries,
    vector,
)

WEB = "web.shop.svc.cluster.local"
DB = "db.shop.svc.cluster.local"


def data(*samples: tuple[str, str]) -> dict:
    """An instant-vector `data` object as /api/v1/query returns it."""
    return {
        "resultType": "vector",
        "result": [
            {"metric": {"destination_service": svc}, "value": [1700000000.0, value]}
            for svc, value in samples
        ],
    }


def test_queries_fill_the_window_and_group_by_service():
    filled = queries("30s")
    assert set(filled) == set(QUERIES)
    for q in filled.values():
        assert "{w}" not in q
        assert "destination_service" in q
    assert "[30s]" in filled["requests"]
    assert 'reporter="waypoint"' in filled["p99"]
    assert 'reporter="destination"' in filled["opened"]
    assert 'response_code=~"5.."' in filled["errors"]


def test_vector_parses_values_and_drops_nan():
    assert vector(data((WEB, "2.5"), (DB, "NaN"))) == {WEB: 2.5}


def test_vector_refuses_a_range_result():
    with pytest.raises(QueryResultError, match="instant vector"):
        vector({"resultType": "matrix", "result": []})


def test_success_rate_is_non_5xx_over_all_requests():
    (row,) = combine({"requests": {WEB: 10.0}, "errors": {WEB: 2.5}, "p99": {WEB: 42.0}})
    assert row.requests_per_second == 10.0
    assert row.success_rate == pytest.approx(0.75)
    assert row.p99_ms == 42.0


def test_a_service_with_no_errors_series_is_fully_successful_not_dropped():
    (row,) = combine({"requests": {WEB: 4.0}})
    assert row.success_rate == 1.0
    assert row.p99_ms is None


def test_tcp_only_service_has_no_success_rate_and_sums_both_directions():
    results = {
        "opened_rate": {DB: 0.5},
        "opened": {DB: 12.0},
        "closed": {DB: 9.0},
        "sent": {DB: 100.0},
        "received": {DB: 23.0},
    }
    (row,) = combine(results)
    assert row.service == DB
    assert row.requests_per_second == 0.0
    assert row.success_rate is None
    assert row.tcp_open_connections == 3.0
    assert row.tcp_bytes_per_second == 123.0
    assert row.tcp_opened_per_second == 0.5


def test_open_connections_never_go_negative_after_a_counter_reset():
    (row,) = combine({"opened": {DB: 1.0}, "closed": {DB: 5.0}})
    assert row.tcp_open_connections == 0.0


def test_services_are_joined_across_signals_and_sorted():
    rows = combine({"requests": {WEB: 1.0}, "sent": {DB: 5.0}})
    assert [r.service for r in rows] == [DB, WEB]


def test_collect_runs_every_query_through_the_injected_function():
    seen = []
    answers = {"requests": data((WEB, "8")), "errors": data((WEB, "2"))}
    by_query = {q: name for name, q in queries("1m").items()}

    def fake(promql: str) -> dict:
        seen.append(promql)
        return answers.get(by_query[promql], data())

    (row,) = collect(fake, "1m")
    assert sorted(seen) == sorted(queries("1m").values())
    assert row.success_rate == pytest.approx(0.75)
    assert not math.isnan(row.tcp_bytes_per_second)
    assert row.to_json()["service"] == WEB
