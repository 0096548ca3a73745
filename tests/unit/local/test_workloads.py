"""Pod planning: stored objects and running pods in, pods to create and delete out.

`Cluster` plays the runtime: it feeds a plan's creates back as RunningPods, marks deleted pods
terminating for one round and then drops them, so rollouts can be driven step by step.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from nodemesh.local.workloads import (
    PodIntent,
    PodPlan,
    RunningPod,
    plan_pods,
    resolve_target_port,
    selects,
    spec_hash,
)

NODES = ("node1", "node2", "node3")
CONTAINERS = [{"name": "app", "command": ["sleep", "infinity"]}]


def pod_obj(name: str, *, ns: str = "default", labels=None, spec=None, annotations=None) -> dict:
    meta = {"name": name, "namespace": ns, "labels": labels or {"app": name}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec if spec is not None else {"containers": CONTAINERS},
    }


def deployment(
    name: str = "web",
    *,
    ns: str = "default",
    replicas: int = 3,
    version: str = "v1",
    strategy: dict | None = None,
) -> dict:
    labels = {"app": name}
    template_spec = {"containers": [{"name": "app", "command": ["serve", version]}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": strategy if strategy is not None else {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels}, "spec": template_spec},
        },
    }


def template_hash(dep: dict) -> str:
    template = dep["spec"]["template"]
    return spec_hash(template["metadata"]["labels"], template["spec"])


def standalone_hash(obj: dict) -> str:
    return spec_hash(obj["metadata"]["labels"], obj["spec"])


def running(
    uid: str,
    *,
    name: str | None = None,
    ns: str = "default",
    node: str = "node1",
    spec_hash: str = "h",
    owner: str | None = None,
    ready: bool = True,
    terminating: bool = False,
    created: float = 0.0,
    labels: dict | None = None,
) -> RunningPod:
    return RunningPod(
        uid=uid,
        name=name or uid,
        namespace=ns,
        node=node,
        labels=labels or {},
        spec_hash=spec_hash,
        owner=owner,
        ready=ready,
        terminating=terminating,
        created=created,
    )


def settled(pods: list[RunningPod]) -> tuple[list[dict], list[RunningPod]]:
    """Standalone Pod objects for `pods`, and the pods matching them: a plan leaves them alone."""
    objects = [pod_obj(p.name) for p in pods]
    return objects, [replace(p, spec_hash=standalone_hash(pod_obj(p.name))) for p in pods]


def suffixes():
    counter = itertools.count()
    return lambda: f"{next(counter):05d}"


def plan(objects, pods=(), nodes=NODES) -> PodPlan:
    return plan_pods(objects, list(pods), list(nodes), suffixes())


class Cluster:
    """A fake runtime: applies plans to a set of RunningPods, with a clock for `created`."""

    def __init__(self, nodes=NODES) -> None:
        self.nodes = list(nodes)
        self.pods: dict[str, RunningPod] = {}
        self.clock = itertools.count(1)
        self.uids = itertools.count(1)
        self.suffix = suffixes()

    def reconcile(self, objects) -> PodPlan:
        # Pods deleted in the previous round have finished terminating.
        self.pods = {u: p for u, p in self.pods.items() if not p.terminating}
        result = plan_pods(objects, list(self.pods.values()), self.nodes, self.suffix)
        for uid in result.delete:
            self.pods[uid] = replace(self.pods[uid], terminating=True, ready=False)
        for intent in result.create:
            uid = f"u{next(self.uids)}"
            self.pods[uid] = RunningPod(
                uid=uid,
                name=intent.name,
                namespace=intent.namespace,
                node=intent.node,
                labels=intent.labels,
                spec_hash=intent.spec_hash,
                owner=intent.owner,
                ready=False,
                created=float(next(self.clock)),
            )
        return result

    def mark_ready(self, spec_hash: str | None = None) -> None:
        for uid, pod in self.pods.items():
            if not pod.terminating and spec_hash in (None, pod.spec_hash):
                self.pods[uid] = replace(pod, ready=True)

    def live(self, spec_hash: str | None = None) -> list[RunningPod]:
        return [
            p for p in self.pods.values() if not p.terminating and spec_hash in (None, p.spec_hash)
        ]


# --- standalone Pods ---------------------------------------------------------------------------


def test_a_missing_pod_is_created_with_its_metadata_and_spec():
    obj = pod_obj("api", ns="team", labels={"app": "api"}, annotations={"a": "b"})
    result = plan([obj])
    assert result.delete == []
    assert result.create == [
        PodIntent(
            name="api",
            namespace="team",
            labels={"app": "api"},
            annotations={"a": "b"},
            spec={"containers": CONTAINERS},
            spec_hash=standalone_hash(obj),
            owner=None,
            node="node1",
        )
    ]


def test_a_running_unchanged_pod_is_left_alone():
    obj = pod_obj("api")
    pods = [running("u1", name="api", spec_hash=standalone_hash(obj))]
    assert plan([obj], pods) == PodPlan()


def test_a_pod_of_the_same_name_in_another_namespace_does_not_count_as_present():
    obj = pod_obj("api", ns="b")
    pods = [running("u1", name="api", ns="a", spec_hash=standalone_hash(pod_obj("api", ns="a")))]
    result = plan([pod_obj("api", ns="a"), obj], pods)
    assert result.delete == []
    assert [(i.namespace, i.name) for i in result.create] == [("b", "api")]


@pytest.mark.parametrize(
    "changed",
    [
        pod_obj("api", labels={"app": "api", "tier": "web"}),
        pod_obj("api", spec={"containers": [{"name": "app", "command": ["sleep", "1"]}]}),
    ],
    ids=["labels", "spec"],
)
def test_a_changed_pod_is_deleted_then_recreated_once_the_old_one_is_gone(changed):
    old_hash = standalone_hash(pod_obj("api"))
    assert standalone_hash(changed) != old_hash

    first = plan([changed], [running("u1", name="api", spec_hash=old_hash)])
    assert first.delete == ["u1"]
    assert first.create == []  # same name still taken

    terminating = running("u1", name="api", spec_hash=old_hash, terminating=True)
    second = plan([changed], [terminating])
    assert second == PodPlan()  # neither deleted twice nor created too early

    third = plan([changed], [])
    assert [(i.name, i.spec_hash) for i in third.create] == [("api", standalone_hash(changed))]


def test_an_annotation_change_does_not_restart_the_pod():
    obj = pod_obj("api", annotations={"note": "new"})
    pods = [running("u1", name="api", spec_hash=standalone_hash(pod_obj("api")))]
    assert plan([obj], pods) == PodPlan()


def test_a_pod_removed_from_the_objects_is_deleted():
    pods = [
        running("u1", name="api"),
        running("u2", name="db"),
        running("u3", name="old", terminating=True),
    ]
    pods[1] = replace(pods[1], spec_hash=standalone_hash(pod_obj("db")))
    result = plan([pod_obj("db")], pods)
    assert result.delete == ["u1"]
    assert result.create == []


# --- scheduling --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "pods", "expected"),
    [
        (NODES, [], "node1"),
        (NODES, [running("a", node="node1")], "node2"),
        (NODES, [running("a", node="node1"), running("b", node="node2")], "node3"),
        (
            NODES,
            [running("a", node="node1"), running("b", node="node1"), running("c", node="node3")],
            "node2",
        ),
        # terminating pods do not count towards a node's load
        (NODES, [running("a", node="node1", terminating=True)], "node1"),
        # ties go to the lowest node number, compared as numbers
        (("node10", "node2", "node9"), [], "node2"),
        (("node10", "node2"), [running("a", node="node2")], "node10"),
        # pods on nodes that are not in the cluster are ignored
        (("node1", "node2"), [running("a", node="node7")], "node1"),
    ],
)
def test_a_pod_goes_to_the_least_loaded_node(nodes, pods, expected):
    objects, pods = settled(pods)
    result = plan([pod_obj("new"), *objects], pods, nodes)
    assert [(i.name, i.node) for i in result.create] == [("new", expected)]


def test_pods_created_in_one_plan_spread_over_the_nodes():
    result = plan([pod_obj(n) for n in ("a", "b", "c", "d")])
    assert [(i.name, i.node) for i in result.create] == [
        ("a", "node1"),
        ("b", "node2"),
        ("c", "node3"),
        ("d", "node1"),
    ]


def test_spec_node_name_is_honoured_even_on_the_busiest_node():
    obj = pod_obj("pinned", spec={"containers": CONTAINERS, "nodeName": "node1"})
    objects, busy = settled([running(f"p{i}", node="node1") for i in range(3)])
    result = plan([obj, *objects], busy)
    assert [(i.name, i.node, i.pending) for i in result.create] == [("pinned", "node1", None)]


def test_spec_node_name_counts_towards_the_load_of_later_pods():
    pinned = pod_obj("a", spec={"containers": CONTAINERS, "nodeName": "node1"})
    result = plan([pinned, pod_obj("b")], nodes=("node1", "node2"))
    assert [(i.name, i.node) for i in result.create] == [("a", "node1"), ("b", "node2")]


def test_an_unknown_node_name_leaves_the_pod_pending_with_a_reason():
    obj = pod_obj("pinned", spec={"containers": CONTAINERS, "nodeName": "node9"})
    [intent] = plan([obj]).create
    assert intent.node is None
    assert intent.pending == "node 'node9' (spec.nodeName) does not exist in this cluster"


def test_a_cluster_without_nodes_leaves_the_pod_pending():
    [intent] = plan([pod_obj("a")], nodes=()).create
    assert (intent.node, intent.pending) == (None, "the cluster has no nodes")


# --- Deployments: scaling ----------------------------------------------------------------------


def test_scale_up_from_zero_creates_replicas_pods_spread_over_the_nodes():
    dep = deployment("web", ns="shop", replicas=4)
    result = plan([dep])
    h = template_hash(dep)
    assert result.delete == []
    assert [(i.name, i.node) for i in result.create] == [
        (f"web-{h[:9]}-00000", "node1"),
        (f"web-{h[:9]}-00001", "node2"),
        (f"web-{h[:9]}-00002", "node3"),
        (f"web-{h[:9]}-00003", "node1"),
    ]
    for intent in result.create:
        assert intent.namespace == "shop"
        assert intent.owner == "Deployment/web"
        assert intent.labels == {"app": "web"}
        assert intent.spec == dep["spec"]["template"]["spec"]
        assert intent.spec_hash == h


def test_replicas_defaults_to_one():
    dep = deployment()
    del dep["spec"]["replicas"]
    assert len(plan([dep]).create) == 1


@pytest.mark.parametrize("existing", [0, 1, 2, 3])
def test_scale_up_creates_only_the_missing_pods(existing):
    dep = deployment(replicas=3)
    h = template_hash(dep)
    pods = [
        running(f"u{i}", owner="Deployment/web", spec_hash=h, node=NODES[i])
        for i in range(existing)
    ]
    result = plan([dep], pods)
    assert result.delete == []
    assert len(result.create) == 3 - existing
    assert sorted(i.node for i in result.create) == sorted(NODES[existing:])


@pytest.mark.parametrize(
    ("pods", "replicas", "deleted"),
    [
        # all ready: the newest go first
        ([("a", True, 1.0), ("b", True, 2.0), ("c", True, 3.0)], 1, ["c", "b"]),
        # unready go before ready ones, newest unready first
        ([("a", False, 1.0), ("b", True, 2.0), ("c", False, 3.0)], 2, ["c"]),
        ([("a", False, 1.0), ("b", True, 2.0), ("c", True, 3.0)], 1, ["a", "c"]),
        ([("a", True, 1.0), ("b", True, 2.0)], 0, ["b", "a"]),
        ([("a", True, 1.0), ("b", True, 2.0)], 2, []),
    ],
)
def test_scale_down_removes_unready_then_newest_pods(pods, replicas, deleted):
    dep = deployment(replicas=replicas)
    h = template_hash(dep)
    running_pods = [
        running(uid, owner="Deployment/web", spec_hash=h, ready=ready, created=created)
        for uid, ready, created in pods
    ]
    result = plan([dep], running_pods)
    assert result.delete == deleted
    assert result.create == []


def test_terminating_pods_of_a_deployment_are_replaced_and_not_deleted_again():
    dep = deployment(replicas=2)
    h = template_hash(dep)
    pods = [
        running("a", owner="Deployment/web", spec_hash=h),
        running("b", owner="Deployment/web", spec_hash=h, terminating=True),
    ]
    result = plan([dep], pods)
    assert result.delete == []
    assert len(result.create) == 1


# --- Deployments: ownership --------------------------------------------------------------------


def test_pods_of_a_deleted_deployment_are_deleted():
    pods = [
        running("a", owner="Deployment/web"),
        running("b", owner="Deployment/web", ready=False),
        running("c", owner="Deployment/web", terminating=True),
    ]
    result = plan([], pods)
    assert result == PodPlan(create=[], delete=["a", "b"])


def test_a_deployment_of_the_same_name_in_another_namespace_is_independent():
    new = deployment("web", ns="a", replicas=1, version="v2")
    other = deployment("web", ns="b", replicas=1, version="v1")
    pods = [
        running(
            "a1",
            ns="a",
            owner="Deployment/web",
            spec_hash=template_hash(deployment("web", ns="a", replicas=1, version="v1")),
        ),
        running("b1", ns="b", owner="Deployment/web", spec_hash=template_hash(other)),
    ]
    result = plan([new, other], pods)
    assert "b1" not in result.delete
    assert [(i.namespace, i.spec_hash) for i in result.create] == [("a", template_hash(new))]


def test_deleting_a_deployment_leaves_the_same_name_in_another_namespace_alone():
    other = deployment("web", ns="b", replicas=1)
    pods = [
        running("a1", ns="a", owner="Deployment/web", spec_hash=template_hash(other)),
        running("b1", ns="b", owner="Deployment/web", spec_hash=template_hash(other)),
    ]
    assert plan([other], pods) == PodPlan(create=[], delete=["a1"])


def test_a_standalone_pod_is_not_taken_for_a_deployment_pod():
    dep = deployment(replicas=1)
    pods = [running("s", name="web", spec_hash=template_hash(dep))]  # owner None
    result = plan([dep], pods)
    assert result.delete == ["s"]
    assert len(result.create) == 1


# --- Deployments: rollouts ---------------------------------------------------------------------


def start_rollout(replicas: int, strategy: dict) -> tuple[Cluster, dict]:
    """A cluster running `replicas` ready v1 pods, and the v2 Deployment to roll out."""
    cluster = Cluster()
    cluster.reconcile([deployment(replicas=replicas, strategy=strategy)])
    cluster.mark_ready()
    assert cluster.reconcile([deployment(replicas=replicas, strategy=strategy)]) == PodPlan()
    return cluster, deployment(replicas=replicas, version="v2", strategy=strategy)


def rolling(surge=None, unavailable=None) -> dict:
    rolling_update = {}
    if surge is not None:
        rolling_update["maxSurge"] = surge
    if unavailable is not None:
        rolling_update["maxUnavailable"] = unavailable
    return {"type": "RollingUpdate", "rollingUpdate": rolling_update}


@pytest.mark.parametrize(
    ("replicas", "strategy", "first_created", "first_deleted"),
    [
        # defaults 25%/25% of 4: surge 1, unavailable 1
        (4, {"type": "RollingUpdate"}, 1, 1),
        (4, rolling("25%", "25%"), 1, 1),
        # 25% of 3 rounds surge up to 1 and unavailable down to 0
        (3, rolling("25%", "25%"), 1, 0),
        (3, rolling(1, 0), 1, 0),
        (3, rolling(0, 1), 0, 1),
        (4, rolling(2, 0), 2, 0),
        (4, rolling("50%", "50%"), 2, 2),
        (10, rolling("25%", "25%"), 3, 2),
    ],
)
def test_first_rollout_step(replicas, strategy, first_created, first_deleted):
    cluster, v2 = start_rollout(replicas, strategy)
    old_uids = sorted(cluster.pods, key=lambda u: cluster.pods[u].created)
    result = cluster.reconcile([v2])
    assert len(result.create) == first_created
    assert all(i.spec_hash == template_hash(v2) for i in result.create)
    assert result.delete == old_uids[:first_deleted]  # the oldest old pods go first


def test_surge_one_unavailable_zero_waits_for_the_new_pod_before_deleting_an_old_one():
    cluster, v2 = start_rollout(3, rolling(1, 0))
    first = cluster.reconcile([v2])
    assert (len(first.create), first.delete) == (1, [])
    assert cluster.reconcile([v2]) == PodPlan()  # new pod not ready: nothing may move
    cluster.mark_ready(template_hash(v2))
    third = cluster.reconcile([v2])
    assert third.create == []
    assert len(third.delete) == 1
    assert cluster.pods[third.delete[0]].spec_hash == template_hash(deployment())


def test_old_pods_that_are_not_ready_are_deleted_even_with_max_unavailable_zero():
    dep_v1 = deployment(replicas=2, strategy=rolling(1, 0))
    dep_v2 = deployment(replicas=2, version="v2", strategy=rolling(1, 0))
    pods = [
        running("ok", owner="Deployment/web", spec_hash=template_hash(dep_v1), created=1.0),
        running(
            "bad",
            owner="Deployment/web",
            spec_hash=template_hash(dep_v1),
            created=2.0,
            ready=False,
        ),
    ]
    result = plan([dep_v2], pods)
    assert result.delete == ["bad"]
    assert len(result.create) == 1


@pytest.mark.parametrize(
    ("replicas", "strategy", "surge", "unavailable"),
    [
        (4, {"type": "RollingUpdate"}, 1, 1),
        (3, rolling(1, 0), 1, 0),
        (3, rolling(0, 1), 0, 1),
        (5, rolling("25%", "25%"), 2, 1),
        (6, rolling(2, 2), 2, 2),
        (1, {"type": "RollingUpdate"}, 1, 0),
        # both round down to 0 for 3 replicas: the rollout must still progress by one pod
        (3, rolling(0, "25%"), 1, 1),
    ],
)
def test_a_whole_rolling_update_respects_surge_and_availability(
    replicas, strategy, surge, unavailable
):
    cluster, v2 = start_rollout(replicas, strategy)
    new = template_hash(v2)
    for _step in range(100):
        result = cluster.reconcile([v2])
        live = cluster.live()
        assert len(live) <= replicas + surge
        assert sum(p.ready for p in live) >= replicas - unavailable
        if result == PodPlan() and len(cluster.live(new)) == len(cluster.pods):
            break
        cluster.mark_ready(new)
    else:
        pytest.fail(f"rollout did not finish: {sorted(cluster.pods.values(), key=str)}")
    assert len(cluster.pods) == replicas
    assert all(p.spec_hash == new and p.ready for p in cluster.pods.values())


def test_recreate_deletes_every_old_pod_before_creating_new_ones():
    cluster, v2 = start_rollout(3, {"type": "Recreate"})
    old = set(cluster.pods)
    first = cluster.reconcile([v2])
    assert (first.create, sorted(first.delete)) == ([], sorted(old))
    second = cluster.reconcile([v2])  # old pods have now gone
    assert second.delete == []
    assert [i.spec_hash for i in second.create] == [template_hash(v2)] * 3


def test_recreate_scales_like_any_deployment_when_the_template_is_unchanged():
    dep = deployment(replicas=2, strategy={"type": "Recreate"})
    h = template_hash(dep)
    pods = [running("a", owner="Deployment/web", spec_hash=h)]
    result = plan([dep], pods)
    assert (len(result.create), result.delete) == (1, [])


def test_recreate_waits_until_old_pods_have_terminated():
    v1 = deployment(replicas=2, strategy={"type": "Recreate"})
    v2 = deployment(replicas=2, version="v2", strategy={"type": "Recreate"})
    pods = [
        running(u, owner="Deployment/web", spec_hash=template_hash(v1), terminating=True)
        for u in ("a", "b")
    ]
    assert plan([v2], pods).create == []


# --- resolve_target_port and selects -----------------------------------------------------------

PORTED = [
    {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]},
    {"name": "side", "ports": [{"name": "metrics", "containerPort": 9090}, {"containerPort": 1}]},
    {"name": "bare"},
]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (80, 80),
        ("8443", 8443),
        ("http", 8080),
        ("metrics", 9090),
        ("grpc", None),
        ("", None),
    ],
)
def test_resolve_target_port(target, expected):
    assert resolve_target_port(target, PORTED) == expected


def test_resolve_target_port_of_a_name_without_containers_is_none():
    assert resolve_target_port("http", []) is None


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({"app": "web"}, {"app": "web"}, True),
        ({"app": "web"}, {"app": "web", "tier": "front"}, True),
        ({"app": "web", "tier": "front"}, {"app": "web"}, False),
        ({"app": "web"}, {"app": "api"}, False),
        ({"app": "web"}, {}, False),
        ({}, {"app": "web"}, False),  # an empty selector selects nothing
        (None, {"app": "web"}, False),
        ({}, {}, False),
    ],
)
def test_selects(selector, labels, expected):
    assert selects(selector, labels) is expected
