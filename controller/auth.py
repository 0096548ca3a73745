"""Who is calling the controller: node credentials for bootstrap, certificates afterwards.

Bootstrap callers present a bearer token; `NodeTokenAuthenticator` maps it to the node it was
issued for. The local cluster's tokens are checked against SHA-256 digests (the controller never
holds a usable token); Kubernetes' projected service-account tokens will be checked with
TokenReview by another authenticator with the same `authenticate` method.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path


class AuthError(Exception):
    """The caller could not be authenticated or is not allowed; the message is safe to return."""


def bearer_token(metadata) -> str | None:
    """The token of an `authorization: Bearer <token>` gRPC metadata entry."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip() or None
    return None


class NodeTokenAuthenticator:
    """Local mode's node credentials: token digests → node name, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._table: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            self._table = json.loads(self.path.read_text())
            self._mtime = mtime
        return self._table

    def authenticate(self, token: str | None) -> str:
        if not token:
            raise AuthError("no node credential: send 'authorization: Bearer <node token>'")
        want = hashlib.sha256(token.encode()).hexdigest()
        for known, node in self._load().items():
            if hmac.compare_digest(known, want):
                return node
        raise AuthError("node credential not recognised (wrong cluster, or a stale token)")
