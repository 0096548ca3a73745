"""Add-on pods (label nodemesh.io/addon: "true", e.g. Prometheus) do not weigh on scheduling."""

from __future__ import annotations

from nodemesh.local.workloads import ADDON_LABEL
from tests.unit.local.test_workloads import CONTAINERS, plan, pod_obj, running, settled

ADDON = {ADDON_LABEL: "true"}


def test_a_running_addon_does_not_count_towards_its_node_load():
    objects, pods = settled([running("prom", node="node1", labels=ADDON)])
    result = plan([pod_obj("new"), *objects], pods, ("node1", "node2"))
    assert [(i.name, i.node) for i in result.create] == [("new", "node1")]


def test_an_ordinary_pod_still_counts():
    objects, pods = settled([running("app", node="node1", labels={"app": "x"})])
    result = plan([pod_obj("new"), *objects], pods, ("node1", "node2"))
    assert [(i.name, i.node) for i in result.create] == [("new", "node2")]


def test_an_addon_pinned_in_the_same_plan_does_not_push_later_pods_away():
    spec = {"containers": CONTAINERS, "nodeName": "node1"}
    addon = pod_obj("a-prom", spec=spec, labels=ADDON)
    result = plan([addon, pod_obj("b")], nodes=("node1", "node2"))
    assert [(i.name, i.node) for i in result.create] == [("a-prom", "node1"), ("b", "node1")]
