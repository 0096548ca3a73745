"""Render the install: values in, an ordered list of Kubernetes objects out (no I/O but reading
the dashboards' JSON).

Order is the order to apply in, and reversed, the order to delete in: CRDs first (custom
resources can only be stored once their CRD is established), then the namespace, identities and
RBAC (a pod starting before its ServiceAccount's bindings exist would crash-loop on 403s), then
configuration, then workloads. The same values always render the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from nodemesh.install import agent, common, controller, crds, dashboards, rbac
from nodemesh.install.values import Values

KIND_ORDER = (
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "DaemonSet",
)
HEADER = (
    "Rendered by `meshctl install --dry-run` (nodemesh/install/); do not edit by hand.\n"
    "The CA Secret nodemesh-ca and the ConfigMap nodemesh-ca-root-cert are not here: meshctl\n"
    "install creates them once (see daemonset/README.md)."
)


def namespace(values: Values) -> dict:
    labels = common.labels(values)
    # The agent needs hostNetwork, hostPath and capabilities: the "privileged" Pod Security level.
    labels["pod-security.kubernetes.io/enforce"] = "privileged"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": values.namespace, "labels": labels},
    }


def render(values: Values) -> list[dict]:
    docs = [
        *crds.crds(common.labels(values)),
        namespace(values),
        *rbac.service_accounts(values),
        *rbac.controller_rbac(values),
        *(dashboards.dashboard_configmaps(values) if values.dashboards.enabled else []),
        *controller.controller_objects(values),
        *agent.agent_objects(values),
    ]
    return sorted(docs, key=_order)


def _order(doc: dict) -> tuple[int, str]:
    return KIND_ORDER.index(doc["kind"]), doc["metadata"]["name"]


def notes() -> dict[tuple[str, str], str]:
    return {
        **rbac.notes(),
        ("DaemonSet", common.AGENT): "capabilities, each with its reason:\n"
        + "\n".join(f"{cap}: {why}" for cap, why in sorted(agent.CAPABILITIES.items())),
    }


def to_yaml(docs: Iterable[dict], *, comments: dict[tuple[str, str], str] | None = None) -> str:
    """Multi-document YAML; `comments` adds a `#` block above the documents it names."""
    comments = notes() if comments is None else comments
    parts = [_comment(HEADER)]
    for doc in docs:
        note = comments.get((doc["kind"], doc["metadata"]["name"]))
        body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
        parts.append("---\n" + (_comment(note) if note else "") + body)
    return "".join(parts)


class _Dumper(yaml.SafeDumper):
    """No `&id001` anchors: builders share sub-dicts, readers should see each one in full."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())
