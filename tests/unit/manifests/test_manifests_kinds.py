"""The kinds table and the field tables: consistent with each other and with Kubernetes itself."""

from __future__ import annotations

import pytest

from nodemesh.manifests import kinds

# Object types whose fields nodemesh classifies, named as in the Kubernetes API (client: V1<name>).
KUBERNETES_TYPES = (
    "ObjectMeta", "Namespace", "ServiceAccount", "Pod", "PodSpec", "Container", "ContainerPort",
    "EnvVar", "EnvVarSource", "ObjectFieldSelector", "Probe", "TCPSocketAction", "HTTPGetAction",
    "ExecAction", "Deployment", "DeploymentSpec", "DeploymentStrategy", "RollingUpdateDeployment",
    "LabelSelector", "PodTemplateSpec", "Service", "ServiceSpec", "ServicePort",
    "EndpointSlice", "Endpoint", "EndpointConditions", "ObjectReference",
)  # fmt: skip


def classified(type_name: str) -> set[str]:
    return {
        *kinds.USED_FIELDS[type_name],
        *kinds.IGNORED_FIELDS.get(type_name, ()),
        *kinds.UNSUPPORTED_FIELDS.get(type_name, {}),
    }


@pytest.mark.parametrize("type_name", KUBERNETES_TYPES)
def test_every_kubernetes_field_is_classified_and_none_is_invented(type_name):
    models = pytest.importorskip("kubernetes.client.models")
    real = set(getattr(models, f"V1{type_name}").attribute_map.values())

    assert classified(type_name) == real


def test_field_tables_name_only_known_types():
    assert set(kinds.IGNORED_FIELDS) <= set(kinds.USED_FIELDS)
    assert set(kinds.UNSUPPORTED_FIELDS) <= set(kinds.USED_FIELDS)


@pytest.mark.parametrize("type_name", sorted(kinds.USED_FIELDS))
def test_a_field_is_in_one_table_only(type_name):
    used = set(kinds.USED_FIELDS[type_name])
    ignored = set(kinds.IGNORED_FIELDS.get(type_name, ()))
    unsupported = set(kinds.UNSUPPORTED_FIELDS.get(type_name, {}))

    assert not used & ignored
    assert not used & unsupported
    assert not ignored & unsupported


def test_kinds_table():
    assert kinds.supported_kinds() == [
        "v1 Namespace",
        "v1 ServiceAccount",
        "v1 Pod",
        "v1 Service",
        "apps/v1 Deployment",
        "security.nodemesh.io/v1 AuthorizationPolicy",
        "security.nodemesh.io/v1 PeerAuthentication",
        "gateway.networking.k8s.io/v1 HTTPRoute",
        "networking.nodemesh.io/v1 TrafficPolicy",
        "gateway.networking.k8s.io/v1 Gateway",
        "discovery.k8s.io/v1 EndpointSlice",
    ]
    assert [spec.kind for spec in kinds.KINDS.values() if not spec.namespaced] == ["Namespace"]
    assert kinds.lookup("apps/v1", "Deployment") is kinds.KINDS[("apps/v1", "Deployment")]
    assert kinds.lookup("v1", "Deployment") is None
    assert kinds.api_versions_of("HTTPRoute") == ["gateway.networking.k8s.io/v1"]
