"""The mesh's own components in a local cluster, as ordinary objects in `nodemesh-system`.

`meshctl local up` applies these like any manifest, so the runtime supervises them as it does
user pods: the controller restarts (with back-off) if it dies, shows in `meshctl get pods -n
nodemesh-system`, and its output is in `meshctl logs`. It runs with hostNetwork on node1, as
istiod would run as a Deployment, reachable at node1's address from every node.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time

from nodemesh.local.addressing import ClusterPlan
from nodemesh.local.admin_client import AdminError, get_json
from nodemesh.local.prometheus_targets import COMPONENT_LABEL, scrape_annotations
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir

SYSTEM_NAMESPACE = "nodemesh-system"
CONTROLLER = "nodemesh-controller"
AGENT = "nodemesh-agent"
CONTROLLER_NODE_INDEX = 0
# The controller runs with host networking on node1, beside node1's agent, whose admin endpoint
# owns 15000 (DESIGN); in local mode the controller's admin moves to 15010.
ADMIN_PORT = 15010
MTLS_PORT = 15012
BOOTSTRAP_PORT = 15011
METRICS_PORT = 15014
AGENT_METRICS_PORT = 15020


def _scrape(port: int) -> str:
    """Prometheus' conventional scrape annotations, as a YAML flow mapping."""
    return json.dumps(scrape_annotations(port))


def controller_node(plan: ClusterPlan):
    return plan.nodes[CONTROLLER_NODE_INDEX]


def controller_address(plan: ClusterPlan) -> str:
    return controller_node(plan).address


def agent_manifest(state: StateDir, plan: ClusterPlan, node, python: str) -> str:
    """One agent per node, like a DaemonSet's pods: host network, pinned to its node."""
    command = json.dumps(
        [
            python,
            "-m",
            "node_agent",
            "--node",
            node.name,
            "--controller",
            controller_address(plan),
            "--local-state",
            str(state.path),
        ]
    )
    return f"""\
---
apiVersion: v1
kind: Pod
metadata:
  name: {AGENT}-{node.name}
  namespace: {SYSTEM_NAMESPACE}
  labels: {{app: {AGENT}, {COMPONENT_LABEL}: agent}}
  annotations: {_scrape(AGENT_METRICS_PORT)}
spec:
  hostNetwork: true
  nodeName: {node.name}
  serviceAccountName: {AGENT}
  terminationGracePeriodSeconds: 10
  containers:
    - name: agent
      command: {command}
"""


def system_manifest(state: StateDir, plan: ClusterPlan, python: str = sys.executable) -> str:
    command = json.dumps(
        [
            python,
            "-m",
            "controller",
            "--local-state",
            str(state.path),
            "--admin-port",
            str(ADMIN_PORT),
        ]
    )
    node = controller_node(plan).name
    agents = "".join(agent_manifest(state, plan, n, python) for n in plan.nodes)
    return f"""\
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {CONTROLLER}, namespace: {SYSTEM_NAMESPACE}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: {CONTROLLER}
  namespace: {SYSTEM_NAMESPACE}
  labels: {{app: {CONTROLLER}, {COMPONENT_LABEL}: controller}}
  annotations: {_scrape(METRICS_PORT)}
spec:
  hostNetwork: true
  nodeName: {node}
  serviceAccountName: {CONTROLLER}
  terminationGracePeriodSeconds: 5
  containers:
    - name: controller
      command: {command}
      ports:
        - {{name: grpc-mtls, containerPort: {MTLS_PORT}}}
        - {{name: grpc-bootstrap, containerPort: {BOOTSTRAP_PORT}}}
        - {{name: http-metrics, containerPort: {METRICS_PORT}}}
      readinessProbe:
        tcpSocket: {{port: {MTLS_PORT}}}
        periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: {{name: {CONTROLLER}, namespace: {SYSTEM_NAMESPACE}}}
spec:
  selector: {{app: {CONTROLLER}}}
  ports:
    - {{name: grpc-mtls, port: {MTLS_PORT}}}
    - {{name: grpc-bootstrap, port: {BOOTSTRAP_PORT}}}
    - {{name: http-metrics, port: {METRICS_PORT}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {AGENT}, namespace: {SYSTEM_NAMESPACE}}}
{agents}"""


AGENT_ADMIN_PORT = 15000  # each agent's read-only admin endpoint, 127.0.0.1 in its node's netns


def captured_pods(state: StateDir) -> int:
    """How many pods the cluster's agents capture now (an agent that is restarting counts 0)."""
    total = 0
    for node in load_plan(state).nodes:
        with contextlib.suppress(AdminError):
            total += len(get_json(node.netns, AGENT_ADMIN_PORT, "/debug/workloads"))
    return total


def wait_captured(state: StateDir, count: int, timeout: float = 60.0) -> bool:
    """Until the agents capture at least `count` pods (enrollment follows labels live)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if captured_pods(state) >= count:
            return True
        time.sleep(0.5)
    return False
