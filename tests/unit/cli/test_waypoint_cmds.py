"""`meshctl waypoint apply|list|delete` with CliRunner, on a local cluster's files (no runtime)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from nodemesh.cli.main import cli
from nodemesh.local import cluster
from nodemesh.local import state as state_module
from nodemesh.local.state import StateDir, write_json_atomic
from nodemesh.local.store import Store
from nodemesh.manifests.load import parse_documents
from tests.unit.cli.helpers import waypoint_pod

SHOP = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n"
WEB = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, labels: {nodemesh.io/use-waypoint: waypoint}}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


class Cluster:
    """A local cluster's state directory with a published status, and the runtime wakes seen."""

    def __init__(self, root, monkeypatch) -> None:
        monkeypatch.setattr(state_module, "DEFAULT_ROOT", root)
        monkeypatch.setattr(cluster, "wake_runtime", lambda state: self.wakes.append(state))
        self.state = StateDir("test")
        self.wakes: list[StateDir] = []
        write_json_atomic(self.state.cluster_file, {"name": "test"})
        self.publish([])

    def publish(self, pods: list[dict]) -> None:
        write_json_atomic(self.state.status_file, {"pods": pods, "services": [], "nodes": []})

    def apply(self, text: str) -> None:
        Store(self.state).apply(parse_documents(text, "test.yaml"))

    def objects(self, kind: str) -> list[dict]:
        return [o for o in Store(self.state).objects() if o["kind"] == kind]

    def meshctl(self, *args: str):
        return CliRunner().invoke(cli, ["--cluster", "test", *args])


@pytest.fixture
def local(tmp_path, monkeypatch) -> Cluster:
    return Cluster(tmp_path, monkeypatch)


# --- apply ----------------------------------------------------------------------------------------


def test_apply_writes_istioctls_gateway_with_nodemeshs_class(local):
    local.apply(SHOP)

    result = local.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")

    assert result.exit_code == 0, result.output
    assert result.output == "gateway/waypoint created -n shop\n"
    [gateway] = local.objects("Gateway")
    assert gateway["metadata"]["name"] == "waypoint"
    assert gateway["spec"] == {
        "gatewayClassName": "nodemesh-waypoint",
        "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
    }
    assert len(local.wakes) == 1


def test_apply_again_is_unchanged(local):
    local.apply(SHOP)
    local.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")

    result = local.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")

    assert result.output == "gateway/waypoint unchanged -n shop\n"


def test_apply_enroll_namespace_labels_the_namespace_and_keeps_its_labels(local):
    local.apply(SHOP)

    result = local.meshctl(
        "waypoint", "apply", "-n", "shop", "--name", "east", "--enroll-namespace", "--no-wait"
    )

    assert result.exit_code == 0, result.output
    assert "namespace/shop configured" in result.output
    [namespace] = local.objects("Namespace")
    assert namespace["metadata"]["labels"] == {"team": "a", "nodemesh.io/use-waypoint": "east"}
    assert [g["metadata"]["name"] for g in local.objects("Gateway")] == ["east"]


def test_enrolling_the_default_namespace_creates_its_namespace_object(local):
    result = local.meshctl("waypoint", "apply", "--enroll-namespace", "--no-wait")

    assert result.exit_code == 0, result.output
    [namespace] = local.objects("Namespace")
    assert namespace["metadata"] == {
        **namespace["metadata"],
        "name": "default",
        "labels": {"nodemesh.io/use-waypoint": "waypoint"},
    }


def test_apply_in_a_namespace_that_does_not_exist_says_to_create_it(local):
    result = local.meshctl("waypoint", "apply", "-n", "nowhere", "--no-wait")

    assert result.exit_code == 1
    assert "namespace 'nowhere' not found" in result.output
    assert local.objects("Gateway") == [] and local.wakes == []


def test_enroll_in_a_namespace_that_does_not_exist_is_refused_before_writing(local):
    result = local.meshctl("waypoint", "apply", "-n", "nowhere", "--enroll-namespace", "--no-wait")

    assert result.exit_code == 1
    assert "Error: namespace 'nowhere' not found; create it first" in result.output
    assert local.objects("Gateway") == []


def test_a_name_that_cannot_be_a_label_value_is_refused(local):
    local.apply(SHOP)

    result = local.meshctl("waypoint", "apply", "-n", "shop", "--name", "Way_Point", "--no-wait")

    assert result.exit_code == 1
    assert "nothing was applied" in result.output and "must be a DNS-1123 label" in result.output


def test_apply_waits_for_a_ready_pod(local):
    local.apply(SHOP)
    local.publish([waypoint_pod("waypoint-7d9f-x2k4p", ready=True)])

    result = local.meshctl("waypoint", "apply", "-n", "shop")

    assert result.exit_code == 0, result.output
    assert result.output.endswith("waypoint shop/waypoint is ready\n")


def test_apply_that_times_out_says_what_the_pod_is_doing(local):
    local.apply(SHOP)
    local.publish([waypoint_pod("waypoint-7d9f-x2k4p", ready=False, display="CrashLoopBackOff")])

    result = local.meshctl("waypoint", "apply", "-n", "shop", "--timeout", "0")

    assert result.exit_code == 1
    assert (
        "not ready after 0s: waypoint shop/waypoint has no ready pod "
        "(waypoint-7d9f-x2k4p CrashLoopBackOff)" in result.output
    )


