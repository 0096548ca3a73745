"""`meshctl dashboard --watch` against the local cluster's real Prometheus (issue 6, item 5).

One 2-node cluster with test_waypoint's app (namespace `shop` enrolled, `web` behind a waypoint);
the client sends requests until Prometheus has a request rate for `web`. Then the watch view,
bounded by `--iterations 2`, must draw two frames, each with the header naming Prometheus and
Grafana (--grafana-url) and a row for `web` with its request rate.
"""

from __future__ import annotations

import json

import pytest

from nodemesh.cli.dashboard_cmd import HOME_CLEAR
from nodemesh.local import prometheus
from tests.netns.test_mesh import until
from tests.netns.test_prometheus import serve_web_through_a_waypoint
from tests.netns.test_waypoint import curl_many

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(prometheus.find_binary() is None, reason="prometheus is not installed"),
]

WEB = "web.shop.svc.cluster.local"
GRAFANA = "http://grafana.invalid:3000"


def test_dashboard_watch_redraws_service_rows_from_prometheus(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    serve_web_through_a_waypoint(cluster, tmp_path)

    def web_has_a_rate() -> bool:
        curl_many(cluster, 10)  # keep traffic flowing so the rate window has samples
        doc = json.loads(cluster.meshctl("dashboard", "-o", "json").stdout)
        return any(s["service"] == WEB and s["requests_per_second"] > 0 for s in doc["services"])

    until(web_has_a_rate, timeout=90, what=f"a request rate for {WEB} in Prometheus")

    watch = ["--watch", "--interval", "1", "--iterations", "2", "--grafana-url", GRAFANA]
    out = cluster.meshctl("dashboard", *watch, timeout=60).stdout
    frames = out.split(HOME_CLEAR)[1:]
    assert len(frames) == 2, out
    for frame in frames:
        assert "refresh failed" not in frame, frame
        assert f"Grafana {GRAFANA}" in frame and "Prometheus http://" in frame, frame
        row = next((line for line in frame.splitlines() if line.startswith(WEB)), None)
        assert row is not None, frame
        assert float(row.split()[1]) > 0, row  # REQ/S
