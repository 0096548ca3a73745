"""Where a Kubernetes cluster's flow events are: the flow relay of every ready controller replica.

Theory of operation: the controller's admin endpoint (and with it the relay's `/debug/flows`)
listens on 127.0.0.1:15000 inside the controller pod only (DESIGN.md, Security notes). The API
server's `pods/portforward` subresource reaches exactly that: a WebSocket
(`v4.channel.k8s.io`) to the kubelet, which connects to the port inside the pod's network
namespace, as `kubectl port-forward` does. `KubeSource.get_json` opens one such stream per
request (`kubernetes.stream.portforward`), speaks HTTP/1.0 through it and closes it; it is the
`FlowSource` transport, so `nodemesh.flows_local.rounds` follows these replicas exactly as it
follows a local cluster's netns sockets, with the same cursors and merging.

Why every replica, not only the leader: agents and waypoints push their events to the
controller's Service (15012), so each component's stream lands on ONE replica, whichever the
Service picked when it connected; with two replicas each relay holds part of the cluster. The
reader therefore reads every ready replica (the Lease holder first, see controller/leader.py)
and merges them by time (`nodemesh.flows.merge`); the leader is only an ordering, since
election decides who writes to the API server, not who relays flows. A replica that goes away
while following is skipped, and a new one (a rolling update) is read from its start.

`ready_replicas` is pure (pod JSON and the Lease holder in, pod names out); the rest is I/O.
The reader needs RBAC to list pods and get Leases in the controller's namespace and to create
`pods/portforward` there, as `kubectl port-forward` does.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward
from urllib3.exceptions import HTTPError

from controller.leader import LEASE_NAME
from nodemesh.install.common import CONTROLLER, selector
from nodemesh.local.admin_client import AdminError

ADMIN_PORT = 15000  # the controller's --admin-port default, 127.0.0.1 in its pod
NAMESPACE = "nodemesh-system"  # meshctl install's default (--set namespace)
SELECTOR = ",".join(f"{key}={value}" for key, value in selector(CONTROLLER).items())
SOURCES_PATH = "/debug/flows/sources"  # the relay's who-reports page: cheap, proves it answers
REQUEST_TIMEOUT = (3.0, 10.0)  # (connect, read) seconds for the pod and Lease reads


class NoControllerError(RuntimeError):
    """No controller pod is ready to be read; the message says what was found instead."""


def ready_replicas(pods: list[dict], holder: str) -> list[str]:
    """Names of the pods that can answer now, the Lease `holder` first, then by name."""
    ready = sorted(pod["metadata"]["name"] for pod in pods if _ready(pod))
    return sorted(ready, key=lambda name: name != holder)


def _ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def not_ready_message(pods: list[dict], namespace: str) -> str:
    """Why no replica is readable: none found, or each one's phase and readiness."""
    if not pods:
        return (
            f"no controller pod in namespace {namespace} (label {SELECTOR}); is nodemesh "
            "installed there (meshctl install), or is it in another --namespace-of-controller?"
        )
    states = ", ".join(
        f"{pod['metadata']['name']} ({(pod.get('status') or {}).get('phase', 'Unknown')}, "
        "not ready)"
        for pod in pods
    )
    return (
        f"no ready controller pod in namespace {namespace}: {states}; "
        f"see kubectl -n {namespace} describe pods -l {SELECTOR}"
    )


