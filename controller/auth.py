"""Who is calling the controller's bootstrap listener: node agents and pods, by bearer token.

Bootstrap callers have no certificate yet, so they present a bearer token (gRPC metadata
`authorization: Bearer <token>`) and an authenticator says whom it stands for:

- `NodeTokenAuthenticator`: a node agent's credential -> the node's name; the controller then
  issues the node's control-plane identity.
- `ServiceAccountTokenAuthenticator`: a pod's service-account token -> `WorkloadPrincipal`
  (namespace, service account, pod, uid, node); the controller then issues
  spiffe://<td>/ns/<namespace>/sa/<service account>. This is how a waypoint gets its FIRST
  certificate; it renews over mutual TLS as itself afterwards.

These two are local mode's: the local cluster (nodemesh.local.credentials) writes tables of
SHA-256 digest -> node / pod, so the controller never holds a usable token. A table is re-read
when its file is replaced (the writer renames a new file into place, so (inode, mtime, size)
changes), and a token is compared with every digest in constant time, so response time says
nothing about which digests exist. Kubernetes mode checks the same tokens with TokenReview
(controller/auth_kube.py); every authenticator has the same `authenticate(token)` contract and
raises `AuthError` with a message that is safe to send back to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("nodemesh.controller.auth")
T = TypeVar("T")
_TOKEN_HINT = "send 'authorization: Bearer <token>' with the contents of $NODEMESH_TOKEN_FILE"


class AuthError(Exception):
    """The caller could not be authenticated or is not allowed; the message is safe to return."""


def bearer_token(metadata) -> str | None:
    """The token of an `authorization: Bearer <token>` gRPC metadata entry."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip() or None
    return None


@dataclass(frozen=True)
class WorkloadPrincipal:
    """The pod a service-account token speaks for; the identity comes from here, never a CSR."""

    namespace: str
    service_account: str
    pod: str = ""  # empty only where the token source does not say (never in local mode)
    uid: str = ""
    node: str = ""

    def __str__(self) -> str:
        where = f" on {self.node}" if self.node else ""
        return f"pod {self.namespace}/{self.pod}{where} (sa {self.service_account})"


class NodeAuthenticator(Protocol):
    """Node credential -> node name (NodeTokenAuthenticator, auth_kube.TokenReviewAuthenticator)."""

    def authenticate(self, token: str | None) -> str: ...


class WorkloadAuthenticator(Protocol):
    """Service-account token -> its pod (ServiceAccountTokenAuthenticator, or auth_kube's)."""

    def authenticate(self, token: str | None) -> WorkloadPrincipal: ...


def principal_from_entry(entry: object) -> WorkloadPrincipal:
    """A pod-token table entry ({namespace, serviceAccount, pod, uid, node}) as a principal."""
    if not isinstance(entry, dict):
        raise ValueError(f"entry is a {type(entry).__name__}, not an object")
    fields = ("namespace", "serviceAccount", "pod", "uid", "node")
    values = [entry.get(name) for name in fields]
    bad = [name for name, value in zip(fields, values, strict=True) if not isinstance(value, str)]
    if bad or not values[0] or not values[1]:
        raise ValueError(f"entry lacks {', '.join(bad) or 'namespace or serviceAccount'}")
    return WorkloadPrincipal(*values)


def match_digest(table: Mapping[str, T], token: str) -> T | None:
    """The value whose key is sha256(token); compares with every key, without stopping early."""
    want = hashlib.sha256(token.encode()).hexdigest()
    found = None
    for known, value in table.items():
        if hmac.compare_digest(known, want):
            found = value
    return found


class DigestTable(Generic[T]):
    """A JSON file of digest -> entry, parsed once per version of the file.

    A missing file is an empty table (no cluster yet, or nothing issued). An entry `parse`
    refuses is left out and logged; an unreadable file refuses every token (fail closed) until
    it is replaced, because guessing at a half-understood credential table is worse.
    """

    def __init__(self, path: Path, parse: Callable[[object], T]) -> None:
        self.path = path
        self._parse = parse
        self._stamp: tuple[int, int, int] | None = None
        self._table: dict[str, T] = {}

    def load(self) -> dict[str, T]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._table = self._read()
            self._stamp = stamp
        return self._table

    def _read(self) -> dict[str, T]:
        try:
            raw = json.loads(self.path.read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            log.error("cannot read credential table %s: %s", self.path, exc)
            raise AuthError("the controller cannot read its credential table; see its log") from exc
        table = {}
        for key, entry in raw.items():
            try:
                table[key] = self._parse(entry)
            except ValueError as exc:
                log.error("credential table %s: ignoring an entry: %s", self.path, exc)
        return table


class NodeTokenAuthenticator:
    """Local mode's node credentials: token digests -> node name, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._table = DigestTable(path, _node_name)

    def authenticate(self, token: str | None) -> str:
        if not token:
            raise AuthError("no node credential: send 'authorization: Bearer <node token>'")
        node = match_digest(self._table.load(), token)
        if node is None:
            raise AuthError("node credential not recognised (wrong cluster, or a stale token)")
        return node


def _node_name(entry: object) -> str:
    if not isinstance(entry, str) or not entry:
        raise ValueError("a node token's entry must be the node's name")
    return entry


class ServiceAccountTokenAuthenticator:
    """Local mode's pod tokens: digest -> the pod the runtime bound the token to.

    The runtime drops a pod's entry when the pod is deleted; `pod_exists` (optional) is a
    second, cheap check that the pod is still there, for a table left stale by a crash.
    """

    def __init__(
        self, path: Path, *, pod_exists: Callable[[WorkloadPrincipal], bool] | None = None
    ) -> None:
        self.path = path
        self.pod_exists = pod_exists or _assume_present
        self._table = DigestTable(path, principal_from_entry)

    def authenticate(self, token: str | None) -> WorkloadPrincipal:
        if not token:
            raise AuthError(f"no service-account token: {_TOKEN_HINT}")
        principal = match_digest(self._table.load(), token)
        if principal is None:
            raise AuthError(
                "service-account token not recognised: it belongs to another cluster, or to a "
                "pod that is gone (a token ends with its pod); read it again from "
                "$NODEMESH_TOKEN_FILE"
            )
        if not self._still_there(principal):
            raise AuthError(f"{principal} no longer exists, so its token is no longer valid")
        return principal

    def _still_there(self, principal: WorkloadPrincipal) -> bool:
        try:
            return self.pod_exists(principal)
        except (OSError, ValueError) as exc:
            log.error("cannot check that %s still exists: %s", principal, exc)
            raise AuthError(f"could not check that {principal} still exists; retry") from exc


def _assume_present(principal: WorkloadPrincipal) -> bool:
    return True
