"""v1 Pod: valid pods normalize; each mistake names its field and says what to write instead."""

from __future__ import annotations

import copy

import pytest
import yaml

from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.load import parse_documents

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "containers": [
            {
                "name": "app",
                "command": ["python3", "-m", "http.server", "8080"],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"httpGet": {"port": "http"}},
            }
        ]
    },
}
C0 = "spec.containers[0]"
NO_COMMAND = (
    "command or args is required: local mode runs the process from the host filesystem and ignores "
    "image, so there is no image entrypoint to fall back on"
)
NO_SECRETS = "local mode has no ConfigMaps or Secrets; set the value under env[].value"
SECOND_CONTAINER = {
    "name": "side",
    "args": ["run"],
    "ports": [{"containerPort": 9090, "name": "http"}],
}


def test_valid_pod_is_normalized_with_kubernetes_defaults(normalized):
    obj = normalized(POD)

    assert obj["metadata"] == {"name": "web", "namespace": "default", "labels": {"app": "web"}}
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["serviceAccountName"] == "default"
    assert spec["terminationGracePeriodSeconds"] == 30
    container = spec["containers"][0]
    assert container["args"] == [] and container["env"] == []
    assert container["ports"] == [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]
    assert container["readinessProbe"] == {
        "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def test_normalization_copies_and_keeps_explicit_values():
    pod = copy.deepcopy(POD)
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = 2
    text = yaml.safe_dump(pod)

    (manifest,) = parse_documents(text, "pod.yaml")

    assert manifest.obj["spec"]["restartPolicy"] == "Never"
    assert manifest.obj["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] == 2
    assert manifest.key == ("Pod", "default", "web")
    assert manifest.labels == {"app": "web"}
    assert (manifest.api_version, manifest.kind, manifest.namespace) == ("v1", "Pod", "default")


def test_error_names_file_document_object_and_field():
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0]["comand"] = pod["spec"]["containers"][0].pop("command")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    text = yaml.safe_dump_all([namespace, pod])

    with pytest.raises(ManifestErrors) as caught:
        parse_documents(text, "examples/pod.yaml")

    assert str(caught.value).splitlines() == [
        "examples/pod.yaml: document 2 (Pod default/web): spec.containers[0].comand: "
        "unknown field; did you mean 'command'?",
        "examples/pod.yaml: document 2 (Pod default/web): spec.containers[0].command: "
        + NO_COMMAND,
    ]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # Real Kubernetes fields local mode accepts and ignores.
        (f"{C0}.image", "nginx:1.27"),
        (f"{C0}.imagePullPolicy", "Always"),
        (f"{C0}.resources", {"limits": {"cpu": "1"}}),
        (f"{C0}.securityContext", {"runAsUser": 1000}),
        (f"{C0}.volumeMounts", [{"name": "data", "mountPath": "/data"}]),
        (f"{C0}.ports[0].hostPort", 80),
        ("spec.volumes", [{"name": "data", "emptyDir": {}}]),
        ("spec.affinity", {"nodeAffinity": {}}),
        ("spec.tolerations", [{"key": "x", "operator": "Exists"}]),
        ("spec.nodeSelector", {"disk": "ssd"}),
        ("spec.hostname", "web-0"),
        ("spec.dnsPolicy", "ClusterFirst"),
        ("spec.initContainers", []),  # an empty unsupported field changes nothing
        ("status", {"phase": "Running"}),
        ("metadata.uid", "0b4d7a7e-0000-0000-0000-000000000000"),
        # Supported variations.
        (f"{C0}.args", ["--verbose"]),
        (f"{C0}.workingDir", "/srv"),
        (
            f"{C0}.env",
            [{"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        ),
        (
            f"{C0}.env",
            [{"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}],
        ),
        (f"{C0}.env", [{"name": "PORT", "value": "8080"}]),
        (f"{C0}.livenessProbe", {"tcpSocket": {"port": 8080}, "failureThreshold": 5}),
        (f"{C0}.startupProbe", {"exec": {"command": ["true"]}}),
        (f"{C0}.ports[0].protocol", "UDP"),
        ("spec.restartPolicy", "OnFailure"),
        ("spec.nodeName", "node-1"),
        ("spec.serviceAccountName", "web"),
        ("spec.terminationGracePeriodSeconds", 0),
        ("spec.containers[1]", {"name": "sidecar", "args": ["serve"]}),
    ],
)
def test_accepted_variations(check_case, path, value):
    assert check_case(POD, path, value) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (f"{C0}.comand", ["x"], f"{C0}.comand", "unknown field; did you mean 'command'?"),
        (
            "spec.frobnicate",
            1,
            "spec.frobnicate",
            "unknown field; fields nodemesh reads here: containers, hostNetwork, nodeName, "
            "restartPolicy, serviceAccountName, terminationGracePeriodSeconds",
        ),
        (f"{C0}.command", None, f"{C0}.command", NO_COMMAND),
        (f"{C0}.command", [], f"{C0}.command", NO_COMMAND),
        (
            f"{C0}.command",
            "python3 app.py",
            f"{C0}.command",
            'must be a list, got string \'python3 app.py\' (write a YAML list: ["a", "b"])',
        ),
        (
            f"{C0}.command",
            ["sleep", 5],
            f"{C0}.command[1]",
            "must be a string, got integer 5 (quote it if you meant the string)",
        ),
        ("spec", None, "spec", "required field is missing"),
        ("spec.containers", None, "spec.containers", "required field is missing"),
        ("spec.containers", [], "spec.containers", "must have at least 1 item(s)"),
        ("spec.containers[0]", "app", "spec.containers[0]", "must be an object, got string 'app'"),
        (
            f"{C0}.name",
            "App_1",
            f"{C0}.name",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with "
            "a letter or digit), got 'App_1'",
        ),
        (
            "spec.containers[1]",
            {"name": "app", "command": ["x"]},
            "spec.containers[1].name",
            "duplicate container name 'app' (also spec.containers[0])",
        ),
        (
            f"{C0}.ports[0].containerPort",
            0,
            f"{C0}.ports[0].containerPort",
            "must be between 1 and 65535, got 0",
        ),
        (
            f"{C0}.ports[0].containerPort",
            True,
            f"{C0}.ports[0].containerPort",
            "must be an integer, got boolean true",
        ),
        (
            f"{C0}.ports[0].containerPort",
            None,
            f"{C0}.ports[0].containerPort",
            "required field is missing",
        ),
        (
            f"{C0}.ports[0].protocol",
            "HTTP",
            f"{C0}.ports[0].protocol",
            "must be one of TCP, UDP, SCTP, got 'HTTP'",
        ),
        (
            f"{C0}.ports[1]",
            {"containerPort": 9000, "name": "http_port"},
            f"{C0}.ports[1].name",
            "port name must be lowercase letters, digits and '-' with a letter, got 'http_port'",
        ),
        (
            f"{C0}.ports[1]",
            {"containerPort": 9000, "name": "a-very-long-port-name"},
            f"{C0}.ports[1].name",
            "port name must be 1 to 15 characters, got 'a-very-long-port-name'",
        ),
        (
            "spec.containers[1]",
            SECOND_CONTAINER,
            "spec.containers[1].ports[0].name",
            "duplicate port name 'http' in this pod (also spec.containers[0].ports[0])",
        ),
        (
            f"{C0}.env",
            [{"name": "PORT", "value": 8080}],
            f"{C0}.env[0].value",
            "must be a string, got integer 8080 (quote it if you meant the string)",
        ),
        (
            f"{C0}.env",
            [{"name": "A=B"}],
            f"{C0}.env[0].name",
            "must be printable ASCII without '=', got 'A=B'",
        ),
        (f"{C0}.env", [{"value": "x"}], f"{C0}.env[0].name", "required field is missing"),
        (
            f"{C0}.env",
            [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}],
            f"{C0}.env[0].valueFrom.fieldRef.fieldPath",
            "must be one of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, "
            "spec.serviceAccountName, status.podIP, status.hostIP, metadata.labels['<key>'], "
            "got 'spec.hostname'",
        ),
        (
            f"{C0}.env",
            [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            f"{C0}.env[0].valueFrom.secretKeyRef",
            f"not supported: {NO_SECRETS}",
        ),
        (
            f"{C0}.env",
            [
                {
                    "name": "X",
                    "value": "1",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ],
            f"{C0}.env[0].valueFrom",
            "may not be set when value is not empty; use one of them",
        ),
        (
            f"{C0}.envFrom",
            [{"configMapRef": {"name": "cfg"}}],
            f"{C0}.envFrom",
            f"envFrom is not supported: {NO_SECRETS}",
        ),
        (
            "spec.initContainers",
            [{"name": "init", "command": ["true"]}],
            "spec.initContainers",
            "init containers are not run in local mode; do the setup in command",
        ),
        (
            "spec.restartPolicy",
            "Sometimes",
            "spec.restartPolicy",
            "must be one of Always, OnFailure, Never, got 'Sometimes'",
        ),
        (
            "spec.terminationGracePeriodSeconds",
            -1,
            "spec.terminationGracePeriodSeconds",
            "must be at least 0, got -1",
        ),
        (
            "spec.serviceAccountName",
            "Web",
            "spec.serviceAccountName",
            "must be a DNS-1123 subdomain (lowercase letters, digits and '-', starting and ending "
            "with a letter or digit, and '.'), got 'Web'",
        ),
    ],
)
def test_pod_errors(check_case, path, value, field, message):
    assert check_case(POD, path, value) == [(field, message)]


P = f"{C0}.readinessProbe"


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (P, {}, P, "must set exactly one of tcpSocket, httpGet, exec"),
        (
            P,
            {"tcpSocket": {"port": 8080}, "httpGet": {"port": 8080}},
            P,
            "must set exactly one of tcpSocket, httpGet, exec, got tcpSocket and httpGet",
        ),
        (
            P,
            {"tcpSocket": {"port": "grpc"}},
            f"{P}.tcpSocket.port",
            "no port named 'grpc' in this container; its ports are named http",
        ),
        (
            P,
            {"tcpSocket": {"port": 70000}},
            f"{P}.tcpSocket.port",
            "must be between 1 and 65535, got 70000",
        ),
        (P, {"tcpSocket": {}}, f"{P}.tcpSocket.port", "required field is missing"),
        (
            P,
            {"tcpSocket": {"port": [80]}},
            f"{P}.tcpSocket.port",
            "must be an integer or a string, got a list",
        ),
        (f"{P}.periodSeconds", 0, f"{P}.periodSeconds", "must be at least 1, got 0"),
        (f"{P}.initialDelaySeconds", -5, f"{P}.initialDelaySeconds", "must be at least 0, got -5"),
        (f"{P}.timeoutSeconds", "1s", f"{P}.timeoutSeconds", "must be an integer, got string '1s'"),
        (
            f"{P}.sucessThreshold",
            1,
            f"{P}.sucessThreshold",
            "unknown field; did you mean 'successThreshold'?",
        ),
        (
            f"{C0}.livenessProbe",
            {"tcpSocket": {"port": 8080}, "successThreshold": 2},
            f"{C0}.livenessProbe.successThreshold",
            "must be 1 for a livenessProbe, got 2",
        ),
        (
            P,
            {"grpc": {"port": 9090}},
            f"{P}.grpc",
            "gRPC probes are not supported in local mode; use tcpSocket or exec",
        ),
        (
            f"{P}.httpGet.scheme",
            "HTTPS",
            f"{P}.httpGet.scheme",
            "HTTPS probes are not supported in local mode; use HTTP or a tcpSocket probe",
        ),
        (P, {"exec": {"command": []}}, f"{P}.exec.command", "must have at least 1 item(s)"),
    ],
)
def test_probe_errors(check_case, path, value, field, message):
    assert check_case(POD, path, value) == [(field, message)]


def test_every_error_in_a_pod_is_reported_at_once(check_case):
    broken = {"name": "Bad", "ports": [{"containerPort": 0}], "readinessProbe": {}}

    fields = [field for field, _ in check_case(POD, "spec.containers[0]", broken)]

    assert fields == [
        f"{C0}.name",
        f"{C0}.command",
        f"{C0}.ports[0].containerPort",
        f"{C0}.readinessProbe",
    ]
