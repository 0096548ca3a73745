"""Node credentials of a local cluster: one bootstrap token per node, made by `meshctl local up`.

In Kubernetes a node agent proves which node it runs on with a projected service-account token the
API server signs (checked with TokenReview). A local cluster has no API server, so `local up` makes
a random token per node and writes it where only that node's agent reads it
(`<state>/nodes/<node>/token`, 0600), and gives the controller only their SHA-256 digests
(`<state>/credentials/node-tokens.json`, 0600), so the controller's file cannot be replayed as a
credential.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from nodemesh.local.state import StateDir


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_path(state: StateDir, node: str) -> Path:
    return state.path / "nodes" / node / "token"


def digests_path(state: StateDir) -> Path:
    return state.path / "credentials" / "node-tokens.json"


def _write_private(path: Path, text: str) -> None:
    """Write a file that is 0600 from its first byte (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def create_node_tokens(state: StateDir, nodes: Iterable[str]) -> None:
    table = {}
    for node in nodes:
        token = secrets.token_urlsafe(32)
        _write_private(token_path(state, node), token)
        table[digest(token)] = node
    _write_private(digests_path(state), json.dumps(table, indent=1, sort_keys=True))
