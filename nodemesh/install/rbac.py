"""ServiceAccounts and RBAC, least privilege: each component gets only what its code calls.

- controller: reads the objects the mesh model is built from (controller.registry_kube watches
  them), reviews bootstrap tokens
  (controller.auth_kube), deploys waypoints (controller.waypoints_kube: a ServiceAccount and a
  Deployment per waypoint Gateway, in the Gateway's namespace, owned by the Gateway) and holds a
  leader Lease in its own namespace (controller.leader), and publishes the trust bundle
  ConfigMap into its own namespace and every waypoint's (controller.trust_bundle_kube: get,
  create and update of that one name; create cannot be limited by name). Nothing more: it writes
  no status; a rule for that is added with the code that makes the call.
- agent (and the CNI installer in the same pod): no rules at all. Agents get workloads, services,
  policies and certificates from the controller over mTLS, and authenticate to it with a
  projected token whose audience ("nodemesh") the API server itself does not accept, so the pod
  holds no credential that works against the API server.

Every rule carries the reason it exists in `REASONS`, printed as a YAML comment above it.
"""

from __future__ import annotations

from nodemesh.install import common
from nodemesh.install.values import Values

_READ = ["list", "watch"]
LEADER_LEASE = common.LEADER_LEASE  # coordination.k8s.io/v1 Lease the replicas compete for

# (apiGroups, resources, verbs, resourceNames, why) for the controller's ClusterRole.
CONTROLLER_RULES: tuple[tuple[list[str], list[str], list[str], list[str], str], ...] = (
    (
        [""],
        ["namespaces", "pods", "services", "serviceaccounts"],
        _READ,
        [],
        "the mesh model: enrollment labels, workloads, services, identities",
    ),
    (["discovery.k8s.io"], ["endpointslices"], _READ, [], "service endpoints"),
    (
        ["security.nodemesh.io"],
        ["authorizationpolicies", "peerauthentications"],
        _READ,
        [],
        "policies compiled for agents and waypoints",
    ),
    (["networking.nodemesh.io"], ["trafficpolicies"], _READ, [], "waypoint resilience"),
    (
        ["gateway.networking.k8s.io"],
        ["gateways", "httproutes"],
        _READ,
        [],
        "waypoints (Gateways of class nodemesh-waypoint) and L7 routes",
    ),
    (
        ["authentication.k8s.io"],
        ["tokenreviews"],
        ["create"],
        [],
        "checks agents' and waypoints' bootstrap tokens (controller/auth_kube.py)",
    ),
    (
        [""],
        ["serviceaccounts"],
        ["get", "create", "update", "delete"],
        [],
        "waypoint deployer: one ServiceAccount per waypoint (only those it labels as its own)",
    ),
    (
        ["apps"],
        ["deployments"],
        ["get", *_READ, "create", "update", "delete"],
        [],
        "waypoint deployer: one Deployment per waypoint, compared with what is stored",
    ),
    (
        [""],
        ["configmaps"],
        ["create"],
        [],
        f"trust bundle publisher: creates ConfigMap {common.TRUST_BUNDLE} where missing "
        "(create cannot be limited by name; controller/trust_bundle_kube.py)",
    ),
    (
        [""],
        ["configmaps"],
        ["get", "update"],
        [common.TRUST_BUNDLE],
        "trust bundle publisher: reads and updates only that ConfigMap, in the controller's "
        "namespace and every namespace with a waypoint",
    ),
    (
        ["gateway.networking.k8s.io"],
        ["gateways/finalizers"],
        ["update"],
        [],
        "waypoint objects name their Gateway as owner with blockOwnerDeletion, which the "
        "OwnerReferencesPermissionEnforcement admission plugin allows only with this",
    ),
)


def rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str]) -> dict:
    out = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def service_accounts(values: Values) -> list[dict]:
    return [
        _service_account(values, common.CONTROLLER),
        # The agent's pod mounts only the audience-bound projected token (common.token_volume).
        {**_service_account(values, common.AGENT), "automountServiceAccountToken": False},
    ]


def _service_account(values: Values, name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.meta(values, name, name),
    }


def controller_rbac(values: Values) -> list[dict]:
    name = common.CONTROLLER
    subject = {"kind": "ServiceAccount", "name": name, "namespace": values.namespace}
    cluster_meta = common.meta(values, name, name, namespaced=False)
    role_meta = common.meta(values, name, name)
    lease_rules = [
        rule(["coordination.k8s.io"], ["leases"], ["create"], []),
        rule(["coordination.k8s.io"], ["leases"], ["get", "update"], [LEADER_LEASE]),
    ]
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": cluster_meta,
            "rules": [rule(g, r, v, n) for g, r, v, n, _ in CONTROLLER_RULES],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": cluster_meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [subject],
        },
        {"apiVersion": rbac, "kind": "Role", "metadata": role_meta, "rules": lease_rules},
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": role_meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject],
        },
    ]


def notes() -> dict[tuple[str, str], str]:
    """Comments for the rendered YAML, by (kind, name): why each rule exists."""
    why = "\n".join(
        f"rule {i}: {', '.join(r)} [{', '.join(v)}]: {reason}"
        for i, (_, r, v, _, reason) in enumerate(CONTROLLER_RULES)
    )
    return {
        ("ClusterRole", common.CONTROLLER): why,
        ("Role", common.CONTROLLER): (
            f"leader election: the replicas compete for Lease {LEADER_LEASE} in this namespace "
            "only (create cannot be limited by name; get/update can)"
        ),
        ("ServiceAccount", common.AGENT): (
            "No Role or ClusterRole binds this account, on purpose: agents learn workloads,\n"
            "services, policies and certificates from the controller, never from the API server.\n"
            "The CNI installer runs in the agent's pod under this account and needs no API access\n"
            "either (it writes files on the node). The pod mounts no API token: only a token for\n"
            'audience "nodemesh", which the API server refuses and the controller reviews.'
        ),
    }
