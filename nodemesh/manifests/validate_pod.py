"""v1 Pod and the pod spec that Deployments embed.

Local mode runs each container as a process from the host filesystem inside the pod's network
namespace and cgroup, so `command`/`args` are mandatory and `image` is ignored. Fields that only
make sense with images, kernels or schedulers are accepted and ignored (see kinds.IGNORED_FIELDS),
so a manifest written for a real cluster applies unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, set_default
from nodemesh.manifests.validate_probe import (
    PROBE_KEYS,
    normalize_probe,
    validate_probe,
)
from nodemesh.manifests.validate_probe import (
    USED_FIELDS as PROBE_USED_FIELDS,
)

POD_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
POD_SPEC_FIELDS = frozenset(
    {
        "containers",
        "restartPolicy",
        "serviceAccountName",
        "nodeName",
        "terminationGracePeriodSeconds",
        "hostNetwork",
    }
)
CONTAINER_FIELDS = frozenset({"name", "command", "args", "env", "workingDir", "ports", *PROBE_KEYS})
CONTAINER_PORT_FIELDS = frozenset({"containerPort", "name", "protocol"})
ENV_VAR_FIELDS = frozenset({"name", "value", "valueFrom"})
ENV_VAR_SOURCE_FIELDS = frozenset({"fieldRef"})
OBJECT_FIELD_SELECTOR_FIELDS = frozenset({"fieldPath"})

USED_FIELDS = {
    "Pod": POD_FIELDS,
    "PodSpec": POD_SPEC_FIELDS,
    "Container": CONTAINER_FIELDS,
    "ContainerPort": CONTAINER_PORT_FIELDS,
    "EnvVar": ENV_VAR_FIELDS,
    "EnvVarSource": ENV_VAR_SOURCE_FIELDS,
    "ObjectFieldSelector": OBJECT_FIELD_SELECTOR_FIELDS,
    **PROBE_USED_FIELDS,
}

RESTART_POLICIES = ("Always", "OnFailure", "Never")
CONTAINER_PROTOCOLS = ("TCP", "UDP", "SCTP")
# The downward-API fields the local runtime can put into an environment variable.
ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.podIP",
    "status.hostIP",
)
_LABEL_FIELD_PATH = re.compile(r"metadata\.labels\['(.*)'\]")

_NO_COMMAND = (
    "command or args is required: local mode runs the process from the host filesystem and ignores "
    "image, so there is no image entrypoint to fall back on"
)


def validate_pod(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "Pod", POD_FIELDS)
    spec = check.mapping(obj, "spec", path, required=True)
    if spec is not None:
        validate_pod_spec(spec, child(path, "spec"), check)


def normalize_pod(obj: dict[str, Any]) -> None:
    normalize_pod_spec(obj["spec"])


def validate_pod_spec(spec: dict[str, Any], path: str, check: Check) -> None:
    check.fields(spec, path, "PodSpec", POD_SPEC_FIELDS)
    check.choice(spec, "restartPolicy", path, RESTART_POLICIES)
    check.string(spec, "serviceAccountName", path, rule=names.dns1123_subdomain)
    check.string(spec, "nodeName", path, rule=names.dns1123_subdomain)
    check.integer(spec, "terminationGracePeriodSeconds", path, low=0)
    check.boolean(spec, "hostNetwork", path)
    container_names: dict[str, str] = {}
    port_names: dict[str, str] = {}  # port names are unique across the pod: Services resolve them
    for container_path, container in check.each_mapping(
        spec, "containers", path, required=True, min_items=1
    ):
        name = validate_container(container, container_path, check, port_names)
        if name is None:
            continue
        if name in container_names:
            check.fail(
                child(container_path, "name"),
                f"duplicate container name {name!r} (also {container_names[name]})",
            )
        container_names.setdefault(name, container_path)


def normalize_pod_spec(spec: dict[str, Any]) -> None:
    set_default(spec, "restartPolicy", "Always")
    set_default(spec, "serviceAccountName", "default")
    set_default(spec, "terminationGracePeriodSeconds", 30)
    set_default(spec, "hostNetwork", False)
    for container in spec["containers"]:
        normalize_container(container)


def validate_container(
    container: dict[str, Any], path: str, check: Check, pod_port_names: dict[str, str]
) -> str | None:
    """Check one container; returns its name if valid and adds its port names to pod_port_names."""
    check.fields(container, path, "Container", CONTAINER_FIELDS)
    name = check.string(container, "name", path, required=True, rule=names.dns1123_label)
    check.strings(container, "command", path)
    check.strings(container, "args", path)
    if not container.get("command") and not container.get("args"):
        check.fail(child(path, "command"), _NO_COMMAND)
    check.string(container, "workingDir", path)
    for env_path, env in check.each_mapping(container, "env", path):
        validate_env_var(env, env_path, check)
    own_port_names = validate_container_ports(container, path, check, pod_port_names)
    for key in PROBE_KEYS:
        validate_probe(container, key, path, check, own_port_names)
    return name


def normalize_container(container: dict[str, Any]) -> None:
    for key in ("command", "args", "env", "ports"):
        set_default(container, key, [])
    for port in container["ports"]:
        set_default(port, "protocol", "TCP")
    for env in container["env"]:
        if env.get("valueFrom") is None:
            set_default(env, "value", "")
    for key in PROBE_KEYS:
        if container.get(key) is not None:
            normalize_probe(container[key])


def validate_container_ports(
    container: dict[str, Any], path: str, check: Check, pod_port_names: dict[str, str]
) -> set[str]:
    """Check `ports`; returns this container's port names (probes may refer to them)."""
    own_names: set[str] = set()
    for port_path, port in check.each_mapping(container, "ports", path):
        check.fields(port, port_path, "ContainerPort", CONTAINER_PORT_FIELDS)
        check.integer(port, "containerPort", port_path, required=True, low=1, high=65535)
        check.choice(port, "protocol", port_path, CONTAINER_PROTOCOLS)
        if isinstance(port.get("name"), str):
            own_names.add(port["name"])  # even if malformed: one error, not one more per probe
        name = check.string(port, "name", port_path, rule=names.port_name)
        if name is None:
            continue
        if name in pod_port_names:
            message = f"duplicate port name {name!r} in this pod (also {pod_port_names[name]})"
            check.fail(child(port_path, "name"), message)
        pod_port_names.setdefault(name, port_path)
    return own_names


