"""Pending workloads: a pod scheduled to a node before Kubernetes publishes its IP.

CNI ADD runs before the API server has the pod's IP, and waits for the node's agent to capture
the pod; so the controller must already tell that agent about the pod (identity, enrollment),
and nobody else may route to it (controller.translate, controller.scope).
"""

from __future__ import annotations

from controller import scope
from controller.translate import translate
from tests.unit.controller.test_translate import AMBIENT, namespace, pod, service


def pending(**kwargs) -> dict:
    obj = pod(ip=None, ready=False, phase="Pending", **kwargs)
    return obj


def test_a_scheduled_pod_without_an_ip_is_a_pending_workload():
    result = translate([namespace(labels=AMBIENT), pending()])
    assert result.errors == ()
    [workload] = result.snapshot.workloads
    assert workload.addresses == () and not workload.ready
    assert workload.enrolled and workload.node == "node1"
    assert workload.identity == "spiffe://cluster.local/ns/demo/sa/web"


def test_a_pending_pod_marked_ready_is_still_not_ready_without_an_address():
    [workload] = translate(
        [pending() | {"status": pod()["status"] | {"podIP": None}}]
    ).snapshot.workloads
    assert workload.addresses == () and not workload.ready


def test_no_service_endpoint_names_a_pending_workload():
    objects = [namespace(labels=AMBIENT), pending(), pod("web-2", "198.18.1.3"), service()]
    [svc] = translate(objects).snapshot.services
    assert [e.workload_uid for e in svc.endpoints] == ["uid-web-2"]


def test_only_its_own_node_hears_of_a_pending_workload():
    snapshot = translate([namespace(labels=AMBIENT), pending(), service()]).snapshot
    own = scope.for_node(snapshot, "node1")
    other = scope.for_node(snapshot, "node2")
    assert scope.ResourceKey(scope.WORKLOAD, "uid-web-1") in own
    assert not any(key.name == "uid-web-1" for key in other)


def test_a_pod_that_is_not_scheduled_yet_is_not_a_workload():
    unscheduled = pending(node="")
    assert translate([unscheduled]).snapshot.workloads == ()
