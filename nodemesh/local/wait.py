"""Waiting for the runtime to act on an apply: the predicate is pure, the loop polls status.json.

An apply is done when the runtime has observed the store generation it produced and every workload
it touched has rolled out: a Pod is Ready (or has completed), a Deployment has exactly `replicas`
ready pods and no others left (old ones removed). A delete is done when their pods are gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from nodemesh.local.state import StateDir, read_json
from nodemesh.local.status import TEMPLATE_HASH_LABEL
from nodemesh.local.workloads import spec_hash


def _ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod["status"].get("conditions", [])
    )


def _owned(pods: list[dict], namespace: str, owner: str) -> list[dict]:
    kind, _, name = owner.partition("/")
    return [
        p
        for p in pods
        if p["metadata"]["namespace"] == namespace
        and {"kind": kind, "name": name} in p["metadata"].get("ownerReferences", [])
    ]


def unfinished(status: dict, objects: Iterable[dict], *, deleted: bool = False) -> list[str]:
    """What is still in progress, one line each (empty: done)."""
    pods = status.get("pods", [])
    waiting = []
    for obj in objects:
        kind, meta = obj["kind"], obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        if kind == "Pod":
            mine = [
                p
                for p in pods
                if p["metadata"]["namespace"] == ns
                and p["metadata"]["name"] == name
                and not p["metadata"].get("ownerReferences")
            ]
            if deleted:
                waiting += [f"pod {ns}/{name}: still terminating" for _ in mine]
            elif not mine:
                waiting.append(f"pod {ns}/{name}: not created yet")
            elif not (_ready(mine[0]) or mine[0]["status"]["phase"] == "Succeeded"):
                waiting.append(_describe(mine[0]))
        elif kind == "Deployment":
            mine = _owned(pods, ns, f"Deployment/{name}")
            want = 0 if deleted else int(obj["spec"].get("replicas", 1))
            live = [p for p in mine if p["status"].get("display") != "Terminating"]
            ready = [p for p in live if _ready(p) and _current(p, obj)]
            if len(mine) != want or len(ready) != want:
                line = f"deployment {ns}/{name}: {len(ready)}/{want} ready, {len(mine)} pods"
                bad = [_describe(p) for p in live if not _ready(p)]
                waiting.append(line + "".join(f"\n    {b}" for b in bad[:3]))
    return waiting


def _current(pod: dict, deployment: dict) -> bool:
    """Whether the pod runs the Deployment's current template (pods without the label: yes)."""
    have = pod["metadata"].get("labels", {}).get(TEMPLATE_HASH_LABEL)
    template = deployment["spec"]["template"]
    want = spec_hash(template.get("metadata", {}).get("labels") or {}, template["spec"])
    return have is None or have == want


def _describe(pod: dict) -> str:
    st = pod["status"]
    detail = next((c.get("message") for c in st.get("conditions", []) if c.get("message")), "")
    probes = [c["probe"] for c in st.get("containerStatuses", []) if c.get("probe")]
    restarts = sum(c.get("restartCount", 0) for c in st.get("containerStatuses", []))
    extra = "; ".join(x for x in [detail, *probes] if x)
    return (
        f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}: {st.get('display')}"
        + (f", {restarts} restarts" if restarts else "")
        + (f" ({extra})" if extra else "")
    )


def wait_for(
    state: StateDir, generation: int, objects: list[dict], *, deleted: bool, timeout: float
) -> list[str]:
    """Poll until done; return what is still unfinished when the timeout runs out (or [])."""
    deadline = time.monotonic() + timeout
    waiting = ["the runtime has not acted on the change yet"]
    while time.monotonic() < deadline:
        status = read_json(state.status_file, {}) or {}
        if int(status.get("observedGeneration", 0)) >= generation:
            waiting = unfinished(status, objects, deleted=deleted)
            if not waiting:
                return []
        time.sleep(0.1)
    return waiting
