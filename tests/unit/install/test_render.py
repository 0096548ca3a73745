"""Every object `meshctl install --dry-run` renders is valid against the Kubernetes API schemas
(kubernetes-validate, strict: unknown fields fail too, at the newest version it ships)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from nodemesh.install import common, files, render
from nodemesh.install.__main__ import main as write_files
from nodemesh.install.values import Values, with_overrides
from nodemesh.install.waypoint import waypoint_objects

K8S_VERSION = kubernetes_validate.latest_version()
DEFAULT = render.render(Values())
WAYPOINT = waypoint_objects(Values(), "demo", "waypoint")


def _id(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("doc", DEFAULT + WAYPOINT, ids=_id)
def test_validates_against_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_catches_a_typo():
    """The check above can fail: a misspelt field and a wrong type are both refused."""
    deployment = copy.deepcopy(next(d for d in DEFAULT if d["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    daemonset = copy.deepcopy(next(d for d in DEFAULT if d["kind"] == "DaemonSet"))
    daemonset["spec"]["template"]["spec"]["hostNetwrk"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, K8S_VERSION, strict=True)


def test_order_crds_then_namespace_then_the_rest():
    kinds = [doc["kind"] for doc in DEFAULT]
    assert kinds[:3] == ["CustomResourceDefinition"] * 3
    assert kinds[3] == "Namespace"
    assert kinds.index("ServiceAccount") < kinds.index("ClusterRoleBinding")
    assert kinds.index("ClusterRoleBinding") < kinds.index("Deployment")
    assert kinds[-1] == "DaemonSet"


def test_deterministic():
    assert render.to_yaml(render.render(Values())) == render.to_yaml(DEFAULT)


def test_every_pod_is_scraped():
    for doc in [*DEFAULT, *WAYPOINT]:
        if doc["kind"] in ("Deployment", "DaemonSet"):
            annotations = doc["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true", _id(doc)
            port = int(annotations["prometheus.io/port"])
            pod = doc["spec"]["template"]["spec"]
            ports = [p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])]
            assert port in ports, _id(doc)


def test_agent_is_not_privileged_and_names_its_capabilities():
    daemonset = next(d for d in DEFAULT if d["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    agent = pod["containers"][0]
    context = agent["securityContext"]
    assert context["privileged"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"BPF", "NET_ADMIN", "SYS_ADMIN", "PERFMON"} <= set(context["capabilities"]["add"])
    assert pod["hostNetwork"] is True and "hostPID" not in pod
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    assert mounts["/sys/fs/bpf"]["mountPropagation"] == "HostToContainer"
    # Only the one-shot bpffs mounter is privileged (Bidirectional propagation requires it).
    privileged = [
        c["name"] for c in pod["initContainers"] if c["securityContext"].get("privileged")
    ]
    assert privileged == ["mount-bpffs"]
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    assert pod["terminationGracePeriodSeconds"] >= 60


def test_agent_account_has_no_rules():
    bound = {
        s["name"]
        for d in DEFAULT
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        for s in d["subjects"]
    }
    assert common.AGENT not in bound
    assert common.CONTROLLER in bound


def test_waypoint_token_is_projected_for_nodemesh():
    deployment = WAYPOINT[1]
    pod = deployment["spec"]["template"]["spec"]
    source = pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert source["audience"] == common.TOKEN_AUDIENCE
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "nodemesh-token")
    assert env["NODEMESH_TOKEN_FILE"] == f"{mount['mountPath']}/{source['path']}"


def test_dashboards_become_configmaps():
    maps = [d for d in DEFAULT if d["kind"] == "ConfigMap"]
    assert len(maps) == 5
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)
    disabled = render.render(with_overrides(Values(), ["dashboards.enabled=false"]))
    assert not [d for d in disabled if d["kind"] == "ConfigMap"]


def test_checked_in_files_are_current(tmp_path):
    """daemonset/*.yaml are what the code renders (regenerate: python -m nodemesh.install)."""
    assert write_files(["--check"]) == 0
    assert write_files(["--dir", str(tmp_path)]) == 0
    (tmp_path / "install.yaml").write_text("stale")
    assert write_files(["--check", "--dir", str(tmp_path)]) == 1
    assert set(files.rendered_files()) == {p.name for p in tmp_path.iterdir()}
