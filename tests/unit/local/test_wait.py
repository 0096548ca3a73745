"""Waiting for a rollout: hand-made status documents in, the lines still waiting out."""

from __future__ import annotations

import pytest

from nodemesh.local.state import StateDir, write_json_atomic
from nodemesh.local.status import TEMPLATE_HASH_LABEL
from nodemesh.local.wait import unfinished, wait_for
from nodemesh.local.workloads import spec_hash


def pod_status(
    name: str,
    ns: str = "default",
    *,
    owner: str | None = None,
    ready: bool = True,
    phase: str = "Running",
    display: str | None = None,
    message: str | None = None,
    containers: list[dict] | None = None,
) -> dict:
    """A pod as status.json holds it (the parts wait.py reads)."""
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    if message:
        condition["message"] = message
    refs = []
    if owner:
        kind, _, owner_name = owner.partition("/")
        refs.append({"kind": kind, "name": owner_name})
    return {
        "metadata": {"name": name, "namespace": ns, "ownerReferences": refs},
        "status": {
            "phase": phase,
            "display": display or phase,
            "conditions": [condition],
            "containerStatuses": containers or [],
        },
    }


def pod_obj(name: str = "api", ns: str = "default") -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {}}


TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
CURRENT = spec_hash(TEMPLATE["metadata"]["labels"], TEMPLATE["spec"])


def deployment(name: str = "web", ns: str = "default", replicas: int | None = 2) -> dict:
    spec: dict = {"template": TEMPLATE}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def web_pod(suffix: str, **kwargs) -> dict:
    return pod_status(f"web-{suffix}", owner="Deployment/web", **kwargs)


# --- Pods --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], ["pod default/api: not created yet"]),
        ([pod_status("api")], []),
        ([pod_status("api", ready=False, phase="Succeeded", display="Completed")], []),
        (
            [pod_status("api", ready=False, phase="Pending", display="ContainerCreating")],
            ["pod default/api: ContainerCreating"],
        ),
        (
            [pod_status("api", ready=False, phase="Failed", display="Error")],
            ["pod default/api: Error"],
        ),
        # same name, but another namespace or owned by a Deployment: not this pod
        ([pod_status("api", ns="other")], ["pod default/api: not created yet"]),
        ([pod_status("api", owner="Deployment/api")], ["pod default/api: not created yet"]),
    ],
    ids=[
        "missing",
        "ready",
        "succeeded",
        "creating",
        "failed",
        "other-namespace",
        "owned",
    ],
)
def test_a_pod_is_done_when_ready_or_succeeded(pods, expected):
    assert unfinished({"pods": pods}, [pod_obj("api")]) == expected


def test_a_status_without_pods_means_nothing_is_created():
    assert unfinished({}, [pod_obj("api")]) == ["pod default/api: not created yet"]


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            pod_status(
                "api",
                ready=False,
                display="Running",
                containers=[{"restartCount": 0, "probe": "http 198.18.1.2:80/: status 503"}],
            ),
            "pod default/api: Running (http 198.18.1.2:80/: status 503)",
        ),
        (
            pod_status(
                "api",
                ready=False,
                display="CrashLoopBackOff",
                containers=[{"restartCount": 2, "probe": ""}, {"restartCount": 1}],
            ),
            "pod default/api: CrashLoopBackOff, 3 restarts",
        ),
        (
            pod_status(
                "api",
                ready=False,
                phase="Pending",
                display="Pending",
                message="node 'node9' (spec.nodeName) does not exist in this cluster",
            ),
            "pod default/api: Pending "
            "(node 'node9' (spec.nodeName) does not exist in this cluster)",
        ),
        (
            pod_status(
                "api",
                ready=False,
                message="scheduling",
                containers=[
                    {"restartCount": 1, "probe": "tcp 198.18.1.2:80: ConnectionRefusedError"},
                    {"restartCount": 0, "probe": "exec: exit 1"},
                ],
            ),
            "pod default/api: Running, 1 restarts "
            "(scheduling; tcp 198.18.1.2:80: ConnectionRefusedError; exec: exit 1)",
        ),
    ],
    ids=["probe", "restarts", "pending", "everything"],
)
def test_an_unready_pod_is_described_with_its_reason(pod, expected):
    assert unfinished({"pods": [pod]}, [pod_obj("api")]) == [expected]


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], []),
        (
            [pod_status("api", display="Terminating", ready=False)],
            ["pod default/api: still terminating"],
        ),
        ([pod_status("api", ns="other")], []),
    ],
)
def test_a_deleted_pod_is_done_when_it_is_gone(pods, expected):
    assert unfinished({"pods": pods}, [pod_obj("api")], deleted=True) == expected


# --- Deployments -------------------------------------------------------------------------------


def test_a_deployment_is_done_with_exactly_replicas_ready_pods():
    pods = [web_pod("a"), web_pod("b")]
    assert unfinished({"pods": pods}, [deployment(replicas=2)]) == []


