"""The Prometheus client's response parsing and lookup, without a Prometheus."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.local import prometheus
from nodemesh.local.prometheus import PrometheusError, find, find_binary, parse_api_response
from nodemesh.local.state import StateDir, write_json_atomic

OK = {"status": "success", "data": {"resultType": "vector", "result": []}}


def response(status: str, doc: object) -> bytes:
    body = json.dumps(doc).encode()
    return f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n\r\n".encode() + body


def test_success_returns_the_whole_document():
    assert parse_api_response(response("200 OK", OK)) == OK


def test_a_bad_query_raises_with_prometheus_own_message():
    doc = {"status": "error", "errorType": "bad_data", "error": "parse error: unclosed ("}
    with pytest.raises(PrometheusError, match=r"bad_data.*unclosed"):
        parse_api_response(response("400 Bad Request", doc))


def test_a_body_that_is_not_json_names_the_status_line():
    raw = b"HTTP/1.0 502 Bad Gateway\r\n\r\n<html>nope</html>"
    with pytest.raises(PrometheusError, match="502 Bad Gateway"):
        parse_api_response(raw)


@given(st.integers(min_value=0, max_value=len(response("200 OK", OK)) - 1))
def test_every_truncated_response_is_an_error_not_a_crash(cut):
    with pytest.raises(PrometheusError):
        parse_api_response(response("200 OK", OK)[:cut])


def test_find_binary_uses_the_injected_lookup():
    assert find_binary(lambda name: f"/opt/{name}") == "/opt/prometheus"
    assert find_binary(lambda name: None) is None


def _cluster(tmp_path, pods: list[dict]) -> StateDir:
    state = StateDir("c1", tmp_path)
    node = {
        "name": "node1",
        "netns": "nm-c1-node1",
        "address": "198.18.0.11",
        "pod_cidr": "198.18.1.0/24",
        "gateway": "198.18.1.1",
        "index": 1,
    }
    write_json_atomic(state.cluster_file, {"name": "c1", "hub_netns": "nm-c1-hub", "nodes": [node]})
    write_json_atomic(state.status_file, {"pods": pods})
    return state


def _prom_pod(ready: bool) -> dict:
    return {
        "metadata": {"name": "nodemesh-prometheus", "namespace": "nodemesh-system"},
        "spec": {"nodeName": "node1"},
        "status": {
            "podIP": "198.18.0.11",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_find_returns_the_ready_pod_endpoint_in_its_node_netns(tmp_path):
    endpoint = find(_cluster(tmp_path, [_prom_pod(ready=True)]))
    assert endpoint == prometheus.Endpoint("nm-c1-node1", "198.18.0.11")
    assert endpoint.url == "http://198.18.0.11:9090"


def test_find_ignores_a_pod_that_is_not_ready(tmp_path):
    assert find(_cluster(tmp_path, [_prom_pod(ready=False)])) is None


def test_ensure_says_how_to_install_when_the_binary_is_missing(tmp_path, monkeypatch):
    state = _cluster(tmp_path, [])
    monkeypatch.setattr(prometheus, "find_binary", lambda: None)
    with pytest.raises(PrometheusError, match=r"not installed.*setup\.sh"):
        prometheus.ensure(state)


def test_ensure_on_a_missing_cluster_says_to_create_one(tmp_path):
    with pytest.raises(PrometheusError, match="meshctl local up"):
        prometheus.ensure(StateDir("nope", tmp_path))


def test_local_up_note_says_prometheus_is_not_installed(tmp_path, monkeypatch):
    from nodemesh.local import cluster

    state = _cluster(tmp_path, [])
    monkeypatch.setattr(cluster, "find_binary", lambda: None)
    assert "not installed" in cluster._prometheus_note(state, True)
    assert "--no-prometheus" in cluster._prometheus_note(state, False)
    monkeypatch.setattr(cluster, "find_binary", lambda: "/usr/bin/prometheus")
    assert cluster._prometheus_note(state, True) == (
        "Prometheus: http://198.18.0.11:9090 (in netns nm-c1-node1)"
    )


def test_system_manifest_writes_the_config_and_pins_the_pod_to_node1(tmp_path):
    state = _cluster(tmp_path, [])
    text = prometheus.system_manifest(state, binary="/usr/bin/prometheus")
    assert "nodeName: node1" in text
    assert "--web.listen-address=198.18.0.11:9090" in text
    assert (state.path / "prometheus" / "prometheus.yml").read_text().startswith("# Generated")


def test_system_manifest_is_none_when_prometheus_is_missing(tmp_path, monkeypatch):
    state = _cluster(tmp_path, [])
    monkeypatch.setattr(prometheus, "find_binary", lambda: None)
    assert prometheus.system_manifest(state) is None
    assert not (state.path / "prometheus").exists()
