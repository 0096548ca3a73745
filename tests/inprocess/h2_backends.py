"""HTTP/2 backends for the waypoint's in-process tests: an h2c server and a real grpcio server.

`H2Backend` runs on the test's event loop over python-hyper's h2 and answers like the rig's
HTTP/1.1 `Backend` (a JSON echo of what it received), plus a trailer, so a test can see that
trailers cross the waypoint; `/bytes/<n>` answers n bytes within the client's flow-control
windows. `GrpcBackend` is grpcio's own server on its thread pool with a generic handler (no
generated code): unary `Say`, `Missing` (aborts NOT_FOUND), `Hang` (blocks until the call is
cancelled), and server-streaming `Count`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent import futures

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions

SERVICE = "demo.Echo"
NO_PROXY = (("grpc.enable_http_proxy", 0),)


class H2Backend:
    """An h2c server (prior knowledge) on 127.0.0.1; use as `async with`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> H2Backend:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config)
        conn.initiate_connection()
        requests: dict[int, tuple[dict, bytearray]] = {}
        pending: dict[int, memoryview] = {}  # response bytes waiting for the client's window
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    self._on_event(conn, event, requests, pending)
                _push(conn, pending)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        except asyncio.CancelledError:  # the test's loop is ending: not this server's failure
            return
        finally:
            writer.close()

    def _on_event(self, conn, event, requests, pending) -> None:
        if isinstance(event, h2.events.RequestReceived):
            requests[event.stream_id] = (dict(event.headers), bytearray())
        elif isinstance(event, h2.events.DataReceived):
            requests[event.stream_id][1].extend(event.data)
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            head, body = requests.pop(event.stream_id)
            self.count += 1
            pending[event.stream_id] = memoryview(self._answer(conn, event.stream_id, head, body))
        elif isinstance(event, h2.events.StreamReset):
            requests.pop(event.stream_id, None)
            pending.pop(event.stream_id, None)

    def _answer(self, conn, stream_id: int, head: dict, body: bytes) -> bytes:
        path = head[":path"]
        if path.startswith("/bytes/"):
            answer = b"x" * int(path.rsplit("/", 1)[1])
            kind = "application/octet-stream"
        else:
            fields = {k: v for k, v in head.items() if not k.startswith(":")}
            echo = {"backend": self.name, "path": path, "method": head[":method"]}
            echo |= {"protocol": "HTTP/2", "headers": fields, "body": body.decode("latin-1")}
            answer, kind = json.dumps(echo).encode(), "application/json"
        response = [
            (":status", "200"),
            ("content-type", kind),
            ("content-length", str(len(answer))),
        ]
        conn.send_headers(stream_id, response)
        return answer


def _push(conn: h2.connection.H2Connection, pending: dict[int, memoryview]) -> None:
    """Send what the windows allow; a finished body gets its trailer."""
    for stream_id in list(pending):
        view = pending[stream_id]
        size = min(len(view), conn.local_flow_control_window(stream_id))
        step = conn.max_outbound_frame_size
        for offset in range(0, size, step):
            conn.send_data(stream_id, view[offset : min(size, offset + step)])
        if size == len(view):
            conn.send_headers(stream_id, [("x-backend-trailer", "done")], end_stream=True)
            del pending[stream_id]
        else:
            pending[stream_id] = view[size:]


class GrpcBackend:
    """grpcio's server on 127.0.0.1 with the demo.Echo methods; use as `with`."""

    def __init__(self, name: str, messages: int = 5) -> None:
        self.name, self.messages = name, messages
        self.calls = 0
        self.hanging = threading.Event()  # a Hang call is in the handler
        self.cancelled = threading.Event()  # ... and it ended without an answer
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {
            "Say": grpc.unary_unary_rpc_method_handler(self._say),
            "Missing": grpc.unary_unary_rpc_method_handler(self._missing),
            "Hang": grpc.unary_unary_rpc_method_handler(self._hang),
            "Count": grpc.unary_stream_rpc_method_handler(self._count),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> GrpcBackend:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(None)

    def _say(self, request: bytes, context) -> bytes:
        self.calls += 1
        return f"{self.name} says hello to ".encode() + request

    def _missing(self, request: bytes, context) -> bytes:
        self.calls += 1
        context.abort(grpc.StatusCode.NOT_FOUND, f"no such thing: {request.decode()}")

    def _hang(self, request: bytes, context) -> bytes:
        context.add_callback(self.cancelled.set)  # runs when the call ends: here, cancelled
        self.hanging.set()
        self.cancelled.wait(30)
        return b"too late"

    def _count(self, request: bytes, context):
        self.calls += 1
        for i in range(self.messages):
            yield f"{request.decode()}-{i}".encode()


def channel(port: int) -> grpc.Channel:
    """An insecure (h2c) channel to the waypoint, never through an HTTP proxy."""
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=NO_PROXY)


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"
