"""Objects the CLI tests publish: pods as the local runtime writes them into status.json."""

from __future__ import annotations


def waypoint_pod(
    name: str,
    *,
    ip: str = "198.18.1.9",
    ns: str = "shop",
    gateway: str = "waypoint",
    ready: bool = False,
    display: str | None = None,
) -> dict:
    """A pod of waypoint `gateway`, labelled and named as the deployer's Deployment makes it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "labels": {
                "gateway.networking.k8s.io/gateway-name": gateway,
                "nodemesh.io/dataplane-mode": "none",
            },
            "ownerReferences": [{"kind": "Deployment", "name": gateway}],
        },
        "spec": {"nodeName": "node1", "serviceAccountName": gateway, "containers": []},
        "status": {
            "phase": "Running",
            "display": display or ("Running" if ready else "ContainerCreating"),
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
