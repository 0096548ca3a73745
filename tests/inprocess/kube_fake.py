"""A recorded-response Kubernetes API server on 127.0.0.1, for Kubernetes-mode tests.

It speaks real HTTP/1.1, so the official `kubernetes` client runs against it unmodified:

- GET <collection> answers the List body the test set for that path (`set_list`), or the API
  server's 404 Status for a resource it does not serve (a CRD that is not installed).
- GET <collection>?watch=true answers 200 with a chunked stream, as the API server does. It
  writes the events the test queued for that path (`send`), one JSON line each, and holds the
  connection open for more until the test ends it (`end_watch`) or the server stops. An ERROR
  event ends the stream after it is written, as the API server ends a watch after one.
  A watch can be made to fail once with an HTTP error instead (`fail_next_watch`).
- POST /apis/authentication.k8s.io/v1/tokenreviews answers a recorded TokenReview chosen by the
  token (`set_token_review`); an unknown token gets an unauthenticated review.
- Collections made `writable` (Leases, Deployments, ServiceAccounts) are a real little object
  store: GET (one object, or a list filtered by an equality labelSelector), POST (201, or 409
  AlreadyExists), PUT (409 Conflict when metadata.resourceVersion is not the stored one: the
  optimistic concurrency controllers rely on) and DELETE, each stored object getting a uid, a
  creationTimestamp and a new resourceVersion from one counter, as the API server's.

- GET .../pods/<name>/portforward?ports=N with a WebSocket upgrade is the API server's
  port-forward as the kubelet serves it (`v4.channel.k8s.io`): each port gets a data channel
  (2i) and an error channel (2i+1), each opened with a frame of the port number (2 bytes, little
  endian); the data channel then carries the bytes of ONE TCP connection to the address the
  test set for that pod and port (`forward`), and the stream ends when that connection does. A
  port with no address set gets the kubelet's "connection refused" on its error channel.

Every request is recorded (`requests`), so a test can check which resourceVersion a watch
resumed from or that a cached token made no request at all. Bodies come from `recordings/`,
written by hand in the shape a real API server sends; `served` turns manifests into what the API
server would store for them (server-set metadata and the API's defaults).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import re
import select
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml
from kubernetes import client

RECORDINGS = Path(__file__).parent / "recordings"
# /api/v1 or /apis/<group>/<version>, then [/namespaces/<ns>]/<plural>[/<name>]
_OBJECT_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
_PORTFORWARD_PATH = re.compile(
    r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<pod>[^/]+)/portforward$"
)
PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"  # what the kubelet's WebSocket port-forward speaks
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
_END = object()  # queued by end_watch: finish the stream normally


def recording(name: str):
    """A recorded JSON body; a .jsonl file is a watch stream, one event per line."""
    text = (RECORDINGS / name).read_text()
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def collection_path(api_version: str, plural: str) -> str:
    return (
        f"/api/{api_version}/{plural}"
        if "/" not in api_version
        else f"/apis/{api_version}/{plural}"
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict | None = None


class FakeApiServer:
    """Start it, point `api_client()` at it, script lists, watch events and token reviews."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._lists: dict[str, dict] = {}
        self._queues: dict[str, list] = {}
        self._reviews: dict[str, dict] = {}
        self._failures: dict[str, list[tuple[int, dict]]] = {}
        self._closing = False
        self._writable: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self._defaulters: dict[tuple[str, str], Callable[[dict], None]] = {}
        self._version = 5000
        self._forwards: dict[tuple[str, str, int], tuple[str, int]] = {}
        self.requests: list[Request] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-apiserver"
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()  # joins every handler thread
        self._thread.join()

    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration(host=self.url)
        configuration.connection_pool_maxsize = 16
        return client.ApiClient(configuration)

    def write_kubeconfig(self, directory: Path) -> Path:
        """A kubeconfig naming this server, for the code under test that reads one from a file
        (`--kubeconfig`) as it would on a real cluster: context, cluster and user all `fake`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }
        path = directory / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    # --- scripting ----------------------------------------------------------------------------

    def set_list(self, path: str, body: dict) -> None:
        with self._cond:
            self._lists[path] = body

    def remove_list(self, path: str) -> None:
        with self._cond:
            self._lists.pop(path, None)

    def send(self, path: str, *events: dict) -> None:
        """Queue watch events for `path`; the open watch (or the next one) writes them."""
        with self._cond:
            self._queues.setdefault(path, []).extend(events)
            self._cond.notify_all()

    def end_watch(self, path: str) -> None:
        """End the watch on `path` normally, as the API server does at its timeoutSeconds."""
        self.send(path, _END)

    def fail_next_watch(self, path: str, status: int, body: dict) -> None:
        """Answer the next watch request on `path` with an error status instead of a stream."""
        with self._cond:
            self._failures.setdefault(path, []).append((status, body))

    def forward(self, namespace: str, pod: str, port: int, address: tuple[str, int]) -> None:
        """Port-forwards to `pod`'s `port` connect to `address` (a server on loopback)."""
        with self._cond:
            self._forwards[(namespace, pod, port)] = address

    def portforwards(self, pod: str) -> list[Request]:
        """The port-forward requests made to `pod` so far (recorded when the stream opens)."""
        with self._cond:
            return [r for r in self.requests if r.path.endswith(f"/pods/{pod}/portforward")]

    def set_token_review(self, token: str, review: dict) -> None:
        with self._cond:
            self._reviews[token] = review

    def writable(
        self, api_version: str, plural: str, defaults: Callable[[dict], None] | None = None
    ) -> None:
        """Serve `plural` as a read-write collection (see the module docstring); `defaults`
        fills what the API server adds to every object it stores (deployment_defaults)."""
        with self._cond:
            self._writable.setdefault((api_version, plural), {})
            if defaults is not None:
                self._defaulters[(api_version, plural)] = defaults

    def put_object(self, api_version: str, plural: str, obj: dict) -> dict:
        """Store `obj` as if someone else had created it (a user's own Deployment)."""
        with self._cond:
            return self._create((api_version, plural), copy.deepcopy(obj))[1]

    def get_object(self, api_version: str, plural: str, namespace: str, name: str) -> dict | None:
        with self._cond:
            found = self._writable[(api_version, plural)].get((namespace, name))
            return copy.deepcopy(found)

    def writes(self) -> list[Request]:
        """The POST, PUT and DELETE requests to writable collections, in order."""
        with self._cond:
            return [r for r in self.requests if r.method in ("POST", "PUT", "DELETE")]

    def watches(self, path: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.path == path and r.query.get("watch") == "true"]

    # --- the handler's side -------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        with self._cond:
            self.requests.append(request)

    def _list(self, path: str) -> dict | None:
        with self._cond:
            return self._lists.get(path)

    def _failure(self, path: str) -> tuple[int, dict] | None:
        with self._cond:
            failures = self._failures.get(path)
            return failures.pop(0) if failures else None

    def _next_event(self, path: str, wait: float):
        """The next queued event for `path`, _END, or None if nothing came within `wait`."""
        with self._cond:
            queue = self._queues.setdefault(path, [])
            if not queue and not self._closing:
                self._cond.wait(wait)
            if self._closing:
                return _END
            return queue.pop(0) if queue else None

    def _forward_target(self, namespace: str, pod: str, port: int) -> tuple[str, int] | None:
        with self._cond:
            return self._forwards.get((namespace, pod, port))

    def _pod_missing(self, namespace: str, pod: str) -> bool:
        """True when pods are a writable collection here and `pod` is not in it (404)."""
        with self._cond:
            pods = self._writable.get(("v1", "pods"))
            return pods is not None and (namespace, pod) not in pods

    def _object_request(self, method: str, path: str, query: dict, body: dict | None):
        """(status, body) for a request on a writable collection, or None if it is not one."""
        match = _OBJECT_PATH.match(path)
        if match is None:
            return None
        api_version = match["core"] or f"{match['group']}/{match['version']}"
        collection = (api_version, match["plural"])
        with self._cond:
            if collection not in self._writable:
                return None
            objects = self._writable[collection]
            namespace, name = match["namespace"] or "", match["name"]
            if method == "GET" and name is None:
                return 200, self._listing(collection, namespace, query.get("labelSelector", ""))
            body = copy.deepcopy(body)  # the recorded request keeps what was sent
            if method == "POST" and name is None:
                body = dict(body or {}, apiVersion=api_version)
                body.setdefault("metadata", {}).setdefault("namespace", namespace)
                return self._create(collection, body)
            current = objects.get((namespace, name or ""))
            if current is None:
                return 404, _status(404, "NotFound", f'{match["plural"]} "{name}" not found')
            if method == "GET":
                return 200, copy.deepcopy(current)
            if method == "DELETE":
                del objects[(namespace, name)]
                return 200, _status(200, "", "deleted", status="Success")
            return self._replace(collection, current, body or {})

    def _create(self, collection: tuple[str, str], obj: dict) -> tuple[int, dict]:
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace") or "", meta["name"])
        if key in self._writable[collection]:
            return 409, _status(409, "AlreadyExists", f'{collection[1]} "{key[1]}" already exists')
        self._version += 1
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(self._version),
            creationTimestamp=CREATED,
            generation=1,
        )
        self._defaulters.get(collection, lambda obj: None)(obj)
        self._writable[collection][key] = obj
        return 201, copy.deepcopy(obj)

    def _replace(self, collection: tuple[str, str], current: dict, obj: dict) -> tuple[int, dict]:
        meta, stored_meta = obj.setdefault("metadata", {}), current["metadata"]
        sent = meta.get("resourceVersion")
        if sent and sent != stored_meta["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {collection[1]} "{stored_meta["name"]}": the '
                "object has been modified; please apply your changes to the latest version and "
                "try again"
            )
            return 409, _status(409, "Conflict", message)
        self._version += 1
        meta.update(
            uid=stored_meta["uid"],
            creationTimestamp=stored_meta["creationTimestamp"],
            namespace=stored_meta.get("namespace", ""),
            resourceVersion=str(self._version),
            generation=stored_meta.get("generation", 1) + 1,
        )
        obj["apiVersion"] = current.get("apiVersion", obj.get("apiVersion"))
        obj["kind"] = current.get("kind", obj.get("kind"))
        self._defaulters.get(collection, lambda obj: None)(obj)
        self._writable[collection][(meta["namespace"], stored_meta["name"])] = obj
        return 200, copy.deepcopy(obj)

    def _listing(self, collection: tuple[str, str], namespace: str, selector: str) -> dict:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if "=" in term)
        items = [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self._writable[collection].items())
            if (not namespace or ns == namespace)
            and wanted.items() <= ((obj["metadata"].get("labels") or {}).items())
        ]
        return {
            "apiVersion": collection[0],
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _review(self, spec: dict) -> dict:
        with self._cond:
            review = copy.deepcopy(self._reviews.get(spec.get("token")))
        if review is None:
            review = recording("tokenreview-invalid.json")
        review["spec"] = spec
        return review


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads: nothing outlives stop()
    fake: FakeApiServer

    def __init__(self, *args) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args)

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        """A client that hung up mid-stream is expected here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Wake handlers waiting for the next request on a kept-alive connection."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        fake = self.server.fake
        fake._record(Request("GET", url.path, query))
        forward = _PORTFORWARD_PATH.match(url.path)
        if forward is not None and self.headers.get("Upgrade", "").lower() == "websocket":
            self._portforward(forward["namespace"], forward["pod"], query)
            return
        watch = query.get("watch") == "true"  # writable collections are not watched here
        answer = None if watch else fake._object_request("GET", url.path, query, None)
        if answer is not None:
            self._json(*answer)
            return
        body = fake._list(url.path)
        if body is None:
            self._json(404, recording("status-notfound.json"))
        elif query.get("watch") == "true":
            failure = fake._failure(url.path)
            if failure is not None:
                self._json(*failure)
            else:
                self._watch(url.path)
        else:
            self._json(200, body)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        fake = self.server.fake
        fake._record(Request("POST", url.path, {}, body))
        answer = fake._object_request("POST", url.path, {}, body)
        if answer is not None:
            self._json(*answer)
        elif url.path != TOKEN_REVIEWS:
            self._json(404, recording("status-notfound.json"))
        else:
            self._json(201, fake._review(body.get("spec") or {}))

    def do_PUT(self) -> None:
        self._write("PUT")

    def do_DELETE(self) -> None:
        self._write("DELETE")

    def _write(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}") if length else None
        fake = self.server.fake
        fake._record(Request(method, url.path, {}, body))
        answer = fake._object_request(method, url.path, {}, body)
        self._json(*(answer or (404, recording("status-notfound.json"))))

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _watch(self, path: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            event = self.server.fake._next_event(path, 0.05)
            if event is None:
                if self._client_gone():
                    self.close_connection = True
                    return
                continue
            if event is _END:
                break
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            if event.get("type") == "ERROR":
                break
        self.wfile.write(b"0\r\n\r\n")

    def _portforward(self, namespace: str, pod: str, query: dict) -> None:
        """The WebSocket handshake, the channels' port frames, then one forwarded connection."""
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        ports = [int(p) for p in query.get("ports", "").split(",") if p]
        if PORTFORWARD_PROTOCOL not in offered or len(ports) != 1:
            message = f"this fake forwards one port over {PORTFORWARD_PROTOCOL}, asked {ports}"
            self._json(400, _status(400, "BadRequest", message))
            return
        if self.server.fake._pod_missing(namespace, pod):
            self._json(404, _status(404, "NotFound", f'pods "{pod}" not found'))
            return
        key = self.headers["Sec-WebSocket-Key"].encode() + _WS_GUID.encode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header(
            "Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key).digest()).decode()
        )
        self.send_header("Sec-WebSocket-Protocol", PORTFORWARD_PROTOCOL)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        (port,) = ports
        opening = struct.pack("<H", port)
        self.connection.sendall(_ws_frame(b"\x00" + opening) + _ws_frame(b"\x01" + opening))
        target = self.server.fake._forward_target(namespace, pod, port)
        try:
            upstream = socket.create_connection(target, timeout=5) if target else None
        except OSError:
            upstream = None
        if upstream is None:
            error = (
                f"error forwarding port {port} to pod {pod}: failed to connect to "
                f"localhost:{port} inside the pod's namespace: connection refused"
            )
            self.connection.sendall(_ws_frame(b"\x01" + error.encode()))
            self._ws_close()
            return
        with upstream:
            self._pump(upstream)

    def _pump(self, upstream: socket.socket) -> None:
        """Bytes both ways until either side ends: the pod's connection closing ends the stream
        (close frame, then the client's close answered), a client close frame ends it too."""
        frames = _FrameReader()
        while not self.server.fake._closing:
            readable, _, _ = select.select([self.connection, upstream], [], [], 0.5)
            if upstream in readable:
                data = upstream.recv(65536)
                if not data:
                    self._ws_close()
                    return
                self.connection.sendall(_ws_frame(b"\x00" + data))
            if self.connection in readable:
                data = self.connection.recv(65536)
                if not data:
                    return
                for opcode, payload in frames.feed(data):
                    if opcode == _OP_CLOSE:
                        self.connection.sendall(_ws_frame(payload[:2], _OP_CLOSE))
                        return
                    if opcode == _OP_PING:
                        self.connection.sendall(_ws_frame(payload, _OP_PONG))
                    elif opcode == _OP_BINARY and payload[:1] == b"\x00":
                        upstream.sendall(payload[1:])

    def _ws_close(self) -> None:
        """Send a normal close and wait (bounded) for the client's, as the kubelet does."""
        self.connection.sendall(_ws_frame(struct.pack("!H", 1000), _OP_CLOSE))
        frames = _FrameReader()
        self.connection.settimeout(5)
        with contextlib.suppress(OSError):
            while data := self.connection.recv(65536):
                if any(op == _OP_CLOSE for op, _ in frames.feed(data)):
                    return

    def _client_gone(self) -> bool:
        """True once the client closed its end (a stopped registry): stop serving its watch."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


_OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x2, 0x8, 0x9, 0xA


def _ws_frame(payload: bytes, opcode: int = _OP_BINARY) -> bytes:
    """One final, unmasked server frame (RFC 6455 5.2)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", len(payload)) + payload
    return head + bytes([127]) + struct.pack("!Q", len(payload)) + payload


