"""Reading a component's admin endpoint, which listens on 127.0.0.1 inside a node's namespace.

Admin endpoints are localhost-only by design, so the CLI reaches them the way an operator on that
node would: a socket created inside the node's network namespace (netns.socket_in_netns).
"""

from __future__ import annotations

import json

from nodemesh.local import netns


class AdminError(RuntimeError):
    pass


def raw_get(netns_name: str, address: str, port: int, target: str, timeout: float) -> bytes:
    """The whole HTTP/1.0 response to GET `target`, from a socket inside `netns_name` (the host
    has no route to a node's addresses). HTTP/1.0: no chunking, the server closes at the end.
    Raises OSError for the caller to explain."""
    sock = netns.socket_in_netns(netns_name)
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {address}:{port}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def get_json(netns_name: str, port: int, path: str, timeout: float = 5.0) -> object:
    try:
        raw = raw_get(netns_name, "127.0.0.1", port, path, timeout)
    except OSError as exc:
        raise AdminError(
            f"cannot reach the admin endpoint 127.0.0.1:{port} in {netns_name}: {exc}"
        ) from exc
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        raise AdminError(
            f"admin {path}: HTTP {status[0].decode() if status else '?'}: "
            f"{body.decode(errors='replace').strip()}"
        )
    return json.loads(body)
