"""What pods should exist and which are a Service's endpoints: pure functions over plain data.

The runtime calls `plan_pods` on every reconcile with the stored objects and the pods it runs; the
plan says which pods to start and which to stop. Deployments roll like Kubernetes' RollingUpdate:
new pods (current template) are added up to `replicas + maxSurge`, and old pods are removed only
while at least `replicas - maxUnavailable` pods stay ready. `Recreate` stops all old pods first.

Scheduling spreads pods by how many each node runs, except add-ons (label `nodemesh.io/addon:
"true"`, e.g. the local Prometheus): they are left out of the count so that turning one on or off
never moves anyone's pods.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

ADDON_LABEL = "nodemesh.io/addon"


@dataclass(frozen=True)
class RunningPod:
    """The runtime's view of a pod it has created (a subset of its record)."""

    uid: str
    name: str
    namespace: str
    node: str
    labels: dict
    spec_hash: str
    owner: str | None  # "Deployment/<name>" or None for a standalone Pod
    ready: bool
    terminating: bool = False
    created: float = 0.0


@dataclass(frozen=True)
class PodIntent:
    """A pod to create: its metadata and spec, already scheduled to a node."""

    name: str
    namespace: str
    labels: dict
    annotations: dict
    spec: dict
    spec_hash: str
    owner: str | None
    node: str | None  # None: cannot be scheduled (reason in `pending`)
    pending: str | None = None


@dataclass
class PodPlan:
    create: list[PodIntent] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # uids


def spec_hash(labels: dict, spec: dict) -> str:
    blob = json.dumps({"labels": labels, "spec": spec}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _scale(value: int | str | None, replicas: int, *, round_up: bool) -> int:
    if value is None:
        value = "25%"
    if isinstance(value, str) and value.endswith("%"):
        exact = replicas * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def plan_pods(
    objects: Iterable[dict],
    running: Sequence[RunningPod],
    nodes: Sequence[str],
    suffix: Callable[[], str],
) -> PodPlan:
    """Pods to create and delete so that what runs converges on what the objects ask for."""
    plan = PodPlan()
    load = {n: 0 for n in nodes}
    for pod in running:
        if not pod.terminating and pod.node in load and not _is_addon(pod.labels):
            load[pod.node] += 1
    wanted_owners: set[str] = set()
    standalone: dict[tuple[str, str], dict] = {}
    for obj in objects:
        if obj["kind"] == "Pod":
            meta = obj["metadata"]
            standalone[(meta["namespace"], meta["name"])] = obj
        elif obj["kind"] == "Deployment":
            meta = obj["metadata"]
            owner = f"Deployment/{meta['name']}"
            wanted_owners.add(f"{meta['namespace']}/{owner}")
            mine = [p for p in running if p.owner == owner and p.namespace == meta["namespace"]]
            _plan_deployment(obj, mine, plan, load, suffix)
    for pod in running:
        if pod.terminating:
            continue
        if pod.owner is None:
            obj = standalone.get((pod.namespace, pod.name))
            if obj is None or _intent_hash(obj) != pod.spec_hash:
                plan.delete.append(pod.uid)
        elif f"{pod.namespace}/{pod.owner}" not in wanted_owners:
            plan.delete.append(pod.uid)
    present = {(p.namespace, p.name) for p in running if p.owner is None}
    for (ns, name), obj in sorted(standalone.items()):
        if (ns, name) not in present:
            plan.create.append(_intent(obj["metadata"], obj["spec"], name, None, load))
    return plan


def _intent_hash(obj: dict) -> str:
    return spec_hash(obj["metadata"].get("labels") or {}, obj["spec"])


def _is_addon(labels: dict) -> bool:
    return labels.get(ADDON_LABEL) == "true"


def _schedule(
    spec: dict, load: dict[str, int], addon: bool = False
) -> tuple[str | None, str | None]:
    wanted = spec.get("nodeName")
    if wanted:
        if wanted not in load:
            return None, f"node {wanted!r} (spec.nodeName) does not exist in this cluster"
        load[wanted] += 0 if addon else 1
        return wanted, None
    if not load:
        return None, "the cluster has no nodes"
    node = min(load, key=lambda n: (load[n], _node_order(n)))
    load[node] += 0 if addon else 1
    return node, None


def _node_order(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


def _intent(meta: dict, spec: dict, name: str, owner: str | None, load: dict) -> PodIntent:
    labels = dict(meta.get("labels") or {})
    node, pending = _schedule(spec, load, _is_addon(labels))
    return PodIntent(
        name=name,
        namespace=meta["namespace"],
        labels=labels,
        annotations=dict(meta.get("annotations") or {}),
        spec=spec,
        spec_hash=spec_hash(labels, spec),
        owner=owner,
        node=node,
        pending=pending,
    )


def _plan_deployment(obj: dict, mine: list[RunningPod], plan: PodPlan, load, suffix) -> None:
    meta, spec = obj["metadata"], obj["spec"]
    template = spec["template"]
    labels = dict(template.get("metadata", {}).get("labels") or {})
    want_hash = spec_hash(labels, template["spec"])
    replicas = int(spec.get("replicas", 1))
    live = [p for p in mine if not p.terminating]
    current = sorted((p for p in live if p.spec_hash == want_hash), key=lambda p: p.created)
    old = sorted((p for p in live if p.spec_hash != want_hash), key=lambda p: p.created)
    strategy = spec.get("strategy") or {}
    owner = f"Deployment/{meta['name']}"
    tmeta = {**template.get("metadata", {}), "namespace": meta["namespace"]}

    def create(n: int) -> None:
        for _ in range(max(0, n)):
            name = f"{meta['name']}-{want_hash[:9]}-{suffix()}"
            plan.create.append(_intent(tmeta, template["spec"], name, owner, load))

    if len(current) > replicas:  # scale down: unready and newest go first
        extra = sorted(current, key=lambda p: (p.ready, -p.created))[: len(current) - replicas]
        plan.delete.extend(p.uid for p in extra)
        current = [p for p in current if p not in extra]
    if strategy.get("type") == "Recreate":
        plan.delete.extend(p.uid for p in old)
        if not any(p.spec_hash != want_hash for p in mine):  # old ones, terminating included
            create(replicas - len(current))
        return
    rolling = strategy.get("rollingUpdate") or {}
    surge = _scale(rolling.get("maxSurge"), replicas, round_up=True)
    unavailable = _scale(rolling.get("maxUnavailable"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        surge = 1
    create(min(replicas - len(current), replicas + surge - len(live)))
    ready = sum(p.ready for p in current) + sum(p.ready for p in old)
    floor = replicas - unavailable
    for pod in sorted(old, key=lambda p: (p.ready, p.created)):
        if not pod.ready or ready - 1 >= floor:
            plan.delete.append(pod.uid)
            ready -= pod.ready


@dataclass(frozen=True)
class EndpointAddress:
    ip: str
    port: int
    pod: str
    node: str


def resolve_target_port(target: int | str, containers: Sequence[dict]) -> int | None:
    """A Service targetPort: a number, or the name of a container port of the pod."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def selects(selector: dict | None, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
