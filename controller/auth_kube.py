"""Kubernetes mode's node credential: the agent pod's projected service-account token.

The agent mounts a projected token with audience "nodemesh", bound to its pod. The controller
asks the API server about it with a TokenReview (authentication.k8s.io/v1) and accepts it only if:

- the review says authenticated, and lists "nodemesh" among its audiences (a server that ignored
  spec.audiences would otherwise accept tokens minted for anything else);
- the user is the agent's service account (any other pod's token would let it claim a node);
- the token is bound to a pod and so carries the node it runs on:
  `status.user.extra["authentication.kubernetes.io/node-name"]` (Kubernetes >= 1.30). The node
  name comes from the API server, never from the caller, so an agent can only ask for the
  identities of pods on its own node.

Positive answers are cached for 60 s under the token's SHA-256, so a burst of certificate
requests costs one review; the token itself is never stored. Failures are not cached: a fixed
token works at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.auth import AuthError

log = logging.getLogger("nodemesh.controller.auth")

AUDIENCE = "nodemesh"
AGENT_USER = "system:serviceaccount:nodemesh-system:nodemesh-agent"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
CACHE_SECONDS = 60.0
REVIEW_TIMEOUT = (5.0, 10.0)  # (connect, read) seconds; the caller's RPC is waiting
_PROJECTED_HINT = (
    "use a projected service-account token bound to the agent pod "
    f"(serviceAccountToken volume, audience {AUDIENCE!r}; needs Kubernetes 1.30 or later)"
)


class TokenReviewAuthenticator:
    """Bearer token -> node name, by TokenReview; same contract as NodeTokenAuthenticator."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        user: str = AGENT_USER,
        audience: str = AUDIENCE,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.AuthenticationV1Api(api_client)
        self.user = user
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}  # sha256(token) -> (node, expiry)

    def authenticate(self, token: str | None) -> str:
        """The node the token's agent pod runs on; AuthError (safe to return) otherwise."""
        if not token:
            raise AuthError(
                "no node credential: send 'authorization: Bearer <token>'; " + _PROJECTED_HINT
            )
        digest = hashlib.sha256(token.encode()).hexdigest()
        node = self._cached(digest)
        if node is None:
            node = self._node_of(self._review(token))
            with self._lock:
                self._cache[digest] = (node, self.clock() + self.cache_seconds)
        return node

    def _cached(self, digest: str) -> str | None:
        now = self.clock()
        with self._lock:
            for key in [k for k, (_, expiry) in self._cache.items() if expiry <= now]:
                del self._cache[key]
            entry = self._cache.get(digest)
        return entry[0] if entry else None

    def _review(self, token: str) -> dict:
        """The TokenReview's status, as the API server sent it."""
        body = client.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=client.V1TokenReviewSpec(token=token, audiences=[self.audience]),
        )
        try:
            response = self.api.create_token_review(
                body, _preload_content=False, _request_timeout=REVIEW_TIMEOUT
            )
            try:
                return json.loads(response.data).get("status") or {}
            finally:
                response.release_conn()
        except ApiException as exc:
            hint = ""
            if exc.status in (401, 403):
                hint = "; the controller's service account needs system:auth-delegator"
            log.error("TokenReview failed: %s %s%s", exc.status, exc.reason, hint)
        except (HTTPError, OSError, ValueError) as exc:
            log.error(
                "TokenReview failed: %s: %s (is the API server reachable?)", type(exc).__name__, exc
            )
        raise AuthError("could not verify the node credential with the Kubernetes API; retry")

    def _node_of(self, status: dict) -> str:
        """The node name a successful review vouches for, or AuthError saying what is wrong."""
        if not status.get("authenticated"):
            reason = status.get("error") or "no reason given"
            raise AuthError(f"node credential rejected by the Kubernetes API: {reason}")
        if self.audience not in (status.get("audiences") or ()):
            raise AuthError(f"node credential is not a token for audience {self.audience!r}")
        user = status.get("user") or {}
        if user.get("username") != self.user:
            raise AuthError(
                f"node credential belongs to {user.get('username')!r}, not the node agent "
                f"({self.user}); only the agent's token may act for a node"
            )
        names = (user.get("extra") or {}).get(NODE_NAME_EXTRA) or []
        if len(names) != 1 or not isinstance(names[0], str) or not names[0]:
            raise AuthError(f"node credential names no node: {_PROJECTED_HINT}")
        return names[0]
