"""A Kubernetes API server as the controller's registry: one list + watch loop per kind.

Each kind runs client-go's reflector loop in a thread of its own:

    LIST (remember metadata.resourceVersion)
      → WATCH from it with allowWatchBookmarks, applying ADDED / MODIFIED / DELETED to the kind's
        store (keyed by uid); BOOKMARKs only move the version on
      → a watch the server ends (its timeoutSeconds) is resumed from the last version seen
      → 410 Gone (an ERROR event or an ApiException): the version left the server's watch cache,
        so LIST again and replace the kind's store whole; objects deleted while nobody watched
        vanish with the replacement
      → any other error: back off (0.5 s doubling to 30 s), then LIST again.

Kinds: Namespaces, ServiceAccounts, Services, Pods, EndpointSlices, nodemesh's CRDs and Gateway
API's HTTPRoutes and Gateways (`KINDS`). A CRD that is not installed (404 on LIST) is an empty
kind, logged once and re-checked every 30 s, so the mesh runs without Gateway API or before
nodemesh's CRDs are applied.

Objects are read as raw JSON (`_preload_content=False`) instead of the client's models, so they
are what the API server sent (camelCase keys, unknown fields kept): the same shape local mode's
store holds and `translate` reads. List items lack apiVersion and kind; they are set here.
`metadata.managedFields` is dropped on arrival, as informers' transforms do: nothing reads it and
it is often half of a pod's size.

The watch threads only write; the controller polls `changed()` every 50 ms and then reads
`objects()`. One lock guards every store, and a stored dict is never changed after it is stored
(an update replaces it), so the list `objects()` returns is a consistent snapshot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("nodemesh.controller.kube")

GONE = 410
NOT_FOUND = 404
LIST_PAGE = 500  # items per LIST page: bounds the API server's work per request
WATCH_SECONDS = 300  # server-side watch timeout; each watch picks 1-2x this, as client-go does
CONNECT_TIMEOUT = 10.0
LIST_READ_TIMEOUT = 60.0
WATCH_READ_GRACE = 30.0  # a watch silent this long past its own timeout is dead
_FINISHED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class KindRef:
    """A collection the registry lists and watches, cluster-wide."""

    api_version: str  # "v1" or "<group>/<version>"
    kind: str  # set on every object (list items come without it)
    plural: str  # the collection's URL segment
    core_list: str = ""  # CoreV1Api's cluster-wide list method; "": a custom resource

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


KINDS = (
    KindRef("v1", "Namespace", "namespaces", "list_namespace"),
    KindRef("v1", "ServiceAccount", "serviceaccounts", "list_service_account_for_all_namespaces"),
    KindRef("v1", "Service", "services", "list_service_for_all_namespaces"),
    KindRef("v1", "Pod", "pods", "list_pod_for_all_namespaces"),
    KindRef("security.nodemesh.io/v1", "AuthorizationPolicy", "authorizationpolicies"),
    KindRef("security.nodemesh.io/v1", "PeerAuthentication", "peerauthentications"),
    KindRef("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    KindRef("networking.nodemesh.io/v1", "TrafficPolicy", "trafficpolicies"),
    # Every class's Gateways are listed; translate keeps those of class nodemesh-waypoint.
    KindRef("gateway.networking.k8s.io/v1", "Gateway", "gateways"),
    # Built in, but read through the group path as custom objects are; translate reads only the
    # slices of Services without a selector (controller.translate_endpointslices says why).
    KindRef("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
)


def api_client_from(kubeconfig: str | None = None, *, in_cluster: bool = False) -> client.ApiClient:
    """An ApiClient from a kubeconfig file (None: $KUBECONFIG or ~/.kube/config) or the pod's
    service account; its pool holds one connection per watch plus a few for TokenReviews."""
    configuration = client.Configuration()
    if in_cluster:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = max(
        configuration.connection_pool_maxsize, len(KINDS) + 4
    )
    return client.ApiClient(configuration)


class _Gone(Exception):
    """The watched resourceVersion is too old: relist."""


class KubeRegistry:
    """The controller's registry over list + watch; `start()` it, then poll `changed()`."""

    def __init__(
        self,
        api_client: client.ApiClient,
        kinds: Iterable[KindRef] = KINDS,
        *,
        backoff: tuple[float, float] = (0.5, 30.0),
        crd_recheck: float = 30.0,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.api_client = api_client
        self.kinds = tuple(kinds)
        self.backoff = backoff
        self.crd_recheck = crd_recheck
        self.watch_seconds = watch_seconds
        self._lock = threading.Lock()
        self._stores: dict[str, dict[str, dict]] = {k.kind: {} for k in self.kinds}
        self._counter = 0
        self._seen: int | None = None
        self._stopping = threading.Event()
        self._synced = {k.kind: threading.Event() for k in self.kinds}
        self._responses: dict[str, object] = {}  # kind -> the open watch response
        self._threads: list[threading.Thread] = []

    # --- the controller's side ----------------------------------------------------------------

    def changed(self) -> bool:
        """True once after each change of any store (and on the first call)."""
        with self._lock:
            counter = self._counter
        if counter == self._seen:
            return False
        self._seen = counter
        return True

    def objects(self) -> list[dict]:
        """Every object of every kind, with apiVersion and kind set; treat them as read-only."""
        with self._lock:
            return [obj for store in self._stores.values() for obj in store.values()]

    def service_accounts_on(self, node: str) -> set[tuple[str, str]]:
        """(namespace, serviceAccountName) of the pods on `node` that have not finished."""
        with self._lock:
            pods = list(self._stores.get("Pod", {}).values())
        return {
            (p["metadata"].get("namespace", ""), p["spec"].get("serviceAccountName") or "default")
            for p in pods
            if (p.get("spec") or {}).get("nodeName") == node
            and (p.get("status") or {}).get("phase") not in _FINISHED_PHASES
        }

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for ref in self.kinds:
            thread = threading.Thread(
                target=self._run, args=(ref,), name=f"kube-{ref.plural}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once every kind has completed its first LIST (a missing CRD counts as listed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self._synced.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not event.wait(left):
                return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """End every loop: open watches are cut (socket shutdown), sleeps are woken."""
        with self._lock:
            self._stopping.set()
            responses = list(self._responses.values())
        for response in responses:
            _abort(response)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._threads:
            log.warning("kube watch threads still running after stop: %s", self._threads)

    # --- one kind's loop ----------------------------------------------------------------------

    def _run(self, ref: KindRef) -> None:
        delay = self.backoff[0]
        version: str | None = None
        missing = False
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist(ref)
                    missing = _note_presence(ref, version is not None, missing, self.crd_recheck)
                    if version is None:
                        self._stopping.wait(self.crd_recheck)
                        continue
                started = time.monotonic()
                version, events = self._watch(ref, version)
                if events == 0 and time.monotonic() - started < 1.0:
                    raise ConnectionError("the watch ended at once with no event")
                delay = self.backoff[0]
            except _Gone as exc:
                log.info("%s: watch expired (%s); relisting", ref.plural, exc)
                version = None
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("%s: %s; relisting in %.1f s", ref.plural, _describe(exc, ref), delay)
                version = None
                self._stopping.wait(delay)
                delay = min(delay * 2, self.backoff[1])

    def _relist(self, ref: KindRef) -> str | None:
        """LIST every page and replace the kind's store; the version, or None for a missing CRD."""
        items: dict[str, dict] = {}
        page_token = None
        while True:
            try:
                body = _read_json(
                    self._call(
                        ref,
                        limit=LIST_PAGE,
                        _continue=page_token,
                        _request_timeout=(CONNECT_TIMEOUT, LIST_READ_TIMEOUT),
                    )
                )
            except ApiException as exc:
                if exc.status == NOT_FOUND and not ref.core_list:
                    self._replace(ref, {})
                    return None
                if exc.status == GONE:  # the continue token expired: start over
                    raise _Gone(f"list continuation expired: {exc.reason}") from exc
                raise
            for item in body.get("items") or ():
                obj = _typed(ref, item)
                items[_key(obj)] = obj
            meta = body.get("metadata") or {}
            page_token = meta.get("continue")
            if not page_token:
                self._replace(ref, items)
                return meta.get("resourceVersion") or ""

    def _watch(self, ref: KindRef, version: str) -> tuple[str, int]:
        """Apply events until the server ends the stream; (version to resume from, events seen)."""
        seconds = random.randint(self.watch_seconds, 2 * self.watch_seconds)
        try:
            response = self._call(
                ref,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _request_timeout=(CONNECT_TIMEOUT, seconds + WATCH_READ_GRACE),
            )
        except ApiException as exc:
            if exc.status == GONE:
                raise _Gone(exc.reason) from exc
            raise
        events = 0
        try:
            if not self._hold(ref, response):
                return version, events
            for line in _lines(response):
                version = self._apply(ref, json.loads(line)) or version
                events += 1
        finally:
            with self._lock:
                self._responses.pop(ref.kind, None)
            response.close()  # never hand a half-read stream back to the pool
            response.release_conn()
        return version, events

    def _apply(self, ref: KindRef, event: dict) -> str | None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == GONE:
                raise _Gone(obj.get("message") or obj.get("reason") or "Gone")
            raise ApiException(status=obj.get("code"), reason=obj.get("message"))
        if kind in ("ADDED", "MODIFIED"):
            obj = _typed(ref, obj)
            with self._lock:
                self._stores[ref.kind][_key(obj)] = obj
                self._counter += 1
        elif kind == "DELETED":
            with self._lock:
                if self._stores[ref.kind].pop(_key(obj), None) is not None:
                    self._counter += 1
        elif kind != "BOOKMARK":
            log.warning("%s: ignoring a watch event of unknown type %r", ref.plural, kind)
        return (obj.get("metadata") or {}).get("resourceVersion")

    # --- helpers ------------------------------------------------------------------------------

    def _call(self, ref: KindRef, **params):
        """One LIST or WATCH request; the raw urllib3 response (non-2xx raises ApiException)."""
        params = {k: v for k, v in params.items() if v is not None} | {"_preload_content": False}
        if ref.core_list:
            return getattr(client.CoreV1Api(self.api_client), ref.core_list)(**params)
        custom = client.CustomObjectsApi(self.api_client)
        return custom.list_cluster_custom_object(ref.group, ref.version, ref.plural, **params)

    def _replace(self, ref: KindRef, items: dict[str, dict]) -> None:
        with self._lock:
            if self._stores[ref.kind] != items:
                self._stores[ref.kind] = items
                self._counter += 1
        self._synced[ref.kind].set()

    def _hold(self, ref: KindRef, response) -> bool:
        """Remember the open watch so stop() can cut it; False if stop() came first."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self._responses[ref.kind] = response
            return True


def _typed(ref: KindRef, obj: dict) -> dict:
    obj = dict(obj, apiVersion=ref.api_version, kind=ref.kind)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return obj


def _key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _read_json(response) -> dict:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def _lines(response) -> Iterator[bytes]:
    """The watch stream's lines; the API server sends one JSON event per line, chunked."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())
    if buffer.strip():
        yield buffer


def _abort(response) -> None:
    """Unblock a thread reading `response` (closing alone does not wake a blocked recv)."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    with contextlib.suppress(OSError, AttributeError):
        sock.shutdown(socket.SHUT_RDWR)


def _note_presence(ref: KindRef, present: bool, was_missing: bool, recheck: float) -> bool:
    """Log a CRD's absence once, and its arrival; the new 'missing' state."""
    if not present and not was_missing:
        log.warning(
            "%s (%s) is not served by the API server: treating it as empty and checking again "
            "every %.0f s; install the CRD to use %s objects",
            ref.plural,
            ref.api_version,
            recheck,
            ref.kind,
        )
    elif present and was_missing:
        log.info("%s (%s) is served now", ref.plural, ref.api_version)
    return not present


def _describe(exc: Exception, ref: KindRef) -> str:
    """One log line for a failed LIST or WATCH, with what to check."""
    if isinstance(exc, ApiException):
        hint = ""
        if exc.status in (401, 403):
            hint = f"; check the controller's RBAC allows list and watch on {ref.plural}"
        return f"API server answered {exc.status} {exc.reason}{hint}"
    return f"{type(exc).__name__}: {exc} (is the API server reachable?)"
