"""Manifest builders for trace tests: the mesh below, as the controller would read it.

Namespace `shop` is enrolled and has waypoint `wp` (node2). `client` and `other` (node1) are
clients with their own service accounts; `web-1` (node2) serves Service `web` directly; `db-1`
(node2) serves Service `db`, which uses the waypoint; `api-1` (node2) is labelled to use the
waypoint itself. Namespace `legacy` is outside the mesh: `old-1` (node2) and `outsider` (node1).
"""

from __future__ import annotations

TD = "cluster.local"
AMBIENT = {"nodemesh.io/dataplane-mode": "ambient"}
USE_WP = {"nodemesh.io/use-waypoint": "wp"}


def ns(name, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}},
    }


def pod(name, namespace, node, ip, labels=None, sa="default", ports=(8080,)):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": labels or {},
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": sa,
            "containers": [
                {
                    "name": "c",
                    "command": ["x"],
                    "ports": [{"name": "http", "containerPort": p} for p in ports],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def svc(name, namespace, vip, selector, labels=None, port=80, target="http"):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "clusterIP": vip,
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}],
        },
    }


def authz(name, spec, namespace="shop"):
    return {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def strict(namespace="shop"):
    return {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {"mtls": {"mode": "STRICT"}},
    }


def route(name, service, rules, namespace="shop"):
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": service, "port": 80}],
            "rules": rules,
        },
    }


GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "wp", "namespace": "shop"},
    "spec": {
        "gatewayClassName": "nodemesh-waypoint",
        "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
    },
}

WP_LABELS = {"app": "wp", "gateway.networking.k8s.io/gateway-name": "wp"}

MESH = [
    ns("shop", AMBIENT),
    ns("legacy"),
    pod("client", "shop", "node1", "198.18.1.2", {"app": "client"}, sa="client", ports=()),
    pod("other", "shop", "node1", "198.18.1.4", {"app": "other"}, sa="other", ports=()),
    pod("web-1", "shop", "node2", "198.18.2.3", {"app": "web"}, sa="web"),
    pod("db-1", "shop", "node2", "198.18.2.4", {"app": "db"}, sa="db"),
    pod("api-1", "shop", "node2", "198.18.2.5", {"app": "api", **USE_WP}, sa="api"),
    pod("wp-1", "shop", "node2", "198.18.2.9", WP_LABELS, sa="wp", ports=(15008,)),
    pod("old-1", "legacy", "node2", "198.18.2.7", {"app": "old"}),
    pod("outsider", "legacy", "node1", "198.18.1.7", {"app": "outsider"}, ports=()),
    svc("web", "shop", "198.19.0.10", {"app": "web"}),
    svc("db", "shop", "198.19.0.11", {"app": "db"}, labels=USE_WP),
    svc("wp", "shop", "198.19.0.12", {"app": "wp"}, port=15008, target=15008),
    svc("old", "legacy", "198.19.0.13", {"app": "old"}),
    svc("empty", "shop", "198.19.0.14", {"app": "nobody"}),
    svc("cart", "shop", "198.19.0.15", {"app": "web"}, labels={"nodemesh.io/use-waypoint": "gone"}),
    GATEWAY,
]
