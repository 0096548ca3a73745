"""Start, find and query a local cluster's Prometheus.

Theory of operation. `meshctl local up` asks `system_manifest` for Prometheus' pod (written next
to the mesh's own system pods; see nodemesh.local.prometheus_config) after writing its
configuration; the runtime then runs it like any pod. When Debian's `prometheus` binary is not
installed, there is no pod and `local up` says so: the mesh works without it.

Prometheus lives in node1's network namespace and listens on node1's underlay address, which the
host cannot route to. Like the admin client (nodemesh.local.admin_client), this module reaches it
the way a process on node1 would: through a socket created inside that namespace. `query` is the
library entry point for tests, `meshctl dashboard` and anything that evaluates PromQL against a
local cluster: it finds the cluster's Prometheus (starting it first if the cluster was made
without one) and returns the API's parsed `data` object.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from nodemesh.local.admin_client import raw_get
from nodemesh.local.prometheus_config import (
    NAME,
    PORT,
    SYSTEM_NAMESPACE,
    PrometheusPaths,
    pod_manifest,
    render_config,
)
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir, read_json
from nodemesh.local.store import Store
from nodemesh.local.wait import wait_for
from nodemesh.manifests.load import parse_documents

BINARY = "prometheus"
INSTALL_HINT = "install it with scripts/setup.sh (or: apt-get install prometheus)"
START_TIMEOUT = 60.0


class PrometheusError(RuntimeError):
    """Prometheus is missing, unreachable, or refused a query; the message says which and why."""


@dataclass(frozen=True)
class Endpoint:
    """Where a cluster's Prometheus listens: an address reachable only from inside `netns`."""

    netns: str
    address: str
    port: int = PORT

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"


def find_binary(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The prometheus executable's path, or None when it is not installed."""
    return which(BINARY)


def system_manifest(state: StateDir, binary: str | None = None) -> str | None:
    """Write Prometheus' configuration and return its pod's YAML; None when not installed."""
    binary = binary or find_binary()
    if binary is None:
        return None
    paths = PrometheusPaths.of(state.path)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(render_config(paths))
    node = load_plan(state).nodes[0]  # node1, beside the controller
    return pod_manifest(binary, paths, node.name, node.address)


def find(state: StateDir) -> Endpoint | None:
    """The cluster's Prometheus if its pod is Ready now, else None."""
    status = read_json(state.status_file, {}) or {}
    for pod in status.get("pods", []):
        meta = pod.get("metadata", {})
        if (meta.get("namespace"), meta.get("name")) != (SYSTEM_NAMESPACE, NAME):
            continue
        conditions = pod.get("status", {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            node = load_plan(state).node(pod["spec"]["nodeName"])
            return Endpoint(node.netns, pod["status"]["podIP"])
    return None


def ensure(state: StateDir, timeout: float = START_TIMEOUT) -> Endpoint:
    """The cluster's Prometheus, started first if the cluster has none running."""
    found = find(state)
    if found is not None:
        return found
    if not state.exists():
        raise PrometheusError(
            f"no local cluster {state.cluster!r}; create one with 'meshctl local up'"
        )
    text = system_manifest(state)
    if text is None:
        raise PrometheusError(f"Prometheus is not installed; {INSTALL_HINT}")
    _apply_and_wait(state, text, timeout)
    found = find(state)
    if found is None:
        raise PrometheusError(
            f"Prometheus is not ready; see 'meshctl logs {NAME} -n {SYSTEM_NAMESPACE}'"
        )
    return found


def _apply_and_wait(state: StateDir, text: str, timeout: float) -> None:
    manifests = parse_documents(text, "<nodemesh-prometheus>")
    store = Store(state)
    store.apply(manifests)
    pid = state.daemon_pid()
    if pid is None:
        raise PrometheusError(
            f"cluster {state.cluster!r} has no running runtime; run 'meshctl local up'"
        )
    os.kill(pid, signal.SIGHUP)
    objects = [m.obj for m in manifests]
    waiting = wait_for(state, store.generation(), objects, deleted=False, timeout=timeout)
    if waiting:
        raise PrometheusError(
            "Prometheus did not become ready:\n  "
            + "\n  ".join(waiting)
            + f"\nsee 'meshctl logs {NAME} -n {SYSTEM_NAMESPACE}'"
        )


def query(state: StateDir, promql: str, *, at: float | None = None, timeout: float = 10.0) -> dict:
    """Evaluate an instant PromQL query on the cluster's Prometheus; the API's `data` object.

    `data` is `{"resultType": "vector"|"matrix"|"scalar"|"string", "result": ...}` as documented
    for /api/v1/query. Raises PrometheusError for a bad query (with Prometheus' own message) or
    when Prometheus cannot be started or reached.
    """
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    endpoint = ensure(state)
    raw = http_get(endpoint, "/api/v1/query?" + urllib.parse.urlencode(params), timeout)
    return parse_api_response(raw)["data"]


def http_get(endpoint: Endpoint, target: str, timeout: float = 10.0) -> bytes:
    """The raw HTTP/1.0 response to GET `target` (HTTP/1.0: no chunking, closed at the end)."""
    try:
        return raw_get(endpoint.netns, endpoint.address, endpoint.port, target, timeout)
    except OSError as exc:
        raise PrometheusError(
            f"cannot reach Prometheus at {endpoint.url} in {endpoint.netns}: {exc}; "
            f"is 'meshctl get pods -n {SYSTEM_NAMESPACE}' showing {NAME} Ready?"
        ) from exc


def parse_api_response(raw: bytes) -> dict:
    """The JSON document of a Prometheus API response; its error, if any, as PrometheusError.

    Prometheus answers a bad query with 400 or 422 and a JSON body naming the problem, so the body
    is read whatever the status; a body that is not the API's JSON means something else answered.
    """
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    try:
        doc = json.loads(body)
    except ValueError:
        raise PrometheusError(
            f"Prometheus answered {status_line or 'nothing'!r} without its JSON body"
        ) from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        error = doc.get("error", "no error message") if isinstance(doc, dict) else doc
        kind = doc.get("errorType", "error") if isinstance(doc, dict) else "error"
        raise PrometheusError(f"Prometheus refused the query ({kind}): {error}")
    return doc
