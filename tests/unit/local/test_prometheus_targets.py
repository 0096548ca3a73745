"""Pods → file_sd targets: Ready, annotated pods with an IP, labelled as kubernetes_sd would."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from nodemesh.local.prometheus_targets import (
    COMPONENT_LABEL,
    component_of,
    pod_target,
    scrape_annotations,
    scrape_targets,
)


def pod(
    name: str = "web-1",
    *,
    ns: str = "shop",
    ip: str | None = "198.18.1.5",
    ready: bool = True,
    annotations: dict | None = None,
    labels: dict | None = None,
    node: str = "node1",
) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels or {},
            "annotations": scrape_annotations(15020) if annotations is None else annotations,
        },
        "spec": {"nodeName": node},
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_a_ready_annotated_pod_is_one_target_with_kubernetes_style_labels():
    target = pod_target(pod(labels={"app": "web"}, node="node2"))
    assert target == {
        "targets": ["198.18.1.5:15020"],
        "labels": {
            "namespace": "shop",
            "pod": "web-1",
            "node": "node2",
            "component": "web",
            "__metrics_path__": "/metrics",
        },
    }


def test_the_path_annotation_becomes_the_metrics_path():
    ann = scrape_annotations(9090, "/stats/prometheus")
    assert pod_target(pod(annotations=ann))["labels"]["__metrics_path__"] == "/stats/prometheus"


def test_a_missing_path_annotation_defaults_to_metrics():
    ann = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}
    target = pod_target(pod(annotations=ann))
    assert target["labels"]["__metrics_path__"] == "/metrics"
    assert target["targets"] == ["198.18.1.5:8080"]


def test_pods_that_must_not_be_scraped_are_left_out():
    no_scrape = {"prometheus.io/scrape": "false", "prometheus.io/port": "15020"}
    bad_port = {"prometheus.io/scrape": "true", "prometheus.io/port": "http"}
    out_of_range = {"prometheus.io/scrape": "true", "prometheus.io/port": "70000"}
    no_port = {"prometheus.io/scrape": "true"}
    for p in (
        pod(annotations={}),
        pod(annotations=no_scrape),
        pod(annotations=bad_port),
        pod(annotations=out_of_range),
        pod(annotations=no_port),
        pod(ready=False),
        pod(ip=None),
    ):
        assert pod_target(p) is None, p


def test_a_pending_pod_without_status_fields_is_skipped_not_an_error():
    pending = {"metadata": {"name": "p", "namespace": "x", "annotations": scrape_annotations(1)}}
    assert pod_target(pending) is None


def test_component_prefers_the_recommended_label_then_waypoint_then_app():
    assert component_of(pod(labels={COMPONENT_LABEL: "agent", "app": "x"})) == "agent"
    gw = {"gateway.networking.k8s.io/gateway-name": "waypoint", "app": "x"}
    assert component_of(pod(labels=gw)) == "waypoint"
    assert component_of(pod(labels={"app": "web"})) == "web"
    assert component_of(pod(labels={})) == ""


def test_the_document_is_sorted_and_json_serializable():
    pods = [pod("b", ns="z"), pod("a", ns="z"), pod("c", ns="a"), pod("skip", ready=False)]
    doc = scrape_targets(pods)
    assert [(g["labels"]["namespace"], g["labels"]["pod"]) for g in doc] == [
        ("a", "c"),
        ("z", "a"),
        ("z", "b"),
    ]
    assert json.loads(json.dumps(doc)) == doc


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@given(st.lists(st.tuples(names, names, st.booleans()), max_size=12, unique_by=lambda t: t[:2]))
def test_the_order_of_pods_does_not_change_the_document(entries):
    pods = [pod(n, ns=ns, ready=r) for ns, n, r in entries]
    doc = scrape_targets(pods)
    assert doc == scrape_targets(list(reversed(pods)))
    assert len(doc) == sum(1 for _, _, r in entries if r)
