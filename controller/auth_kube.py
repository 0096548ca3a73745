"""Kubernetes mode's bootstrap credentials: projected service-account tokens, by TokenReview.

Node agents and waypoints both mount a projected token with audience "nodemesh", bound to their
pod. The controller asks the API server about it with a TokenReview (authentication.k8s.io/v1)
and accepts it only if the review says authenticated and lists "nodemesh" among its audiences (a
server that ignored spec.audiences would otherwise accept tokens minted for anything else). Then:

- `TokenReviewAuthenticator` (node credential): the user must be the agent's service account
  (any other pod's token would let it claim a node), and the token must be bound to a pod and so
  carry the node it runs on: `status.user.extra["authentication.kubernetes.io/node-name"]`
  (Kubernetes >= 1.30). The node name comes from the API server, never from the caller, so an
  agent can only ask for the identities of pods on its own node.
- `ServiceAccountTokenReviewAuthenticator` (workload credential): the user must be a service
  account, `system:serviceaccount:<namespace>:<name>`, and the token must be bound to a pod
  (`pod-name` and `pod-uid` extras). The API server refuses a pod-bound token once its pod is
  gone, so a waypoint's token ends with the waypoint; a legacy Secret token, which never
  expires, is refused.

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
from typing import Generic, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.auth import AuthError, WorkloadPrincipal

log = logging.getLogger("nodemesh.controller.auth")

T = TypeVar("T")
AUDIENCE = "nodemesh"
AGENT_USER = "system:serviceaccount:nodemesh-system:nodemesh-agent"
SA_USER_PREFIX = "system:serviceaccount:"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
CACHE_SECONDS = 60.0
REVIEW_TIMEOUT = (5.0, 10.0)  # (connect, read) seconds; the caller's RPC is waiting
_PROJECTED_HINT = (
    "use a projected service-account token bound to the agent pod "
    f"(serviceAccountToken volume, audience {AUDIENCE!r}; needs Kubernetes 1.30 or later)"
)
_WORKLOAD_HINT = (
    "mount a projected service-account token (serviceAccountToken volume, audience "
    f"{AUDIENCE!r}) and point NODEMESH_TOKEN_FILE at it"
)


class _TokenReviewer(Generic[T]):
    """TokenReview plus the positive cache; subclasses say what a good review vouches for."""

    credential = "credential"  # how messages name what the caller sent

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        audience: str = AUDIENCE,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.AuthenticationV1Api(api_client)
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[T, float]] = {}  # sha256(token) -> (answer, expiry)

    def _vouched(self, user: dict) -> T:
        """What the review's (authenticated) user stands for, or AuthError saying why not."""
        raise NotImplementedError

    def _missing(self) -> AuthError:
        raise NotImplementedError

    def authenticate(self, token: str | None) -> T:
        """Whom the token stands for; AuthError (safe to return) otherwise."""
        if not token:
            raise self._missing()
        digest = hashlib.sha256(token.encode()).hexdigest()
        answer = self._cached(digest)
        if answer is None:
            answer = self._vouched(self._checked(self._review(token)))
            with self._lock:
                self._cache[digest] = (answer, self.clock() + self.cache_seconds)
        return answer

    def _cached(self, digest: str) -> T | None:
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
        raise AuthError(f"could not verify the {self.credential} with the Kubernetes API; retry")

    def _checked(self, status: dict) -> dict:
        """The review's user, once the review says authenticated for our audience."""
        if not status.get("authenticated"):
            reason = status.get("error") or "no reason given"
            raise AuthError(f"{self.credential} rejected by the Kubernetes API: {reason}")
        if self.audience not in (status.get("audiences") or ()):
            raise AuthError(f"{self.credential} is not a token for audience {self.audience!r}")
        return status.get("user") or {}


def _one_extra(user: dict, key: str) -> str | None:
    """A single-valued `extra` entry of a review's user, or None."""
    values = (user.get("extra") or {}).get(key) or []
    if len(values) != 1 or not isinstance(values[0], str) or not values[0]:
        return None
    return values[0]


class TokenReviewAuthenticator(_TokenReviewer[str]):
    """Bearer token -> node name, by TokenReview; same contract as NodeTokenAuthenticator."""

    credential = "node credential"

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        user: str = AGENT_USER,
        audience: str = AUDIENCE,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(api_client, audience=audience, cache_seconds=cache_seconds, clock=clock)
        self.user = user

    def _missing(self) -> AuthError:
        return AuthError(
            "no node credential: send 'authorization: Bearer <token>'; " + _PROJECTED_HINT
        )

    def _vouched(self, user: dict) -> str:
        if user.get("username") != self.user:
            raise AuthError(
                f"node credential belongs to {user.get('username')!r}, not the node agent "
                f"({self.user}); only the agent's token may act for a node"
            )
        node = _one_extra(user, NODE_NAME_EXTRA)
        if node is None:
            raise AuthError(f"node credential names no node: {_PROJECTED_HINT}")
        return node


class ServiceAccountTokenReviewAuthenticator(_TokenReviewer[WorkloadPrincipal]):
    """Bearer token -> the pod it is bound to; same contract as ServiceAccountTokenAuthenticator."""

    credential = "service-account token"

    def _missing(self) -> AuthError:
        return AuthError(
            "no service-account token: send 'authorization: Bearer <token>'; " + _WORKLOAD_HINT
        )

    def _vouched(self, user: dict) -> WorkloadPrincipal:
        username = user.get("username") or ""
        namespace, _, account = username.removeprefix(SA_USER_PREFIX).partition(":")
        if not username.startswith(SA_USER_PREFIX) or not namespace or not account:
            raise AuthError(
                f"token belongs to {username!r}, not a service account; {_WORKLOAD_HINT}"
            )
        pod, uid = _one_extra(user, POD_NAME_EXTRA), _one_extra(user, POD_UID_EXTRA)
        if pod is None or uid is None:
            raise AuthError(
                f"service-account token of {namespace}/{account} is not bound to a pod "
                f"(a legacy Secret token?); {_WORKLOAD_HINT}"
            )
        node = _one_extra(user, NODE_NAME_EXTRA) or ""  # Kubernetes < 1.30 does not say
        return WorkloadPrincipal(namespace, account, pod, uid, node)
