"""Credentials of a local cluster: node bootstrap tokens and pods' service-account tokens.

In Kubernetes a node agent proves which node it runs on, and a waypoint which pod it is, with a
projected service-account token the API server signs and the controller checks with TokenReview.
A local cluster has no API server, so it plays both parts itself, with random tokens whose
SHA-256 digests are all the controller ever sees (the controller's files cannot be replayed as
credentials):

- Node tokens: `local up` makes one per node, at `<state>/nodes/<node>/token` (0600), and lists
  their digests in `<state>/credentials/node-tokens.json` (0600): digest -> node name.
- Pod tokens: the runtime, acting as kubelet, gives every pod one token when it starts the pod's
  containers, at `<pod dir>/serviceaccount/token` (0600), tells each container where it is in
  `NODEMESH_TOKEN_FILE`, and lists digest -> the pod it is bound to ({namespace, serviceAccount,
  pod, uid, node}) in `<state>/credentials/pod-tokens.json` (0600). The runtime rewrites that
  table whole whenever a pod starts or is deleted, so a deleted pod's token stops working at once,
  the way Kubernetes stops accepting a token bound to a pod that is gone. A restarted runtime
  re-reads each adopted pod's token file instead of minting a new one, so the tokens running
  waypoints hold stay valid across the restart.

Every file is written 0600 from its first byte and replaced with rename(2), so neither another
user nor a concurrent reader ever sees a partial or world-readable file. (Pods of a local cluster
run as root on the host's filesystem, so this keeps other users out, not other pods.)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from nodemesh.local.state import StateDir, read_json

# The variable naming a container's token file. Kept equal to nodemesh.controlplane's (a unit
# test checks) rather than imported, so the runtime and meshctl never import gRPC.
TOKEN_FILE_ENV = "NODEMESH_TOKEN_FILE"
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 random bits, 43 characters


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_path(state: StateDir, node: str) -> Path:
    return state.path / "nodes" / node / "token"


def digests_path(state: StateDir) -> Path:
    return state.path / "credentials" / "node-tokens.json"


def pod_tokens_path(state: StateDir) -> Path:
    return state.path / "credentials" / "pod-tokens.json"


def pod_token_path(pod_dir: Path) -> Path:
    """Where a pod's token lives: its own state directory, removed with the pod."""
    return Path(pod_dir) / "serviceaccount" / "token"


def _write_private(path: Path, text: str) -> None:
    """Write a file that is 0600 from its first byte (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_node_tokens(state: StateDir, nodes: Iterable[str]) -> None:
    table = {}
    for node in nodes:
        token = mint_token()
        _write_private(token_path(state, node), token)
        table[digest(token)] = node
    _write_private(digests_path(state), json.dumps(table, indent=1, sort_keys=True))


@dataclass(frozen=True)
class PodBinding:
    """The pod a token is bound to: what the controller learns from a valid pod token."""

    namespace: str
    service_account: str
    pod: str
    uid: str
    node: str

    def to_json(self) -> dict[str, str]:
        """The table entry; controller/auth.py's ServiceAccountTokenAuthenticator reads it."""
        return {
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "pod": self.pod,
            "uid": self.uid,
            "node": self.node,
        }


def ensure_pod_token(pod_dir: Path, mint: Callable[[], str] = mint_token) -> str:
    """The pod's token: the one already on disk (a re-adopted pod keeps it), else a new one."""
    path = pod_token_path(pod_dir)
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:  # first start, or a file cut short by a crash: mint (again)
        token = mint()
        _write_private(path, token)
    return token


class PodTokens:
    """The runtime's side of pod tokens: which token belongs to which live pod.

    `issue` and `revoke` change the table in memory; `save` writes it whole. The runtime saves
    once after re-adopting every pod, so the file never lists only some of the adopted pods.
    """

    def __init__(self, state: StateDir, mint: Callable[[], str] = mint_token) -> None:
        self.state = state
        self.path = pod_tokens_path(state)
        self._mint = mint
        self._by_uid: dict[str, tuple[str, PodBinding]] = {}  # uid -> (digest, binding)

    def issue(self, binding: PodBinding, pod_dir: Path) -> Path:
        """Give the pod its token (kept if it has one) and return the file containers read."""
        token = ensure_pod_token(pod_dir, self._mint)
        self._by_uid[binding.uid] = (digest(token), binding)
        return pod_token_path(pod_dir)

    def revoke(self, uid: str) -> None:
        """Forget a pod's token: once saved, the controller refuses it."""
        self._by_uid.pop(uid, None)

    def table(self) -> dict[str, dict[str, str]]:
        return {d: binding.to_json() for d, binding in self._by_uid.values()}

    def save(self) -> None:
        _write_private(self.path, json.dumps(self.table(), indent=1, sort_keys=True))


def pod_recorded(state: StateDir, uid: str) -> bool:
    """Whether the runtime still records a sandbox for pod `uid` (its runtime.json).

    The controller's second check on a pod token: the runtime lists a pod there before it
    creates it and removes it only once the pod is gone, so a token table left stale by a
    crash cannot outlive its pod.
    """
    data = read_json(state.runtime_file, {}) or {}
    return any(isinstance(p, dict) and p.get("uid") == uid for p in data.get("pods", []))