def test_apply_without_a_cluster_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(state_module, "DEFAULT_ROOT", tmp_path)

    result = CliRunner().invoke(cli, ["--cluster", "none", "waypoint", "apply", "--no-wait"])

    assert result.exit_code == 1
    assert "no local cluster 'none'; create one with 'meshctl local up'" in result.output


# --- list -----------------------------------------------------------------------------------------


def test_list_shows_readiness_address_and_users(local):
    local.apply(SHOP.replace("{team: a}", "{nodemesh.io/use-waypoint: waypoint}") + "---" + WEB)
    local.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")
    local.publish(
        [waypoint_pod("waypoint-a", ip="198.18.1.7", ready=True), waypoint_pod("waypoint-b")]
    )

    result = local.meshctl("waypoint", "list", "-n", "shop")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "NAME       STATUS   READY   ADDRESS      USED BY",
        "waypoint   Ready    1/2     198.18.1.7   namespace shop,service/web",
    ]


def test_list_shows_a_waypoint_labels_name_that_does_not_exist(local):
    local.apply(SHOP + "---" + WEB)

    result = local.meshctl("waypoint", "list", "-A", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "waypoints": [
            {
                "name": "waypoint",
                "namespace": "shop",
                "status": "Missing",
                "readyPods": 0,
                "pods": 0,
                "addresses": [],
                "identity": "spiffe://cluster.local/ns/shop/sa/waypoint",
                "usedBy": {"namespace": False, "services": ["web"]},
            }
        ]
    }


def test_list_all_namespaces_adds_the_namespace_column(local):
    local.apply(SHOP)
    local.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")

    result = local.meshctl("waypoint", "list", "-A")

    assert result.output.splitlines()[0].split() == [
        "NAMESPACE",
        "NAME",
        "STATUS",
        "READY",
        "ADDRESS",
        "USED",
        "BY",
    ]
    assert result.output.splitlines()[1].split() == [
        "shop",
        "waypoint",
        "NoReadyPod",
        "0/0",
        "<none>",
        "<none>",
    ]


def test_list_yaml_and_an_empty_namespace(local):
    empty = local.meshctl("waypoint", "list")
    as_yaml = local.meshctl("waypoint", "list", "-o", "yaml")

    assert empty.output == "No waypoints found in namespace 'default'.\n"
    assert yaml.safe_load(as_yaml.output) == {"waypoints": []}


# --- delete ---------------------------------------------------------------------------------------


def test_delete_removes_the_default_waypoint_and_warns_about_labels_left(local):
    local.apply(SHOP.replace("{team: a}", "{nodemesh.io/use-waypoint: waypoint}") + "---" + WEB)
    local.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")

    result = CliRunner().invoke(cli, ["--cluster", "test", "waypoint", "delete", "-n", "shop"])

    assert result.exit_code == 0, result.output
    assert "gateway/waypoint deleted -n shop" in result.output
    assert local.objects("Gateway") == []
    assert (
        "warning: namespace/shop is still labelled nodemesh.io/use-waypoint=waypoint: its "
        "traffic is refused until you remove the label or apply the waypoint again"
    ) in result.output
    assert "warning: service/web is still labelled" in result.output


def test_delete_named_waypoints_and_report_the_missing_one(local):
    local.apply(SHOP)
    for name in ("east", "west"):
        local.meshctl("waypoint", "apply", "-n", "shop", "--name", name, "--no-wait")

    result = local.meshctl("waypoint", "delete", "east", "north", "-n", "shop")

    assert result.exit_code == 1
    assert "gateway/east deleted -n shop" in result.output
    assert "no waypoint north in namespace 'shop'" in result.output
    assert [g["metadata"]["name"] for g in local.objects("Gateway")] == ["west"]


def test_delete_all_removes_every_waypoint_of_the_namespace_only(local):
    local.apply(SHOP + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n")
    for name, ns in (("east", "shop"), ("west", "shop"), ("east", "web")):
        local.meshctl("waypoint", "apply", "-n", ns, "--name", name, "--no-wait")

    result = local.meshctl("waypoint", "delete", "--all", "-n", "shop")

    assert result.exit_code == 0, result.output
    left = [(g["metadata"]["namespace"], g["metadata"]["name"]) for g in local.objects("Gateway")]
    assert left == [("web", "east")]


def test_delete_all_with_nothing_there_deletes_nothing(local):
    local.apply(SHOP)

    result = local.meshctl("waypoint", "delete", "--all", "-n", "shop")

    assert result.exit_code == 0
    assert result.output == "No waypoints found in namespace 'shop'.\n"
    assert local.wakes == []


def test_names_and_all_together_are_a_usage_error(local):
    result = local.meshctl("waypoint", "delete", "east", "--all")

    assert result.exit_code == 2
    assert "name waypoints or pass --all, not both" in result.output


def test_get_gateways_lists_the_stored_gateways(local):
    local.apply(SHOP)
    local.meshctl("waypoint", "apply", "-n", "shop", "--no-wait")

    result = local.meshctl("get", "gateways", "-n", "shop")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[0] == "waypoint"