def parse_admin_response(raw: bytes, pod: str, path: str) -> object:
    """The JSON body of an admin endpoint's HTTP/1.x answer, or AdminError naming the pod."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AdminError(f"controller pod {pod}: no complete HTTP answer to {path} ({len(raw)} B)")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        code = status[0].decode(errors="replace") if status else "?"
        text = body.decode(errors="replace").strip()
        raise AdminError(f"controller pod {pod}: admin {path}: HTTP {code}: {text}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise AdminError(f"controller pod {pod}: admin {path}: not JSON: {exc}") from None


@dataclass(frozen=True)
class KubeSource:
    """One controller replica's relay, reached through the API server's port-forward."""

    name: str  # "controller <pod>": the cursor's key, so a restarted pod is a new source
    pod: str
    namespace: str
    api: client.ApiClient
    port: int = ADMIN_PORT

    def get_json(self, path: str, timeout: float) -> object:
        """GET `path` over a fresh port-forward stream (raises AdminError)."""
        return parse_admin_response(self._exchange(path, timeout), self.pod, path)

    def _exchange(self, path: str, timeout: float) -> bytes:
        forward = self._open()
        sock = forward.socket(self.port)
        chunks: list[bytes] = []
        failed = None
        try:
            sock.settimeout(timeout)
            # HTTP/1.0: the admin endpoint closes after its answer, which ends the stream.
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as exc:  # EPIPE when the kubelet's error closed the stream first
            failed = exc
        finally:
            forward.close()
        # The kubelet's own words (nothing listening, pod gone) say more than a broken pipe.
        if not chunks and forward.error(self.port):
            raise AdminError(f"controller pod {self.pod}: {forward.error(self.port).strip()}")
        if failed is not None:
            raise AdminError(f"controller pod {self.pod}: port-forward failed: {failed}")
        return b"".join(chunks)

    def _open(self):
        core = client.CoreV1Api(self.api)
        try:
            return portforward(
                core.connect_get_namespaced_pod_portforward,
                self.pod,
                self.namespace,
                ports=str(self.port),
            )
        except ApiException as exc:
            raise AdminError(
                f"cannot port-forward to controller pod {self.namespace}/{self.pod}:{self.port}: "
                f"{exc.reason or exc.status}; port-forward needs RBAC create on pods/portforward"
            ) from exc


def find_replicas(api: client.ApiClient, namespace: str = NAMESPACE) -> list[KubeSource]:
    """Every ready controller replica of the cluster, now (raises NoControllerError)."""
    pods = _list_pods(api, namespace)
    names = ready_replicas(pods, _lease_holder(api, namespace))
    if not names:
        raise NoControllerError(not_ready_message(pods, namespace))
    return [KubeSource(f"controller {name}", name, namespace, api) for name in names]


class ReplicaFinder:
    """`find` for `rounds`: the ready replicas each round; while following, a round in which
    the API server cannot be read (or no replica is ready) reads the replicas last seen, whose
    polls then fail and are skipped until they come back."""

    def __init__(self, api: client.ApiClient, namespace: str = NAMESPACE) -> None:
        self.api, self.namespace = api, namespace
        self.last: list[KubeSource] = []

    def first(self, timeout: float = 5.0) -> list[str]:
        """Find the replicas and ask each relay once, so a port-forward refused (RBAC) or a
        relay that does not answer is said at the start instead of printing nothing. Returns
        one warning per replica that did not answer; raises NoControllerError when none did."""
        self.last = find_replicas(self.api, self.namespace)
        problems = []
        for source in self.last:
            try:
                source.get_json(SOURCES_PATH, timeout)
            except (AdminError, OSError) as exc:
                problems.append(str(exc))
        if len(problems) == len(self.last):
            raise NoControllerError(
                "no controller replica's flow relay answers: " + "; ".join(problems)
            )
        return [f"warning: {p}; its events are missing until it answers" for p in problems]

    def __call__(self) -> list[KubeSource]:
        with contextlib.suppress(NoControllerError):  # API server away, or a rollout
            self.last = find_replicas(self.api, self.namespace)
        return self.last


def _list_pods(api: client.ApiClient, namespace: str) -> list[dict]:
    try:
        response = client.CoreV1Api(api).list_namespaced_pod(
            namespace,
            label_selector=SELECTOR,
            _request_timeout=REQUEST_TIMEOUT,
            _preload_content=False,
        )
    except ApiException as exc:
        raise NoControllerError(
            f"cannot list the controller pods in namespace {namespace}: {exc.reason or exc.status}"
            "; the reader needs RBAC list on pods there"
        ) from exc
    except HTTPError as exc:
        raise NoControllerError(f"cannot reach the Kubernetes API server: {exc}") from exc
    return json.loads(response.data).get("items") or []


def _lease_holder(api: client.ApiClient, namespace: str) -> str:
    """The leader's pod name from the election Lease; "" when unreadable (only an ordering)."""
    try:
        response = client.CoordinationV1Api(api).read_namespaced_lease(
            LEASE_NAME, namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
        )
    except (ApiException, HTTPError):  # no Lease yet, or no RBAC to read it: order by name
        return ""
    return (json.loads(response.data).get("spec") or {}).get("holderIdentity") or ""
