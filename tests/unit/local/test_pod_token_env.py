"""Every container learns where its pod's service-account token is, as kubelet would mount it."""

from __future__ import annotations

from pathlib import Path

from nodemesh.local.containers import BASE_ENV
from nodemesh.local.credentials import PodBinding
from nodemesh.local.pods import PodRecord, container_env, field_value


def record(**spec) -> PodRecord:
    return PodRecord(
        uid="123e4567-e89b-12d3-a456-426614174000",
        name="waypoint-1",
        namespace="shop",
        node="node2",
        node_netns="nm-dev-node2",
        node_ip="198.18.0.12",
        ip="198.18.2.5",
        gateway="198.18.2.1",
        netns="nm-dev-p1",
        veth="nmv1",
        cgroup="/sys/fs/cgroup/x",
        log_dir="/run/nodemesh/clusters/dev/pods/shop_waypoint-1_123e4567",
        labels={},
        annotations={},
        spec={"containers": [{"name": "proxy"}], **spec},
        spec_hash="h",
        owner=None,
    )


TOKEN = Path("/run/nodemesh/clusters/dev/pods/shop_waypoint-1_123e4567/serviceaccount/token")


def test_the_token_file_is_in_every_containers_env():
    env = container_env({"name": "proxy"}, record(), TOKEN)
    assert env == {**BASE_ENV, "HOSTNAME": "waypoint-1", "NODEMESH_TOKEN_FILE": str(TOKEN)}


def test_no_token_file_means_no_variable():
    assert "NODEMESH_TOKEN_FILE" not in container_env({"name": "proxy"}, record())


def test_the_manifest_may_still_set_its_own_value():
    spec = {"name": "proxy", "env": [{"name": "NODEMESH_TOKEN_FILE", "value": "/elsewhere"}]}
    assert container_env(spec, record(), TOKEN)["NODEMESH_TOKEN_FILE"] == "/elsewhere"


def test_the_binding_names_the_pod_and_its_service_account():
    assert record(serviceAccountName="waypoint").binding == PodBinding(
        "shop", "waypoint", "waypoint-1", "123e4567-e89b-12d3-a456-426614174000", "node2"
    )


def test_a_pod_without_a_service_account_runs_as_default_everywhere():
    for rec in (record(), record(serviceAccountName="")):
        assert rec.binding.service_account == "default"
        assert field_value("spec.serviceAccountName", rec) == "default"
