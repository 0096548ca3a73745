"""The mesh's own components in a local cluster, as ordinary objects in `nodemesh-system`.

`meshctl local up` applies these like any manifest, so the runtime supervises them as it does
user pods: the controller restarts (with back-off) if it dies, shows in `meshctl get pods -n
nodemesh-system`, and its output is in `meshctl logs`. It runs with hostNetwork on node1, as
istiod would run as a Deployment, reachable at node1's address from every node.
"""

from __future__ import annotations

import json
import sys

from nodemesh.local.addressing import ClusterPlan
from nodemesh.local.state import StateDir

SYSTEM_NAMESPACE = "nodemesh-system"
CONTROLLER = "nodemesh-controller"
CONTROLLER_NODE_INDEX = 0
ADMIN_PORT = 15000
MTLS_PORT = 15012
BOOTSTRAP_PORT = 15011
METRICS_PORT = 15014


def controller_node(plan: ClusterPlan):
    return plan.nodes[CONTROLLER_NODE_INDEX]


def controller_address(plan: ClusterPlan) -> str:
    return controller_node(plan).address


def system_manifest(state: StateDir, plan: ClusterPlan, python: str = sys.executable) -> str:
    command = json.dumps([python, "-m", "controller", "--local-state", str(state.path)])
    node = controller_node(plan).name
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
  labels: {{app: {CONTROLLER}}}
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
"""
