"""The status document the runtime publishes (`status.json`) and the CLI reads.

Pods are rendered in Kubernetes' shape (metadata/spec/status, phase, conditions, containerStatuses),
so `meshctl get pods -o yaml` reads like kubectl's output, plus a `sandbox` block with what only a
local cluster has: the pod's network namespace, cgroup and log directory.
"""

from __future__ import annotations

import time

from nodemesh.local.pods import Pod

TEMPLATE_HASH_LABEL = "pod-template-hash"


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None


def pod_phase(pod: Pod) -> tuple[str, str]:
    """(phase, the STATUS column kubectl would print)."""
    if pod.terminating:
        return "Running", "Terminating"
    states = [c.status for c in pod.containers]
    if not states or any(s.state == "Waiting" and s.reason == "ContainerCreating" for s in states):
        return "Pending", "ContainerCreating"
    for s in states:
        if s.state == "Waiting" and s.reason == "CrashLoopBackOff":
            return "Running", "CrashLoopBackOff"
    if all(s.state == "Terminated" for s in states):
        failed = any(s.exit_code for s in states)
        return ("Failed", "Error") if failed else ("Succeeded", "Completed")
    return "Running", "Running"


def _template_hash_label(rec) -> dict:
    """Like Kubernetes, mark a Deployment's pods with their template's hash (rollout checks)."""
    return {TEMPLATE_HASH_LABEL: rec.spec_hash} if rec.owner else {}


def _owner_refs(owner: str | None) -> list[dict]:
    if not owner:
        return []
    kind, _, name = owner.partition("/")
    return [{"kind": kind, "name": name}]


def pod_status(pod: Pod) -> dict:
    rec = pod.rec
    phase, display = pod_phase(pod)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": rec.name,
            "namespace": rec.namespace,
            "uid": rec.uid,
            "labels": {**rec.labels, **_template_hash_label(rec)},
            "annotations": rec.annotations,
            "creationTimestamp": _iso(rec.created),
            "ownerReferences": _owner_refs(rec.owner),
        },
        "spec": {**rec.spec, "nodeName": rec.node},
        "status": {
            "phase": phase,
            "display": display,
            "podIP": rec.ip,
            "hostIP": rec.node_ip,
            "conditions": [{"type": "Ready", "status": "True" if pod.ready else "False"}],
            "containerStatuses": [_container(c.status) for c in pod.containers],
        },
        "sandbox": {
            "netns": rec.netns,
            "cgroup": rec.cgroup,
            "logDir": rec.log_dir,
            "veth": rec.veth,
        },
    }


def _container(s) -> dict:
    state = {"waiting": {"reason": s.reason}}
    if s.state == "Running":
        state = {"running": {"startedAt": _iso(s.started_at)}}
    elif s.state == "Terminated":
        state = {"terminated": {"exitCode": s.exit_code, "reason": s.reason}}
    return {
        "name": s.name,
        "ready": s.ready,
        "restartCount": s.restarts,
        "state": state,
        "pid": s.pid,
        "probe": s.probe_detail,
    }


def pending_status(intent) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": intent.name,
            "namespace": intent.namespace,
            "labels": intent.labels,
            "ownerReferences": _owner_refs(intent.owner),
        },
        "spec": intent.spec,
        "status": {
            "phase": "Pending",
            "display": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "message": intent.pending}],
        },
    }
