"""Names, labels and pod-spec pieces every nodemesh workload shares.

One place for the names that tie objects together (a ServiceAccount and the binding naming it, a
Service and the pods it selects), so renaming one cannot break the other.
"""

from __future__ import annotations

from controller import waypoints_kube
from controller.auth_kube import AUDIENCE
from controller.leader import LEASE_NAME
from controller.waypoints_kube import BUNDLE_CONFIGMAP, BUNDLE_KEY
from nodemesh import logsetup
from nodemesh.install.values import Values
from nodemesh.local.prometheus_targets import scrape_annotations

PART_OF = "nodemesh"
CONTROLLER = "nodemesh-controller"
AGENT = "nodemesh-agent"
CNI = "nodemesh-cni"
CA_SECRET = "nodemesh-ca"  # the CA's root key and certificate (see controller.py)
# ConfigMap of the public trust bundle, the name and key waypoints mount too (waypoints_kube).
TRUST_BUNDLE = BUNDLE_CONFIGMAP
TRUST_BUNDLE_KEY = BUNDLE_KEY
CA_BUNDLE_FILE = "trust-bundle.pem"  # in the CA Secret, as controller.ca_files names it
LEADER_LEASE = LEASE_NAME  # controller.leader's Lease, in the install namespace
TOKEN_AUDIENCE = AUDIENCE  # controller.auth_kube accepts only tokens minted for it
TOKEN_DIR = waypoints_kube.TOKEN_DIR  # the same token layout as the waypoints'
TOKEN_PATH = waypoints_kube.TOKEN_PATH
TOKEN_TTL_SECONDS = waypoints_kube.TOKEN_SECONDS
TRUST_DIR = "/etc/nodemesh/trust"
LOG_LEVEL_ENV = logsetup.LOG_LEVEL_ENV  # every component reads it (nodemesh.logsetup)


def labels(values: Values, component: str = "") -> dict[str, str]:
    """Recommended labels (app.kubernetes.io/*); `component` also selects pods."""
    out = {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "meshctl",
        "app.kubernetes.io/version": values.image.tag,
    }
    if component:
        out["app.kubernetes.io/name"] = component
        out["app.kubernetes.io/component"] = component.removeprefix("nodemesh-")
    return out


def selector(component: str) -> dict[str, str]:
    """Only immutable-in-practice labels: a Deployment's selector can never change."""
    return {"app.kubernetes.io/name": component}


def meta(values: Values, name: str, component: str = "", namespaced: bool = True) -> dict:
    out: dict = {"name": name, "labels": labels(values, component)}
    if namespaced:
        out["namespace"] = values.namespace
    return out


def pod_annotations(metrics_port: int) -> dict[str, str]:
    """Prometheus' conventional annotations (daemonset/prometheus/ reads them)."""
    return scrape_annotations(metrics_port)


def pod_template(values: Values, component: str, metrics_port: int, spec: dict) -> dict:
    """A component's pod template: selected by `selector(component)`, scraped by Prometheus,
    running as the component's own ServiceAccount (named like it, see rbac.py)."""
    return {
        "metadata": {
            "labels": labels(values, component),
            "annotations": pod_annotations(metrics_port),
        },
        "spec": {"serviceAccountName": component, **spec},
    }


def agent_user(values: Values) -> str:
    """The agent's service account as a TokenReview names it (controller --agent-user)."""
    return f"system:serviceaccount:{values.namespace}:{AGENT}"


def controller_host(values: Values) -> str:
    return f"{CONTROLLER}.{values.namespace}.svc"


def token_volume(name: str = "nodemesh-token") -> dict:
    """A pod-bound token for audience "nodemesh": what the controller's TokenReview checks."""
    source = {
        "audience": TOKEN_AUDIENCE,
        "expirationSeconds": TOKEN_TTL_SECONDS,
        "path": "token",
    }
    return {"name": name, "projected": {"sources": [{"serviceAccountToken": source}]}}


def trust_volume(name: str = "trust-bundle") -> dict:
    return {"name": name, "configMap": {"name": TRUST_BUNDLE}}


def env(values: Values) -> list[dict]:
    field = {"fieldRef": {"fieldPath": "spec.nodeName"}}
    return [
        {"name": "NODE_NAME", "valueFrom": field},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": LOG_LEVEL_ENV, "value": values.log_level},
    ]


def image(values: Values, component: str) -> dict:
    return {"image": values.image.of(component), "imagePullPolicy": values.image.pull_policy}


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
NONROOT_UID = 65532  # distroless' "nonroot"
