"""The local cluster's real Prometheus scrapes the controller, every agent and the waypoint.

One 2-node cluster: `meshctl local up` starts Prometheus (Debian's package) as a system pod on
node1; namespace `shop` is enrolled and uses a waypoint (the app of test_waypoint); a client sends
HTTP requests to `web` through the waypoint. Then PromQL through the library entry point
(nodemesh.local.prometheus.query) and through `meshctl dashboard` must return data: every target
up, the waypoint's `istio_requests_total`, the agents' `istio_tcp_connections_opened_total`, the
controller's `pilot_xds_pushes_total`, and golden signals for `web`. Waits are bounded polls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodemesh.local import prometheus
from nodemesh.local.state import StateDir
from tests.netns.test_local_cluster import apply_text
from tests.netns.test_mesh import until
from tests.netns.test_waypoint import app, curl_many

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(prometheus.find_binary() is None, reason="prometheus is not installed"),
]

WEB = "web.shop.svc.cluster.local"


def serve_web_through_a_waypoint(cluster, tmp_path: Path) -> None:
    """test_waypoint's app, `shop` enrolled behind a waypoint; returns once requests to web
    succeed through it (telemetry tests then only wait for Prometheus to scrape)."""
    apply_text(cluster, tmp_path, app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    until(
        lambda: all(code == 200 for code, _ in curl_many(cluster, 5)),
        timeout=60,
        what="requests to web succeed through the waypoint",
    )


def series(state: StateDir, promql: str) -> list[dict]:
    data = prometheus.query(state, promql)
    assert data["resultType"] == "vector", data
    return data["result"]


def up_targets(state: StateDir) -> set[tuple[str, str]]:
    """(component, pod) of every target whose last scrape succeeded."""
    return {
        (s["metric"].get("component", ""), s["metric"]["pod"]) for s in series(state, "up == 1")
    }


def test_prometheus_scrapes_every_component_and_answers_promql(local_cluster, tmp_path):
    cluster = local_cluster
    out = cluster.meshctl("local", "up", "--nodes", "2").stdout
    assert "Prometheus: http://" in out
    state = StateDir(cluster.name)
    serve_web_through_a_waypoint(cluster, tmp_path)

    def scraped() -> bool:
        got = up_targets(state)
        pods = {pod for _, pod in got}
        return {
            "nodemesh-agent-node1",
            "nodemesh-agent-node2",
            "nodemesh-controller",
        } <= pods and any(component == "waypoint" for component, _ in got)

    until(scraped, timeout=60, what="agents, controller and waypoint scraped (up == 1)")

    def has_data(promql: str):
        def check() -> bool:
            curl_many(cluster, 10)  # keep traffic flowing so rates have samples
            return bool(series(state, promql))

        return check

    for promql in (
        f'sum by (destination_service) (istio_requests_total{{destination_service="{WEB}"}})',
        "sum(istio_tcp_connections_opened_total)",
        "sum(pilot_xds_pushes_total)",
        "sum(istio_request_duration_milliseconds_count)",
    ):
        until(has_data(promql), timeout=60, what=f"data for {promql}")

    def web_signals() -> dict | None:
        curl_many(cluster, 10)
        doc = json.loads(cluster.meshctl("dashboard", "-o", "json").stdout)
        row = next((s for s in doc["services"] if s["service"] == WEB), None)
        return row if row and row["requests_per_second"] > 0 else None

    row = until(web_signals, timeout=60, what=f"golden signals for {WEB}")
    assert row["success_rate"] == 1.0
    assert row["p99_ms"] is not None

    text = cluster.meshctl("dashboard", "--query", "up").stdout
    assert 'component="waypoint"' in text


def prometheus_processes(state: StateDir) -> list[str]:
    """Processes running a Prometheus whose files are in `state` (none may outlive `down`)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv and argv[0].endswith(b"prometheus") and str(state.path).encode() in b" ".join(argv):
            found.append(entry.name)
    return found


def test_local_down_removes_prometheus_process_and_files(local_cluster):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "1")
    state = StateDir(cluster.name)
    assert prometheus.find(state) is not None
    assert prometheus_processes(state)
    assert json.loads((state.path / "prometheus" / "targets.json").read_text())
    cluster.meshctl("local", "down")
    assert prometheus_processes(state) == []
    assert not state.path.exists()