def validate_env_var(env: dict[str, Any], path: str, check: Check) -> None:
    check.fields(env, path, "EnvVar", ENV_VAR_FIELDS)
    check.string(env, "name", path, required=True, rule=names.env_var_name)
    value = check.string(env, "value", path)
    source = check.mapping(env, "valueFrom", path)
    if source is None:
        return
    source_path = child(path, "valueFrom")
    if value:
        check.fail(source_path, "may not be set when value is not empty; use one of them")
    check.fields(source, source_path, "EnvVarSource", ENV_VAR_SOURCE_FIELDS)
    if not source:
        check.fail(source_path, "must set fieldRef (the only source local mode supports)")
    ref = check.mapping(source, "fieldRef", source_path)
    if ref is not None:
        ref_path = child(source_path, "fieldRef")
        check.fields(ref, ref_path, "ObjectFieldSelector", OBJECT_FIELD_SELECTOR_FIELDS)
        check.string(ref, "fieldPath", ref_path, required=True, rule=_env_field_path)


def _env_field_path(value: str) -> str | None:
    if value in ENV_FIELD_PATHS:
        return None
    label = _LABEL_FIELD_PATH.fullmatch(value)
    if label:
        return names.label_key(label.group(1))
    supported = ", ".join((*ENV_FIELD_PATHS, "metadata.labels['<key>']"))
    return f"must be one of {supported}, got {value!r}"