class _FrameReader:
    """Client frames from a byte stream: (opcode, unmasked payload) for each complete one.
    Clients send each message as one final frame (websocket-client does), so no reassembly."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        frames = []
        while (frame := self._next()) is not None:
            frames.append(frame)
        return frames

    def _next(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        opcode, masked, length = buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F
        offset = 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if len(buf) < offset + size:
                return None
            length = int.from_bytes(buf[offset : offset + size], "big")
            offset += size
        mask = bytes(buf[offset : offset + 4]) if masked else b"\x00" * 4
        offset += 4 if masked else 0
        if len(buf) < offset + length:
            return None
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[offset : offset + length]))
        del buf[: offset + length]
        return opcode, payload


def _status(code: int, reason: str, message: str, status: str = "Failure") -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": status,
        "message": message,
        "reason": reason,
        "code": code,
    }


# --- what an API server stores for a manifest --------------------------------------------------

_PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Pod": "pods",
    "AuthorizationPolicy": "authorizationpolicies",
    "PeerAuthentication": "peerauthentications",
    "HTTPRoute": "httproutes",
    "Gateway": "gateways",
    "TrafficPolicy": "trafficpolicies",
    "EndpointSlice": "endpointslices",
}
CREATED = "2025-06-02T09:14:27Z"


def served(objects: list[dict], resource_version: str) -> dict[str, dict]:
    """Collection path -> the List body an API server would answer for `objects`."""
    lists: dict[str, dict] = {}
    for number, obj in enumerate(objects, start=1):
        path = collection_path(obj["apiVersion"], _PLURALS[obj["kind"]])
        body = lists.setdefault(
            path,
            {
                "kind": f"{obj['kind']}List",
                "apiVersion": obj["apiVersion"],
                "metadata": {"resourceVersion": resource_version},
                "items": [],
            },
        )
        body["items"].append(stored(obj, str(int(resource_version) - 100 + number)))
    return lists


def stored(obj: dict, resource_version: str) -> dict:
    """`obj` as a list item: server-set metadata, the API's defaults, no apiVersion or kind.

    Server-set fields the local store also sets (uid, generation) are replaced, so nothing of
    local mode's leaks into what the API server serves."""
    item = copy.deepcopy(obj)
    kind = item.pop("kind")
    api_version = item.pop("apiVersion")
    meta = item.setdefault("metadata", {})
    name, namespace = meta["name"], meta.get("namespace")
    meta["uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{namespace}/{name}"))
    meta["resourceVersion"] = resource_version
    meta.setdefault("creationTimestamp", CREATED)  # kept when given: local mode's own time
    meta["managedFields"] = [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": api_version,
            "time": CREATED,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {}, "f:spec": {}},
        }
    ]
    meta.pop("generation", None)
    if "/" in api_version:
        meta["generation"] = 1
    if kind in _DEFAULTS:
        _DEFAULTS[kind](item)
    return item


