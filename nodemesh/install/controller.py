"""The controller's Deployment, Service and PodDisruptionBudget.

The CA directory (/var/lib/nodemesh/ca) comes from the Secret `nodemesh-ca`, copied by an init
container into a memory-backed emptyDir. Why a Secret and not a PersistentVolumeClaim: every
replica signs certificates, so every replica needs the same root; a ReadWriteOnce volume can be
mounted on one node only, and ReadWriteMany storage is not something a mesh should require. Why a
copy: controller.ca writes its directory (0700 directory, 0600 key, atomic renames), and a Secret
volume is read-only. The Secret is created once by `meshctl install` (nodemesh.install.apply),
never rendered into --dry-run output, so the root key is printed nowhere.
"""

from __future__ import annotations

from controller.listeners import BOOTSTRAP_PORT, MTLS_PORT
from nodemesh.install import common
from nodemesh.install.values import Values

METRICS_PORT = 15014
CA_DIR = "/var/lib/nodemesh/ca"
_CA_SECRET_DIR = "/etc/nodemesh/ca-secret"
# Copies the Secret into the writable CA dir with the modes controller.ca_files insists on.
_COPY_CA = (
    f"set -eu; install -d -m 0700 {CA_DIR}; "
    f"for f in root-cert.pem root-key.pem trust-bundle.pem; do "
    f'install -m 0600 "{_CA_SECRET_DIR}/$f" "{CA_DIR}/$f"; done'
)
PORTS = (
    ("grpc-bootstrap", BOOTSTRAP_PORT),  # TLS, node and workload bootstrap (token auth)
    ("grpc-mtls", MTLS_PORT),  # mutual TLS: config streams and certificate renewals
    ("http-metrics", METRICS_PORT),
)


def controller_objects(values: Values) -> list[dict]:
    return [_deployment(values), _service(values), _pdb(values)]


def _container(values: Values) -> dict:
    probe = {"httpGet": {"path": "/metrics", "port": "http-metrics"}}
    return {
        "name": "controller",
        **common.image(values, "controller"),
        "command": ["python3", "-m", "controller"],
        "args": [
            "--in-cluster",
            f"--ca-dir={CA_DIR}",
            f"--trust-domain={values.trust_domain}",
            f"--metrics-port={METRICS_PORT}",
            "--leader-elect",
            f"--leader-namespace={values.namespace}",
            f"--waypoint-image={values.image.of('waypoint')}",
            f"--agent-user={common.agent_user(values)}",  # whose tokens may act for a node
        ],
        "env": common.env(values),
        "ports": [{"name": name, "containerPort": port} for name, port in PORTS],
        # The metrics server starts only after the CA is loaded and both gRPC listeners are up
        # (controller.main.Controller.start), so answering /metrics means ready to serve.
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 60},
        "resources": values.controller.resources.as_k8s(),
        "securityContext": common.RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "ca", "mountPath": "/var/lib/nodemesh"}],
    }


def _copy_ca(values: Values) -> dict:
    return {
        "name": "ca-copy",
        **common.image(values, "controller"),
        "command": ["sh", "-c", _COPY_CA],
        "securityContext": common.RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"name": "ca", "mountPath": "/var/lib/nodemesh"},
            {"name": "ca-secret", "mountPath": _CA_SECRET_DIR, "readOnly": True},
        ],
    }


def _deployment(values: Values) -> dict:
    name = common.CONTROLLER
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.meta(values, name, name),
        "spec": {
            "replicas": values.controller.replicas,
            "selector": {"matchLabels": common.selector(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": common.pod_template(
                values,
                name,
                METRICS_PORT,
                {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": common.NONROOT_UID,
                        "runAsGroup": common.NONROOT_UID,
                        "fsGroup": common.NONROOT_UID,
                    },
                    "initContainers": [_copy_ca(values)],
                    "containers": [_container(values)],
                    "volumes": [
                        {"name": "ca", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                        {
                            "name": "ca-secret",
                            "secret": {"secretName": common.CA_SECRET, "defaultMode": 0o440},
                        },
                    ],
                    # Spread the replicas so one node failing leaves a controller serving.
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": common.selector(name)},
                        }
                    ],
                },
            ),
        },
    }


def _service(values: Values) -> dict:
    name = common.CONTROLLER
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.meta(values, name, name),
        "spec": {
            "selector": common.selector(name),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name}
                for port_name, port in PORTS
            ],
        },
    }


def _pdb(values: Values) -> dict:
    name = common.CONTROLLER
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.meta(values, name, name),
        # One replica may go at a time (a drain), never the last one.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": common.selector(name)}},
    }
