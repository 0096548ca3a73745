"""Reading a component's admin endpoint, which listens on 127.0.0.1 inside a node's namespace.

Admin endpoints are localhost-only by design, so the CLI reaches them the way an operator on that
node would: a socket created inside the node's network namespace (netns.socket_in_netns).
"""

from __future__ import annotations

import json

from nodemesh.local import netns


class AdminError(RuntimeError):
    pass


def get_json(netns_name: str, port: int, path: str, timeout: float = 5.0) -> object:
    sock = netns.socket_in_netns(netns_name)
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError as exc:
        raise AdminError(
            f"cannot reach the admin endpoint 127.0.0.1:{port} in {netns_name}: {exc}"
        ) from exc
    finally:
        sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        raise AdminError(
            f"admin {path}: HTTP {status[0].decode() if status else '?'}: "
            f"{body.decode(errors='replace').strip()}"
        )
    return json.loads(body)
