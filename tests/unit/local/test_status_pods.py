"""A pod's published status and its sandbox files: records and container states in, text out.

Pods here are built from a PodRecord with stand-in containers (anything with a `.status`); no
process, network namespace or event loop is involved.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nodemesh.local.containers import BASE_ENV, ContainerStatus
from nodemesh.local.pods import Pod, PodRecord, container_env, field_value, hosts_file, resolv_conf
from nodemesh.local.status import pending_status, pod_phase, pod_status
from nodemesh.local.wait import unfinished
from nodemesh.local.workloads import PodIntent

CREATED = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CREATED_ISO = "2023-11-14T22:13:20Z"


def record(**overrides) -> PodRecord:
    fields = {
        "uid": "123e4567-e89b-12d3-a456-426614174000",
        "name": "web-abc",
        "namespace": "shop",
        "node": "node2",
        "node_netns": "nm-dev-node2",
        "node_ip": "198.18.0.12",
        "ip": "198.18.2.5",
        "gateway": "198.18.2.1",
        "netns": "nm-dev-p123e4567e89b",
        "veth": "nmv123e4567e89",
        "cgroup": "/sys/fs/cgroup/nodemesh-dev/pods/shop_web-abc_123e4567",
        "log_dir": "/run/nodemesh/clusters/dev/pods/shop_web-abc_123e4567",
        "labels": {"app": "web", "app.kubernetes.io/name": "web"},
        "annotations": {"team": "payments"},
        "spec": {"containers": [{"name": "app", "command": ["serve"]}]},
        "spec_hash": "0123456789",
        "owner": None,
        "created": CREATED,
    }
    fields.update(overrides)
    return PodRecord(**fields)


def pod_with(*statuses: ContainerStatus, terminating: bool = False, **rec) -> Pod:
    pod = Pod(record(**rec), on_change=lambda: None)
    pod.containers = [SimpleNamespace(status=s) for s in statuses]
    pod.terminating = terminating
    return pod


def creating(name: str = "app") -> ContainerStatus:
    return ContainerStatus(name=name)  # Waiting / ContainerCreating


def running(name: str = "app", *, ready: bool = True, **kw) -> ContainerStatus:
    return ContainerStatus(name=name, state="Running", reason="", ready=ready, **kw)


def exited(code: int, name: str = "app") -> ContainerStatus:
    reason = "Completed" if code == 0 else "Error"
    return ContainerStatus(name=name, state="Terminated", reason=reason, exit_code=code)


def backoff(name: str = "app") -> ContainerStatus:
    return ContainerStatus(
        name=name, state="Waiting", reason="CrashLoopBackOff", exit_code=1, restarts=2
    )


# --- pod_phase and Pod.ready -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "terminating", "expected"),
    [
        ((), False, ("Pending", "ContainerCreating")),
        ((creating(),), False, ("Pending", "ContainerCreating")),
        ((running(), creating("side")), False, ("Pending", "ContainerCreating")),
        ((running(),), False, ("Running", "Running")),
        ((running(ready=False),), False, ("Running", "Running")),
        ((running(), backoff("side")), False, ("Running", "CrashLoopBackOff")),
        ((exited(0),), False, ("Succeeded", "Completed")),
        ((exited(0), exited(0, "side")), False, ("Succeeded", "Completed")),
        ((exited(0), exited(3, "side")), False, ("Failed", "Error")),
        ((exited(-9),), False, ("Failed", "Error")),  # killed by a signal
        ((exited(0), running("side")), False, ("Running", "Running")),
        ((running(),), True, ("Running", "Terminating")),
        ((creating(),), True, ("Running", "Terminating")),
    ],
    ids=[
        "no-containers",
        "creating",
        "one-still-creating",
        "running",
        "running-unready",
        "crash-loop",
        "completed",
        "all-completed",
        "one-failed",
        "signalled",
        "one-exited-one-running",
        "terminating",
        "terminating-while-creating",
    ],
)
def test_pod_phase(statuses, terminating, expected):
    assert pod_phase(pod_with(*statuses, terminating=terminating)) == expected


@pytest.mark.parametrize(
    ("statuses", "terminating", "ready"),
    [
        ((running(), running("side")), False, True),
        ((running(), running("side", ready=False)), False, False),
        ((running(), creating("side")), False, False),
        ((exited(0),), False, False),
        ((), False, False),
        ((running(),), True, False),
    ],
    ids=["all-ready", "one-unready", "one-creating", "exited", "no-containers", "terminating"],
)
def test_pod_ready_needs_every_container_running_and_ready(statuses, terminating, ready):
    assert pod_with(*statuses, terminating=terminating).ready is ready


# --- pod_status --------------------------------------------------------------------------------


def test_pod_status_renders_a_running_pod_in_kubernetes_shape():
    status = running(started_at=CREATED + 5, pid=4242, probe_detail="http ok", restarts=1)
    doc = pod_status(pod_with(status, owner="Deployment/web"))
    assert doc == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-abc",
            "namespace": "shop",
            "uid": "123e4567-e89b-12d3-a456-426614174000",
            # a Deployment's pod carries its template hash, as in Kubernetes
            "labels": {
                "app": "web",
                "app.kubernetes.io/name": "web",
                "pod-template-hash": "0123456789",
            },
            "annotations": {"team": "payments"},
            "creationTimestamp": CREATED_ISO,
            "ownerReferences": [{"kind": "Deployment", "name": "web"}],
        },
        "spec": {"containers": [{"name": "app", "command": ["serve"]}], "nodeName": "node2"},
        "status": {
            "phase": "Running",
            "display": "Running",
            "podIP": "198.18.2.5",
            "hostIP": "198.18.0.12",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "restartCount": 1,
                    "state": {"running": {"startedAt": "2023-11-14T22:13:25Z"}},
                    "pid": 4242,
                    "probe": "http ok",
                }
            ],
        },
        "sandbox": {
            "netns": "nm-dev-p123e4567e89b",
            "cgroup": "/sys/fs/cgroup/nodemesh-dev/pods/shop_web-abc_123e4567",
            "logDir": "/run/nodemesh/clusters/dev/pods/shop_web-abc_123e4567",
            "veth": "nmv123e4567e89",
        },
    }


def test_a_standalone_pod_has_no_owner_references():
    assert pod_status(pod_with(running()))["metadata"]["ownerReferences"] == []


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (creating(), {"waiting": {"reason": "ContainerCreating"}}),
        (backoff(), {"waiting": {"reason": "CrashLoopBackOff"}}),
        (exited(0), {"terminated": {"exitCode": 0, "reason": "Completed"}}),
        (exited(137), {"terminated": {"exitCode": 137, "reason": "Error"}}),
        (running(started_at=CREATED), {"running": {"startedAt": CREATED_ISO}}),
    ],
)
def test_container_state_is_rendered_like_kubectl(status, state):
    [container] = pod_status(pod_with(status))["status"]["containerStatuses"]
    assert container["state"] == state


@pytest.mark.parametrize(
    ("statuses", "ready"),
    [((running(),), "True"), ((running(ready=False),), "False"), ((creating(),), "False")],
)
def test_the_ready_condition_follows_the_containers(statuses, ready):
    doc = pod_status(pod_with(*statuses))
    assert doc["status"]["conditions"] == [{"type": "Ready", "status": ready}]


def test_a_terminating_pod_is_shown_terminating_and_unready():
    doc = pod_status(pod_with(running(), terminating=True))
    assert (doc["status"]["phase"], doc["status"]["display"]) == ("Running", "Terminating")
    assert doc["status"]["conditions"] == [{"type": "Ready", "status": "False"}]


def intent(owner: str | None) -> PodIntent:
    return PodIntent(
        name="web-0123456789-abcde",
        namespace="shop",
        labels={"app": "web"},
        annotations={},
        spec={"containers": [], "nodeName": "node9"},
        spec_hash="0123456789",
        owner=owner,
        node=None,
        pending="node 'node9' (spec.nodeName) does not exist in this cluster",
    )


def test_pending_status_shows_why_the_pod_cannot_be_scheduled():
    doc = pending_status(intent(None))
    assert doc["metadata"]["name"] == "web-0123456789-abcde"
    assert doc["metadata"]["namespace"] == "shop"
    assert (doc["status"]["phase"], doc["status"]["display"]) == ("Pending", "Pending")
    assert doc["status"]["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "False",
            "message": "node 'node9' (spec.nodeName) does not exist in this cluster",
        }
    ]


def test_a_pending_deployment_pod_names_its_owner_and_the_reason_reaches_wait():
    doc = pending_status(intent("Deployment/web"))
    assert doc["metadata"].get("ownerReferences") == [{"kind": "Deployment", "name": "web"}]
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 1},
    }
    [line] = unfinished({"pods": [doc]}, [deployment])
    assert "does not exist in this cluster" in line


# --- sandbox files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "nameserver", "expected"),
    [
        (
            "shop",
            "198.18.2.1",
            "nameserver 198.18.2.1\n"
            "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
            "options ndots:5\n",
        ),
        (
            "default",
            "198.18.1.1",
            "nameserver 198.18.1.1\n"
            "search default.svc.cluster.local svc.cluster.local cluster.local\n"
            "options ndots:5\n",
        ),
    ],
)
def test_resolv_conf_is_cluster_first(namespace, nameserver, expected):
    assert resolv_conf(namespace, nameserver) == expected


def test_hosts_file_names_localhost_and_the_pod():
    assert hosts_file(record(name="api-1", ip="198.18.3.9")).splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "198.18.3.9\tapi-1",
    ]


# --- downward API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "web-abc"),
        ("metadata.namespace", "shop"),
        ("metadata.uid", "123e4567-e89b-12d3-a456-426614174000"),
        ("spec.nodeName", "node2"),
        ("spec.serviceAccountName", "default"),
        ("status.podIP", "198.18.2.5"),
        ("status.hostIP", "198.18.0.12"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['app.kubernetes.io/name']", "web"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['team']", "payments"),
        ("metadata.annotations['missing']", ""),
        ("metadata.labels", ""),
        ("metadata.labels[app]", ""),
        ("status.phase", ""),
    ],
)
def test_field_value(path, expected):
    assert field_value(path, record()) == expected


def test_field_value_reads_the_service_account_from_the_spec():
    rec = record(spec={"containers": [], "serviceAccountName": "robot"})
    assert field_value("spec.serviceAccountName", rec) == "robot"


def test_container_env_starts_from_the_base_and_names_the_host():
    assert container_env({"name": "app"}, record()) == {**BASE_ENV, "HOSTNAME": "web-abc"}


def test_container_env_sets_values_and_downward_api_fields_in_order():
    spec = {
        "name": "app",
        "env": [
            {"name": "MODE", "value": "prod"},
            {"name": "EMPTY", "value": ""},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "PATH", "value": "/opt/bin"},  # overrides the base
            {"name": "MODE", "value": "debug"},  # a later entry wins
        ],
    }
    env = container_env(spec, record())
    assert env == {
        **BASE_ENV,
        "HOSTNAME": "web-abc",
        "MODE": "debug",
        "EMPTY": "",
        "POD_IP": "198.18.2.5",
        "APP": "web",
        "PATH": "/opt/bin",
    }
