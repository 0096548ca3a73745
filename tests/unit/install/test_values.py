from __future__ import annotations

import pytest

from nodemesh.install import render
from nodemesh.install.values import Values, ValuesError, describe, with_overrides


def _find(docs, kind):
    return next(d for d in docs if d["kind"] == kind)


def test_overrides_reach_the_objects():
    values = with_overrides(
        Values(),
        [
            "image.registry=registry.example/mesh",
            "image.tag=0.2.0",
            "controller.replicas=3",
            "namespace=mesh",
            "trustDomain=example.org",
            "logLevel=debug",
            "agent.resources.memoryLimit=2Gi",
            "cni.binDir=/var/lib/cni/bin",
        ],
    )
    docs = render.render(values)
    deployment = _find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["namespace"] == "mesh"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/mesh/controller:0.2.0"
    assert "--trust-domain=example.org" in container["args"]
    assert {"name": "NODEMESH_LOG_LEVEL", "value": "debug"} in container["env"]
    daemonset = _find(docs, "DaemonSet")
    agent = daemonset["spec"]["template"]["spec"]["containers"][0]
    assert agent["resources"]["limits"]["memory"] == "2Gi"
    assert "--controller=nodemesh-controller.mesh.svc" in agent["args"]
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["cni-bin"]["hostPath"]["path"] == "/var/lib/cni/bin"
    assert _find(docs, "Namespace")["metadata"]["name"] == "mesh"


def test_later_set_wins_and_values_are_not_mutated():
    base = Values()
    values = with_overrides(base, ["controller.replicas=4", "controller.replicas=1"])
    assert values.controller.replicas == 1
    assert base.controller.replicas == 2


def test_cni_disabled_drops_the_installer():
    docs = render.render(with_overrides(Values(), ["cni.enabled=false"]))
    init = _find(docs, "DaemonSet")["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["mount-bpffs"]


def test_empty_limit_is_left_out():
    values = with_overrides(Values(), ["controller.resources.memoryLimit="])
    container = _find(render.render(values), "Deployment")["spec"]["template"]["spec"]
    assert "limits" not in container["containers"][0]["resources"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("image.tga=1", "unknown key 'image.tga'"),
        ("nosuch=1", "unknown key 'nosuch'"),
        ("controller.replicas=two", "controller.replicas: must be an integer"),
        ("cni.enabled=yes", "cni.enabled: must be true or false"),
        ("logLevel=loud", "logLevel: must be one of debug, info, warning, error"),
        ("image=foo", "'image' is a group; set one of its keys: image.registry"),
        ("image.tag.x=1", "'image.tag' is a value, not a group"),
        ("controller.replicas", "write key=value"),
        ("namespace=Mesh", "namespace: must be a DNS-1123 label"),
        ("controller.replicas=0", "must be at least 1"),
        ("agent.resources.cpuRequest=lots", "must be a Kubernetes quantity"),
        ("cni.confDir=etc/cni", "must be an absolute path"),
    ],
)
def test_bad_set_is_refused_naming_the_key(given, expected):
    with pytest.raises(ValuesError) as error:
        with_overrides(Values(), [given])
    assert expected in str(error.value)


def test_describe_lists_every_key_with_its_type():
    keys = {spec.key: spec for spec in describe()}
    assert keys["controller.replicas"].type == "int"
    assert keys["controller.replicas"].default == 2
    assert keys["cni.enabled"].type == "bool"
    assert keys["image.pullPolicy"].choices == ("Always", "IfNotPresent", "Never")
    for key in keys:  # every listed key can be set
        spec = keys[key]
        value = {"int": "1", "bool": "true"}.get(spec.type, spec.choices[0] if spec.choices else "")
        if spec.type == "str" and not spec.choices:
            value = str(spec.default)
        with_overrides(Values(), [f"{key}={value}"])
