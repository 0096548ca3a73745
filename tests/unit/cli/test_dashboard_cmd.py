"""`meshctl dashboard` through CliRunner, with the cluster's Prometheus replaced by a fake."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nodemesh.cli.main import cli
from nodemesh.local import golden_signals, prometheus

ENDPOINT = prometheus.Endpoint("nm-c1-node1", "198.18.0.11")
WEB = "web.shop.svc.cluster.local"


def vector(*samples: tuple[dict, str]) -> dict:
    return {
        "resultType": "vector",
        "result": [{"metric": m, "value": [1.0, v]} for m, v in samples],
    }


@pytest.fixture
def fake(monkeypatch):
    """Answers by query text; records every query the command ran."""
    answers: dict[str, dict] = {}
    asked: list[str] = []

    def query(state, promql, **_):
        asked.append(promql)
        if promql == "bad(":
            raise prometheus.PrometheusError("Prometheus refused the query (bad_data): parse")
        return answers.get(promql, vector())

    monkeypatch.setattr(prometheus, "ensure", lambda state: ENDPOINT)
    monkeypatch.setattr(prometheus, "query", query)
    return answers, asked


def run(*args: str):
    return CliRunner().invoke(cli, ["--cluster", "c1", "dashboard", *args])


def test_query_prints_one_row_per_series(fake):
    answers, _ = fake
    answers["up"] = vector(({"__name__": "up", "pod": "nodemesh-controller"}, "1"))
    result = run("--query", "up")
    assert result.exit_code == 0, result.output
    assert 'pod="nodemesh-controller"' in result.output
    assert result.output.rstrip().endswith("1")


def test_query_json_is_the_api_data_object(fake):
    answers, _ = fake
    answers["up"] = vector(({"pod": "a"}, "1"))
    result = run("-q", "up", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == answers["up"]


def test_a_refused_query_exits_1_with_prometheus_message(fake):
    result = run("-q", "bad(")
    assert result.exit_code == 1
    assert "bad_data" in result.output


def test_prometheus_missing_exits_1_and_says_how_to_install(monkeypatch):
    def missing(state):
        raise prometheus.PrometheusError(f"Prometheus is not installed; {prometheus.INSTALL_HINT}")

    monkeypatch.setattr(prometheus, "ensure", missing)
    result = run()
    assert result.exit_code == 1
    assert "apt-get install prometheus" in result.output


def test_default_view_shows_how_to_reach_prometheus_and_golden_signals(fake):
    answers, asked = fake
    q = golden_signals.queries("1m")
    svc = {"destination_service": WEB}
    answers[q["requests"]] = vector((svc, "10"))
    answers[q["errors"]] = vector((svc, "1"))
    answers[q["p99"]] = vector((svc, "12.5"))
    answers[q["p50"]] = vector((svc, "2.5"))
    result = run()
    assert result.exit_code == 0, result.output
    assert "ip netns exec nm-c1-node1 curl" in result.output
    assert "http://198.18.0.11:9090" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith(WEB))
    assert row.split()[1:6] == ["10.00", "90.0%", "2.5", "-", "12.5"]  # p50, p90, p99
    assert sorted(asked) == sorted(q.values())


def test_default_view_json_and_the_window_option(fake):
    answers, asked = fake
    q = golden_signals.queries("30s")
    answers[q["sent"]] = vector(({"destination_service": WEB}, "7"))
    result = run("--window", "30s", "-o", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["prometheus"] == {"url": ENDPOINT.url, "netns": ENDPOINT.netns}
    assert doc["window"] == "30s"
    (service,) = doc["services"]
    assert service["service"] == WEB
    assert service["tcp_bytes_per_second"] == 7.0
    assert all("[30s]" in a for a in asked if "rate(" in a)


def test_no_traffic_says_so(fake):
    result = run()
    assert result.exit_code == 0
    assert "no mesh traffic" in result.output