def _namespace_defaults(item: dict) -> None:
    item["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = item["metadata"][
        "name"
    ]
    item["spec"] = {"finalizers": ["kubernetes"]}
    item["status"] = {"phase": "Active"}


def _service_defaults(item: dict) -> None:
    spec = item["spec"]
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port["port"])
    item["status"] = {"loadBalancer": {}}


def _route_defaults(item: dict) -> None:
    """Gateway API v1 CRD schema defaults, and the status a route's parent writes."""
    spec = item["spec"]
    for ref in spec.get("parentRefs") or []:
        ref.setdefault("group", "gateway.networking.k8s.io")
        ref.setdefault("kind", "Gateway")
    for rule in spec.setdefault("rules", [{}]):
        for match in rule.setdefault("matches", [{}]):
            match.setdefault("path", {}).setdefault("type", "PathPrefix")
            match["path"].setdefault("value", "/")
            for value_match in match.get("headers", []) + match.get("queryParams", []):
                value_match.setdefault("type", "Exact")
        for ref in rule.get("backendRefs") or []:
            ref.setdefault("group", "")
            ref.setdefault("kind", "Service")
            ref.setdefault("weight", 1)
    item["status"] = {
        "parents": [
            {
                "parentRef": ref,
                "controllerName": "nodemesh.io/controller",
                "conditions": [
                    {
                        "type": "Accepted",
                        "status": "True",
                        "reason": "Accepted",
                        "message": "",
                        "observedGeneration": 1,
                        "lastTransitionTime": CREATED,
                    }
                ],
            }
            for ref in spec.get("parentRefs") or []
        ]
    }


