"""Which pods Prometheus scrapes in a local cluster: pods → a `file_sd` targets document.

Theory of operation. In Kubernetes, Prometheus finds scrape targets with `kubernetes_sd` and keeps
the pods whose annotations say `prometheus.io/scrape: "true"`, scraping `prometheus.io/port` and
`prometheus.io/path` on the pod's IP (the community convention; see daemonset/prometheus/). A
local cluster has no API server for Prometheus to watch, so the runtime (which plays kubelet and
knows every pod) applies the same rule itself and hands Prometheus the result as a `file_sd`
targets file; Prometheus watches that file and follows changes without a restart.

`scrape_targets` is that rule, pure: it takes pods in the Kubernetes shape the runtime publishes
in status.json and returns the JSON document file_sd reads. A pod is a target only while it is
Ready and has an IP, so a terminating or crash-looping pod drops out just as it drops out of a
Service's endpoints. Each target group carries the labels a kubernetes_sd relabeling would give
(`namespace`, `pod`, `node`, `component`), so queries and dashboards work unchanged in both modes.
`__metrics_path__` is a target label Prometheus honours in place of the job's `metrics_path`.
"""

from __future__ import annotations

from collections.abc import Iterable

SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
DEFAULT_PATH = "/metrics"
COMPONENT_LABEL = "app.kubernetes.io/component"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def scrape_annotations(port: int, path: str = DEFAULT_PATH) -> dict[str, str]:
    """The annotations that ask for scraping; values are strings, as Kubernetes requires."""
    return {SCRAPE_ANNOTATION: "true", PORT_ANNOTATION: str(port), PATH_ANNOTATION: path}


def component_of(pod: dict) -> str:
    """What kind of thing the pod is, for the `component` label.

    The recommended `app.kubernetes.io/component` label wins; a waypoint is recognised by the
    Gateway API label its Deployment's pods carry (the deployer owns no other labels); else the
    conventional `app` label, else nothing.
    """
    labels = pod.get("metadata", {}).get("labels") or {}
    if labels.get(COMPONENT_LABEL):
        return labels[COMPONENT_LABEL]
    if labels.get(GATEWAY_NAME_LABEL):
        return "waypoint"
    return labels.get("app", "")


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _port(annotations: dict) -> int | None:
    """The annotated port, or None when it is missing or not a TCP port number."""
    raw = str(annotations.get(PORT_ANNOTATION, "")).strip()
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        return None
    return int(raw)


def pod_target(pod: dict) -> dict | None:
    """One file_sd target group for `pod`, or None when it must not be scraped (now)."""
    meta = pod.get("metadata", {})
    annotations = meta.get("annotations") or {}
    if str(annotations.get(SCRAPE_ANNOTATION, "")).lower() != "true":
        return None
    port = _port(annotations)
    ip = pod.get("status", {}).get("podIP")
    if port is None or not ip or not _ready(pod):
        return None
    labels = {
        "namespace": meta.get("namespace", ""),
        "pod": meta.get("name", ""),
        "node": pod.get("spec", {}).get("nodeName", ""),
        "component": component_of(pod),
        "__metrics_path__": annotations.get(PATH_ANNOTATION) or DEFAULT_PATH,
    }
    return {"targets": [f"{ip}:{port}"], "labels": labels}


def scrape_targets(pods: Iterable[dict]) -> list[dict]:
    """The file_sd document for `pods`, sorted so an unchanged cluster gives an equal document."""
    groups = [t for t in (pod_target(p) for p in pods) if t is not None]
    return sorted(groups, key=lambda g: (g["labels"]["namespace"], g["labels"]["pod"]))