def test_replicas_defaults_to_one():
    assert unfinished({"pods": [web_pod("a")]}, [deployment(replicas=None)]) == []
    assert unfinished({"pods": []}, [deployment(replicas=None)]) == [
        "deployment default/web: 0/1 ready, 0 pods"
    ]


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], "deployment default/web: 0/2 ready, 0 pods"),
        (
            [web_pod("a"), web_pod("b", ready=False, display="ContainerCreating")],
            "deployment default/web: 1/2 ready, 2 pods\n    pod default/web-b: ContainerCreating",
        ),
        # an old pod still terminating: the rollout is not over, though 2 are ready
        (
            [web_pod("a"), web_pod("b"), web_pod("old", ready=False, display="Terminating")],
            "deployment default/web: 2/2 ready, 3 pods",
        ),
        # one pod too many (a surge pod, or a scale-down in progress)
        (
            [web_pod("a"), web_pod("b"), web_pod("c")],
            "deployment default/web: 3/2 ready, 3 pods",
        ),
    ],
    ids=["none", "one-unready", "old-terminating", "one-too-many"],
)
def test_an_incomplete_rollout_is_reported(pods, expected):
    assert unfinished({"pods": pods}, [deployment(replicas=2)]) == [expected]


def test_at_most_three_unready_pods_are_described():
    pods = [web_pod(s, ready=False, display="ContainerCreating") for s in "abcde"]
    [line] = unfinished({"pods": pods}, [deployment(replicas=5)])
    assert line.splitlines() == [
        "deployment default/web: 0/5 ready, 5 pods",
        "    pod default/web-a: ContainerCreating",
        "    pod default/web-b: ContainerCreating",
        "    pod default/web-c: ContainerCreating",
    ]


def test_only_pods_owned_by_the_deployment_in_its_namespace_count():
    pods = [
        web_pod("a"),
        pod_status("web-x", ns="other", owner="Deployment/web"),
        pod_status("api-x", owner="Deployment/api"),
        pod_status("web"),  # a standalone pod named like the deployment
    ]
    assert unfinished({"pods": pods}, [deployment(replicas=2)]) == [
        "deployment default/web: 1/2 ready, 1 pods"
    ]


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], []),
        (
            [web_pod("a", ready=False, display="Terminating")],
            ["deployment default/web: 0/0 ready, 1 pods"],
        ),
        ([web_pod("a")], ["deployment default/web: 1/0 ready, 1 pods"]),
    ],
)
def test_a_deleted_deployment_is_done_when_its_pods_are_gone(pods, expected):
    assert unfinished({"pods": pods}, [deployment(replicas=2)], deleted=True) == expected


# --- several objects ---------------------------------------------------------------------------


def test_each_unfinished_object_gets_a_line_in_object_order_and_others_are_ignored():
    objects = [
        deployment(replicas=1),
        {"kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": {}},
        pod_obj("done"),
        pod_obj("api"),
    ]
    status = {"pods": [pod_status("done")]}
    assert unfinished(status, objects) == [
        "deployment default/web: 0/1 ready, 0 pods",
        "pod default/api: not created yet",
    ]


# --- wait_for over status.json -----------------------------------------------------------------


@pytest.fixture
def state(tmp_path) -> StateDir:
    return StateDir("test", root=tmp_path)


def test_wait_for_returns_nothing_once_the_generation_is_observed_and_done(state):
    write_json_atomic(state.status_file, {"observedGeneration": 3, "pods": [pod_status("api")]})
    assert wait_for(state, 3, [pod_obj("api")], deleted=False, timeout=30) == []


def test_wait_for_ignores_a_status_older_than_the_generation(state):
    write_json_atomic(state.status_file, {"observedGeneration": 2, "pods": [pod_status("api")]})
    assert wait_for(state, 3, [pod_obj("api")], deleted=False, timeout=0.3) == [
        "the runtime has not acted on the change yet"
    ]


def test_wait_for_without_a_status_file_times_out_with_a_reason(state):
    assert wait_for(state, 1, [pod_obj("api")], deleted=False, timeout=0.3) == [
        "the runtime has not acted on the change yet"
    ]


def test_wait_for_times_out_with_what_is_unfinished(state):
    write_json_atomic(state.status_file, {"observedGeneration": 3, "pods": []})
    assert wait_for(state, 3, [pod_obj("api")], deleted=False, timeout=0.3) == [
        "pod default/api: not created yet"
    ]


@pytest.mark.parametrize(
    ("hashes", "done"),
    [
        ([CURRENT, CURRENT], True),
        ([CURRENT, "0ldtemplat"], False),  # an old-template pod still serves: not rolled out
        (["0ldtemplat", "0ldtemplat"], False),  # the runtime has not started the rollout yet
    ],
)
def test_a_rollout_is_done_only_when_every_ready_pod_runs_the_current_template(hashes, done):
    pods = [web_pod(str(i)) for i in range(len(hashes))]
    for pod, h in zip(pods, hashes, strict=True):
        pod["metadata"]["labels"] = {"app": "web", TEMPLATE_HASH_LABEL: h}
    waiting = unfinished({"pods": pods}, [deployment()])
    assert (waiting == []) is done, waiting