def _gateway_defaults(item: dict) -> None:
    """Gateway API v1 CRD schema defaults, and the status the API server starts it with."""
    for listener in item["spec"].get("listeners") or []:
        listener.setdefault("allowedRoutes", {"namespaces": {"from": "Same"}})
    item["status"] = {
        "conditions": [
            {
                "type": "Accepted",
                "status": "Unknown",
                "reason": "Pending",
                "message": "Waiting for controller",
                "observedGeneration": 1,
                "lastTransitionTime": "1970-01-01T00:00:00Z",
            }
        ]
    }


def _endpoint_slice_defaults(item: dict) -> None:
    """discovery.k8s.io/v1 defaulting: a port's protocol is TCP."""
    for port in item.get("ports") or []:
        port.setdefault("protocol", "TCP")


_DEFAULTS = {
    "Namespace": _namespace_defaults,
    "Service": _service_defaults,
    "HTTPRoute": _route_defaults,
    "Gateway": _gateway_defaults,
    "EndpointSlice": _endpoint_slice_defaults,
}


def deployment_defaults(obj: dict) -> None:
    """What the apps/v1 API server writes into every Deployment it stores."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
    )
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("securityContext", {})
    for volume in pod.get("volumes") or []:
        for key in ("projected", "configMap"):
            if key in volume:
                volume[key].setdefault("defaultMode", 420)
    for container in pod.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "Always")
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
        probe = container.get("readinessProbe")
        if probe:
            probe["httpGet"].setdefault("scheme", "HTTP")
            for key, value in (
                ("timeoutSeconds", 1),
                ("successThreshold", 1),
                ("failureThreshold", 3),
            ):
                probe.setdefault(key, value)
    obj["status"] = {"observedGeneration": obj["metadata"].get("generation", 1)}
