"""The waypoint Deployment template, as the controller's Kubernetes deployer writes it.

The controller builds each waypoint's ServiceAccount and Deployment itself
(controller/waypoints_kube.py: the projected token for audience "nodemesh" at the path
NODEMESH_TOKEN_FILE names, the trust-bundle ConfigMap, the Gateway as owner). This module only
asks that code for one example, so daemonset/waypoint-template.yaml shows exactly what a cluster
will get and the tests validate it against the Kubernetes schemas; it never builds its own copy.
"""

from __future__ import annotations

from controller.waypoints_kube import kube_template, plan_kube
from nodemesh.install.values import Values
from nodemesh.manifests.validate_gateway import API_VERSION as GATEWAY_API_VERSION

EXAMPLE_UID = "00000000-0000-0000-0000-000000000000"  # a Gateway's uid, set by the API server


def example_gateway(namespace: str, name: str) -> dict:
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace, "uid": EXAMPLE_UID},
        "spec": {
            "gatewayClassName": "nodemesh-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    }


def waypoint_objects(values: Values, namespace: str, name: str) -> list[dict]:
    """What the controller writes for Gateway `namespace/name` with this install's image."""
    template = kube_template(values.image.of("waypoint"), values.trust_domain, values.log_level)
    plan = plan_kube([example_gateway(namespace, name)], [], template)
    if plan.conflicts or len(plan.writes) != 2:
        raise RuntimeError(f"the waypoint deployer planned {plan}; expected 2 writes")
    return [write.obj for write in plan.writes]
