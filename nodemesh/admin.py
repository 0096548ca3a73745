"""The controller's admin endpoint: read-only JSON over HTTP/1.1 on localhost.

Routes are functions returning JSON-able data, or an awaitable of it (a long-poll such as
`/debug/flows` waits for news before answering); nothing here changes configuration (DESIGN:
nothing a pod can reach changes configuration, and this listener is bound to 127.0.0.1 only).
HTTP framing is h11's (sans-I/O); this module only moves bytes between it and the socket.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import h11

log = logging.getLogger("nodemesh.admin")
Route = Callable[[dict[str, list[str]]], object]
MAX_REQUEST = 16 * 1024


class RouteStatus(Exception):
    """Raised by a route to answer another status than 200 (e.g. 503 for "not ready")."""

    def __init__(self, status: int, data: object) -> None:
        super().__init__(status)
        self.status, self.data = status, data


class AdminServer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
        try:
            request = await self._request(conn, reader)
            if request is not None:
                status, body = await self._dispatch(request)
                writer.write(
                    conn.send(
                        h11.Response(
                            status_code=status,
                            headers=[
                                ("content-type", "application/json"),
                                ("content-length", str(len(body))),
                                ("connection", "close"),
                            ],
                        )
                    )
                )
                writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                await writer.drain()
        except (h11.RemoteProtocolError, ConnectionError, TimeoutError) as exc:
            log.debug("admin connection dropped: %s", exc)
        finally:
            writer.close()

    async def _request(self, conn: h11.Connection, reader) -> h11.Request | None:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await asyncio.wait_for(reader.read(4096), 10))
                continue
            return event if isinstance(event, h11.Request) else None

    async def _dispatch(self, request: h11.Request) -> tuple[int, bytes]:
        if request.method != b"GET":
            return 405, b'{"error": "the admin endpoint is read-only: GET only"}\n'
        url = urlsplit(request.target.decode())
        route = self.routes.get(url.path)
        if route is None:
            known = sorted(self.routes)
            return 404, json.dumps({"error": f"no route {url.path}", "routes": known}).encode()
        try:
            data = route(parse_qs(url.query))
            if inspect.isawaitable(data):
                data = await data
        except KeyError as exc:
            return 404, json.dumps({"error": f"not found: {exc}"}).encode()
        except RouteStatus as answer:
            return answer.status, (json.dumps(answer.data, sort_keys=True) + "\n").encode()
        return 200, (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode()


async def serve(server: AdminServer, host: str, port: int) -> asyncio.AbstractServer:
    return await asyncio.start_server(server.handle, host, port)
